"""benchmarks/recipe_variants.toml stays usable: every variant builds a valid config from `small`."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from toposcope.config import load_config

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
    # each round's variants start from the frozen `small` of that round, whatever `small` is now
    r1 = sweep.variant_config("small", variants["noaug"])
    assert (r1.train.batch_size, r1.model.layers[0].stride, r1.model.dropout) == (16, 2, 0.05)
    s3 = sweep.variant_config("small", variants["s3-sg-d0"])
    assert (s3.train.batch_size, s3.model.layers[0].stride, s3.model.dropout, s3.train.sorted_epochs) == (8, 3, 0.0, 1)
    assert sweep.variant_config("anything", variants["small"]) == load_config("small")
    narrow = sweep.variant_config("small", {"layers": {"4": {"channels": 256}}, "train": {"lr": 0.003}})
    assert narrow.model.layers[4].channels == 256 and narrow.model.layers[4].get_grid().shape == (16, 16)
    assert narrow.train.lr == 0.003 and narrow.model.layers[3].channels == 256
