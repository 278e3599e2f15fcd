"""BERT4Rec (Sun et al. 2019): bidirectional self-attention trained by masked item prediction
(Cloze), cross-entropy over all items. At inference a [MASK] is appended after the history and
its prediction ranks the catalogue. Token ids: 0 pad, 1..n_items items, n_items+1 [MASK]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onefeed.baselines.sequential import (SeqConfig, SequentialRecommender, history_tokens,
                                          left_pad, trim_left)


@dataclass
class BERT4RecConfig(SeqConfig):
    mask_prob: float = 0.2
    dropout: float = 0.1


class BERT4RecNet(nn.Module):
    def __init__(self, n_items: int, cfg: BERT4RecConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.item = nn.Embedding(n_items + 2, d, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_history + 1, d)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, dim_feedforward=4 * d,
                                           dropout=cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        pos = torch.arange(T - 1, -1, -1, device=tokens.device)
        x = self.drop(self.item(tokens) + self.pos(pos))
        return self.norm(self.blocks(x, src_key_padding_mask=tokens == 0))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(N, d) -> (N, n_items) over real items only (tied embeddings + bias)."""
        return h @ self.item.weight[1:-1].T + self.bias


class BERT4Rec(SequentialRecommender):
    Config = BERT4RecConfig

    def build(self, n_items: int, cfg: BERT4RecConfig) -> nn.Module:
        return BERT4RecNet(n_items, cfg)

    def examples(self, seqs: list[np.ndarray], cfg: BERT4RecConfig) -> tuple[np.ndarray, np.ndarray]:
        window = left_pad(seqs, cfg.max_history)
        return window, window  # masking is drawn per batch in ``loss``

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor,
             rng: np.random.Generator) -> torch.Tensor:
        real = inputs != 0
        masked = torch.as_tensor(rng.random(inputs.shape) < self.cfg.mask_prob) & real
        # every sequence predicts its last item at least once: matches the inference task
        last = torch.zeros_like(masked)
        last[:, -1] = True
        masked |= last & torch.as_tensor(rng.random(len(inputs)) < self.cfg.mask_prob)[:, None]
        tokens = torch.where(masked, torch.full_like(inputs, self.n_items + 1), inputs)
        h = self.net(tokens)  # type: ignore[misc]
        return F.cross_entropy(self.net.logits(h[masked]), targets[masked] - 1)  # type: ignore

    def scores(self, history: np.ndarray) -> torch.Tensor:
        tokens = history_tokens(history, self.cfg.max_history - 1)
        tokens = torch.cat([tokens, torch.full((len(tokens), 1), self.n_items + 1)], dim=1)
        (tokens,) = trim_left(tokens, pad_from=tokens)
        return self.net.logits(self.net(tokens)[:, -1])  # type: ignore[misc,union-attr]
