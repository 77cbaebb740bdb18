"""The real server as a child process (`frugalseg annotate --port 0`), for the killed-server and browser tests."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT = 60.0


class Server:
    """``frugalseg annotate`` on a free port; ``url`` is the one it printed."""

    def __init__(self, data: Path, out: Path, *extra: str) -> None:
        cmd = [sys.executable, "-m", "frugalseg", "annotate", "--data", str(data), "--out", str(out),
               "--port", "0", *extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url = self._read_url()

    def _read_url(self) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        seen = []
        while time.monotonic() < deadline:
            if not sel.select(timeout=1):
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "http://" in line:
                return "http://" + line.split("http://", 1)[1].split()[0]
        self.kill()
        raise RuntimeError(f"the server did not start: {''.join(seen)}")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:  # noqa: ANN401
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> str:
        """Ctrl+C, as a user stops it; returns what it printed."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        return out
