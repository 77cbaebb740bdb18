"""Property-based fuzzing of the two loaders a user feeds by hand: annotation files and configs.

The property: whatever the input, the loader either returns a valid object or raises the project's own
error (:class:`AnnotationError`, :class:`ConfigError`), which the command line prints as one line; never
another exception, which it would print as a traceback.

Example counts: ``FRUGALSEG_FUZZ_EXAMPLES`` per test (default 1,000, what CI runs). The documented local
run (docs/reliability.md) is ``FRUGALSEG_FUZZ_EXAMPLES=10000 nice -n 10 python -m pytest
tests/reliability/test_fuzz.py``.
"""

from __future__ import annotations

import json
import math
import os
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frugalseg.config import RunConfig, load_config
from frugalseg.data.annotations import AnnotationFile, dumps_annotations, parse_annotations
from frugalseg.errors import AnnotationError, ConfigError
from tests.helpers import sample_root

EXAMPLES = int(os.environ.get("FRUGALSEG_FUZZ_EXAMPLES", "1000"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# --------------------------------------------------------------------------------------------- JSON values
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-3, 300),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)
coords = st.one_of(st.integers(-2, 160), json_values)

# ------------------------------------------------------------------------------------- near-valid annotations
SLICES = ["patient099_frame01_slice_3", "patient099_frame01_slice_4", "patient100_frame01_slice_5"]
IDS = st.sampled_from([*SLICES, "patient100_frame01", "patient028_frame01", "patient001_frame01_slice_1", ""])
CLASS_KEYS = st.sampled_from(["1", "2", "3", "4", "0", "01", "x", "-1", "१"])


def _maybe(fields: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts holding any subset of ``fields`` (each a strategy), sometimes with an unknown field."""
    return st.fixed_dictionaries({}, optional={**fields, "colour": json_values})


classes = st.one_of(st.integers(-1, 5), json_values)
point = _maybe({"class": classes, "y": coords, "x": coords, "z": st.one_of(st.none(), coords)})
box = _maybe({"class": classes, "y0": coords, "x0": coords, "y1": coords, "x1": coords, "z": coords})
pixel = st.lists(st.integers(-2, 160), min_size=1, max_size=4)
scribble = _maybe({"class": classes, "path": st.one_of(st.lists(pixel, max_size=5), json_values)})
item = st.one_of(_maybe({"points": st.lists(point, max_size=4), "boxes": st.lists(box, max_size=3),
                         "scribbles": st.lists(scribble, max_size=3),
                         "tags": st.one_of(st.none(), st.lists(st.integers(-1, 5), max_size=4), json_values),
                         "mask": st.one_of(st.booleans(), json_values)}), json_values)
annotation_files = st.fixed_dictionaries(
    {"format": st.one_of(st.just("frugalseg.annotations/1"), json_values)},
    optional={"classes": st.one_of(st.dictionaries(CLASS_KEYS, st.text(max_size=5), max_size=5), json_values),
              "items": st.one_of(st.dictionaries(IDS, item, max_size=4), json_values),
              "provenance": json_values, "extra": json_values},
)


def _text_of(value: Any) -> str:  # noqa: ANN401
    return json.dumps(value, allow_nan=True)


def _mutations(text: str) -> st.SearchStrategy[str]:
    """``text`` with a few characters deleted, replaced or inserted (broken JSON, near misses)."""
    edits = st.lists(st.tuples(st.integers(0, max(0, len(text) - 1)), st.sampled_from(["del", "ins", "rep"]),
                               st.sampled_from(list('{}[]",:0123456789-.etn \\') + ["\x00", "é"])), max_size=4)

    def apply(ops: list[tuple[int, str, str]]) -> str:
        chars = list(text)
        for pos, op, ch in ops:
            pos = min(pos, len(chars))
            if op == "del" and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op == "ins":
                chars.insert(pos, ch)
            elif chars:
                chars[min(pos, len(chars) - 1)] = ch
        return "".join(chars)

    return edits.map(apply)


annotation_texts = st.one_of(
    annotation_files.map(_text_of),
    annotation_files.map(_text_of).flatmap(_mutations),
    json_values.map(_text_of),
    st.text(max_size=60),
    st.integers(1, 3000).map(lambda n: '{"format": "frugalseg.annotations/1", "classes": {}, "provenance": '
                                       + "[" * n + "]" * n + "}"),
)


@pytest.fixture(scope="module")
def training_data():
    """The sample's source and training slices, read once: the fuzzed files go through ``train``'s own reader."""
    from frugalseg.data.sources import open_source

    source = open_source(sample_root())
    return source, source.training_slices()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@fuzz
@given(text=annotation_texts)
def test_annotation_loader_loads_or_refuses(text: str, training_data, scratch: Path) -> None:
    from frugalseg.engine.run_data import _read_annotations

    source, items = training_data
    path = scratch / "ann.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        ann = _read_annotations(path, source, items)
    except AnnotationError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert isinstance(ann, AnnotationFile)
    assert parse_annotations(json.loads(dumps_annotations(ann))) == ann  # what loads, writes and reads back


@fuzz
@given(data=st.one_of(annotation_files, json_values))
def test_annotation_parser_without_data_loads_or_refuses(data: Any) -> None:  # noqa: ANN401
    try:
        parse_annotations(data, "fuzz.json")
    except AnnotationError:
        pass


# ------------------------------------------------------------------------------------------------ configs
def _section_keys(model: type) -> list[str]:
    return list(model.model_fields)


SECTIONS = {name: _section_keys(f.annotation) for name, f in RunConfig.model_fields.items()
            if isinstance(f.annotation, type) and hasattr(f.annotation, "model_fields")}
METHOD_NAMES = ["pce", "pscv", "mlds", "action", "dii_dcr", "mean_teacher", "supervised", "nope"]
config_values = st.one_of(scalars, st.lists(st.integers(-2, 300), max_size=6), st.lists(st.floats(-1, 2), max_size=6),
                          st.sampled_from(["batch", "group", "instance", "bilinear", "transpose", "cpu", "cuda",
                                           "meta", "off", "bf16", "adamw", "points", "quick", "paper"]),
                          json_values)


def _section(name: str) -> st.SearchStrategy[dict[str, Any]]:
    keys = SECTIONS[name] + ["typo"]
    return st.dictionaries(st.sampled_from(keys), config_values, max_size=5)


config_trees = st.fixed_dictionaries(
    {"method": st.one_of(st.fixed_dictionaries({"name": st.sampled_from(METHOD_NAMES)},
                                               optional={"options": st.dictionaries(st.text(max_size=6),
                                                                                    config_values, max_size=3)}),
                         json_values)},
    optional={**{name: st.one_of(_section(name), json_values) for name in SECTIONS if name != "method"},
              "schedule": st.one_of(st.sampled_from(["paper", "quick"]), json_values),
              "schedules": st.one_of(st.dictionaries(st.sampled_from(["paper", "quick"]),
                                                     st.dictionaries(st.sampled_from(["train", "data"]),
                                                                     _section("train"), max_size=2), max_size=2),
                                     json_values),
              "name": json_values},
)
DOTTED = [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys] + ["schedule", "method.options.x", "a..b", "=", ""]
overrides = st.lists(st.one_of(st.tuples(st.sampled_from(DOTTED), config_values).map(
    lambda kv: f"{kv[0]}={yaml.safe_dump(kv[1], default_flow_style=True).strip().removesuffix('...').strip()}"),
    st.text(max_size=20)), max_size=3)


def _yaml_of(tree: Any) -> str:  # noqa: ANN401
    def finite(v: Any) -> Any:  # noqa: ANN401 (YAML writes .nan/.inf; keep them, they are input too)
        return v if not isinstance(v, float) or math.isfinite(v) else str(v)

    return yaml.safe_dump(tree, allow_unicode=True) if finite(tree) is not None else "null"


config_texts = st.one_of(config_trees.map(_yaml_of), config_trees.map(_yaml_of).flatmap(_mutations),
                         st.text(alphabet=string.printable, max_size=80),
                         st.just("method:\n  name: pce\nmethod:\n  name: mlds\n"))


@fuzz
@given(text=config_texts, extra=overrides)
def test_config_loader_loads_or_refuses(text: str, extra: list[str], scratch: Path) -> None:
    path = scratch / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(path, extra)
    except ConfigError as exc:
        assert "\n" not in str(exc).strip(), str(exc)
        return
    assert isinstance(config, RunConfig)
    assert RunConfig.model_validate(config.to_dict()) == config  # what loads is stored and read back alike


def test_a_key_with_a_newline_is_named_on_one_line(scratch: Path) -> None:
    """Found by the fuzzer: an unknown method option whose YAML key is a newline broke the one-line message."""
    path = scratch / "newline.yaml"
    path.write_text("method:\n  name: pce\n  options:\n    ? '\n\n      '\n    : null\n")
    with pytest.raises(ConfigError, match=r"method\.options\.'\\n': unknown key$") as info:
        load_config(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("escape", ["\\U00110000", "\\UFFFFFFFF"])
def test_a_unicode_escape_beyond_unicode_is_a_config_error(escape: str, scratch: Path) -> None:
    """Found by the fuzzer: PyYAML raises ValueError / OverflowError for these escapes, not a YAMLError."""
    path = scratch / "escape.yaml"
    path.write_text(f'method:\n  name: "{escape}"\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("sample_pce", [f'name="{escape}"'])
