"""``python -m toposcope ...`` (also what ``torchrun -m toposcope train ...`` runs)."""

from .cli import main

raise SystemExit(main())
