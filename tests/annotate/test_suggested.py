"""``frugalseg annotate --suggested FILE``: the slices ``frugalseg suggest`` ranked, read against the data.

The page side (it opens at the first suggested slice, ``N`` steps through them) is driven in chromium by
``tests/annotate/test_browser.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalseg.annotate.suggested import read_suggestions
from frugalseg.cli import main
from frugalseg.errors import DataError
from tests.annotate.conftest import make_client
from tests.helpers import sample_root


def test_ids_in_file_order_and_the_session_lists_them(tmp_path, catalog, store):
    from frugalseg.annotate.app import create_app

    ids = [catalog.infos[7].item_id, catalog.infos[2].item_id]
    path = tmp_path / "next.txt"
    path.write_text(f"# frugalseg suggest, entropy\n{ids[0]}\n\n{ids[1]}\n")
    assert read_suggestions(path, catalog) == ids
    with make_client(create_app(store, ["testserver"], ids)) as client:
        assert client.get("/api/session").json()["suggested"] == ids
    with make_client(create_app(store, ["testserver"])) as client:
        assert client.get("/api/session").json()["suggested"] == []


@pytest.mark.parametrize("text, words", [
    ("patient001_frame01_slice_1\n", "line 1: 'patient001_frame01_slice_1' is not a training slice of"),
    ("{a}\n{b}\n{a}\n", "line 3: '{a}' is listed twice"),
    ("\n# nothing\n", "lists no id"),
])
def test_bad_files_name_the_file_and_the_line(tmp_path, catalog, text, words):
    a, b = catalog.infos[0].item_id, catalog.infos[1].item_id
    path = tmp_path / "next.txt"
    path.write_text(text.format(a=a, b=b))
    with pytest.raises(DataError, match=words.format(a=a).replace("(", r"\(")) as err:
        read_suggestions(path, catalog)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        read_suggestions(tmp_path / "missing.txt", catalog)


def test_the_command_refuses_a_file_for_other_data_before_writing(tmp_path: Path, capsys):
    path = tmp_path / "next.txt"
    path.write_text("patient001_frame01_slice_1\n")
    out = tmp_path / "ann.json"
    assert main(["annotate", "--data", str(sample_root()), "--out", str(out), "--port", "0",
                 "--suggested", str(path)]) == 2
    assert "not a training slice" in capsys.readouterr().err
    assert not out.exists()
