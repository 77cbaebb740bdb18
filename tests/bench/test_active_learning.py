"""The simulated active-learning loop end to end on the bundled sample (tiny trainings), and its bookkeeping."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from frugalseg.bench.active_learning import (
    LoopOptions,
    RoundRecord,
    load_loop_spec,
    read_record,
    record_path,
    shared_row,
)
from frugalseg.bench.active_learning_page import CurvePoint, pooled_delta, split_by_seeds
from frugalseg.bench.active_learning_run import LoopRunner
from frugalseg.bench.matrix import load_matrix
from frugalseg.bench.records import read_record as read_row_record
from frugalseg.bench.records import record_dir
from frugalseg.bench.tables import aggregate
from frugalseg.cli import main
from frugalseg.config import load_config
from frugalseg.errors import ConfigError
from frugalseg.locks import FileLock
from tests.helpers import sample_root

TINY = ["train.iterations=2", "train.batch_size=4", "data.patch_size=[32,32]", "train.val_every=100",
        "train.checkpoint_every=2", "model.features=[4,8,16,32,64]", "train.precision=off"]


def spec_file(folder: Path, **changes: object) -> Path:
    spec = {"config": "acdc_supervised", "start": "sparse_masks", "rounds": 2, "per_round": 3,
            "strategies": ["disagreement", "random"], **changes}
    path = folder / "loop.yaml"
    path.write_text(json.dumps(spec))
    return path


def bench(tmp_path: Path, spec: Path, *more: str) -> int:
    sets = [a for s in TINY for a in ("--set", s)]
    return main(["bench", "--active-learning", str(spec), "--data", str(sample_root()), "--seeds", "0", "1",
                 "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "docs"), *sets, *more])


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("al")
    assert bench(tmp, spec_file(tmp)) == 0
    return tmp


@pytest.mark.slow
def test_rounds_add_the_suggestions_as_masks(loop: Path) -> None:
    records = loop / "docs" / "results" / "active_learning"
    assert len(list(records.glob("*.json"))) == 2 * 2 * 3
    for strategy in ("disagreement", "random"):
        for seed in (0, 1):
            recs = [read_record(record_path(records, strategy, seed, r)) for r in range(3)]
            assert recs[0].annotated == [] and recs[0].counts["masks"] == 8  # the sample's 8 volumes, 1 slice each
            for before, after in zip(recs, recs[1:], strict=False):
                assert after.annotated == before.annotated + before.suggested and len(before.suggested) == 3
                assert after.counts["masks"] == before.counts["masks"] + 3  # the same annotator-seconds per round
            assert recs[2].suggested == [] and len(set(recs[2].annotated)) == 6
            assert not set(recs[2].annotated) & {f"patient099_frame0{f}_slice_9" for f in (1, 2)}  # not re-annotated
    # round 0 is one training per seed, shared by the strategies; with the shipped matrix it is the run of the
    # row supervised_sparse (same config), trained once in the rows' folder and recorded as that row too
    assert not [p for p in (loop / "runs" / "active_learning").iterdir() if p.name.startswith("start")]
    for seed in (0, 1):
        row = read_row_record(record_dir(loop / "docs" / "results" / "runs", "supervised_sparse", seed),
                              label="supervised_sparse", seed=seed)
        start = read_record(record_path(records, "random", seed, 0))
        assert row.summaries["last"]["overall"] == start.summary["overall"]
        assert row.train_seconds == start.train_seconds
    disagree = read_record(record_path(records, "disagreement", 0, 0))
    assert disagree.pair is not None and "test-time flip" in disagree.pair


@pytest.mark.slow
def test_page_figure_and_table(loop: Path) -> None:
    page = (loop / "docs" / "active-learning.md").read_text()
    assert (loop / "docs" / "figures" / "active_learning_dice_vs_minutes.png").stat().st_size > 5000
    assert "rounds recorded: 12 of 12" in page
    assert "; 10 trainings (" in page  # 2 seeds x (round 0, shared by the strategies, + 2 rounds x 2 strategies)
    assert "\nfrugalseg bench --active-learning " in page  # the command as typed
    rows = [line for line in page.splitlines() if line.startswith("| disagreement |")]
    # 8 masks x 3 classes x 20 s = 8 annotator-minutes at round 0, +3 masks (3 minutes) per round
    assert [r.split(" | ")[2:4] for r in rows] == [["8", "8"], ["11", "11"], ["14", "14"]]
    assert all(line.count("±") >= 1 for line in rows)
    assert rows[0].endswith("| — (round 0 is one run, shared) |") and "(95 % CI " in rows[1]
    pooled = "\n- disagreement − random over rounds 1, 2 (each seed's paired Δ averaged over those rounds; 2 seeds)"
    assert pooled in page


def test_a_round_with_fewer_seeds_so_far_is_kept_off_the_curve() -> None:
    def point(round_: int, seeds: tuple[int, ...]) -> CurvePoint:
        stats = aggregate([0.8] * len(seeds))
        return CurvePoint("entropy", round_, 140.0 + 20 * round_, stats, stats, None, seeds)

    full, partial = split_by_seeds([point(0, (0, 1, 2)), point(1, (0, 1, 2)), point(2, (0,))])
    assert [p.round for p in full] == [0, 1] and [(p.round, p.seeds) for p in partial] == [(2, (0,))]


def _dice_record(strategy: str, seed: int, round_: int, dice: float) -> RoundRecord:
    return RoundRecord(strategy, seed, round_, [], [], None, {}, {"overall": {"dice": {"mean": dice}}}, 0.0, {})


def test_pooled_delta_averages_each_seeds_rounds_then_the_seeds() -> None:
    """By hand: Δ of seed 0 is +0.01, +0.02 (mean +0.015), of seed 1 −0.01, 0 (−0.005); over seeds +0.005 ±
    0.01414. A round some seed lacks is left out of every seed's mean."""
    dice = {("entropy", 0): (0.80, 0.86), ("entropy", 1): (0.82, 0.84),
            ("random", 0): (0.79, 0.84), ("random", 1): (0.83, 0.84)}
    records = [_dice_record(s, seed, 0, 0.7) for s in ("entropy", "random") for seed in (0, 1)]
    records += [_dice_record(s, seed, r + 1, d[r]) for (s, seed), d in dice.items() for r in (0, 1)]
    rounds, delta = pooled_delta(records, "entropy") or pytest.fail("no pooled delta")
    assert rounds == [1, 2] and delta.n == 2
    assert delta.mean == pytest.approx(0.005) and delta.std == pytest.approx(0.0141421, abs=1e-6)
    partial = [r for r in records if (r.strategy, r.seed, r.round) != ("entropy", 1, 2)]
    rounds, delta = pooled_delta(partial, "entropy") or pytest.fail("no pooled delta")
    assert rounds == [1] and delta.mean == pytest.approx(0.0) and delta.std == pytest.approx(0.0141421, abs=1e-6)
    assert pooled_delta([r for r in records if r.round == 0], "entropy") is None


@pytest.mark.slow
def test_resume_from_records_alone_and_a_lost_round(loop: Path) -> None:
    records = loop / "docs" / "results" / "active_learning"
    lost = record_path(records, "disagreement", 1, 2)
    kept = read_record(lost)
    lost.unlink()
    shutil.rmtree(loop / "runs")
    assert bench(loop, spec_file(loop)) == 0
    runs = sorted(p.name for p in (loop / "runs" / "active_learning").iterdir())
    assert runs == ["annotations", "disagreement-r2-s1", "locks"]  # only the lost round was trained again
    again = read_record(lost)
    assert again.annotated == kept.annotated and again.counts == kept.counts


@pytest.mark.slow
def test_a_record_of_other_settings_is_refused(loop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench(loop, spec_file(loop), "--set", "train.batch_size=2") == 2
    assert "was made with other settings" in capsys.readouterr().err


@pytest.mark.slow
def test_a_start_no_bench_row_trains_is_the_loops_own_run(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, overrides=["optim.weight_decay=0.0002"], rounds=1, strategies=["random"])
    assert bench(tmp_path, spec, "--seeds", "0") == 0
    assert (tmp_path / "runs" / "active_learning" / "start-s0" / "summary.json").is_file()
    assert not (tmp_path / "docs" / "results" / "runs").exists()  # no bench row was trained or recorded
    start = read_record(record_path(tmp_path / "docs" / "results" / "active_learning", "random", 0, 0))
    assert start.counts["masks"] == 8 and len(start.suggested) == 3


def test_the_shipped_loop_starts_from_the_run_of_the_row_supervised_sparse() -> None:
    opts = LoopOptions(spec=load_loop_spec(), data="acdc")
    assert all(shared_row(opts, "acdc", seed).label == "supervised_sparse" for seed in (0, 1, 2))  # type: ignore[union-attr]
    other = LoopOptions(spec=load_loop_spec(), data="acdc", extra=["optim.lr=0.5"])
    assert shared_row(other, "acdc", 0) is not None  # the bench's --set applies to the rows alike
    def starting(budget: str) -> LoopOptions:
        return LoopOptions(spec=load_loop_spec().model_copy(update={"start": budget}), data="acdc")

    assert shared_row(starting("masks7"), "acdc", 0).label == "supervised7"  # type: ignore[union-attr]
    assert shared_row(starting("points"), "acdc", 0) is None  # the points rows train pCE, not acdc_supervised


def test_list_and_bad_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--active-learning", "--list", "--runs", str(tmp_path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    per_run = load_matrix().estimates.minutes_for(load_config("acdc_supervised", ["schedule=quick"]))
    assert "trainings: 39 in all" in out and "39 not recorded yet" in out
    assert "round 0 is the run of the bench row supervised_sparse (same config)" in out
    assert f"estimate: 39 x ({per_run:.1f} min" in out
    with pytest.raises(ConfigError, match="strategies"):
        load_loop_spec(spec_file(tmp_path, strategies=["entropy", "oracle"]))
    with pytest.raises(ConfigError, match="rounds"):
        load_loop_spec(spec_file(tmp_path, rounds=0))
    assert main(["bench", "--active-learning", "--only", "pce", "--list"]) == 2
    assert main(["bench", "--active-learning", str(spec_file(tmp_path, start="nope")), "--data", str(sample_root()),
                 "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()


def test_the_loop_goes_round_by_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round r of every seed and strategy comes before round r + 1 of any, so a loop stopped part way compares
    the strategies at equal cost over every seed; each strategy still builds on its own previous round."""
    calls: list[tuple[int, int, str, list[str]]] = []

    def fake_round(self: LoopRunner, strategy: str, seed: int, round_: int, annotated: list[str]) -> RoundRecord:
        calls.append((seed, round_, strategy, list(annotated)))
        return RoundRecord(strategy, seed, round_, list(annotated), [f"{strategy}-{round_}"], None, {}, {}, 0.0, {})

    monkeypatch.setattr(LoopRunner, "round", fake_round)
    opts = LoopOptions(data=str(sample_root()), seeds=(0, 1), runs=tmp_path / "runs", out=tmp_path,
                       spec=load_loop_spec(spec_file(tmp_path)))
    LoopRunner(opts, log=lambda _: None).run()
    assert [c[:3] for c in calls] == [(seed, r, s) for r in range(3) for seed in (0, 1)
                                      for s in ("disagreement", "random")]
    assert calls[-1] == (1, 2, "random", ["random-0", "random-1"])


def test_a_restarted_loop_resumes_a_part_trained_round_before_starting_new_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a stop, the round left with a checkpoint (seed 1's random round 1) goes before rounds not begun,
    once the recorded rounds it builds on are read; the rest keep the round-by-round order."""
    calls: list[tuple[int, int, str]] = []

    def fake_round(self: LoopRunner, strategy: str, seed: int, round_: int, annotated: list[str]) -> RoundRecord:
        calls.append((seed, round_, strategy))
        return RoundRecord(strategy, seed, round_, list(annotated), [f"{strategy}-{round_}"], None, {}, {}, 0.0, {})

    monkeypatch.setattr(LoopRunner, "round", fake_round)
    opts = LoopOptions(data=str(sample_root()), seeds=(0, 1), runs=tmp_path / "runs", out=tmp_path,
                       spec=load_loop_spec(spec_file(tmp_path)))
    for seed in (0, 1):
        for strategy in ("disagreement", "random"):
            path = record_path(opts.records_dir, strategy, seed, 0)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
    checkpoint = opts.runs_dir / "random-r1-s1" / "checkpoints" / "last.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    LoopRunner(opts, log=lambda _: None).run()
    round0 = [(seed, 0, s) for seed in (0, 1) for s in ("disagreement", "random")]
    rest = [(seed, r, s) for r in (1, 2) for seed in (0, 1) for s in ("disagreement", "random")]
    rest.remove((1, 1, "random"))
    assert calls == [*round0, (1, 1, "random"), *rest]


def test_a_round_another_process_holds_is_passed_over_and_taken_up_when_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers share the loop: a claimed round (its lock held elsewhere) holds back its own trajectory only."""
    calls: list[tuple[int, int, str]] = []

    def fake_round(self: LoopRunner, strategy: str, seed: int, round_: int, annotated: list[str]) -> RoundRecord:
        calls.append((seed, round_, strategy))
        return RoundRecord(strategy, seed, round_, list(annotated), [f"{strategy}-{round_}"], None, {}, {}, 0.0, {})

    opts = LoopOptions(data=str(sample_root()), seeds=(0,), runs=tmp_path / "runs", out=tmp_path,
                       spec=load_loop_spec(spec_file(tmp_path)))
    other = FileLock(opts.runs_dir / "locks" / "disagreement-r1-s0.lock")  # another worker trains that round
    other.acquire()
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:  # the other worker finishes while this one waits
        sleeps.append(seconds)
        other.release()

    monkeypatch.setattr(LoopRunner, "round", fake_round)
    monkeypatch.setattr("frugalseg.bench.active_learning_run.time.sleep", fake_sleep)
    lines: list[str] = []
    records = LoopRunner(opts, log=lines.append, poll_seconds=7).run()
    assert calls == [(0, 0, "disagreement"), (0, 0, "random"), (0, 1, "random"), (0, 2, "random"),
                     (0, 1, "disagreement"), (0, 2, "disagreement")]
    assert sleeps == [7] and "claimed by another process" in lines[0]
    assert [(r.round, r.strategy) for r in records] == [(r, s) for r in range(3) for s in ("disagreement", "random")]


@pytest.mark.slow
def test_jobs_2_workers_share_the_rounds_each_made_once(tmp_path: Path) -> None:
    assert bench(tmp_path, spec_file(tmp_path), "--jobs", "2") == 0
    records = tmp_path / "docs" / "results" / "active_learning"
    assert len(list(records.glob("*.json"))) == 2 * 2 * 3
    logs = "\n".join((tmp_path / "runs" / "active_learning" / "logs" / f"worker{k}.out").read_text() for k in (1, 2))
    made = re.findall(r"^\[(\w+ s\d r\d)\] \d+ slices annotated", logs, flags=re.MULTILINE)
    assert sorted(made) == sorted(f"{s} s{seed} r{r}" for s in ("disagreement", "random") for seed in (0, 1)
                                  for r in range(3))  # every round made by exactly one of the two workers
    assert "rounds recorded: 12 of 12" in (tmp_path / "docs" / "active-learning.md").read_text()
    for seed in (0, 1):  # each trajectory still builds on its own previous round
        recs = [read_record(record_path(records, "random", seed, r)) for r in range(3)]
        assert all(b.annotated == a.annotated + a.suggested for a, b in zip(recs, recs[1:], strict=False))
