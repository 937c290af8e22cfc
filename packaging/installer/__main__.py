"""``python3 medws-install.pyz verify|install ...``: see medws_install."""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 - the pyz may meet any python3
    sys.stderr.write("refused: medws-install.pyz needs Python 3.11 or newer\n")
    sys.exit(1)

from medws_install.cli import main

sys.exit(main())
