"""Profile any ``torch.nn.Module`` (``docs/layouts.md``, ``docs/method.md`` § Layouts and § Profiles).

:class:`ModuleAdapter` wraps a user's model into the profileable-model protocol of
:mod:`toposcope.analysis.profiles` (``layer_names``, ``grids``, ``site``, ``geometry``, ``forward ->
log-probs``), so the same :class:`~toposcope.analysis.profiles.ProfileAccumulator` computes its
NAPs/GradNAPs, per-segment sums and activation Gram matrices; :func:`profile_module` runs it over a
corpus with the model's own feature function. Such a model has no trained grid: its layers get a
provisional most-square grid (unit ``u`` at cell ``u``, not topographic) until a post-hoc layout
(:mod:`toposcope.analysis.layouts`) gives them one.

Layers (``layers={"name": module | "dotted.name" | Site(...)}``) are any modules whose output tensor
has a batch axis 0, a channel (unit) axis and a time axis:

* ``Conv1d``: ``(batch, C, T)`` (the defaults ``channel_axis=1``, ``time_axis=-1``);
* ``Linear`` applied per frame to ``(batch, T, F)``: ``(batch, T, C)``: ``Site(m, channel_axis=-1,
  time_axis=1)``;
* ``Conv2d`` over ``(batch, 1, freq, time)``: ``(batch, C, F', T')``. Choice (``pool=True``, default):
  a unit is a *channel* (a filter, as for the regularizer and the weight ``S̄``); its adjusted
  activation is the mean over frequency of the per-position ones, ``mean_f A_f G_f`` (GradNAP) or
  ``mean_f A_f`` (NAP). This is exact: every profile statistic is linear in the per-(channel,
  frequency) sums, which are accumulated and then averaged (the Gram matrix over both of its axes),
  so it equals profiling the mean-pooled activation for NAPs and sums the attribution over frequency
  for GradNAPs. ``pool=False`` keeps every (channel, frequency) position as a unit (``C * F'`` units,
  channel-major: unit ``c * F' + f``);
* any other module whose output has a channel axis: any further axes are treated like frequency.

The adapter records a layer by a forward hook on the user's module that passes a ``(batch, U, T)``
view of its output through a :class:`~toposcope.model.HookPoint` and hands the model the same values
back (so gradients ``ds/dA`` reach the recorded tensor); with ``lengths`` given, frames past each
utterance's valid length are zeroed at every recorded layer (padding does not reach valid frames
there). Time geometry (which input frames a layer frame covers) is found by probing the model with
inputs of several lengths: the equivalent single convolution ``(kernel, stride, left_pad)`` whose
output lengths match (exact for stacks of symmetrically padded convolutions), or given with
``geometry={"name": [(k, s, p), ...], "output": [...]}``. Feature frame ``j`` is centred at
``j / frame_rate`` seconds.

The model's output must be per-frame class scores (logits or log-probabilities, ``(batch, T_out,
K)``, or ``(batch, K, T_out)`` with ``output_layout="BKT"``): the GradNAP target is the summed
log-probability of the argmax class (``target="ctc"`` needs the toposcope grapheme alphabet). For an
encoder without class scores use ``method="nap"``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..grid import Grid
from ..model import HookPoint

__all__ = ["Site", "ModuleAdapter", "AdapterError", "profile_module", "infer_geometry"]


class AdapterError(ValueError):
    """A user model cannot be profiled as described (the message names the layer and the problem)."""


@dataclass(frozen=True)
class Site:
    """A layer to profile: ``module`` (or its dotted name in the model), the axes of its output that
    hold the units (``channel_axis``) and time (``time_axis``), and ``pool`` (average any further axes,
    e.g. Conv2d frequency, so that units are channels)."""

    module: nn.Module | str
    channel_axis: int = 1
    time_axis: int = -1
    pool: bool = True


def _resolve(model: nn.Module, m) -> nn.Module:
    if isinstance(m, nn.Module):
        if not any(m is x for x in model.modules()):
            raise AdapterError(f"module {type(m).__name__} is not part of the model")
        return m
    try:
        return model.get_submodule(str(m))
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise AdapterError(f"the model has no submodule {m!r}; submodules: {', '.join(names[:40])}") from None


def _lengths_after(lengths: torch.Tensor, geometry) -> torch.Tensor:
    out = torch.as_tensor(lengths).clone()
    for k, s, p in geometry:
        out = torch.div(out + 2 * p - k, s, rounding_mode="floor") + 1
    return out.clamp_min(0)


def infer_geometry(lengths_in: Sequence[int], lengths_out: Sequence[int]) -> list[tuple[int, int, int]]:
    """The single convolution ``[(kernel, stride, left_pad)]`` (symmetric padding) that maps every
    input length to its output length: ``T_out = floor((T_in + 2 p - k) / s) + 1``. Its frame centres
    ``t s - p + (k - 1) / 2`` are exact for any stack of symmetrically padded convolutions (stride and
    ``m = 2p - k`` compose as ``s = s1 s2``, ``m = m1 + s1 (1 + m2)``). :class:`AdapterError` when no
    such convolution fits."""
    T = np.asarray(lengths_in, dtype=np.int64)
    L = np.asarray(lengths_out, dtype=np.int64)
    if len(T) < 2 or (L < 1).any():
        raise AdapterError(f"cannot infer the time geometry from lengths {T.tolist()} -> {L.tolist()}")
    i, j = int(np.argmin(T)), int(np.argmax(T))
    if L[j] == L[i]:
        raise AdapterError(f"the layer's time length does not grow with the input ({T.tolist()} -> {L.tolist()}): "
                           f"no time axis?")
    s0 = (T[j] - T[i]) / (L[j] - L[i])
    for s in sorted({max(1, int(np.floor(s0))), max(1, int(np.ceil(s0)))} | {max(1, int(round(s0)))}):
        lo = (s * (L - 1) - T).max()
        hi = (s * (L - 1) - T + s - 1).min()
        if lo <= hi:
            m = int((lo + hi) // 2)
            p = max(0, (m + 2) // 2)
            k = 2 * p - m
            return [(int(k), int(s), int(p))]
    raise AdapterError(f"no single convolution maps input lengths {T.tolist()} to {L.tolist()}; pass "
                       f"geometry={{layer: [(kernel, stride, pad), ...]}}")


class ModuleAdapter(nn.Module):
    """A user's model as a profileable model (see the module docstring).

    ``model``: the user's ``nn.Module``, called as ``model(x)`` with ``x (batch, n_features, T)``
    (``input_layout="BFT"``, default) or ``(batch, T, n_features)`` (``"BTF"``). ``layers``: ``{name:
    module | dotted name | Site}``. ``n_features``: feature dimension (for the probe). ``geometry``:
    optional ``{name | "output": [(kernel, stride, left_pad), ...]}`` overriding the probe.
    ``probe_lengths``: input lengths of the probe (16 consecutive lengths pin the geometry exactly
    for total strides up to 16).
    """

    def __init__(self, model: nn.Module, layers: Mapping[str, nn.Module | str | Site], *, n_features: int,
                 input_layout: str = "BFT", output_layout: str = "BTK", geometry: Mapping | None = None,
                 probe_lengths: Sequence[int] = tuple(range(300, 316)) + (517,)):
        super().__init__()
        if input_layout not in ("BFT", "BTF") or output_layout not in ("BTK", "BKT"):
            raise AdapterError(f"input_layout must be BFT or BTF and output_layout BTK or BKT, got "
                               f"{input_layout!r} and {output_layout!r}")
        if not layers:
            raise AdapterError("name at least one layer to profile: layers={'name': module}")
        self.model = model
        self.input_layout, self.output_layout = input_layout, output_layout
        self.n_features = int(n_features)
        self.sites: dict[str, Site] = {}
        self._modules_of: dict[str, nn.Module] = {}
        for name, spec in layers.items():
            if name == "output":
                raise AdapterError("'output' is reserved for the model's output; name the layer otherwise")
            spec = spec if isinstance(spec, Site) else Site(spec)
            self.sites[str(name)] = spec
            self._modules_of[str(name)] = _resolve(model, spec.module)
        self.hooks = nn.ModuleDict({n: HookPoint() for n in self.sites})
        self._lengths: torch.Tensor | None = None
        self._shapes: dict[str, tuple] = {}
        self._probe(tuple(int(t) for t in probe_lengths), dict(geometry or {}))

    # -- the protocol ---------------------------------------------------------------------------
    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.sites)

    def site(self, name: str) -> HookPoint:
        """Hook point whose output is layer ``name``'s activation ``(batch, U, T_l)``."""
        if name not in self.hooks:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.sites)}")
        return self.hooks[name]

    def geometry(self, name: str) -> list[tuple[int, int, int]]:
        if name not in self._geometry:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.sites)}")
        return list(self._geometry[name])

    def weight(self, name: str) -> torch.Tensor:
        """The layer module's ``weight`` (rows = units) when it has one and units are channels."""
        if name not in self.sites:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.sites)}")
        w = getattr(self._modules_of[name], "weight", None)
        if not isinstance(w, torch.Tensor) or w.shape[0] != self.channels(name):
            raise KeyError(f"layer {name!r} has no weight with one row per unit")
        if self._shapes[name][1] != 1 and not self.sites[name].pool:
            raise KeyError(f"layer {name!r} has (channel, position) units: no weight row per unit")
        return w

    def channels(self, name: str) -> int:
        """Units of layer ``name`` in a profile: channels (pooled) or channels x positions."""
        C, rest = self._shapes[name]
        return C if self.sites[name].pool else C * rest

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats (batch, n_features, T)`` -> log-probabilities ``(batch, T_out, K)``; with ``lengths``
        (``(batch,)`` feature frames), activations past each valid length are zero at every layer."""
        x = feats if self.input_layout == "BFT" else feats.transpose(1, 2)
        self._lengths = None if lengths is None else torch.as_tensor(lengths, device=feats.device)
        handles = [m.register_forward_hook(self._hook(n)) for n, m in self._modules_of.items()]
        try:
            out = self.model(x)
        finally:
            for h in handles:
                h.remove()
            self._lengths = None
        if not isinstance(out, torch.Tensor) or out.ndim != 3:
            raise AdapterError(f"the model must return per-frame class scores (batch, T, K), got "
                               f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        if self.output_layout == "BKT":
            out = out.transpose(1, 2)
        return F.log_softmax(out, dim=-1)

    # -- internals ------------------------------------------------------------------------------
    def _view(self, name: str, out):
        """``out`` -> ``(batch, U, T)`` view, and the function giving the original layout back."""
        if not isinstance(out, torch.Tensor):
            raise AdapterError(f"layer {name!r}: its module returns {type(out).__name__}, not a tensor; name a "
                               f"module whose output is one tensor")
        site = self.sites[name]
        nd = out.ndim
        ca, ta = site.channel_axis % max(nd, 1), site.time_axis % max(nd, 1)
        if nd < 3 or 0 in (ca, ta) or ca == ta:
            raise AdapterError(f"layer {name!r}: output {tuple(out.shape)} needs batch axis 0 and distinct channel "
                               f"({site.channel_axis}) and time ({site.time_axis}) axes")
        perm = [0, ca] + [d for d in range(1, nd) if d not in (ca, ta)] + [ta]
        v = out.permute(perm)
        shape = v.shape
        inv = list(np.argsort(perm))
        return v.reshape(shape[0], -1, shape[-1]), (lambda y: y.reshape(shape).permute(inv)), shape

    def _hook(self, name: str):
        def hook(_mod, _inp, out):
            v, back, _ = self._view(name, out)
            if self._lengths is not None:
                n = _lengths_after(self._lengths, self._geometry[name]).clamp(max=v.shape[-1])
                mask = torch.arange(v.shape[-1], device=v.device)[None, :] < n[:, None]
                v = v * mask[:, None, :].to(v.dtype)
            return back(self.hooks[name](v))
        return hook

    def _probe(self, lengths: Sequence[int], given: dict) -> None:
        """Output shapes and time lengths of every layer for inputs of several lengths."""
        seen: dict[str, list] = {n: [] for n in self.sites}
        seen["output"] = []

        def grab(n):
            def hook(_m, _i, out):
                v, _, shape = self._view(n, out)
                seen[n].append(shape)
            return hook

        was = self.model.training
        self.model.eval()
        try:
            p = next(self.model.parameters(), None)
            dev = p.device if p is not None else torch.device("cpu")
            handles = [m.register_forward_hook(grab(n)) for n, m in self._modules_of.items()]
            try:
                with torch.no_grad():
                    for T in lengths:
                        x = torch.randn(1, self.n_features, T, generator=torch.Generator().manual_seed(T), device="cpu")
                        x = x.to(dev)
                        out = self.model(x if self.input_layout == "BFT" else x.transpose(1, 2))
                        if not isinstance(out, torch.Tensor) or out.ndim != 3:
                            raise AdapterError("the model must return per-frame class scores (batch, T, K) or "
                                               "(batch, K, T) (output_layout='BKT')")
                        seen["output"].append(out.shape[1] if self.output_layout == "BTK" else out.shape[2])
            finally:
                for h in handles:
                    h.remove()
        except RuntimeError as e:
            raise AdapterError(f"probing the model with inputs of {self.n_features} features x {list(lengths)} frames "
                               f"failed ({e}); check n_features and input_layout") from None
        finally:
            self.model.train(was)
        self._geometry: dict[str, list] = {}
        self.grids: dict[str, Grid] = {}
        for n, shapes in seen.items():
            if n != "output" and len(shapes) != len(lengths):
                raise AdapterError(f"layer {n!r}: its module ran {len(shapes)} times for {len(lengths)} probes; "
                                   f"name a module that runs once per forward")
            Ls = [s[-1] for s in shapes] if n != "output" else shapes
            if n in given:
                geom = [tuple(int(v) for v in g) for g in given[n]]
                got = [int(_lengths_after(torch.tensor(T), geom)) for T in lengths]
                if got != list(Ls):
                    raise AdapterError(f"layer {n!r}: geometry {geom} gives lengths {got} for inputs {list(lengths)}, "
                                       f"the model gives {list(Ls)}")
            else:
                try:
                    geom = infer_geometry(lengths, Ls)
                except AdapterError as e:
                    raise AdapterError(f"layer {n!r}: {e}") from None
            self._geometry[n] = geom
            if n != "output":
                s0 = shapes[0]
                rest = int(np.prod(s0[2:-1])) if len(s0) > 3 else 1
                if any(s[1:-1] != s0[1:-1] for s in shapes):
                    raise AdapterError(f"layer {n!r}: units change with the input length ({[tuple(s) for s in shapes]})")
                self._shapes[n] = (int(s0[1]), rest)
                self.grids[n] = Grid.for_channels(int(s0[1]) * rest)  # accumulation size: all positions


def _pool_layer(lp, C: int, rest: int):
    """A LayerProfile over ``C * rest`` (channel-major) units -> over ``C`` channels (means over ``rest``)."""
    ch = {}
    for name, axes in (("values", (-1,)), ("raw", (-1,)), ("epochs", (1,)), ("seg_sums", (-1,)),
                       ("act_sum", (0,)), ("gram", (0, 1))):
        a = getattr(lp, name, None)
        if a is None:
            continue
        a = np.asarray(a)
        for ax in sorted((x % a.ndim for x in axes), reverse=True):
            shape = a.shape[:ax] + (C, rest) + a.shape[ax + 1:]
            a = a.reshape(shape).mean(axis=ax + 1)
        ch[name] = a
    ch["grid"] = Grid.for_channels(C)
    return replace(lp, **ch)


def profile_module(module: nn.Module, layers: Mapping[str, nn.Module | str | Site], *,
                   features: Callable[[np.ndarray], torch.Tensor], frame_rate: float, corpus,
                   utterances=None, sample_rate: int = 16000, input_layout: str = "BFT", output_layout: str = "BTK",
                   geometry: Mapping | None = None, method: str = "gradnap", grouping: str = "phone",
                   target: str = "predicted", baseline: str = "uniform", epochs: int = 0, batch_size: int = 8,
                   device: str | torch.device = "cpu", progress: bool = True, meta: dict | None = None):
    """Profiles (:class:`~toposcope.analysis.profiles.Profiles`) of the named layers of any model.

    ``features(wave)``: the model's own feature function, ``wave (n_samples,) float32`` at
    ``sample_rate`` -> ``(n_features, T)`` tensor (or array), frame ``j`` centred at ``j / frame_rate``
    seconds (``sample_rate / frame_rate`` must be a whole number of samples). ``corpus``: a
    :class:`toposcope.corpus.Corpus` (phone-aligned); ``utterances``: a subset (default all). Layers
    get provisional most-square grids (``meta["provisional_grid"]``): fit a layout to place them.
    Other arguments as in :func:`~toposcope.analysis.profiles.compute_profiles`; see the module
    docstring for layers, pooling and geometry.
    """
    from .._util import progress as bar_of
    from ..audio import read_audio
    from . import profiles as P

    hop = sample_rate / float(frame_rate)
    if not float(frame_rate) > 0 or abs(hop - round(hop)) > 1e-6:
        raise AdapterError(f"frame_rate {frame_rate} Hz must divide sample_rate {sample_rate} Hz into whole samples")
    hop = int(round(hop))
    utts = list(corpus if utterances is None else utterances)
    if not utts:
        raise AdapterError("no utterances to profile")
    order = sorted(utts, key=lambda u: (u.duration, u.id))

    def feats_of(u) -> torch.Tensor:
        f = torch.as_tensor(np.asarray(features(read_audio(corpus.audio_path(u), sample_rate=sample_rate))),
                            dtype=torch.float32)
        if f.ndim != 2:
            raise AdapterError(f"{corpus.audio_path(u)}: features must be (n_features, T), got {tuple(f.shape)}")
        return f

    first = feats_of(order[0])
    module = module.to(device)
    adapter = ModuleAdapter(module, layers, n_features=first.shape[0], input_layout=input_layout,
                            output_layout=output_layout, geometry=geometry)
    acc = P.ProfileAccumulator(adapter, hop=hop, sample_rate=sample_rate, adjustment=method, target=target,
                               labeller=grouping, baseline=baseline, epochs=epochs)
    if acc.keep_segments:  # as compute_profiles: the segment table before any batch
        acc.register(order)
    was = module.training
    module.eval()
    try:
        bar = bar_of(total=len(order), desc="profile module", unit="utt", enabled=progress)
        for i in range(0, len(order), batch_size):
            chunk = order[i:i + batch_size]
            fs = [first if (i == 0 and b == 0) else feats_of(u) for b, u in enumerate(chunk)]
            T = max(f.shape[1] for f in fs)
            x = torch.zeros(len(fs), fs[0].shape[0], T)
            for b, f in enumerate(fs):
                if f.shape[0] != x.shape[1]:
                    raise AdapterError(f"{corpus.audio_path(chunk[b])}: {f.shape[0]} features, expected {x.shape[1]}")
                x[b, :, :f.shape[1]] = f
            acc.update(x, torch.tensor([f.shape[1] for f in fs]), chunk)
            bar.update(len(chunk))
        bar.close()
    finally:
        module.train(was)
    m = {"model": type(module).__name__, "provisional_grid": True, "frame_rate": float(frame_rate),
         "geometry": {n: adapter.geometry(n) for n in adapter.layer_names}, **dict(meta or {})}
    prof = acc.result(m)
    for n in adapter.layer_names:
        C, rest = adapter._shapes[n]
        if rest > 1 and adapter.sites[n].pool:
            prof.layers[n] = _pool_layer(prof.layers[n], C, rest)
    return prof
