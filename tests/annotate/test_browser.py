"""End to end in a real headless chromium: annotate the sample on the page, reload, check the file, train on it.

The clicks are aimed at the sample's own masks (a point inside each structure, a box around the left
ventricle, a background scribble along the top rows), so the file the page writes is one a clinician
could have made. ``FRUGALSEG_SCREENSHOT=docs/figures/annotate.png`` also saves the page as shown in
``docs/annotate.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frugalseg.annotate.catalog import load_catalog
from frugalseg.data.annotations import load_annotations
from frugalseg.data.sources import open_source
from tests.annotate.browser import chromium
from tests.annotate.server import Server
from tests.helpers import sample_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COLOURS = {0: (0xBB, 0xBB, 0xBB), 1: (0xE6, 0x19, 0x4B), 2: (0x3C, 0xB4, 0x4B), 3: (0x43, 0x63, 0xD8)}
TINY = ["train.iterations=4", "train.batch_size=4", "data.patch_size=[64,64]", "train.val_every=2",
        "train.checkpoint_every=2", "model.features=[8,16,32,64,128]", "train.precision=off"]


def pick_slice():
    """The first slice in page order whose mask holds every class (with its mask), and the slice after it."""
    items = {it.item_id: it for it in open_source(sample_root()).training_slices()}
    order = [info.item_id for info in load_catalog(sample_root()).infos]
    for n, item_id in enumerate(order):
        if set(np.unique(items[item_id].label)) >= {1, 2, 3}:
            return items[item_id], order[n + 1]
    raise AssertionError("no sample slice holds all three classes")


def inner_pixel(label, c):
    """The pixel of class ``c`` nearest its centroid: inside the structure even when it is a ring (Myo)."""
    ys, xs = np.nonzero(label == c)
    k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return int(ys[k]), int(xs[k])


class Page:
    """The annotation page in the browser, with waits on its own 'pending requests' counter."""

    def __init__(self, driver, url):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.url = url
        self.wait = WebDriverWait(driver, 30)

    def settle(self):
        self.wait.until(lambda d: d.execute_script("return document.body.dataset.pending") == "0")
        status = self.driver.find_element("id", "status").text
        assert not status.startswith(("not saved", "cannot start")), status
        return status

    def open(self):
        self.driver.get(self.url)
        self.wait.until(lambda d: d.find_element("id", "status").text == "ready")
        self.settle()

    def keys(self, *keys):
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()
        self.settle()

    def chord(self, modifier, key):
        """``key`` with ``modifier`` held (``"CONTROL"``, ``"SHIFT"``: names of selenium's ``Keys``)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        held = getattr(Keys, modifier)
        ActionChains(self.driver).key_down(held).send_keys(key).key_up(held).perform()
        self.settle()

    def offset(self, y, x):
        """Offset from the canvas centre (selenium's origin) of the centre of image pixel (y, x)."""
        canvas = self.driver.find_element("id", "canvas")
        sx, sy = self.driver.execute_script(f"return window.frugalseg.toScreen({y}, {x})")
        return canvas, round(sx - canvas.rect["width"] / 2), round(sy - canvas.rect["height"] / 2)

    def click(self, y, x):
        from selenium.webdriver.common.action_chains import ActionChains

        canvas, dx, dy = self.offset(y, x)
        ActionChains(self.driver).move_to_element_with_offset(canvas, dx, dy).click().perform()
        self.settle()

    def drag(self, path):
        """Press at the first pixel of ``path``, move through the others, release at the last."""
        from selenium.webdriver.common.action_chains import ActionChains

        canvas, dx, dy = self.offset(*path[0])
        chain = ActionChains(self.driver).move_to_element_with_offset(canvas, dx, dy).click_and_hold()
        for y, x in path[1:]:
            _, nx, ny = self.offset(y, x)
            chain = chain.move_by_offset(nx - dx, ny - dy)
            dx, dy = nx, ny
        chain.release().perform()
        self.settle()

    def colour_at(self, y, x):
        return tuple(self.driver.execute_script(
            "const [sx, sy] = window.frugalseg.toScreen(arguments[0], arguments[1]);"
            "const c = document.getElementById('canvas');"
            "return Array.from(c.getContext('2d').getImageData(Math.floor(sx), Math.floor(sy), 1, 1).data);",
            y, x)[:3])

    def zoom_at(self, y, x, steps):
        """Turn the mouse wheel over pixel (y, x): the page zooms in around it."""
        from selenium.webdriver.common.action_chains import ActionChains, ScrollOrigin

        canvas, dx, dy = self.offset(y, x)
        for _ in range(steps):
            ActionChains(self.driver).scroll_from_origin(ScrollOrigin.from_element(canvas, dx, dy), 0, -100).perform()

    def text(self, css):
        return self.driver.find_element("css selector", css).text


def annotate(page, item, next_id):
    """One point per class, a box around the LV, a background scribble, the three tags, then the next slice."""
    page.driver.find_element("css selector", f'#items li[data-id="{item.item_id}"]').click()
    page.wait.until(lambda d: d.find_element("id", "item-id").text == item.item_id)
    page.settle()
    points = {c: inner_pixel(item.label, c) for c in (1, 2, 3)}
    for c, (y, x) in points.items():
        page.keys(str(c))  # class key
        page.click(y, x)
    ys, xs = np.nonzero(item.label == 3)
    box = (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))
    page.keys("b")
    page.drag([(box[0], box[1]), ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), (box[2], box[3])])
    row = 2
    width = item.label.shape[1]
    assert not item.label[row].any()
    stroke = [(row, x) for x in range(2, width - 2, 7)] + [(row, width - 3)]
    page.keys("s", "0")
    page.drag(stroke)
    page.keys("p", "1")
    page.click(5, 5)  # a mistake ...
    page.chord("CONTROL", "z")  # ... undone with Ctrl+Z
    page.chord("SHIFT", "1")  # Shift+1: the first tag also marks Myo and LV present (their points show them)
    page.keys("\ue014")  # ArrowRight: the next slice
    page.wait.until(lambda d: d.find_element("id", "item-id").text == next_id)
    return points, box, set(range(2, width - 2)) | {width - 3}


def check_page_after_reload(page, item, next_id, points, box):
    page.open()
    assert page.text("#item-id") == next_id  # a reload stays on the slice
    row = page.text(f'#items li[data-id="{item.item_id}"]')
    assert "3 pt · 1 box · 1 scr · tags RV, Myo, LV" in row, row
    for c, name in ((1, "RV"), (2, "Myo"), (3, "LV")):
        cells = page.text(f'#counts tr[data-cls="{c}"]').split()
        assert cells == [name, "1", "0", "1" if c == 3 else "0", "1"], cells
    assert page.text('#counts tr[data-cls="0"]').split() == ["background", "0", "1", "0", "0"]
    page.driver.find_element("css selector", f'#items li[data-id="{item.item_id}"]').click()
    page.wait.until(lambda d: d.find_element("id", "item-id").text == item.item_id)
    page.settle()
    scale = page.driver.execute_script("return window.frugalseg.state.view.scale")
    page.zoom_at((box[0] + box[2]) // 2, (box[1] + box[3]) // 2, 4)
    zoomed = page.driver.execute_script("return window.frugalseg.state.view.scale")
    assert zoomed == pytest.approx(scale * 1.2**4)
    for c, (y, x) in points.items():  # each point is drawn in its class's colour, where its pixel is once zoomed
        assert page.colour_at(y, x) == COLOURS[c], (c, page.colour_at(y, x))
    assert page.driver.find_element("css selector", '#tags button[data-cls="2"]').get_attribute("class") == "present"


def check_file(out, item, points, box, stroke_xs):
    source = open_source(sample_root())
    ann = load_annotations(out, grids={it.item_id: it.shape for it in source.training_slices()})
    assert list(ann.items) == [item.item_id]
    got = ann.items[item.item_id]
    assert [(p.class_, p.y, p.x) for p in got.points] == [(c, y, x) for c, (y, x) in points.items()]
    assert [(b.class_, b.y0, b.x0, b.y1, b.x1) for b in got.boxes] == [(3, *box)]
    (scribble,) = got.scribbles
    assert scribble.class_ == 0 and {tuple(px) for px in scribble.path} == {(2, x) for x in stroke_xs}
    assert got.tags == [1, 2, 3]
    for c, (y, x) in points.items():
        assert item.label[y, x] == c  # the clicks landed on the structures they name


def train_on(out, run):
    cmd = [sys.executable, "-m", "frugalseg", "train", "sample_pce", f"data.root={sample_root()}",
           "data.simulate=null", f"data.annotations={out}", *TINY, "--out", str(run), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["iterations"] == 4
    assert load_annotations(run / "annotations.json") == load_annotations(out)


def test_annotate_in_chromium_then_train(tmp_path):
    item, next_id = pick_slice()
    out = tmp_path / "annotations.json"
    server = Server(sample_root(), out)
    driver = None
    try:
        driver = chromium(tmp_path / "profile")
        page = Page(driver, server.url)
        page.open()
        points, box, stroke_xs = annotate(page, item, next_id)
        check_page_after_reload(page, item, next_id, points, box)
        shot = os.environ.get("FRUGALSEG_SCREENSHOT")
        if shot:
            Path(shot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(shot)
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    check_file(out, item, points, box, stroke_xs)
    train_on(out, tmp_path / "run")


def test_suggested_slices_open_first_and_n_steps_through_them(tmp_path):
    """``--suggested`` (``frugalseg suggest``'s file): the page opens at the first suggested slice, marks each in
    the list with its rank, and ``N`` goes to the next one not yet annotated, wrapping round."""
    order = [info.item_id for info in load_catalog(sample_root()).infos]
    ids = [order[10], order[3], order[20]]
    queue = tmp_path / "next.txt"
    queue.write_text("".join(f"{i}\n" for i in ids))
    out = tmp_path / "annotations.json"
    server = Server(sample_root(), out, "--suggested", str(queue))
    driver = None
    try:
        driver = chromium(tmp_path / "profile")
        page = Page(driver, server.url)
        page.open()

        def at(item_id: str) -> None:
            page.wait.until(lambda d: d.find_element("id", "item-id").text == item_id)
            page.settle()

        at(ids[0])
        assert "suggested 1 of 3" in page.text("#item-pos")
        assert page.text(f'#items li[data-id="{ids[1]}"]').startswith("★2")
        assert page.driver.find_element("id", "next-suggested").is_displayed()
        page.keys("e")  # the first suggested slice holds nothing: annotated
        page.keys("n")
        at(ids[1])
        page.keys("n")
        at(ids[2])
        assert "suggested 3 of 3" in page.text("#item-pos")
        page.keys("n")  # round again: the first is annotated, so the second
        at(ids[1])
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    assert list(load_annotations(out).items) == [ids[0]]
