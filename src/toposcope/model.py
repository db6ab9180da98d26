"""The Wav2Letter-style topographic speech recognizer (SPEC §3), readable top to bottom.

    features (batch, n_mels, frames)
      -> conv1 .. convN   Conv1d (+ BatchNorm when ``norm = "batch"``) + ReLU (not in-place),
                          each gridded, each a named activation site
      -> output           Conv1d(k=1) to the grapheme classes (CTC, blank = 0)
      -> log-probs (batch, frames', n_classes)

Activation sites are addressed by name (``"conv1"`` ... ``"convN"``, ``"output"``): each block ends
in a :class:`HookPoint` whose output is the post-ReLU activation ``(batch, channels, frames')``.
Analysis code hooks those through :mod:`toposcope.hooks`; no ``Sequential`` index leaks out.
Padding is ``(kernel - 1) // 2`` on both sides, so lengths shrink only by the strides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LayerSpec, ModelConfig
from .grid import Grid
from .text import N_CLASSES

__all__ = ["HookPoint", "ConvBlock", "Wav2Letter"]


class HookPoint(nn.Identity):
    """A named place whose forward output analysis code can record or read gradients of."""


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

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """Everything after the convolution: ``(B, C_out, T')`` conv output -> block output."""
        return self.drop(self.hook(self.act(self.norm(z))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, T) -> (B, C_out, T')
        return self.activate(self.conv(x))


class Wav2Letter(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        blocks, c_in = {}, cfg.features.n_mels
        for name, spec in zip(cfg.layer_names, cfg.layers):
            blocks[name] = ConvBlock(c_in, spec, cfg.dropout, norm=cfg.norm)
            c_in = spec.channels
        blocks["output"] = ConvBlock(c_in, LayerSpec(N_CLASSES, 1), 0.0, activation=False)
        self.blocks = nn.ModuleDict(blocks)
        self.grids: dict[str, Grid] = {n: s.get_grid() for n, s in zip(cfg.layer_names, cfg.layers)}

    # -- the computation ---------------------------------------------------------------------
    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, frames)`` -> log-probabilities ``(batch, frames', n_classes)``."""
        x = feats
        for block in self.blocks.values():
            x = block(x)
        return F.log_softmax(x.transpose(1, 2), dim=-1)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for inputs of ``lengths`` feature frames."""
        out = lengths.clone()
        for block in self.blocks.values():
            k, s, p = block.spec.kernel, block.spec.stride, block.spec.padding
            out = torch.div(out + 2 * p - k, s, rounding_mode="floor") + 1
        return out

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
        """``(kernel, stride, left_padding)`` of every conv from the input up to ``name`` (inclusive)."""
        out = []
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
