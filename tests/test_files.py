from __future__ import annotations

from pathlib import Path

import pytest

from frugalseg.errors import OutputExistsError
from frugalseg.files import atomic_path, replace_marked_block, write_text_atomic


def test_atomic_path_renames_into_place_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()  # nothing under the final name until the block ends
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_suffix_a_writer_needs(tmp_path: Path):
    with atomic_path(tmp_path / "x.nii.gz", suffix=".nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"")


def test_write_text_atomic_refuses_an_existing_file_unless_told(tmp_path: Path):
    target = tmp_path / "report.md"
    write_text_atomic(target, "one")
    with pytest.raises(OutputExistsError, match="report.md"):
        write_text_atomic(target, "two")
    assert target.read_text() == "one"
    write_text_atomic(target, "two", overwrite=True)
    assert target.read_text() == "two"


def test_replace_marked_block_replaces_only_its_block(tmp_path: Path):
    page = tmp_path / "perf.md"
    replace_marked_block(page, "a", "table A1", fresh_page="# Performance\n")
    replace_marked_block(page, "b", "table B1")
    replace_marked_block(page, "a", "table A2\n")
    assert page.read_text() == (
        "# Performance\n\n<!-- a -->\ntable A2\n<!-- a -->\n\n<!-- b -->\ntable B1\n<!-- b -->\n"
    )


def test_replace_marked_block_refuses_an_unclosed_block(tmp_path: Path):
    page = tmp_path / "perf.md"
    page.write_text("intro\n<!-- a -->\nhalf\n")
    with pytest.raises(ValueError, match="never closed"):
        replace_marked_block(page, "a", "x")
    assert page.read_text() == "intro\n<!-- a -->\nhalf\n"
