"""Plugins: the contract (:mod:`.api`), building, verified installation and discovery.

A plugin is code a researcher writes; it runs only after verification. Installed plugins come
from signed plugin bundles (:mod:`.build`, :mod:`.installed`) whose publisher key the trust
root, this workstation's own key or an administrator's allow-list vouches for; unsigned source
folders run only in developer mode (:mod:`.developer`), visibly marked. :class:`PluginRegistry`
lists them all without importing any, and resolves a contribution on first use.
"""

from workstation.plugins.api import API_VERSION, GROUPS
from workstation.plugins.errors import PluginError
from workstation.plugins.registry import Contribution, PluginRecord, PluginRegistry

__all__ = [
    "API_VERSION",
    "GROUPS",
    "Contribution",
    "PluginError",
    "PluginRecord",
    "PluginRegistry",
]
