"""Fixtures of the plugin tests: a throwaway publisher, and sys.path/modules restored."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from security.bundle_kit import Publisher


@pytest.fixture(scope="module")
def publisher() -> Publisher:
    return Publisher.make()


@pytest.fixture(autouse=True)
def _clean_sys_path() -> Iterator[None]:
    """Loading a plugin appends its folder to sys.path and imports it: undo both."""
    before = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = before
    for name in set(sys.modules) - modules:
        if name.startswith("mw_test_"):
            del sys.modules[name]
