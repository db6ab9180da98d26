"""The Wav2Letter-style topographic speech recognizer (docs/method.md § Features and model), readable top to bottom.

    features (batch, n_mels, frames)
      [-> frontend        optional (``[frontend]``, off by default; not in the seed): Conv2d over
                          (mel, time) + [BatchNorm] + ReLU + max-pool over mel -> (batch, C_f * n_mels // pool, frames)]
      -> conv1 .. convN   Conv1d (+ BatchNorm when ``norm = "batch"``) + ReLU (not in-place),
                          each gridded, each a named activation site
      -> output           Conv1d(k=1) to the grapheme classes (CTC, blank = 0)
      -> log-probs (batch, frames', n_classes)
    [phone head           optional (``[phone_head]``, off by default; not in the seed): Conv1d(k=1) from one
                          gridded layer's activation to the 40 phones, trained with frame-level cross-entropy
                          (toposcope.train); returned only by ``forward(..., phones=True)``]

Activation sites are addressed by name (``"conv1"`` ... ``"convN"``, ``"output"``): each block ends
in a :class:`HookPoint` whose output is the post-ReLU activation ``(batch, channels, frames')``.
Analysis code hooks those through :mod:`toposcope.hooks`; no ``Sequential`` index leaks out.
Padding is ``(kernel - 1) // 2`` on both sides, so lengths shrink only by the strides.

Batch invariance (``docs/method.md`` § Profiles): ``forward(feats, lengths)`` zeroes, at every block,
the frames beyond each utterance's valid length at that block (:meth:`Wav2Letter.layer_lengths`)
after the ReLU and *before* the hook point, and zeroes the input beyond ``lengths``. A conv then sees
zeros past an utterance's end, which is exactly its own zero padding: every valid frame, and every
recorded activation and gradient, equals that of the utterance run alone (BatchNorm in eval mode;
in training mode BatchNorm's batch statistics still include the padded frames).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FrontendConfig, LayerSpec, ModelConfig
from .grid import Grid
from .phones import PHONES
from .text import N_CLASSES

__all__ = ["HookPoint", "ConvBlock", "Frontend", "Wav2Letter"]


class HookPoint(nn.Identity):
    """A named place whose forward output analysis code can record or read gradients of."""


def mask_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x (B, C, T)`` with frames ``t >= lengths[b]`` set to exactly 0 (no gradient flows through them)."""
    valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths.to(x.device)[:, None]  # (B, T)
    return x.masked_fill(~valid[:, None, :], 0.0)


class ConvBlock(nn.Module):
    """Conv1d -> [BatchNorm] -> ReLU (not in-place) -> hook (the activation site) -> dropout."""

    def __init__(self, in_channels: int, spec: LayerSpec, dropout: float, activation: bool = True,
                 norm: str = "none"):
        super().__init__()
        self.spec = spec
        self.conv = nn.Conv1d(in_channels, spec.channels, spec.kernel, stride=spec.stride, padding=spec.padding)
        self.norm = nn.BatchNorm1d(spec.channels) if norm == "batch" else nn.Identity()
        self.act = nn.ReLU(inplace=False) if activation else nn.Identity()
        self.hook = HookPoint()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def activate(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Everything after the convolution: ``(B, C_out, T')`` conv output -> block output.

        ``lengths (B,)``: valid output frames per row; later frames are set to exactly zero before
        the hook point (so hooks see, and gradients flow from, the masked activation)."""
        h = self.act(self.norm(z))
        if lengths is not None:
            h = mask_frames(h, lengths)
        return self.drop(self.hook(h))

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames of this block for ``lengths (B,)`` valid input frames (Conv1d arithmetic)."""
        k, s, p = self.spec.kernel, self.spec.stride, self.spec.padding
        return (torch.div(lengths + 2 * p - k, s, rounding_mode="floor") + 1).clamp_min(0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C_in, T) -> (B, C_out, T')``; ``lengths (B,)``: valid input frames (masking, see above)."""
        return self.activate(self.conv(x), None if lengths is None else self.out_lengths(lengths))


class Frontend(nn.Module):
    """The optional 2-D front end (:class:`toposcope.config.FrontendConfig`):
    ``(B, n_mels, T) -> (B, channels * (n_mels // pool), T)``, same frames.

    Conv2d over the log-mel image (``"same"`` zero padding) -> [BatchNorm2d] -> ReLU -> max-pool of ``pool``
    mel bins; the output's channel ``c * (n_mels // pool) + m`` is filter ``c`` at pooled mel band ``m``.
    Its time kernel is odd and zero-padded like the 1-D layers', so masking the input keeps batch invariance.
    """

    def __init__(self, cfg: FrontendConfig, norm: str = "none"):
        super().__init__()
        self.cfg = cfg
        km, kt = cfg.kernel
        self.conv = nn.Conv2d(1, cfg.channels, (km, kt), padding=((km - 1) // 2, (kt - 1) // 2))
        self.norm = nn.BatchNorm2d(cfg.channels) if norm == "batch" else nn.Identity()
        self.act = nn.ReLU(inplace=False)
        self.pool = nn.MaxPool2d((cfg.pool, 1))

    def forward(self, x: torch.Tensor, *, unpadded: bool = False) -> torch.Tensor:
        """``unpadded=True``: no zero padding in time (``T - kernel_time + 1`` frames out; see
        :func:`toposcope.optimize.render.activations`)."""
        c = self.conv
        pad = (c.padding[0], 0) if unpadded else c.padding
        z = F.conv2d(x[:, None], c.weight, c.bias, 1, pad)  # (B, C_f, n_mels, T)
        h = self.act(self.norm(z))
        return self.pool(h).flatten(1, 2)  # (B, C_f, n_mels // pool, T) -> (B, C_f * (n_mels // pool), T)


class Wav2Letter(nn.Module):
    """The recognizer of ``cfg`` (module docstring): [front end] -> gridded ``ConvBlock`` s -> output conv."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.frontend = Frontend(cfg.frontend, cfg.norm) if cfg.frontend.enabled else None
        blocks, c_in = {}, cfg.frontend.out_channels(cfg.features.n_mels)
        for name, spec in zip(cfg.layer_names, cfg.layers):
            blocks[name] = ConvBlock(c_in, spec, cfg.dropout, norm=cfg.norm)
            c_in = spec.channels
        blocks["output"] = ConvBlock(c_in, LayerSpec(N_CLASSES, 1), 0.0, activation=False)
        self.blocks = nn.ModuleDict(blocks)
        ph = cfg.phone_head
        self.phone_head = nn.Conv1d(blocks[ph.layer].spec.channels, len(PHONES), 1) if ph.enabled else None
        self.grids: dict[str, Grid] = {n: s.get_grid() for n, s in zip(cfg.layer_names, cfg.layers)}

    # -- the computation ---------------------------------------------------------------------
    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None, *, phones: bool = False):
        """``(batch, n_mels, frames)`` -> log-probabilities ``(batch, frames', n_classes)``.

        ``phones=True`` (a model with a phone head only): returns ``(log_probs, phone_logits)``, the
        latter ``(batch, frames at the head's layer, 40)`` unnormalised, in :data:`~toposcope.phones.PHONES`
        order (what training needs in the same forward pass, so DDP sees the head used).

        ``lengths (batch,)``: valid feature frames per utterance of a right-padded batch. With it,
        every block's activation beyond the utterance's valid length at that block is zero before
        its hook point, so each utterance's valid frames are those it gets alone (batch invariance;
        the log-probs past ``output_lengths(lengths)`` come from zero logits and are meaningless).
        """
        if phones and self.phone_head is None:
            raise ValueError("this model has no phone head (the config's [phone_head] table is off)")
        x = feats
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=feats.device)
            if lengths.shape != (feats.shape[0],):
                raise ValueError(f"lengths must have shape ({feats.shape[0]},) for a batch of "
                                 f"{feats.shape[0]}, got {tuple(lengths.shape)}")
            lengths = lengths.clamp(max=feats.shape[-1])
            x = mask_frames(x, lengths)
        if self.frontend is not None:
            x = self.frontend(x)
            if lengths is not None:
                x = mask_frames(x, lengths)
        phone_logits = None
        for name, block in self.blocks.items():
            x = block(x, lengths)
            if lengths is not None:
                lengths = block.out_lengths(lengths)
            if phones and name == self.cfg.phone_head.layer:
                phone_logits = self.phone_head(x).transpose(1, 2)  # (B, T_layer, 40)
        log_probs = F.log_softmax(x.transpose(1, 2), dim=-1)
        return (log_probs, phone_logits) if phones else log_probs

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for inputs of ``lengths`` feature frames."""
        return self.layer_lengths("output", lengths)

    def layer_lengths(self, name: str, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames at layer ``name`` (``(B,)``) for inputs of ``lengths (B,)`` feature frames."""
        if name not in self.blocks:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.blocks)}")
        out = torch.as_tensor(lengths).clone()
        for n, block in self.blocks.items():
            out = block.out_lengths(out)
            if n == name:
                return out
        raise AssertionError("unreachable")

    # -- names and geometry used by analysis code -------------------------------------------
    @property
    def layer_names(self) -> tuple[str, ...]:
        """Gridded layers, input to output."""
        return self.cfg.layer_names

    def site(self, name: str) -> HookPoint:
        """The activation site of layer ``name`` (post-ReLU output)."""
        if name not in self.blocks:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.blocks)}")
        return self.blocks[name].hook

    def conv(self, name: str) -> nn.Conv1d:
        if name not in self.blocks:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.blocks)}")
        return self.blocks[name].conv

    def weight(self, name: str) -> torch.Tensor:
        """Weight ``(C_out, C_in, kernel)`` of layer ``name``."""
        return self.conv(name).weight

    def geometry(self, name: str) -> list[tuple[int, int, int]]:
        """``(kernel, stride, left_padding)`` of every conv from the input up to ``name`` (inclusive); the
        front end, when there is one, comes first with its time kernel (stride 1)."""
        out = []
        if self.frontend is not None:
            c = self.frontend.conv  # its time axis: kernel, stride, padding
            out.append((c.kernel_size[1], c.stride[1], c.padding[1]))
        for n, block in self.blocks.items():
            out.append((block.spec.kernel, block.spec.stride, block.spec.padding))
            if n == name:
                return out
        raise KeyError(f"no layer {name!r}; layers: {', '.join(self.blocks)}")

    def total_stride(self, name: str = "output") -> int:
        s = 1
        for _, st, _ in self.geometry(name):
            s *= st
        return s
