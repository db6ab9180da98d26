"""benchmarks/recipe_variants.toml stays usable: every variant builds a valid config from `small`."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _sweep():
    spec = importlib.util.spec_from_file_location("sweep_recipe", BENCH / "sweep_recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_variant_is_a_valid_small_config():
    sweep = _sweep()
    variants = tomllib.loads((BENCH / "recipe_variants.toml").read_text())
    assert {"noaug", "aug"} <= set(variants)
    for name, overlay in variants.items():
        cfg = sweep.variant_config("small", overlay)
        assert cfg.model.name == "small", name
    assert not sweep.variant_config("small", variants["noaug"]).augment.enabled
    narrow = sweep.variant_config("small", {"layers": {"4": {"channels": 256}}, "train": {"lr": 0.003}})
    assert narrow.model.layers[4].channels == 256 and narrow.model.layers[4].get_grid().shape == (16, 16)
    assert narrow.train.lr == 0.003 and narrow.model.layers[3].channels == 256
