"""GRU4Rec (Hidasi et al. 2016) with full cross-entropy over all items (Hidasi & Czapp 2023
recommend CE/softmax over sampled BPR-max for strong results; here the catalogue fits in CE)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onefeed.baselines.sequential import SeqConfig, SequentialRecommender, history_tokens, trim_left


@dataclass
class GRU4RecConfig(SeqConfig):
    n_layers: int = 1


class GRU4RecNet(nn.Module):
    def __init__(self, n_items: int, cfg: GRU4RecConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(d, d, num_layers=cfg.n_layers, batch_first=True)
        self.out = nn.Linear(d, d)
        nn.init.normal_(self.item.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) left-padded tokens -> (B, T, d). Leading padding feeds zeros into the GRU,
        which starts from a zero state, so real positions see an (almost) fresh state."""
        h, _ = self.gru(self.drop(self.item(tokens)))
        return self.out(self.drop(h))

    def item_weights(self) -> torch.Tensor:
        return self.item.weight[1:]


class GRU4Rec(SequentialRecommender):
    Config = GRU4RecConfig

    def build(self, n_items: int, cfg: GRU4RecConfig) -> nn.Module:
        return GRU4RecNet(n_items, cfg)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor,
             rng: np.random.Generator) -> torch.Tensor:
        h = self.net(inputs)  # type: ignore[misc]
        keep = targets != 0
        return F.cross_entropy(h[keep] @ self.net.item_weights().T,  # type: ignore[union-attr]
                               targets[keep] - 1)

    def scores(self, history: np.ndarray) -> torch.Tensor:
        tokens = history_tokens(history, self.cfg.max_history)
        (tokens,) = trim_left(tokens, pad_from=tokens)
        return self.net(tokens)[:, -1] @ self.net.item_weights().T  # type: ignore[misc,union-attr]
