"""Every case of the reliability corpus: the exit code, a message naming the file or key, one line, and every
existing output byte-identical afterwards (nothing added, nothing removed, nothing changed)."""

from __future__ import annotations

import shutil

import pytest

from tests.reliability.cases import CASES, Case, digest, fill, make_world_template, run_case


@pytest.fixture(scope="module")
def world_template(tmp_path_factory):
    return make_world_template(tmp_path_factory.mktemp("reliability"))


@pytest.fixture
def world(world_template, tmp_path):
    target = tmp_path / "world"
    shutil.copytree(world_template, target)
    return target


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, world):
    if case.setup is not None:
        case.setup(world)
    before = digest(world)
    outcome = run_case(case, world)
    assert outcome.code == case.code, outcome.err
    lines = [ln for ln in outcome.err.splitlines() if ln.strip()]
    assert len(lines) == 1 or case.id.startswith("demo_"), outcome.err  # argparse prints usage first
    assert "Traceback" not in outcome.err
    for needle in case.needles:
        assert fill(needle, world) in outcome.err, (needle, outcome.err)
    assert digest(world) == before
    assert not (world / "PWNED").exists()


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)
