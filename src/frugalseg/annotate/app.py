"""The page's HTTP interface (Starlette): the page and its assets, slices by item id, and one route per action.

Request bodies are the annotation file's own pydantic models (:class:`Point`, :class:`Scribble`,
:class:`Box`), validated strictly as the file is read, then checked with the file's rules against
the item's grid (:func:`check_annotations`). A bad request gets a 4xx and a one-line message that
names the field, and the file is not touched.

Local only, by design: the server answers only requests addressed to the host it was bound to (a
web page elsewhere cannot reach it through DNS rebinding), and changes need a JSON content type (a
cross-site form cannot send one without the browser asking first, which this server never allows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from frugalseg.annotate.models import TagsBody
from frugalseg.annotate.progress import item_summary, progress
from frugalseg.annotate.store import AnnotationStore, Change, Kind, NothingToDo, UnknownItem
from frugalseg.data.annotations import Box, Item, Point, Scribble, _problem
from frugalseg.errors import AnnotationError

__all__ = ["STATIC", "create_app"]

STATIC = Path(str(resources.files("frugalseg.annotate") / "static"))
MARKS: dict[str, type[Point] | type[Scribble] | type[Box]] = {"points": Point, "scribbles": Scribble, "boxes": Box}
KINDS: tuple[Kind, ...] = ("points", "scribbles", "boxes")
Endpoint = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """A request the page should not have sent: its status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _item_json(item: Item) -> dict[str, Any]:
    return item.model_dump(mode="json", by_alias=True, exclude_none=True)


def _change_json(change: Change, store: AnnotationStore) -> dict[str, Any]:
    item = store.item(change.item_id)
    return {"item_id": change.item_id, "action": change.action, "item": _item_json(item),
            "summary": item_summary(item)}


def _validation_message(exc: ValidationError) -> str:
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"field {field!r}: " if field else "") + _problem(first) + more


async def _json_body(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest(415, f"send the body as application/json, not {kind or 'no content type'!r}")
    return await request.body()


def _guarded(handler: Endpoint) -> Endpoint:
    """Turn the store's and the models' refusals into 4xx JSON replies ``{"error": message}``."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except UnknownItem as exc:
            return JSONResponse({"error": f"no such item {exc.args[0]!r} in the data"}, status_code=404)
        except ValidationError as exc:
            return JSONResponse({"error": _validation_message(exc)}, status_code=422)
        except AnnotationError as exc:
            return JSONResponse({"error": exc.problem}, status_code=422)
        except NothingToDo as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)

    return endpoint


class _Endpoints:
    """The request handlers over one store, one method each (the routes of :func:`_routes` name them).

    Reading handlers answer from the store and its catalog; changing handlers validate the body with the
    file's own models and hand it to the store, which checks it against the item and saves the file.
    """

    def __init__(self, store: AnnotationStore, suggested: Sequence[str] = ()) -> None:
        self.store = store
        self.catalog = store.catalog
        self.suggested = list(suggested)

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def session(self, request: Request) -> Response:
        """What the page needs to start: classes, items with their grids, and where the files are."""
        items = [{"id": i.item_id, "case": i.case_id, "index": i.index, "height": i.height, "width": i.width}
                 for i in self.catalog.infos]
        return JSONResponse({"classes": self.catalog.class_names(), "items": items, "out": str(self.store.path),
                             "log": str(self.store.log_path), "data": str(self.catalog.data),
                             "suggested": self.suggested})

    async def image(self, request: Request) -> Response:
        """An item's slice as raw bytes, its grid in headers (the page draws it without decoding a format)."""
        item_id = request.path_params["item_id"]
        if item_id not in self.catalog:
            raise UnknownItem(item_id)
        h, w = self.catalog.grid(item_id)
        return Response(self.catalog.image_bytes(item_id), media_type="application/octet-stream",
                        headers={"X-Height": str(h), "X-Width": str(w), "Cache-Control": "no-store"})

    async def item(self, request: Request) -> Response:
        return JSONResponse(_item_json(self.store.item(request.path_params["item_id"])))

    async def progress(self, request: Request) -> Response:
        return JSONResponse(progress(self.catalog, self.store.ann))

    def adder(self, kind: Kind) -> Endpoint:
        """The handler that adds one mark of ``kind`` (a point, scribble or box) to an item."""

        async def add(request: Request) -> Response:
            item_id = request.path_params["item_id"]
            self.store.item(item_id)  # 404 before any complaint about the body
            mark = MARKS[kind].model_validate_json(await _json_body(request), strict=True)
            return JSONResponse(_change_json(self.store.add(item_id, kind, mark), self.store))

        return add

    async def tags(self, request: Request) -> Response:
        item_id = request.path_params["item_id"]
        self.store.item(item_id)
        body = TagsBody.model_validate_json(await _json_body(request), strict=True)
        return JSONResponse(_change_json(self.store.set_tags(item_id, body.tags), self.store))

    async def undo(self, request: Request) -> Response:
        await _json_body(request)  # a change: JSON only, like every other change (see the module docstring)
        return JSONResponse(_change_json(self.store.undo(), self.store))

    async def redo(self, request: Request) -> Response:
        await _json_body(request)
        return JSONResponse(_change_json(self.store.redo(), self.store))


def _routes(endpoints: _Endpoints) -> list[Route | Mount]:
    """Every URL of the page, each handler guarded so that a refusal is a 4xx with a one-line message."""
    return [
        Route("/", _guarded(endpoints.index)),
        Route("/api/session", _guarded(endpoints.session)),
        Route("/api/progress", _guarded(endpoints.progress)),
        Route("/api/items/{item_id}", _guarded(endpoints.item)),
        Route("/api/items/{item_id}/image", _guarded(endpoints.image)),
        *(Route(f"/api/items/{{item_id}}/{kind}", _guarded(endpoints.adder(kind)), methods=["POST"])
          for kind in KINDS),
        Route("/api/items/{item_id}/tags", _guarded(endpoints.tags), methods=["PUT"]),
        Route("/api/undo", _guarded(endpoints.undo), methods=["POST"]),
        Route("/api/redo", _guarded(endpoints.redo), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(store: AnnotationStore, allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost"),
               suggested: Sequence[str] = ()) -> Starlette:
    """The page's application over ``store`` (which the caller opens and closes).

    Args:
        store: the annotation file and the data's items.
        allowed_hosts: host names requests may be addressed to (the bound host and its aliases).
        suggested: item ids to annotate first, in order (``frugalseg suggest``'s output, checked against the
            data by :func:`~frugalseg.annotate.suggested.read_suggestions`).
    """
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
    return Starlette(routes=_routes(_Endpoints(store, suggested)), middleware=middleware)
