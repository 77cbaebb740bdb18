"""``frugalseg annotate``: serve the annotation page on this machine until Ctrl+C.

Everything that can fail on bad input (the optional dependencies, the data, the classes, an
existing ``--out`` that does not fit the data, a second server on the same file, a port in use)
fails before the server starts, with a one-line message.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from pathlib import Path
from typing import TextIO

from frugalseg.errors import FrugalsegError

__all__ = ["INSTALL_HINT", "allowed_hosts", "require_server_deps", "serve"]

INSTALL_HINT = "pip install 'frugalseg[annotate]'"


def require_server_deps() -> None:
    """:class:`FrugalsegError` with the exact pip command when Starlette or uvicorn is missing."""
    missing = []
    for name in ("starlette", "uvicorn"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise FrugalsegError(f"the annotation page needs {' and '.join(missing)}: {INSTALL_HINT}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str]:
    """Host names the page answers to: the bound one and its loopback aliases; any for 0.0.0.0 / ::."""
    if host in ("0.0.0.0", "::"):
        return ["*"]
    return list(dict.fromkeys([host, "127.0.0.1", "localhost"] if _is_loopback(host) else [host]))


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so that a port in use is a clear error and port 0 gets a known port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FrugalsegError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    sock.listen(128)
    return sock


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(data: Path, out: Path, classes: Path | None = None, host: str = "127.0.0.1", port: int = 8765,
          stream: TextIO = sys.stdout, suggested: Path | None = None) -> None:
    """Open the data and the annotation file (locked), print the page's URL, and serve until interrupted.

    ``suggested``: a ``frugalseg suggest`` file, whose slices the page opens first, in its order.
    """
    require_server_deps()
    import uvicorn

    from frugalseg.annotate.app import create_app
    from frugalseg.annotate.catalog import load_catalog
    from frugalseg.annotate.store import AnnotationStore
    from frugalseg.annotate.suggested import read_suggestions

    catalog = load_catalog(data, classes)
    queue = [] if suggested is None else read_suggestions(suggested, catalog)
    sock = _bind(host, port)
    try:
        store = AnnotationStore(out, catalog)
    except BaseException:
        sock.close()
        raise
    try:
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{sock.getsockname()[1]}/"
        print(f"frugalseg annotate: {url}  ({len(catalog.infos)} slices of {data}; every action is saved to "
              f"{out}; Ctrl+C to stop)", file=stream, flush=True)
        if queue:
            print(f"frugalseg annotate: {len(queue)} suggested slices from {suggested}, in order (key N: the next "
                  "one not yet annotated)", file=stream, flush=True)
        if not _is_loopback(host):
            print(f"frugalseg annotate: warning: {host} is reachable from other machines, and so are the images",
                  file=stream, flush=True)
        # uvicorn re-raises the SIGTERM it caught after shutting down; as KeyboardInterrupt it ends like Ctrl+C,
        # through the finally below, so the timing log records the end of the session.
        signal.signal(signal.SIGTERM, _interrupt)
        app = create_app(store, allowed_hosts(host), queue)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[sock])
        if server.should_exit:
            # A signal uvicorn caught (Ctrl+C, SIGTERM) ended it. uvicorn then raises the signal again, but
            # under asyncio's runner that may only cancel a task that has already finished, and run() returns:
            # end as Ctrl+C does either way (exit 130, the timing log's stop below).
            raise KeyboardInterrupt
    finally:
        store.close()
        sock.close()
