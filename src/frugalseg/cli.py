"""The ``frugalseg`` command line: parse arguments, call the library, print errors without tracebacks.

Sub-commands (DESIGN.md "Command line")::

    frugalseg simulate --data DIR --kind points|scribbles|boxes|tags|budget [--budget FILE] --seed N --out FILE
    frugalseg pseudolabel --data DIR --annotations FILE --out FILE [--click-box N] [--cache DIR]
    frugalseg train CONFIG [key.sub=value ...] [--out DIR] [--resume | --resume-with-changes | --overwrite]
    frugalseg eval --checkpoint FILE --data DIR [--list FILE] [--network NAME] --out DIR
    frugalseg predict --checkpoint FILE --input PATH --out DIR [--overwrite] [--network NAME]
    frugalseg suggest --checkpoint FILE --data DIR [--annotations FILE] [--strategy S] [--n N] --out FILE
    frugalseg demo [--out DIR]
    frugalseg bench --data DIR [--schedule quick|paper] [--only ROW ... | --row LABEL=CONFIG[,K=V...] ...]
                    [--doc PAGE --block NAME] [--seeds N ...] [--runs DIR] [--out DIR] [--set KEY=VALUE ...]
                    [--cost-model FILE] [--jobs N] [--list | --page-only] [--active-learning [SPEC]]
    frugalseg annotate --data DIR|FILE --out FILE [--classes FILE] [--host 127.0.0.1] [--port N] [--suggested F]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from frugalseg import __version__
from frugalseg.errors import FrugalsegError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns: each command adds its own parser to it."""


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (``--jobs 0`` would train nothing, forever)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _add_simulate(sub: Subparsers) -> None:
    p = sub.add_parser("simulate", help="write an annotation file of weak labels simulated from the masks")
    p.add_argument("--data", required=True, type=Path, help="data folder (any supported layout)")
    p.add_argument("--kind", required=True, choices=["points", "scribbles", "boxes", "tags", "budget"])
    p.add_argument("--budget", type=Path, help="budget file (YAML/JSON) for --kind budget, or a shipped budget name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="annotation file to write (.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _add_pseudolabel(sub: Subparsers) -> None:
    p = sub.add_parser("pseudolabel", help="add LiteMedSAM's box-prompted masks to an annotation file "
                                           "(needs pip install 'frugalseg[sam]')")
    p.add_argument("--data", required=True, type=Path, help="data folder (any supported layout)")
    p.add_argument("--annotations", required=True, type=Path, help="annotation file with boxes (or clicks)")
    p.add_argument("--out", required=True, type=Path, help="annotation file to write (.json)")
    p.add_argument("--click-box", type=_positive_int, metavar="N",
                   help="also prompt with an N x N box around each foreground click (default: clicks give no box)")
    p.add_argument("--cache", type=Path, help="folder of per-slice masks, to resume an interrupted run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train a configured run")
    p.add_argument("config", help="YAML config file or the name of a shipped config (e.g. acdc_pce)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.iterations=2000 schedule=quick")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<config>-s<seed>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--resume-with-changes", action="store_true",
                   help="resume although the command line changes the training (the changes go to run.log)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder (the old one is deleted once the new run has checkpointed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--stop-at", type=_positive_int, metavar="N",
                   help="stop after iteration N of the schedule, saving last.pt as if killed there (the schedule "
                        "is still train.iterations long); --resume continues it")


def _add_eval(sub: Subparsers) -> None:
    p = sub.add_parser("eval", help="per-volume Dice/Jaccard/HD95/ASD of a checkpoint")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--list", type=Path, dest="case_list", help="file of case ids to evaluate (default: val split)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    _add_network(p)


def _add_network(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", help="use this network of the checkpoint instead of the method's own choice, "
                                     "e.g. a mean teacher's 'student' (an unknown name lists them)")


def _add_predict(sub: Subparsers) -> None:
    p = sub.add_parser("predict", help="write NIfTI label maps predicted by a checkpoint")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--input", required=True, type=Path, help="a data folder or one image file")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device")
    _add_network(p)


def _add_suggest(sub: Subparsers) -> None:
    p = sub.add_parser("suggest", help="rank the slices without annotation by what annotating them would teach")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--annotations", type=Path, help="annotation file of the slices already annotated (default: none)")
    p.add_argument("--strategy", default="entropy", choices=["entropy", "disagreement", "random"])
    p.add_argument("--n", type=_positive_int, default=20, help="slices to suggest (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random strategy")
    p.add_argument("--allow-adjacent", action="store_true", help="allow neighbouring slices of one volume")
    p.add_argument("--out", required=True, type=Path, help="text file of item ids, one per line, best first")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device")


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="train on the bundled sample and write a report")
    p.add_argument("--out", type=Path, default=Path("frugalseg-demo"))
    p.add_argument("--iterations", type=_positive_int, help="iterations per run (default: the demo's own)")
    p.add_argument("--overwrite", action="store_true")


def _add_bench(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="train the benchmark matrix (resumable) and write docs/results.md")
    p.add_argument("--data", type=Path, help="data folder (default: $FRUGALSEG_DATA)")
    p.add_argument("--schedule", default="quick", help="schedule of the configs: quick (CPU) or paper (GPU)")
    p.add_argument("--only", nargs="+", metavar="ROW", help="train only these rows (the page still shows all)")
    p.add_argument("--row", dest="rows", action="append", default=[], metavar="LABEL=CONFIG[,KEY=VALUE...]",
                   help="run this row instead of the matrix (repeat it; a bare LABEL is the matrix's row), e.g. "
                        "--row action3_no_anco=acdc_action,method.options.anco=false; prints its tables")
    p.add_argument("--doc", type=Path, metavar="PAGE", help="with --row: write the tables into this Markdown page")
    p.add_argument("--block", metavar="NAME", help="with --doc: the <!-- NAME --> block of the page to replace")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", type=Path, help="folder of the runs, not committed (default: runs/bench/<schedule>)")
    p.add_argument("--out", type=Path, default=Path("docs"),
                   help="folder of the results page: results.md, figures/, results/, and the run records to commit "
                        "in results/runs/ (a recorded run is never trained again) (default: docs)")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every row, e.g. --set train.iterations=2000")
    p.add_argument("--cost-model", type=Path, help="YAML cost model (default: frugalseg/bench/cost_model.yaml)")
    p.add_argument("--device", help="device for evaluation (training follows train.device)")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="train up to N runs side by side, each in a child process with cpus/N threads "
                        "(on a GPU machine: one GPU each); default 1, in this process. With --active-learning: "
                        "N worker processes share the loop's rounds")
    p.add_argument("--active-learning", nargs="?", const="", metavar="SPEC",
                   help="run the simulated active-learning loop instead of the matrix (SPEC: a loop spec YAML; "
                        "default: frugalseg/bench/active_learning.yaml) and write <out>/active-learning.md")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true",
                      help="print the rows and the estimated time (for --jobs); train nothing")
    what.add_argument("--page-only", action="store_true",
                      help="train nothing: write the page from the records (and finished runs) there are, the "
                           "rest marked as not finished (a bench that spans sessions, between its sessions)")


def _add_annotate(sub: Subparsers) -> None:
    p = sub.add_parser("annotate", help="a local page to click, box, scribble and tag slices into an annotation file")
    p.add_argument("--data", required=True, type=Path, help="data folder (any supported layout) or one image file")
    p.add_argument("--out", required=True, type=Path, help="annotation file; an existing one is resumed")
    p.add_argument("--classes", type=Path, help="JSON/YAML {id: name} for data without masks")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--suggested", type=Path, metavar="FILE",
                   help="item ids to annotate first, one per line in order (frugalseg suggest --out FILE)")


def _run_simulate(args: argparse.Namespace) -> int:
    """Write simulated weak labels."""
    from frugalseg.data.simulate import simulate_file

    ann = simulate_file(args.data, args.kind, args.seed, args.out, overwrite=args.overwrite, budget=args.budget)
    print(f"wrote {args.out} ({len(ann.items)} items, kind {args.kind}, seed {args.seed})")
    return 0


def _run_pseudolabel(args: argparse.Namespace) -> int:
    """Add LiteMedSAM's box-prompted masks."""
    from frugalseg.commands.pseudolabel import pseudolabel_file

    ann = pseudolabel_file(args.data, args.annotations, args.out, click_box=args.click_box, cache_dir=args.cache,
                           overwrite=args.overwrite, device=args.device)
    made = ann.provenance["pseudolabels"]["items"]
    print(f"wrote {args.out} ({made} item(s) with LiteMedSAM label maps of {len(ann.items)})")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    """Train one configured run."""
    from frugalseg.config import load_config
    from frugalseg.train import default_run_dir, train_run

    config = load_config(args.config, args.overrides)
    out = args.out or default_run_dir(config)
    result = train_run(config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                       resume_with_changes=args.resume_with_changes, stop_at=args.stop_at)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 validated, so only it reports
        return 0
    if result.iterations < config.train.iterations:
        print(f"run {result.run_dir}: stopped at iteration {result.iterations} of {config.train.iterations} "
              f"(checkpoints/last.pt); continue it with --resume")
    else:
        best = (f"best validation Dice {result.best_dice:.4f} at iteration {result.best_iteration}"
                if result.best_iteration >= 0 else "no validation set: best.pt is the last weights")
        print(f"run {result.run_dir}: {result.iterations} iterations in {result.seconds:.0f} s, {best}")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    """Score a checkpoint per volume."""
    from frugalseg.commands.evaluate import run_eval

    print(run_eval(args.checkpoint, args.data, args.out, case_list=args.case_list, overwrite=args.overwrite,
                   device=args.device, network=args.network))
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    """Write NIfTI label maps."""
    from frugalseg.commands.predict import predict_to_nifti

    paths = predict_to_nifti(args.checkpoint, args.input, args.out, overwrite=args.overwrite, device=args.device,
                             network=args.network)
    print(f"wrote {len(paths)} label map(s) to {args.out}")
    return 0


def _run_suggest(args: argparse.Namespace) -> int:
    """Rank the unannotated slices."""
    from frugalseg.commands.suggest import suggest_slices

    res = suggest_slices(args.checkpoint, args.data, args.out, n=args.n, strategy=args.strategy,
                         annotations=args.annotations, seed=args.seed, allow_adjacent=args.allow_adjacent,
                         overwrite=args.overwrite, device=args.device)
    for warning in res.selection.warnings:
        print(f"frugalseg suggest: warning: {warning}", file=sys.stderr)
    how = f" ({res.pair})" if res.pair else ""
    print(f"wrote {res.out}: {len(res.selection.item_ids)} of {res.pool_size} unannotated slices, "
          f"by {res.strategy}{how}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    """Train on the bundled sample and report."""
    from frugalseg.commands.demo import run_demo

    report = run_demo(args.out, iterations=args.iterations, overwrite=args.overwrite)
    print(f"demo report: {report}")
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    """The matrix bench, or with --active-learning the simulated active-learning loop."""
    if args.active_learning is not None:
        from frugalseg.bench.active_learning_cli import active_learning_command

        return active_learning_command(args)
    from frugalseg.commands.bench import bench_command

    return bench_command(args)


def _run_annotate(args: argparse.Namespace) -> int:
    """Serve the annotation page until interrupted."""
    from frugalseg.commands.annotate import serve

    serve(args.data, args.out, args.classes, args.host, args.port, suggested=args.suggested)
    return 0


COMMANDS: dict[str, tuple[Callable[[Subparsers], None], Callable[[argparse.Namespace], int]]] = {
    "simulate": (_add_simulate, _run_simulate),
    "pseudolabel": (_add_pseudolabel, _run_pseudolabel),
    "train": (_add_train, _run_train),
    "eval": (_add_eval, _run_eval),
    "predict": (_add_predict, _run_predict),
    "suggest": (_add_suggest, _run_suggest),
    "demo": (_add_demo, _run_demo),
    "bench": (_add_bench, _run_bench),
    "annotate": (_add_annotate, _run_annotate),
}
"""Each sub-command: what adds its arguments, and what runs it (imports happen on call, so ``--help`` is fast)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frugalseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"frugalseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for the pages it writes
    try:
        return COMMANDS[args.command][1](args)
    except FrugalsegError as exc:
        message = " ".join(str(exc).split("\n"))  # one line, whatever a file's keys or values hold
        print(f"frugalseg {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"frugalseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
