"""SASRec (Kang & McAuley 2018): a causal self-attention encoder over the item history.

Default loss is cross-entropy over *all* items (the strong variant that beats TIGER on Amazon,
cf. phonism/genrec); ``loss = "bce"`` is the original one-sampled-negative binary loss.
Output and input item embeddings are tied (``tie_output``). Positions are counted from the most
recent item.

Why ``seen_bias``: with tied embeddings an item is its own nearest neighbour, so the hidden state
at the last position scores the item just consumed highest. On Amazon Beauty that item is never
the next one (0 repeats in 22,363 valid/test targets), yet a CE-trained SASRec put it at rank 1
for 56-72% of test users by epoch 5-6 (measured 2026-11-23, docs/BENCHMARKS.md), costing ~20%
of NDCG@10. ``seen_bias`` adds a learned logit offset per recency (0 = last item) to the items
already in the history -- the model learns from the data whether re-consumption happens (it is
not a hard seen-item filter; the protocol's ``filter_seen`` stays off).
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
    ffn_dim: int = 0  # 0 = d_model (the original paper); genrec / RecBole use 4 * d_model
    tie_output: bool = True  # score items with the input embedding table
    embed_norm: bool = False  # RecBole style: LayerNorm(item + pos), no sqrt(d) scaling
    seen_bias: bool = False  # learned logit offset per recency for items already in the history


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_history + 1, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.scale = 1.0 if cfg.embed_norm else d ** 0.5
        self.embed_norm = nn.LayerNorm(d) if cfg.embed_norm else nn.Identity()
        self.out = None if cfg.tie_output else nn.Parameter(torch.randn(n_items, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, dim_feedforward=cfg.ffn_dim or d,
                                           dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.seen = nn.Parameter(torch.zeros(cfg.max_history)) if cfg.seen_bias else None
        self.n_heads = cfg.n_heads
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) tokens (0 = pad, left-padded) -> (B, T, d) hidden states."""
        B, T = tokens.shape
        pos = torch.arange(T - 1, -1, -1, device=tokens.device)  # 0 = most recent position
        x = self.drop(self.embed_norm(self.item(tokens) * self.scale + self.pos(pos)))
        x = x * (tokens != 0).unsqueeze(-1)
        h = self.blocks(x, mask=attention_mask(tokens, self.n_heads))
        return self.norm(h)

    def item_weights(self) -> torch.Tensor:
        return self.item.weight[1:] if self.out is None else self.out  # (n_items, d)


# The seen offsets are stored divided by this, so Adam (whose step is ~lr whatever the gradient
# scale) moves them SEEN_SCALE times faster than the embeddings: the self-logit they must cancel
# grows by several units per epoch (at scale 1 they lagged behind it on Beauty; at 20 the last
# item's offset reached -13 after 6 epochs).
SEEN_SCALE = 20.0


def seen_offsets(tokens: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logit offsets for history items: (B, T) tokens, (R,) bias by recency -> item index and
    offset, both (B, T, T): query position t adds ``bias[t - s]`` to the logit of the item at
    key position s <= t (offset 0 for padding, future keys and recency >= R)."""
    B, T = tokens.shape
    steps = torch.arange(T, device=tokens.device)
    recency = steps[:, None] - steps[None, :]  # (T, T)
    valid = (recency >= 0) & (recency < len(bias))
    offset = bias[recency.clamp(0, len(bias) - 1)] * valid  # (T, T)
    offset = offset.unsqueeze(0) * (tokens != 0).unsqueeze(1)  # (B, T, T)
    index = (tokens - 1).clamp(min=0).unsqueeze(1).expand(B, T, T)
    return index, offset


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
        if cfg.seen_bias and cfg.loss != "ce":
            raise ValueError("SASRecConfig.seen_bias is trained by the full softmax; use loss='ce'")
        return SASRecNet(n_items, cfg)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor,
             rng: np.random.Generator) -> torch.Tensor:
        h = self.net(inputs)  # type: ignore[misc]
        keep = targets != 0
        h, y = h[keep], targets[keep] - 1  # (N, d), (N,)
        weights = self.net.item_weights()  # type: ignore[union-attr]
        if self.cfg.loss == "ce":
            return F.cross_entropy(self._add_seen(h @ weights.T, inputs, keep), y)
        neg = torch.as_tensor(rng.integers(0, self.n_items, size=len(y)))
        pos_logit = (h * weights[y]).sum(-1)
        neg_logit = (h * weights[neg]).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))

    def scores(self, history: np.ndarray) -> torch.Tensor:
        tokens = history_tokens(history, self.cfg.max_history)
        (tokens,) = trim_left(tokens, pad_from=tokens)
        h = self.net(tokens)[:, -1]  # type: ignore[misc]
        logits = h @ self.net.item_weights().T  # type: ignore[union-attr]
        last = torch.zeros_like(tokens, dtype=torch.bool)
        last[:, -1] = True
        return self._add_seen(logits, tokens, last)

    def _add_seen(self, logits: torch.Tensor, tokens: torch.Tensor,
                  rows: torch.Tensor) -> torch.Tensor:
        """(N, n_items) logits of the positions ``rows`` ((B, T) bool) of ``tokens`` + their
        history offsets (unchanged without ``seen_bias``)."""
        bias = self.net.seen  # type: ignore[union-attr]
        if bias is None:
            return logits
        index, offset = seen_offsets(tokens, SEEN_SCALE * bias)
        return logits.scatter_add(1, index[rows], offset[rows].to(logits.dtype))
