"""``python -m workstation`` runs the command line."""

from workstation.cli import main

raise SystemExit(main())
