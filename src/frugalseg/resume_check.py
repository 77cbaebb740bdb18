"""``--resume`` continues the run that is in the folder, not another one.

The command line of a resume (config file plus overrides) is compared with the run's stored
``config.json``. A difference in any key that changes the training (method, data, model,
optimiser, schedule, batch, iterations, seed, precision...) is refused before anything is written,
naming each key with its stored and given values. Keys that only change how a run is watched or
where it runs (:data:`HARMLESS`) may differ.

``--resume-with-changes`` accepts the differences: the run continues with the new config, the
new ``config.json`` replaces the old, and each change is appended to the run's ``run.log``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from frugalseg.errors import ConfigError
from frugalseg.files import write_text_atomic

__all__ = ["FREE_FORM", "HARMLESS", "RUN_LOG", "config_changes", "check_resume", "record_changes"]

HARMLESS = frozenset({
    "name", "schedules", "train.log_every", "train.val_every", "train.val_batch_size", "train.checkpoint_every",
    "train.threads", "train.device", "data.num_workers", "data.val_list",
})
"""Dotted keys that do not change the weights a run computes (logging, validation, threads, device, naming)."""

RUN_LOG = "run.log"
"""The run's plain-text event log (resumes with changes); one line per event."""


FREE_FORM = frozenset({"method.options"})
"""Mappings whose keys are the method's, not the schema's: compared whole when only shared keys count."""


def _flatten(tree: Mapping[str, Any], ignored: frozenset[str], whole: frozenset[str],
             prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value; an ignored, ``whole`` or empty mapping is one leaf."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and dotted not in ignored and dotted not in whole:
            out.update(_flatten(value, ignored, whole, dotted + "."))
        else:
            out[dotted] = value
    return out


def _same_path(a: Any, b: Any) -> bool:  # noqa: ANN401
    """Two ``data.root`` values naming one folder, spelt otherwise (``~``, ``..``, relative)."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def config_changes(stored: Mapping[str, Any], given: Mapping[str, Any], ignored: frozenset[str] = HARMLESS,
                   shared_only: bool = False) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (stored, given) for every key that changes the training: the one comparison of two configs.

    A resume compares the command line with the stored run (:func:`check_resume`); the bench compares a
    run folder or record with the row that asks for it (``frugalseg.bench.runner.config_differences``).

    Args:
        stored: the config a run was trained with.
        given: the config asked for now.
        ignored: keys (with everything below them) that do not count: :data:`HARMLESS` for a resume; the
            bench passes a narrower set (a record's ``best.pt`` depends on how often and on what it validated).
        shared_only: compare only the keys both sides have, so that a key added to the schema after a run
            was trained is no change (the bench reads run folders and records as older versions wrote them;
            a resume reads the stored config with the defaults filled in). :data:`FREE_FORM` mappings are then
            compared whole, so that an option only one side has still counts.
    """
    whole = FREE_FORM if shared_only else frozenset()
    old, new = _flatten(stored, ignored, whole), _flatten(given, ignored, whole)
    keys = set(old) & set(new) if shared_only else set(old) | set(new)
    changes = {}
    for key in sorted(keys):
        if any(key == h or key.startswith(h + ".") for h in ignored):
            continue
        a, b = old.get(key), new.get(key)
        if a != b and not (key == "data.root" and _same_path(a, b)):
            changes[key] = (a, b)
    return changes


def read_stored_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``, validated and with defaults filled (so that an older file compares fairly)."""
    from frugalseg.config import RunConfig

    path = run_dir / "config.json"
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
        return RunConfig.model_validate(tree).to_dict()
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; cannot check that --resume continues the same run") from None
    except (OSError, ValueError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path}: unreadable stored config ({first})") from None


def check_resume(run_dir: Path, given: Mapping[str, Any], allow_changes: bool) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose config changes the training, unless ``allow_changes``; return the changes."""
    changes = config_changes(read_stored_config(run_dir), given)
    if changes and not allow_changes:
        shown = "; ".join(f"{k}: stored {_short(a)}, given {_short(b)}" for k, (a, b) in changes.items())
        raise ConfigError(f"{run_dir / 'config.json'}: --resume would change the training ({shown}); resume with "
                          "the stored values, or pass --resume-with-changes to accept and log the change")
    return changes


def record_changes(run_dir: Path, changes: Mapping[str, tuple[Any, Any]], iteration: int,
                   config: Mapping[str, Any]) -> None:
    """Append the accepted changes to ``run.log`` and store the new config (called once the folder is locked)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"{stamp} resumed at iteration {iteration} with changes (--resume-with-changes):"]
    lines += [f"{stamp}   {k}: {_short(a)} -> {_short(b)}" for k, (a, b) in changes.items()]
    log = run_dir / RUN_LOG
    old = log.read_text(encoding="utf-8") if log.is_file() else ""
    write_text_atomic(log, old + "\n".join(lines) + "\n", overwrite=True)
    write_text_atomic(run_dir / "config.json", json.dumps(dict(config), indent=2) + "\n", overwrite=True)


def _short(value: Any) -> str:  # noqa: ANN401
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
