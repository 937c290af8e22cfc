"""Disease progression and treatment simulation: a first-party Medical Workstation plugin.

Qt-free modules: ``registration``, ``regions``, ``change``, ``trend``, ``plot``, ``analysis``,
``pipeline``; ``panel`` is the only one that imports PySide6. Demonstration, not for clinical use.
"""

__version__ = "0.1.0"
