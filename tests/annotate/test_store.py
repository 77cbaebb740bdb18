"""The file behind the page: resuming, the lock, a server killed right after an acknowledged save, the timing log."""

from __future__ import annotations

import json
import signal

import pytest

from frugalseg.annotate.catalog import Catalog, load_catalog, read_classes_file
from frugalseg.annotate.lock import LockedError
from frugalseg.annotate.store import AnnotationStore
from frugalseg.data.annotations import Point, load_annotations
from frugalseg.errors import AnnotationError, DataError
from tests.annotate.server import Server
from tests.helpers import sample_root

ITEM = "patient038_frame01_slice_3"


def point(c, y, x):
    return Point.model_validate({"class": c, "y": y, "x": x})


def test_a_new_file_is_written_at_once_and_trains_as_is(store, catalog):
    ann = load_annotations(store.path, grids=catalog.grids())
    assert ann.items == {} and ann.classes == {"1": "RV", "2": "Myo", "3": "LV"}


def test_reopening_resumes(tmp_path, catalog):
    out = tmp_path / "ann.json"
    first = AnnotationStore(out, catalog)
    first.add(ITEM, "points", point(2, 50, 60))
    first.close()
    second = AnnotationStore(out, catalog)
    try:
        assert second.item(ITEM).points == [point(2, 50, 60)]
        second.add(ITEM, "points", point(1, 51, 60))
        assert len(load_annotations(out).items[ITEM].points) == 2
    finally:
        second.close()


def test_a_second_store_on_the_same_file_is_refused(store, catalog):
    with pytest.raises(LockedError, match=r"is open in another frugalseg annotate \(pid \d+"):
        AnnotationStore(store.path, catalog)
    store.close()
    AnnotationStore(store.path, catalog).close()  # released: it opens again


def test_a_file_that_does_not_fit_the_data_is_refused_before_serving(tmp_path, catalog):
    out = tmp_path / "ann.json"
    out.write_text(json.dumps({"format": "frugalseg.annotations/1", "classes": {"1": "RV", "2": "Myo", "3": "LV"},
                               "items": {"someone_elses_slice": {"tags": []}}}))
    with pytest.raises(AnnotationError, match="no such item in the data"):
        AnnotationStore(out, catalog)
    out.write_text(json.dumps({"format": "frugalseg.annotations/1", "classes": {"1": "LV"}}))
    with pytest.raises(AnnotationError, match="differ from the data's"):
        AnnotationStore(out, catalog)
    AnnotationStore(out.with_name("other.json"), catalog).close()  # the lock was released on the refusals


def test_timing_log_records_each_action(store):
    store.add(ITEM, "points", point(0, 10, 10))  # background: "nothing in it" may follow (a class-1 point may not)
    store.set_tags(ITEM, [])
    store.undo()
    store.close()
    records = [json.loads(line) for line in store.log_path.read_text().splitlines()]
    assert [r["action"] for r in records] == ["start", "point", "empty", "undo", "stop"]
    assert all(r["session"] == records[0]["session"] for r in records)
    assert records[1]["item"] == ITEM and records[1]["class"] == 0
    assert records[0]["t"] <= records[1]["t"] <= records[-1]["t"]


def test_classes_come_from_the_data_or_from_the_classes_file(tmp_path):
    from PIL import Image

    root = tmp_path / "pngs"
    (root / "images").mkdir(parents=True)
    Image.new("L", (20, 10), 50).save(root / "images" / "a.png")
    with pytest.raises(DataError, match="pass --classes FILE"):
        load_catalog(root)
    classes = tmp_path / "classes.yaml"
    classes.write_text("1: liver\n2: tumour\n")
    cat = load_catalog(root, classes)
    assert cat.class_names() == {"1": "liver", "2": "tumour"} and cat.grid("a") == (10, 20)
    with pytest.raises(DataError, match="differ from the data's"):
        load_catalog(sample_root(), classes)
    classes.write_text('{"0": "background"}')
    with pytest.raises(DataError, match="positive integers"):
        read_classes_file(classes)


def test_a_single_nifti_file_is_split_into_slices(tmp_path):
    import nibabel as nib
    import numpy as np

    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3), np.eye(4)), path)
    classes = tmp_path / "classes.json"
    classes.write_text('{"1": "liver"}')
    cat: Catalog = load_catalog(path, classes)
    assert [i.item_id for i in cat.infos] == ["scan_z0", "scan_z1", "scan_z2"]  # (D, H, W) = (k, j, i)
    assert {i.case_id for i in cat.infos} == {"scan"} and cat.grid("scan_z0") == (5, 4)


def test_an_acknowledged_action_survives_sigkill(tmp_path):
    out = tmp_path / "ann.json"
    server = Server(sample_root(), out)
    try:
        status, body = server.call("POST", f"/api/items/{ITEM}/points", {"class": 3, "y": 90, "x": 70})
        server.proc.send_signal(signal.SIGKILL)  # right after the 2xx: no chance to flush anything more
        assert status == 200, body
    finally:
        server.kill()
    assert load_annotations(out).items[ITEM].points == [point(3, 90, 70)]
    again = Server(sample_root(), out)  # the kernel dropped the dead server's lock
    try:
        status, body = again.call("GET", f"/api/items/{ITEM}")
        assert status == 200 and body["points"] == [{"class": 3, "y": 90, "x": 70}]
    finally:
        again.stop()


def test_a_second_server_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "ann.json"
    first = Server(sample_root(), out)
    try:
        with pytest.raises(RuntimeError, match=rf"is open in another frugalseg annotate \(pid {first.proc.pid}"):
            Server(sample_root(), out)
    finally:
        printed = first.stop()
    assert first.proc.returncode == 130, printed
    assert json.loads(out.with_name("ann.json.timing.jsonl").read_text().splitlines()[-1])["action"] == "stop"
