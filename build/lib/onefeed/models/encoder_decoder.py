"""The TIGER / GenSAR-style encoder–decoder, kept as the reference architecture.

A bidirectional encoder reads the history (same event embedding as the decoder-only model,
OneFeed Eq. 5); a small causal decoder with cross-attention generates the next item's codes
``BOS c_0 c_1 ... c_{L-1}`` (GenSAR §3.4, Eq. 12). Every target needs its own encoder pass
(the history changes with the target), which is what makes it costlier to train than the
decoder-only model on CPU. Decoding caches the encoder memory; the decoder re-reads its
prefix of at most L tokens at each step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from onefeed.models.config import ModelConfig
from onefeed.models.transformer import Block, Events, GenerativeRecommender, trim_left

BOS = 1  # Vocab special "BOS"


class CrossBlock(nn.Module):
    """Pre-norm causal self-attention, cross-attention to the encoder memory, MLP."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.self_block = Block(cfg)
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mem_valid: torch.Tensor
                ) -> torch.Tensor:
        """x (N, S, d) decoder tokens, memory (N, T, d), mem_valid (N, T) -> (N, S, d)."""
        n, s, d = x.shape
        causal = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        x = self.self_block(x, causal)
        h = self.n_heads
        q = self.q(self.ln(x)).view(n, s, h, d // h).transpose(1, 2)
        k, v = self.kv(memory).split(d, dim=2)
        k, v = (z.view(n, -1, h, d // h).transpose(1, 2) for z in (k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mem_valid[:, None, None, :])
        return x + self.drop(self.proj(y.transpose(1, 2).reshape(n, s, d)))


def expand_histories(ev: Events, has_target: torch.Tensor) -> Events:
    """One left-padded history per target position: row n holds events <= t_n of its row."""
    b_idx, t_idx = has_target.nonzero(as_tuple=True)
    t = ev.items.shape[1]
    src = t_idx[:, None] - (t - 1 - torch.arange(t))[None, :]  # (N, T)
    ok = src >= 0
    src = src.clamp(min=0)
    rows = b_idx[:, None]
    items = torch.where(ok, ev.items[rows, src], -1)
    first = int((items >= 0).any(0).nonzero()[0]) if items.numel() else 0
    items = items[:, first:]
    ok, src = ok[:, first:], src[:, first:]
    codes = torch.where(ok.unsqueeze(-1), ev.codes[rows, src], -1)
    behaviours = torch.where(ok, ev.behaviours[rows, src], 0)
    return Events(items, codes, behaviours)


class EncoderDecoderRecommender(GenerativeRecommender):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.heads = None  # the decoder replaces the per-level heads
        self.prefix = None
        self.dec_blocks = nn.ModuleList(CrossBlock(cfg) for _ in range(cfg.n_layers))
        self.dec_pos = nn.Embedding(len(cfg.codebook_sizes), cfg.d_model)
        self.ln_dec = nn.LayerNorm(cfg.d_model)
        self.out_bias = nn.ParameterList(nn.Parameter(torch.zeros(v)) for v in cfg.codebook_sizes)
        self.apply(self._init)

    def encode(self, ev: Events) -> torch.Tensor:
        """Bidirectional encoder over the history: (B, T) -> (B, T, d)."""
        valid = ev.items >= 0
        t = valid.shape[1]
        eye = torch.eye(t, dtype=torch.bool, device=valid.device)
        mask = (valid[:, None, :] | eye).unsqueeze(1)
        x = self.drop(self.embed(ev))
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def decode(self, memory: torch.Tensor, mem_valid: torch.Tensor, prefix: torch.Tensor
               ) -> torch.Tensor:
        """prefix (N, j) codes -> (N, j + 1, d) decoder states after BOS c_0 .. c_{j-1}."""
        n, j = prefix.shape
        tokens = torch.cat([prefix.new_full((n, 1), BOS),
                            prefix + self.sid_offsets[:j]], dim=1)
        x = self.drop(self.tok(tokens) + self.dec_pos.weight[: j + 1])
        for block in self.dec_blocks:
            x = block(x, memory, mem_valid)
        return self.ln_dec(x)

    def logits_from(self, y: torch.Tensor, level: int) -> torch.Tensor:
        return y @ self.out_weight(level).t() + self.out_bias[level]

    def forward(self, ev: Events, target_codes: torch.Tensor) -> list[torch.Tensor]:
        """Same contract as the decoder-only model: L tensors (N, V_j) over target positions."""
        has_target = target_codes[..., 0] >= 0
        hist = expand_histories(ev, has_target)
        memory = self.encode(hist)
        targets = target_codes[has_target]  # (N, L)
        y = self.decode(memory, hist.items >= 0, targets[:, :-1])  # (N, L, d)
        return [self.logits_from(y[:, j], j) for j in range(targets.shape[1])]

    def last_state(self, ev: Events) -> tuple[torch.Tensor, torch.Tensor]:
        ev = trim_left(ev)
        return self.encode(ev), ev.items >= 0

    def step(self, state: tuple[torch.Tensor, torch.Tensor], prefix: torch.Tensor, level: int
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        memory, valid = state
        y = self.decode(memory, valid, prefix[:, :level])[:, -1]
        return F.log_softmax(self.logits_from(y, level).float(), dim=-1), state
