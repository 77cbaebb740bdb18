"""The one reader of id-per-line files (case lists, suggest's output): what a line is, and the errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from frugalseg.data.id_lists import read_id_lines
from frugalseg.engine.run_data import read_case_list
from frugalseg.errors import DataError


def test_ids_keep_their_line_numbers_and_order(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# made by hand\n  b_01  \n\na_02\n   # indented comment\nc_03\n", encoding="utf-8")
    assert read_id_lines(path, "case list") == [(2, "b_01"), (4, "a_02"), (6, "c_03")]
    assert read_case_list(path) == ["b_01", "a_02", "c_03"]


@pytest.mark.parametrize("content, message", [
    (None, "case list does not exist (how to make one)"),
    (b"\n  \n# only a comment\n", "case list is empty: it lists no id"),
    (b"case\xff\n", "unreadable case list"),
])
def test_errors_name_the_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "ids.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_id_lines(path, "case list", " (how to make one)")
    assert str(path) in str(err.value)
