"""``python -m frugalseg`` runs the command line (also what ``torchrun -m frugalseg train`` starts)."""

from __future__ import annotations

from frugalseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
