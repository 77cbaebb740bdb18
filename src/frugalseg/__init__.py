"""frugalseg: medical image segmentation from cheap annotations.

One shared core (data sources, annotation files, candidate-label maps, one
training engine, per-volume evaluation) and four published methods on top of
it (PSCV, MLDS, DII + DCR, ACTION). See ``DESIGN.md`` in the project's shared
folder and ``docs/`` for the architecture.
"""

from __future__ import annotations

__version__ = "0.1.0"
