"""Makes the plugin importable without installing it: ``src/`` goes on ``sys.path``."""

import os
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

# Widgets are created without a screen unless a display is set up explicitly.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
