"""`frugalseg annotate` refuses bad input before it serves (missing extra, missing classes, a port in use),
and ends as Ctrl+C does however the signal reaches it."""

from __future__ import annotations

import io
import json
import signal
import socket
import sys

import pytest

from frugalseg.cli import main
from frugalseg.commands.annotate import allowed_hosts
from tests.helpers import sample_root


def test_without_the_extra_it_gives_the_pip_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert main(["annotate", "--data", str(sample_root()), "--out", str(tmp_path / "a.json")]) == 2
    assert "needs uvicorn: pip install 'frugalseg[annotate]'" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()


def test_data_without_classes_needs_the_classes_file(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "images" / "x.png")
    assert main(["annotate", "--data", str(tmp_path), "--out", str(tmp_path / "a.json")]) == 2
    assert "pass --classes FILE" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()


def test_a_port_in_use_is_refused_before_the_file_is_written(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = tmp_path / "a.json"
        assert main(["annotate", "--data", str(sample_root()), "--out", str(out), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert not out.exists()


def test_allowed_hosts():
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert allowed_hosts("localhost") == ["localhost", "127.0.0.1"]
    assert allowed_hosts("0.0.0.0") == ["*"]
    assert allowed_hosts("10.0.0.5") == ["10.0.0.5"]


def test_a_signal_uvicorn_handled_ends_as_ctrl_c_even_when_run_returns(tmp_path, monkeypatch):
    """uvicorn re-raises the signal it caught, but under asyncio's runner that can end in a normal return
    (the re-raised SIGINT only cancels a finished task): serve still ends as Ctrl+C, and logs the stop."""
    import uvicorn

    from frugalseg.commands.annotate import serve

    def stopped_by_a_signal(self, sockets=None):
        self.handle_exit(signal.SIGINT, None)  # what uvicorn's own handler does on Ctrl+C
        return None

    monkeypatch.setattr(uvicorn.Server, "run", stopped_by_a_signal)
    out = tmp_path / "ann.json"
    with pytest.raises(KeyboardInterrupt):
        serve(sample_root(), out, port=0, stream=io.StringIO())
    assert json.loads(out.with_name("ann.json.timing.jsonl").read_text().splitlines()[-1])["action"] == "stop"
