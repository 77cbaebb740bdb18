"""Writing output files safely: never half a file under the final name, never an existing file by accident.

Every file frugalseg writes that a user keeps (checkpoints, annotation files, reports, predicted
NIfTIs) goes through :func:`atomic_path`: the content is written to a temporary file in the target's
own folder (same file system, so the final ``os.replace`` is atomic), flushed to disk, then renamed
over the target. A run killed mid-write leaves the previous file, or none, never a truncated one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frugalseg.errors import OutputExistsError

__all__ = ["atomic_path", "refuse_existing", "replace_marked_block", "write_text_atomic"]


def refuse_existing(path: Path, overwrite: bool) -> None:
    """:class:`OutputExistsError` naming ``path`` if it exists and ``overwrite`` is false."""
    if path.exists() and not overwrite:
        raise OutputExistsError(path)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit, sync it and rename it to ``path``.

    Args:
        path: the final file; its folder is created if missing.
        suffix: the temporary name's ending (a library that picks the format from the name, as
            nibabel does for ``.nii.gz``, needs the real suffix here).

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; refuse an existing file unless ``overwrite``."""
    path = Path(path)
    refuse_existing(path, overwrite)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


def replace_marked_block(page: str | Path, name: str, body: str, fresh_page: str = "") -> Path:
    """Replace the text between two ``<!-- name -->`` lines of a Markdown page with ``body``.

    Scripts that produce tables for ``docs/`` (benchmarks, evidence runs) each own one named block,
    so the page is written by them and never typed, and re-running one script replaces only its own
    block. A page without the block gets it appended; a missing page starts as ``fresh_page``. The
    page is rewritten atomically.
    """
    page = Path(page)
    marker = f"<!-- {name} -->"
    text = page.read_text(encoding="utf-8") if page.exists() else fresh_page
    block = f"{marker}\n{body.rstrip()}\n{marker}\n"
    if marker in text:
        pre, _, rest = text.partition(marker)
        _, found, post = rest.partition(marker + "\n")
        if not found:
            raise ValueError(f"{page}: {marker} opens a block that is never closed")
        text = pre + block + post
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + block
    return write_text_atomic(page, text, overwrite=True)
