"""Model configs as frozen, validated dataclasses, read from TOML (README "What it is"; docs/method.md).

Shipped configs live in ``toposcope/configs/<name>.toml``; ``load_config`` accepts such a name or
a path to a user's own TOML file. Unknown keys, wrong types and non-finite numbers are errors
(:class:`ConfigError`, naming the file and the table), never ignored.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

from .augment import AugmentConfig
from .features import FeatureConfig
from .grid import Grid

__all__ = ["LayerSpec", "FrontendConfig", "PhoneHeadConfig", "ModelConfig", "TrainConfig", "RunConfig", "load_config",
           "config_from_dict", "merge_config_dicts", "shipped_configs", "ConfigError"]


class ConfigError(ValueError):
    """A config file or dict that cannot be used."""


def _check_numbers(obj, ints: tuple[str, ...], floats: tuple[str, ...]) -> None:
    """Integer fields must be integers (not bools); float fields finite real numbers (ints allowed)."""
    for n in ints:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{n} must be an integer, got {v!r}")
    for n in floats:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{n} must be a finite number, got {v!r}")


@dataclass(frozen=True)
class LayerSpec:
    """One conv layer: ``channels`` filters of width ``kernel``; ``grid`` defaults to the most square one."""

    channels: int
    kernel: int
    stride: int = 1
    grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for n in ("channels", "kernel", "stride"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"layer {n} must be a positive integer, got {v!r}")
        if self.grid is not None:
            g = tuple(self.grid)
            if len(g) != 2 or g[0] * g[1] != self.channels:
                raise ConfigError(f"layer grid {list(g)} must be [rows, cols] with rows * cols == {self.channels}")
            object.__setattr__(self, "grid", (int(g[0]), int(g[1])))

    @property
    def padding(self) -> int:
        """Left (and right) padding: ``(kernel - 1) // 2`` keeps length / stride ("same"-like)."""
        return (self.kernel - 1) // 2

    def get_grid(self) -> Grid:
        return Grid(*self.grid) if self.grid else Grid.for_channels(self.channels)


@dataclass(frozen=True)
class FrontendConfig:
    """An optional 2-D convolutional front end before ``conv1`` (the ``[frontend]`` table; off by default).

    ``channels`` filters of ``kernel = [mel, time]`` slide over the log-mel image ``(n_mels, frames)``
    (BatchNorm when the model's ``norm`` is ``"batch"``, then ReLU), and a max-pool of ``pool`` mel bins
    (stride ``pool``) follows, so ``conv1`` reads ``channels * (n_mels // pool)`` input channels at the
    same frame rate. The pooling makes the model tolerate small shifts along the mel axis, which is how
    a different vocal-tract length shows in a log-mel spectrogram. Not in the seed (its Wav2Letter is a
    1-D network whose first layer reads mel bins: with a front end, ``conv1``'s filters are no longer
    images of mel x time); ``channels = 0`` is the seed's network. docs/method.md § Front end.
    """

    channels: int = 0
    kernel: tuple[int, int] = (5, 3)
    pool: int = 4

    def __post_init__(self) -> None:
        _check_numbers(self, ("channels", "pool"), ())
        if self.channels < 0:
            raise ConfigError(f"frontend channels must be >= 0 (0 = no front end), got {self.channels}")
        if self.pool < 1:
            raise ConfigError(f"frontend pool must be >= 1 mel bins, got {self.pool}")
        k = self.kernel
        if (not isinstance(k, (list, tuple)) or len(k) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0 for v in k)):
            raise ConfigError(f"frontend kernel must be [mel, time], two odd positive integers, got {k!r}")
        object.__setattr__(self, "kernel", (int(k[0]), int(k[1])))

    @property
    def enabled(self) -> bool:
        return self.channels > 0

    def out_channels(self, n_mels: int) -> int:
        """Channels ``conv1`` reads: ``n_mels`` without a front end, else ``channels * (n_mels // pool)``."""
        return self.channels * (n_mels // self.pool) if self.enabled else n_mels


@dataclass(frozen=True)
class PhoneHeadConfig:
    """An optional auxiliary phone classifier on one gridded layer (the ``[phone_head]`` table; off by default).

    A ``Conv1d(k=1)`` from ``layer``'s activation to the 40 canonical phones (:data:`toposcope.phones.PHONES`)
    is trained with frame-level cross-entropy against the corpus's phone alignments, added to the CTC loss
    with ``weight``. Not in the seed, whose recognizer learns from characters only: with a phone head, phone
    selectivity at and below ``layer`` is a training target, so maps of such a model no longer test whether
    phone-responsive regions *emerge* (docs/method.md § Phone head). ``layer = ""`` is the seed's network.
    """

    layer: str = ""
    weight: float = 0.5

    def __post_init__(self) -> None:
        _check_numbers(self, (), ("weight",))
        object.__setattr__(self, "weight", float(self.weight))
        if not isinstance(self.layer, str):
            raise ConfigError(f"phone_head layer must be a layer name such as 'conv4', got {self.layer!r}")
        if self.weight <= 0.0:
            raise ConfigError(f"phone_head weight must be > 0, got {self.weight}")

    @property
    def enabled(self) -> bool:
        return bool(self.layer)


@dataclass(frozen=True)
class ModelConfig:
    """Wav2Letter-style network: gridded conv layers, then a k=1 output conv to the graphemes."""

    name: str
    features: FeatureConfig
    layers: tuple[LayerSpec, ...]
    dropout: float = 0.0
    #: "none" (the seed's Wav2Letter: conv -> ReLU) or "batch" (conv -> BatchNorm -> ReLU: a
    #: deviation from the seed that lets CTC training converge in minutes on a CPU).
    norm: str = "none"
    #: optional 2-D front end before conv1 (:class:`FrontendConfig`; off: the seed's 1-D network)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    #: optional auxiliary phone classifier on one layer (:class:`PhoneHeadConfig`; off: the seed's objective)
    phone_head: PhoneHeadConfig = field(default_factory=PhoneHeadConfig)

    def __post_init__(self) -> None:
        _check_numbers(self, (), ("dropout",))
        object.__setattr__(self, "dropout", float(self.dropout))
        if self.norm not in ("none", "batch"):
            raise ConfigError(f"norm must be 'none' or 'batch', got {self.norm!r}")
        if not self.layers:
            raise ConfigError("a model needs at least one conv layer")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.frontend.enabled and self.frontend.pool > self.features.n_mels:
            raise ConfigError(f"frontend pool ({self.frontend.pool}) is wider than the {self.features.n_mels} mel bins")
        if self.phone_head.enabled and self.phone_head.layer not in self.layer_names:
            raise ConfigError(f"phone_head layer {self.phone_head.layer!r} is not a gridded layer of this model "
                              f"({', '.join(self.layer_names)})")

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the gridded layers: ``conv1`` ... ``convN`` (the output layer is ``output``)."""
        return tuple(f"conv{i + 1}" for i in range(len(self.layers)))


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters (the ``[train]`` table)."""

    topo_weight: float = 0.0
    neighborhood: int = 3
    boundary: str = "clip"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    max_batch_seconds: float = 0.0  # 0 = use batch_size only
    epochs: int = 10
    max_steps: int = 0  # 0 = no limit
    grad_clip: float = 5.0
    warmup_steps: int = 100
    seed: int = 0
    max_minutes: float = 0.0  # wall-clock budget of the training loop; 0 = none
    schedule: str = "cosine"  # "cosine" (linear warmup, cosine decay to min_lr_ratio * lr) or "constant"
    min_lr_ratio: float = 0.05
    log_every: int = 10  # steps between "train" lines in metrics.jsonl
    sorted_epochs: int = 0  # the first N epochs shortest batch first ("SortaGrad"), then shuffled

    def __post_init__(self) -> None:
        _check_numbers(self, ("neighborhood", "batch_size", "epochs", "max_steps", "warmup_steps", "seed", "log_every",
                        "sorted_epochs"),
                       ("topo_weight", "lr", "weight_decay", "max_batch_seconds", "grad_clip", "max_minutes",
                        "min_lr_ratio"))
        if self.topo_weight < 0:
            raise ConfigError(f"topo_weight must be >= 0, got {self.topo_weight}")
        if self.neighborhood < 3 or self.neighborhood % 2 == 0:
            raise ConfigError(f"neighborhood must be an odd integer >= 3, got {self.neighborhood}")
        if self.boundary not in ("clip", "wrap"):
            raise ConfigError(f"boundary must be 'clip' or 'wrap', got {self.boundary!r}")
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 0 or self.max_steps < 0:
            raise ConfigError(f"impossible training settings: {self}")
        if (self.max_minutes < 0 or self.max_batch_seconds < 0 or self.warmup_steps < 0 or self.grad_clip < 0
                or self.sorted_epochs < 0):
            raise ConfigError(f"max_minutes, max_batch_seconds, warmup_steps, grad_clip and sorted_epochs must be "
                              f">= 0: {self}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0 or self.log_every < 1:
            raise ConfigError(f"need 0 <= min_lr_ratio <= 1 and log_every >= 1: {self}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    #: training-time augmentation (the ``[augment]`` table; off when absent: runs from before it load unchanged)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        m = self.model
        return {
            "name": m.name,
            "dropout": m.dropout,
            "norm": m.norm,
            "features": asdict(m.features),
            "layers": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(l).items() if v is not None}
                       for l in m.layers],
            "train": asdict(self.train),
            "augment": self.augment.to_dict(),
            # only when on, so the configs of runs without one read as they always did
            **({"frontend": {"channels": m.frontend.channels, "kernel": list(m.frontend.kernel),
                             "pool": m.frontend.pool}} if m.frontend.enabled else {}),
            **({"phone_head": {"layer": m.phone_head.layer, "weight": m.phone_head.weight}}
               if m.phone_head.enabled else {}),
        }


def _take(cls, table: dict, where: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {table!r}")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    try:
        return cls(**table)
    except (TypeError, ValueError) as e:  # ConfigError included: say where
        raise ConfigError(f"{where}: {e}") from None


def config_from_dict(d: dict, where: str = "config") -> RunConfig:
    """Build a :class:`RunConfig` from a parsed TOML/JSON dict (unknown keys are errors)."""
    d = dict(d)
    allowed = {"name", "dropout", "norm", "features", "frontend", "phone_head", "layers", "train", "augment"}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    if "layers" not in d or not isinstance(d["layers"], list):
        raise ConfigError(f"{where}: needs a [[layers]] list")
    feats = _take(FeatureConfig, d.get("features", {}), f"{where} [features]")
    layers = tuple(_take(LayerSpec, dict(l), f"{where} layers[{i}]") for i, l in enumerate(d["layers"]))
    frontend = _take(FrontendConfig, d.get("frontend", {}), f"{where} [frontend]")
    phone_head = _take(PhoneHeadConfig, d.get("phone_head", {}), f"{where} [phone_head]")
    try:
        model = ModelConfig(name=str(d.get("name", "custom")), features=feats, layers=layers,
                            dropout=d.get("dropout", 0.0), norm=str(d.get("norm", "none")), frontend=frontend,
                            phone_head=phone_head)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    train = _take(TrainConfig, d.get("train", {}), f"{where} [train]")
    augment = _take(AugmentConfig, d.get("augment", {}), f"{where} [augment]")
    return RunConfig(model, train, augment)


def shipped_configs() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("toposcope.configs").iterdir() if p.name.endswith(".toml"))


def load_config(name_or_path: str | Path) -> RunConfig:
    """A shipped config by name (``small``, ``paper``, ``tiny``, ...; :func:`shipped_configs`) or a TOML file path.

    A file may start from another config with ``base = "NAME"`` (a shipped name or a path, relative paths
    taken from the file's folder) and give only what changes (:func:`merge_config_dicts`), e.g.::

        base = "small"
        [frontend]
        channels = 8
    """
    return config_from_dict(*_config_dict(name_or_path, ()))


def _config_dict(name_or_path: str | Path, seen: tuple[str, ...]) -> tuple[dict, str]:
    """The parsed TOML of a config, its ``base`` chain merged in, and where it came from. ``seen``: the
    configs whose base chain led here (resolved file paths, shipped names), to refuse a cycle."""
    p = Path(name_or_path)
    is_file = p.suffix == ".toml" or p.exists()
    if is_file:
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        if not p.is_file():
            raise ConfigError(f"{p}: is not a file (a config is a .toml file)")
        try:
            text, where = p.read_text(encoding="utf-8"), str(p)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    else:
        res = resources.files("toposcope.configs") / f"{name_or_path}.toml"
        if not res.is_file():
            raise ConfigError(f"unknown config {str(name_or_path)!r}; shipped: {', '.join(shipped_configs())}, "
                              f"or give a path to a .toml file")
        text, where = res.read_text(), f"{name_or_path}.toml"
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML ({e})") from None
    d.setdefault("name", p.stem)
    base = d.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{where}: base must be a config name or a path, got {base!r}")
        me = str(p.resolve()) if is_file else where
        if me in seen:
            raise ConfigError(f"{where}: its base chain comes back to it ({' -> '.join(seen + (me,))})")
        target: str | Path = base
        if base.endswith(".toml") or "/" in base:  # a file: relative to the folder of the file naming it
            target = Path(base)
            if not target.is_absolute() and is_file:
                target = p.parent / target
        parent, _ = _config_dict(target, seen + (me,))
        d = merge_config_dicts(parent, d)
    return d, where


def merge_config_dicts(base: dict, change: dict) -> dict:
    """``change`` over ``base`` (parsed config TOML): tables (``[train]``, ...) merge key by key, anything
    else, ``[[layers]]`` included, is replaced whole. Neither input is modified."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in change.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
