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

__all__ = ["HARMLESS", "RUN_LOG", "config_changes", "check_resume", "record_changes"]

HARMLESS = frozenset({
    "name", "schedules", "train.log_every", "train.val_every", "train.val_batch_size", "train.checkpoint_every",
    "train.threads", "train.device", "data.num_workers", "data.val_list",
})
"""Dotted keys that do not change the weights a run computes (logging, validation, threads, device, naming)."""

RUN_LOG = "run.log"
"""The run's plain-text event log (resumes with changes); one line per event."""


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and dotted not in HARMLESS:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def config_changes(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (stored, given) for every key that changes the training."""
    old, new = _flatten(stored), _flatten(given)
    changes = {}
    for key in sorted(set(old) | set(new)):
        if key in HARMLESS or any(key.startswith(h + ".") for h in HARMLESS):
            continue
        a, b = old.get(key), new.get(key)
        if key == "data.root" and isinstance(a, str) and isinstance(b, str):  # the same folder, spelt otherwise
            a, b = (str(Path(v).expanduser().resolve()) for v in (a, b))
        if a != b:
            changes[key] = (old.get(key), new.get(key))
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
