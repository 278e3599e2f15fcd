"""A toy search world of 16 items: "<colour> <kind> acme"; queries name colour and kind in
either order, so each query has exactly one right item (chance Recall@1 = 1/16)."""

from __future__ import annotations

import numpy as np
import torch

from onefeed.models.unisearch import UniSearch, UniSearchConfig
from onefeed.tasks.unisearch import SearchData, UniSearchTask, UniSearchTaskConfig, search_data

COLOURS = ["red", "blue", "green", "black"]
KINDS = ["lipstick", "polish", "cream", "shampoo"]
PAIRS_OF = [(c, k) for c in COLOURS for k in KINDS]
TEXTS = [f"{c} {k} acme" for c, k in PAIRS_OF]
PAIRS = [(f"{c} {k}", i) for i, (c, k) in enumerate(PAIRS_OF)] + \
    [(f"{k} {c}", i) for i, (c, k) in enumerate(PAIRS_OF)]
CFG = UniSearchConfig(d_model=32, n_heads=2, d_ff=64, query_layers=1, item_layers=1,
                      decoder_layers=1, n_levels=2, codebook_size=8, max_query_words=4,
                      max_item_words=6, dropout=0.0, ema_decay=0.8)  # few steps: fast EMA
TASK = UniSearchTaskConfig(batch_size=16, hard_negatives=2, neighbours=4, eval_k=1)


def toy_data() -> SearchData:
    return search_data(PAIRS, TEXTS, CFG)


def trained(epochs: int = 40, seed: int = 0) -> tuple[UniSearch, UniSearchTask]:
    """A model fitted on the toy pairs with a plain AdamW loop (~2 s)."""
    torch.manual_seed(seed)
    model = UniSearch(CFG)
    task = UniSearchTask(toy_data(), TASK, model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        for b in task.batches(epoch, rng, 0, 1):
            loss, _ = task.loss(model, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), task
