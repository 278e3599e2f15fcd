"""SASRec (Kang & McAuley 2018): a causal self-attention encoder over the item history.

Default loss is cross-entropy over *all* items (the strong variant that beats TIGER on Amazon,
cf. phonism/genrec); ``loss = "bce"`` is the original one-sampled-negative binary loss.
Output and input item embeddings are tied. Positions are counted from the most recent item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onefeed.baselines.sequential import SeqConfig, SequentialRecommender, history_tokens, trim_left


@dataclass
class SASRecConfig(SeqConfig):
    loss: Literal["ce", "bce"] = "ce"


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_history + 1, d)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, dim_feedforward=d, dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.n_heads = cfg.n_heads
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens (0 = pad, left-padded) -> (B, T, d) hidden states."""
        B, T = tokens.shape
        pos = torch.arange(T - 1, -1, -1, device=tokens.device)  # 0 = most recent position
        x = self.drop(self.item(tokens) * self.item.embedding_dim ** 0.5 + self.pos(pos))
        x = x * (tokens != 0).unsqueeze(-1)
        h = self.blocks(x, mask=attention_mask(tokens, self.n_heads))
        return self.norm(h)

    def item_weights(self) -> torch.Tensor:
        return self.item.weight[1:]  # (n_items, d)


def attention_mask(tokens: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B*heads, T, T) bool, True = blocked: causal, padding keys blocked, self always allowed
    (so rows of padding positions never become all-blocked and NaN)."""
    B, T = tokens.shape
    causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
    allowed = causal & (tokens != 0).unsqueeze(1)
    allowed = allowed | torch.eye(T, dtype=torch.bool, device=tokens.device)
    return (~allowed).repeat_interleave(n_heads, dim=0)


class SASRec(SequentialRecommender):
    Config = SASRecConfig

    def build(self, n_items: int, cfg: SASRecConfig) -> nn.Module:
        return SASRecNet(n_items, cfg)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor,
             rng: np.random.Generator) -> torch.Tensor:
        h = self.net(inputs)  # type: ignore[misc]
        keep = targets != 0
        h, y = h[keep], targets[keep] - 1  # (N, d), (N,)
        weights = self.net.item_weights()  # type: ignore[union-attr]
        if self.cfg.loss == "ce":
            return F.cross_entropy(h @ weights.T, y)
        neg = torch.as_tensor(rng.integers(0, self.n_items, size=len(y)))
        pos_logit = (h * weights[y]).sum(-1)
        neg_logit = (h * weights[neg]).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))

    def scores(self, history: np.ndarray) -> torch.Tensor:
        tokens = history_tokens(history, self.cfg.max_history)
        (tokens,) = trim_left(tokens, pad_from=tokens)
        h = self.net(tokens)[:, -1]  # type: ignore[misc]
        return h @ self.net.item_weights().T  # type: ignore[union-attr]
