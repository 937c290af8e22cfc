"""The workstation home: WORKSTATION_HOME override, platform default, layout, demo study."""

from __future__ import annotations

import stat
from pathlib import Path

import platformdirs
import pytest

from workstation import config
from workstation.core.errors import ConfigError, WorkstationError


def test_env_overrides_the_home(tmp_path: Path) -> None:
    assert config.home_dir({config.HOME_ENV: str(tmp_path)}) == tmp_path.resolve()


def test_override_may_not_exist_yet_and_is_not_created(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    assert config.home_dir({config.HOME_ENV: str(home)}) == home.resolve()
    assert not home.exists()


def test_relative_override_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    home = config.home_dir({config.HOME_ENV: "ws"})
    assert home.is_absolute()
    assert home == (tmp_path / "ws").resolve()


def test_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    with pytest.raises(ConfigError, match="file") as caught:
        config.home_dir({config.HOME_ENV: str(file)})
    assert isinstance(caught.value, WorkstationError)
    assert caught.value.path == file


@pytest.mark.parametrize("environ", [{}, {config.HOME_ENV: ""}, {config.HOME_ENV: "   "}])
def test_default_is_the_platform_user_data_dir(environ: dict[str, str]) -> None:
    expected = Path(platformdirs.user_data_dir(config.APP_NAME, appauthor=False))
    assert config.home_dir(environ) == expected


def test_process_environment_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.HOME_ENV, str(tmp_path))
    assert config.home_dir() == tmp_path.resolve()
    assert config.paths().home == tmp_path.resolve()


def test_layout_under_the_home(tmp_path: Path) -> None:
    layout = config.paths({config.HOME_ENV: str(tmp_path)})
    for folder in (layout.cache, layout.logs, layout.models, layout.plugins, layout.keys):
        assert folder.parent == tmp_path.resolve()
        assert not folder.exists()  # created on first use, never up front


def test_ensure_creates_a_private_folder(tmp_path: Path) -> None:
    layout = config.paths({config.HOME_ENV: str(tmp_path / "home")})
    keys = layout.ensure(layout.keys)
    assert keys.is_dir()
    assert stat.S_IMODE(keys.stat().st_mode) & 0o077 == 0
    assert layout.ensure(layout.keys) == keys  # idempotent


def test_demo_study_is_in_the_repository() -> None:
    demo = config.demo_study_path()
    assert demo.is_dir()
    assert demo == Path(__file__).resolve().parents[1] / "resources" / "demo" / "brain_mr"
    assert any(demo.glob("*.dcm"))
