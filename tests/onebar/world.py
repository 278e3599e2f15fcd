"""A saved synthetic dataset + item embeddings + OneBar artifact for pipeline, serving, CLI and
bench tests (import by path: ``load_world()`` in each test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onefeed.data.prepare import PrepareConfig, prepare
from onefeed.data.synthetic import SyntheticConfig, generate
from onefeed.data.views import train_sequences
from onefeed.embeddings.collaborative import CollabConfig, collaborative_embeddings
from onefeed.onebar.config import OneBarConfig, load_config
from onefeed.paths import REPO


def onebar_config(*overrides: str) -> OneBarConfig:
    return load_config(REPO / "configs" / "onebar" / "default.toml",
                       ["plant_share=0.05", *overrides])


def save_world(root: Path) -> tuple[Path, Path]:
    """(prepared dataset dir, embeddings .npy) of a small synthetic world under ``root``."""
    _, raw = generate(SyntheticConfig(n_users=80, n_items=60, events_per_user=12, seed=3),
                      progress=False)
    ds = prepare(PrepareConfig(name="onebar-world", k_core=2), raw)
    data = ds.save(root / "data")
    emb = collaborative_embeddings(train_sequences(ds), ds.n_items, CollabConfig(dim=16))
    np.save(root / "emb.npy", emb)
    return data, root / "emb.npy"


def build_world(root: Path):
    """``save_world`` + ``onebar.pipeline.build`` into ``root/onebar``: (data, emb, run)."""
    from onefeed.onebar import pipeline

    data, emb = save_world(root)
    return data, emb, pipeline.build(data, onebar_config(), root / "onebar", embeddings=emb)


def load_world():
    """This module, imported by path (tests/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_onebar_world", Path(__file__))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
