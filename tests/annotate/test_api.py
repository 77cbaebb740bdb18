"""The page's HTTP interface: add, undo, redo and list each kind; bad requests refused with the file unchanged."""

from __future__ import annotations

import json

import pytest

from frugalseg.data.annotations import load_annotations
from tests.annotate.conftest import make_client

ITEM = "patient038_frame01_slice_3"  # 192 x 138 in the sample

MARKS = {
    "points": {"class": 1, "y": 100, "x": 60},
    "scribbles": {"class": 0, "path": [[5, 5], [5, 6], [6, 6]]},
    "boxes": {"class": 3, "y0": 80, "x0": 50, "y1": 120, "x1": 90},
}


def post(client, url, body):
    return client.post(url, content=json.dumps(body), headers={"Content-Type": "application/json"})


def put(client, url, body):
    return client.put(url, content=json.dumps(body), headers={"Content-Type": "application/json"})


def on_disk(store):
    return load_annotations(store.path, grids=store.catalog.grids())


def test_session_lists_classes_and_items(client, catalog):
    body = client.get("/api/session").json()
    assert body["classes"] == {"1": "RV", "2": "Myo", "3": "LV"}
    assert [it["id"] for it in body["items"]] == [info.item_id for info in catalog.infos]
    first = body["items"][0]
    assert catalog.grid(first["id"]) == (first["height"], first["width"])


def test_page_and_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere


def test_image_is_the_items_float32_intensities(client, catalog):
    import numpy as np

    response = client.get(f"/api/items/{ITEM}/image")
    assert response.status_code == 200
    h, w = catalog.grid(ITEM)
    assert (int(response.headers["X-Height"]), int(response.headers["X-Width"])) == (h, w)
    image = np.frombuffer(response.content, dtype="<f4").reshape(h, w)
    np.testing.assert_array_equal(image, np.frombuffer(catalog.image_bytes(ITEM), dtype="<f4").reshape(h, w))


@pytest.mark.parametrize("kind", sorted(MARKS))
def test_add_list_undo_redo(client, store, kind):
    mark = MARKS[kind]
    response = post(client, f"/api/items/{ITEM}/{kind}", mark)
    assert response.status_code == 200, response.text
    assert response.json()["item"][kind] == [mark]
    assert client.get(f"/api/items/{ITEM}").json()[kind] == [mark]
    assert getattr(on_disk(store).items[ITEM], kind)[0].model_dump(by_alias=True, exclude_none=True) == mark
    summary = next(it for it in client.get("/api/progress").json()["items"] if it["id"] == ITEM)
    assert summary[kind] == 1 and summary["annotated"]

    assert post(client, "/api/undo", {}).status_code == 200
    assert ITEM not in on_disk(store).items  # the item held only this mark: undone, it is unlabelled again
    assert client.get(f"/api/items/{ITEM}").json()[kind] == []

    assert post(client, "/api/redo", {}).json()["item"][kind] == [mark]
    assert len(getattr(on_disk(store).items[ITEM], kind)) == 1


def test_tags_present_empty_and_cleared(client, store):
    assert put(client, f"/api/items/{ITEM}/tags", {"tags": [3, 1]}).json()["item"]["tags"] == [1, 3]
    assert on_disk(store).items[ITEM].tags == [1, 3]
    body = put(client, f"/api/items/{ITEM}/tags", {"tags": []}).json()
    assert body["summary"]["empty"] and on_disk(store).items[ITEM].tags == []
    put(client, f"/api/items/{ITEM}/tags", {"tags": None})
    assert ITEM not in on_disk(store).items
    post(client, "/api/undo", {})
    assert on_disk(store).items[ITEM].tags == []


def test_counts_per_class_and_kind(client):
    post(client, f"/api/items/{ITEM}/points", {"class": 1, "y": 1, "x": 1})
    post(client, f"/api/items/{ITEM}/points", {"class": 1, "y": 2, "x": 1})
    post(client, f"/api/items/{ITEM}/boxes", MARKS["boxes"])
    put(client, "/api/items/patient038_frame01_slice_4/tags", {"tags": []})
    body = client.get("/api/progress").json()
    assert body["per_class"]["1"]["points"] == 2 and body["per_class"]["3"]["boxes"] == 1
    assert body["totals"] == {"items": 84, "annotated": 2, "empty": 1, "tagged": 1, "points": 2, "scribbles": 0,
                              "boxes": 1}


def test_undo_and_redo_with_nothing_to_do(client):
    assert post(client, "/api/undo", {}).status_code == 409
    assert post(client, "/api/redo", {}).status_code == 409


def test_a_new_action_drops_what_was_undone(client):
    post(client, f"/api/items/{ITEM}/points", MARKS["points"])
    post(client, "/api/undo", {})
    post(client, f"/api/items/{ITEM}/boxes", MARKS["boxes"])
    assert post(client, "/api/redo", {}).status_code == 409


BAD = [
    ("points", {"class": 1, "y": 192, "x": 0}, 422, "y=192 lies outside the image (grid 192x138)"),
    ("points", {"class": 1, "y": -1, "x": 0}, 422, "y=-1 is negative"),
    ("points", {"class": 4, "y": 1, "x": 1}, 422, "unknown class 4"),
    ("points", {"class": 1, "y": 1.5, "x": 1}, 422, "field 'y': input should be a valid integer"),
    ("points", {"class": 1, "y": "1", "x": 1}, 422, "field 'y'"),
    ("points", {"class": 1, "y": 1, "x": 1, "z": 0}, 422, "z given for an item stored as a 2D image"),
    ("points", {"colour": 1, "y": 1, "x": 1}, 422, "field 'colour': unknown field"),
    ("points", {"y": 1, "x": 1}, 422, "field 'class': missing field"),
    ("boxes", {"class": 0, "y0": 1, "x0": 1, "y1": 2, "x1": 2}, 422, "a box of background"),
    ("boxes", {"class": 1, "y0": 9, "x0": 1, "y1": 2, "x1": 2}, 422, "box corners out of order"),
    ("boxes", {"class": 1, "y0": 1, "x0": 1, "y1": 2, "x1": 138}, 422, "x1=138 lies outside"),
    ("scribbles", {"class": 2, "path": []}, 422, "empty path"),
    ("scribbles", {"class": 2, "path": [[1, 1], [1, 2, 3]]}, 422, "a pixel is [y, x]"),
    ("scribbles", {"class": 2, "path": [[1, 1], [500, 2]]}, 422, "y=500 lies outside"),
    ("tags", {"tags": [1, 1]}, 422, "class 1 tagged twice"),
    ("tags", {"tags": [9]}, 422, "unknown class 9"),
    ("tags", {"labels": [1]}, 422, "unknown field"),
]


@pytest.mark.parametrize(("kind", "body", "status", "message"), BAD, ids=[b[3][:30] for b in BAD])
def test_bad_bodies_are_refused_and_the_file_unchanged(client, store, kind, body, status, message):
    post(client, f"/api/items/{ITEM}/points", MARKS["points"])
    before = store.path.read_bytes()
    send = put if kind == "tags" else post
    response = send(client, f"/api/items/{ITEM}/{kind}", body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert store.path.read_bytes() == before
    assert client.get(f"/api/items/{ITEM}").json()["points"] == [MARKS["points"]]  # memory unchanged too


def test_requests_the_page_cannot_make(client, store):
    before = store.path.read_bytes()
    assert post(client, "/api/items/no_such_slice/points", MARKS["points"]).status_code == 404
    assert client.get("/api/items/no_such_slice/image").status_code == 404
    assert client.get("/api/items/..%2F..%2Fetc%2Fpasswd/image").status_code == 404
    assert client.get("/static/../store.py").status_code == 404
    not_json = client.post(f"/api/items/{ITEM}/points", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422 and "invalid json" in not_json.json()["error"].lower()
    form = client.post(f"/api/items/{ITEM}/points", content=json.dumps(MARKS["points"]),
                       headers={"Content-Type": "text/plain"})  # what a cross-site form can send unasked
    assert form.status_code == 415
    assert post(client, f"/api/items/{ITEM}/masks", {"mask": True}).status_code in (404, 405)
    assert store.path.read_bytes() == before


def test_other_hosts_are_refused(store):
    from frugalseg.annotate.app import create_app

    with make_client(create_app(store), base_url="http://evil.example") as c:
        assert c.get("/api/session").status_code == 400
