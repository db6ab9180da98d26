"""Run directories, atomic checkpoints and the tiny TOML writer (docs/method.md § Reliability).

A run directory ``RUN/`` holds::

    config.toml            the RunConfig (RunConfig.to_dict() as TOML)
    checkpoints/last.pt    latest state: model, optimizer, scheduler, RNG, step, epoch
    checkpoints/best.pt    best validation CER so far: model, config, step, epoch, metrics
    metrics.jsonl          one JSON object per line ("train" / "valid" lines)
    eval/<split>.json      written by ``toposcope evaluate``

Checkpoints are plain dicts of tensors and Python scalars/containers, written to a temp file and
``os.replace``-d into place, and loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._util import atomic_write, write_text_atomic
from .config import ConfigError, RunConfig, config_from_dict, load_config
from .model import Wav2Letter

__all__ = ["Run", "load_run", "save_checkpoint", "load_checkpoint", "dump_toml", "write_text_atomic",
           "read_run_config", "checkpoint_path", "run_folder_state", "CONFIG_FILE", "METRICS_FILE"]

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"


# -- atomic files: toposcope._util ----------------------------------------------------------------


def save_checkpoint(path, state: dict) -> None:
    """``torch.save`` to a temp file in the same directory, then ``os.replace`` (never half-written)."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True``; clear errors for missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle / zip errors of several kinds
        raise ValueError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not a toposcope checkpoint (needs 'model' and 'config' keys)")
    return state


# -- TOML writer (just what RunConfig.to_dict() needs) -------------------------------------------
def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _toml_value(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # always has '.', 'e' or is 'inf' -> parsed back as a float
    if isinstance(v, str):
        out = ['"']
        for c in v:
            if c == '"' or c == "\\":
                out.append("\\" + c)
            elif ord(c) < 0x20 or ord(c) == 0x7F:
                out.append(f"\\u{ord(c):04x}")
            else:
                out.append(c)
        return "".join(out) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(d: dict) -> str:
    """A dict of scalars, lists, tables (dicts) and arrays of tables (lists of dicts) as TOML.

    ``None`` values are left out (TOML has no null; the dataclass defaults bring them back).
    """
    lines: list[str] = []

    def table(obj: dict, prefix: str) -> None:
        subtables, arrays = [], []
        for k, v in obj.items():
            if v is None:
                continue
            if isinstance(v, dict):
                subtables.append((k, v))
            elif isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
                arrays.append((k, v))
            else:
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in subtables:
            name = f"{prefix}{_toml_key(k)}"
            lines.extend(["", f"[{name}]"])
            table(v, name + ".")
        for k, items in arrays:
            name = f"{prefix}{_toml_key(k)}"
            for item in items:
                lines.extend(["", f"[[{name}]]"])
                table(item, name + ".")

    table(d, "")
    return "\n".join(lines).lstrip("\n") + "\n"


# -- runs --------------------------------------------------------------------------------------------
def checkpoint_path(run_dir, which: str = "best") -> Path:
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    return Path(run_dir) / "checkpoints" / f"{which}.pt"


def run_folder_state(run_dir) -> str:
    """What a training run folder holds (docs/method.md § Reliability), for ``train`` to decide how to start:

    * ``"new"``: no run (absent, or neither ``config.toml`` nor ``checkpoints/``): start a run;
    * ``"unstarted"``: a run was started but stopped before its first checkpoint (``config.toml`` or
      ``checkpoints/``, no ``checkpoints/last.pt``): ``train`` starts it again from scratch;
    * ``"resumable"``: ``checkpoints/last.pt`` exists: ``train --resume`` continues it.
    """
    p = Path(run_dir)
    if checkpoint_path(p, "last").is_file():
        return "resumable"
    if (p / CONFIG_FILE).is_file() or (p / "checkpoints").is_dir():
        return "unstarted"
    return "new"


def read_run_config(run_dir) -> RunConfig:
    """The RunConfig stored in ``RUN/config.toml``."""
    p = Path(run_dir) / CONFIG_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory ({CONFIG_FILE} missing)")
    return load_config(p)


@dataclass
class Run:
    """A trained model with its config. ``model`` is in eval mode."""

    model: Wav2Letter
    config: RunConfig
    meta: dict = field(default_factory=dict)
    path: Path | None = None


def load_run(run_dir, which: str = "best", *, device: str | torch.device = "cpu") -> Run:
    """Load ``RUN/checkpoints/<which>.pt`` (or a ``.pt`` file given directly) into a :class:`Run`.

    ``meta`` holds ``step``, ``epoch``, ``which``, ``checkpoint`` and, when present, the validation
    ``metrics`` of that checkpoint. ``path`` is the run directory.
    """
    p = Path(run_dir)
    if p.is_file() and p.suffix == ".pt":
        ckpt, run_path = p, (p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    else:
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: run directory not found")
        ckpt, run_path = checkpoint_path(p, which), p
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: checkpoint not found (has this run been trained?)")
    state = load_checkpoint(ckpt)
    try:
        cfg = config_from_dict(state["config"], where=f"{ckpt} [config]")
    except ConfigError as e:
        raise ValueError(f"{ckpt}: the stored config is invalid ({e})") from None
    model = Wav2Letter(cfg.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{ckpt}: weights do not fit the stored config ({e})") from None
    model.to(device).eval()
    meta = {"which": which if not p.is_file() else p.stem, "checkpoint": str(ckpt),
            "step": int(state.get("step", 0)), "epoch": int(state.get("epoch", 0))}
    if "metrics" in state:
        meta["metrics"] = state["metrics"]
    return Run(model=model, config=cfg, meta=meta, path=run_path)
