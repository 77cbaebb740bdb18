"""The ACDC sample bundled with the package (``ACDC/``), for tests, ``frugalseg demo`` and the quick start.

It is a tiny SSL4MIS-layout copy of ACDC (4 training patients, 1 validation patient, in-plane size
halved) rebuilt by ``scripts/make_sample.py``; ``ACDC/README.md`` gives its provenance and licence.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["sample_path"]


def sample_path() -> Path:
    """Folder of the bundled ACDC sample, openable with ``open_source(sample_path())``.

    Uses :mod:`importlib.resources`, so it finds the data wherever the package is installed (editable
    checkout, wheel, site-packages) rather than relying on a path relative to the repository.

    Raises:
        FileNotFoundError: the package was installed without its data files (or from a zip, where the
            sample has no folder on disk).
    """
    path = Path(str(resources.files(__name__) / "ACDC"))
    if not (path / "train_slices.list").is_file():
        raise FileNotFoundError(f"{path}: the bundled ACDC sample is missing; reinstall frugalseg with its package "
                                "data, or rebuild it with scripts/make_sample.py")
    return path
