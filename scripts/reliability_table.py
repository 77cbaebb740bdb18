"""Write docs/reliability.md from the reliability corpus: every case run, its real message, what it kept.

    python scripts/reliability_table.py [--out docs/reliability.md]

The table is not typed: each row is a case of ``tests/reliability/cases.py`` (the table the tests use),
run here through the real command line in a fresh copy of the world, with the exit code and the message
it printed (paths shortened to ``<world>`` and ``<sample>``) and whether every existing file came out
byte-identical. A case that breaks its promise stops the script (the page never shows a broken promise).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the corpus lives in tests/

from tests.reliability.cases import CASES, Case, digest, fill, make_world_template, run_case  # noqa: E402

ITEMS = {
    "1": "`--overwrite` checks everything first",
    "2": "one writer per run folder",
    "3": "class ids checked against the data",
    "4": "`--resume` continues the same run",
    "5": "what the network, method and device need, checked at load",
    "6": "failed runs leave nothing",
    "7": "`demo --iterations 0`",
    "8": "one-line errors, not tracebacks",
    "9": "strict parsing, contradictory annotations",
    "existing": "refused before this page existed",
}

PROMISES = """\
# What frugalseg guarantees about your files

A run folder can hold days of GPU time; an annotation file, days of a clinician's time. frugalseg
makes these promises about them (DESIGN.md, "Safety of files"), and the tests named after each one
check it on every change.

1. **A bad input changes nothing.** Every input (config, data, annotations, network options, device,
   checkpoint) is checked before the first write. A problem stops the command with exit code 2 and
   one line naming the file and, where it applies, the item and the field or the config key. Every
   row of the table below is such a case, and its test hashes (sha256) every file the user already
   had before and after: all byte-identical, nothing added, nothing removed
   (`tests/reliability/test_corpus.py`).
2. **`--overwrite` is a swap, not a delete.** The old run folder is moved aside (beside it, as
   `.<name>.replaced-<pid>-<time>`) only once every input is checked, and deleted only when the new run
   has written its first checkpoint. If the new run fails before that, for any reason (an error, Ctrl-C),
   the new folder is removed and the old one is put back as it was
   (`tests/reliability/test_run_folder.py`). Only SIGKILL or a power cut inside that window can leave
   the old folder aside; the next run into the same folder prints where it is.
3. **One writer per run folder.** A run holds an exclusive lock (`fcntl.flock` on `.frugalseg.lock` in
   the folder) for its whole life. A second run into the folder, including a `--resume` of a run that
   is still going, is refused with the holder's pid. The operating system frees the lock when the
   process ends, however it ends, so a killed run never blocks its own resume
   (`tests/reliability/test_kill_and_race.py::test_two_runs_into_one_folder_one_is_refused_and_the_other_is_whole`).
4. **A failed run leaves nothing behind.** A new run that fails before its first checkpoint removes its
   folder (or, if you made the folder beforehand, empties it again).
5. **A killed run resumes exactly.** Checkpoints are written atomically (temporary file, then rename)
   and read without running pickles (`torch.load(weights_only=True)`). A run SIGKILLed at any step and
   resumed with `--resume` ends with weights bit-identical to a run never interrupted
   (`tests/reliability/test_kill_and_race.py::test_sigkill_at_random_steps_then_resume_gives_bit_identical_weights`:
   three kills at seeded random steps, each resumed).
6. **`--resume` continues the same run.** The command line is compared with the run's `config.json`;
   any difference that changes training (method, data, model, optimiser, schedule, batch size,
   iterations, seed, precision...) is refused, naming each key with its stored and given values.
   Logging, validation frequency, threads and device may differ. `--resume-with-changes` accepts the
   differences, stores the new `config.json` and appends each change to the run's `run.log`.
7. **Hand-made files cannot crash the loaders.** Hypothesis generates annotation files and configs
   (near-valid ones, broken JSON and YAML, random values, nesting 3,000 deep) and checks that each
   either loads or is refused with the project's own one-line error, never another exception
   (`tests/reliability/test_fuzz.py`: 1,000 examples per test in CI; a local run of 10,000 with
   `FRUGALSEG_FUZZ_EXAMPLES=10000 nice -n 10 python -m pytest tests/reliability/test_fuzz.py`).

## The cases

Each row is a case of `tests/reliability/cases.py`, run by `scripts/reliability_table.py` through the
command line in a folder holding a finished run (`<world>/run`), an annotation file, an evaluation, a
prediction folder, a plain file and a copy of the bundled sample; `<sample>` is the bundled sample,
`<configs>` the shipped configs' folder.
"What is kept" is checked by hashing every file before and after.
"""


def _row(case: Case, world: Path, template: Path) -> str:
    if case.setup is not None:
        case.setup(world)
    before = digest(world)
    outcome = run_case(case, world)
    lines = [ln for ln in outcome.err.splitlines() if ln.strip() and not ln.startswith("usage:")]
    message = lines[-1] if lines else "(nothing)"
    for needle in case.needles:
        if fill(needle, world) not in outcome.err:
            raise SystemExit(f"case {case.id}: message lacks {needle!r}: {outcome.err}")
    if outcome.code != case.code or digest(world) != before or "Traceback" in outcome.err:
        raise SystemExit(f"case {case.id} broke its promise (exit {outcome.code}): {outcome.err}")
    from frugalseg.config import configs_dir
    from frugalseg.data.sample import sample_path

    message = message.replace(str(world), "<world>").replace(str(sample_path()), "<sample>")
    message = message.replace(str(configs_dir()), "<configs>").replace(f"pid {os.getpid()}", "pid <pid>")
    message = message.replace("|", "\\|")
    kept = f"all {len(before)} files byte-identical"
    return f"| {case.does} | {ITEMS[case.item]} | exit {outcome.code}: `{message}` | {kept} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    from frugalseg.files import write_text_atomic

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        template = make_world_template(Path(tmp))
        for n, case in enumerate(CASES):
            world = Path(tmp) / f"case{n}"
            shutil.copytree(template, world)
            rows.append(_row(case, world, template))
            shutil.rmtree(world)
            print(f"[{n + 1}/{len(CASES)}] {case.id}", file=sys.stderr)
    table = ["| the user does | promise | what the user sees | what is kept |", "| --- | --- | --- | --- |", *rows]
    footer = f"\n{len(CASES)} cases; written by `scripts/reliability_table.py`. Do not edit by hand.\n"
    write_text_atomic(args.out, PROMISES + "\n" + "\n".join(table) + "\n" + footer, overwrite=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
