"""The Medical Workstation release installer (``medws-install.pyz``).

A zipapp built by ``packaging/build_release.py`` for one release: this package, the pure-Python
modules of ``workstation.security`` that verify signed bundles (and the few ``workstation``
modules they import), the release's trust root (``data/root.json``) and the SHA-256 pins of the
cryptography wheels (``data/pins.json``). IT checks the pyz itself by its published SHA-256; the
pyz then checks everything else.
"""

INSTALLER_FORMAT = 1
