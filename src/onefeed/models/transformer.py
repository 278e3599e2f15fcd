"""A small decoder-only transformer over semantic-ID events (plain PyTorch, pre-norm).

Each history event is embedded as a sum (OneFeed §3.3, Eq. 5)::

    e_t = e^behaviour + e^sid(item) [+ e^item] + e^position [+ e^strength]

where ``e^sid`` sums (or concatenates and projects) the item's per-level code embeddings
(TIGER / GenSAR §3.2). A causal transformer turns the events into states ``h_t``; every
position is trained in one pass to generate the *next* item's code tuple level by level with
a small per-level head conditioned on the codes already chosen::

    p(c_j | h_t, c_<j) = softmax(W_j · LN(z_j + MLP_j(LN(z_j)))),  z_j = h_t + sum_{i<j} P_i[c_i]

so decoding needs no KV cache over the history: ``h`` is computed once per user and each beam
step is one small MLP (the cached state of GenSAR §3.4.2's autoregressive decoding).
``forward`` returns logits only; losses live in ``onefeed.objectives``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from onefeed.models.config import ModelConfig



def init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights for linear and embedding layers, zero biases
    (``model.apply(init_weights)``; every transformer of the package starts this way)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)

class Events(NamedTuple):
    """A left-padded batch of histories (most recent event last)."""

    items: torch.Tensor  # (B, T) int64 item ids, -1 = padding
    codes: torch.Tensor  # (B, T, L) int64 level-local SID codes, -1 = padding
    behaviours: torch.Tensor  # (B, T) int64 behaviour token ids (Vocab.behaviour), 0 = padding
    strength: torch.Tensor | None = None  # (B, T) int64 strength bucket, or None
    words: torch.Tensor | None = None  # (B, T, W) word-piece token ids of query events, 0 = pad
    valid: torch.Tensor | None = None  # (B, T) bool; None = ``items >= 0`` (item-only histories)


def event_mask(ev: Events) -> torch.Tensor:
    """(B, T) bool: which positions hold an event (query events have no item)."""
    return ev.valid if ev.valid is not None else ev.items >= 0


def history_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, T) event mask -> (B, 1, T, T) attention mask: causal over events; pads attend to
    themselves only (so no row is empty), and nothing attends to a pad."""
    t = valid.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=valid.device)
    return (causal & (valid[:, None, :] | eye)).unsqueeze(1)


def trim_left(ev: Events) -> Events:
    """Drop leading columns that are padding in every row (exact: positions count from the end)."""
    used = event_mask(ev).any(dim=0).nonzero()
    first = int(used[0]) if len(used) else ev.items.shape[1] - 1
    if first == 0:
        return ev
    return Events(*(x[:, first:] if x is not None else None for x in ev))


class Block(nn.Module):
    """Pre-norm self-attention + MLP with ``F.scaled_dot_product_attention``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(),
                                 nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.p_attn = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False
                ) -> torch.Tensor:
        """x (B, T, d), mask (B, 1, T, T) bool (True = may attend) -> (B, T, d).

        ``last_only``: only the last position's output, (B, 1, d). Keys and values still come
        from every position, but the query, projection and MLP run on one position (decoding
        needs only the state after the most recent event)."""
        b, t, d = x.shape
        hd = d // self.n_heads
        z = self.ln1(x)
        if last_only:
            q = F.linear(z[:, -1:], self.qkv.weight[:d], self.qkv.bias[:d])
            k, v = F.linear(z, self.qkv.weight[d:], self.qkv.bias[d:]).split(d, dim=2)
            x, mask, t_q = x[:, -1:], mask[..., -1:, :], 1
        else:
            q, k, v = self.qkv(z).split(d, dim=2)
            t_q = t
        q = q.view(b, t_q, self.n_heads, hd).transpose(1, 2)
        k, v = (u.view(b, t, self.n_heads, hd).transpose(1, 2) for u in (k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.p_attn if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t_q, d)))
        return x + self.drop(self.mlp(self.ln2(x)))

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d) -> this block's keys and values, each (B, heads, T, d / heads)."""
        b, t, d = x.shape
        k, v = F.linear(self.ln1(x), self.qkv.weight[d:], self.qkv.bias[d:]).split(d, dim=2)
        return tuple(u.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                     for u in (k, v))  # type: ignore[return-value]

    def extend(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
               valid: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One new position after cached ones (inference): x (B, 1, d) attends to itself and
        to the ``valid`` (B, T) of ``keys`` / ``values`` (from ``keys_values`` of the earlier
        positions; None = all of them) -> (B, 1, d), what ``forward`` gives at that position,
        and the keys and values with the new position appended (B, heads, T + 1, d / heads)."""
        b, _, d = x.shape
        hd = d // self.n_heads
        q, k, v = (u.view(b, 1, self.n_heads, hd).transpose(1, 2)
                   for u in self.qkv(self.ln1(x)).split(d, dim=2))
        keys, values = torch.cat([keys, k], 2), torch.cat([values, v], 2)
        mask = (None if valid is None else
                torch.cat([valid, valid.new_ones(b, 1)], dim=1)[:, None, None, :])
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, 1, d))
        return x + self.mlp(self.ln2(x)), keys, values


class LevelHead(nn.Module):
    """Level-j code logits from a state and the codes chosen at levels < j."""

    def __init__(self, cfg: ModelConfig, level: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln_in = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.head_mult * d), nn.GELU(),
                                 nn.Linear(cfg.head_mult * d, d))
        self.ln_out = nn.LayerNorm(d)
        self.bias = nn.Parameter(torch.zeros(cfg.codebook_sizes[level]))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, z: torch.Tensor, out_weight: torch.Tensor) -> torch.Tensor:
        z = z + self.drop(self.mlp(self.ln_in(z)))
        return self.ln_out(z) @ out_weight.t() + self.bias


class GenerativeRecommender(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not cfg.codebook_sizes or not cfg.vocab_size or not cfg.sid_offsets:
            raise ValueError("ModelConfig needs codebook_sizes, vocab_size and sid_offsets "
                             "(use onefeed.models.build_config)")
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}")
        self.cfg = cfg
        d, n_levels = cfg.d_model, len(cfg.codebook_sizes)
        self.tok = nn.Embedding(cfg.vocab_size, d, padding_idx=0)
        self.item = nn.Embedding(cfg.n_items + 1, d, padding_idx=cfg.n_items) \
            if cfg.item_embedding else None
        self.pos = nn.Embedding(cfg.max_len, d)
        self.strength = nn.Embedding(cfg.n_strength_buckets + 1, d, padding_idx=0) \
            if cfg.strength_embedding else None
        self.code_proj = nn.Linear(n_levels * d, d) if cfg.code_combine == "concat" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.prefix = nn.ModuleList(nn.Embedding(v, d) for v in cfg.codebook_sizes[:-1])
        self.heads = nn.ModuleList(LevelHead(cfg, j) for j in range(n_levels))
        self.out = None if cfg.tie_code_embeddings else nn.ParameterList(
            nn.Parameter(torch.randn(v, d) * 0.02) for v in cfg.codebook_sizes)
        self.register_buffer("sid_offsets", torch.tensor(cfg.sid_offsets), persistent=False)
        self.apply(self._init)

    _init = staticmethod(init_weights)

    # ---- encoder over the history -------------------------------------------------------------
    def embed(self, ev: Events, end: int | None = None) -> torch.Tensor:
        """Events -> (B, T, d) input embeddings (OneFeed Eq. 5); a query event adds the mean of
        its word-piece embeddings (shared with the text head). The last column sits at position
        ``end - 1`` (default ``max_len - 1``: histories are right-aligned)."""
        valid = event_mask(ev)
        code_tok = torch.where(ev.codes >= 0, ev.codes + self.sid_offsets, 0)  # (B, T, L)
        code_emb = self.tok(code_tok)  # (B, T, L, d)
        if self.code_proj is not None:
            x = self.code_proj(code_emb.flatten(2))
        else:
            x = code_emb.sum(2)
        x = x + self.tok(ev.behaviours)
        if self.item is not None:  # items added after training (ids >= n_items, e.g. by the
            # server's catalogue updates) have no learned row: they are read by their codes
            known = (ev.items >= 0) & (ev.items < self.cfg.n_items)
            x = x + self.item(torch.where(known, ev.items, self.cfg.n_items))
        if ev.words is not None:
            w = ev.words > 0
            x = x + self.tok(ev.words).sum(2) / w.sum(-1, keepdim=True).clamp(min=1)
        if self.strength is not None and ev.strength is not None:
            x = x + self.strength(ev.strength)
        t, end = ev.items.shape[1], self.cfg.max_len if end is None else end
        x = x + self.pos(torch.arange(end - t, end, device=x.device))
        return x * valid.unsqueeze(-1)

    def encode(self, ev: Events, last_only: bool = False) -> torch.Tensor:
        """Events (B, T) -> states (B, T, d); state t summarises events <= t.

        ``last_only``: (B, 1, d), the state after the last event only (the final block skips
        the other positions' queries and MLPs; equal to ``encode(ev)[:, -1:]``)."""
        if ev.items.shape[1] > self.cfg.max_len:
            raise ValueError(f"history length {ev.items.shape[1]} > max_len {self.cfg.max_len}")
        mask = history_mask(event_mask(ev))
        x = self.drop(self.embed(ev))
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        return self.ln_f(x)

    # ---- a cached history, one more event (inference) --------------------------------------------
    def history_kv(self, ev: Events) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every block over a history that ends one position before the
        last (``extend_state`` then adds the event at position ``max_len - 1``, e.g. a search query).
        Causal attention makes them independent of whatever comes after."""
        mask = history_mask(event_mask(ev))
        x = self.embed(ev, end=self.cfg.max_len - 1)
        out = []
        for i, block in enumerate(self.blocks):
            out.append(block.keys_values(x))
            if i < len(self.blocks) - 1:
                x = block(x, mask)
        return out

    def extend_state(self, history: list[tuple[torch.Tensor, torch.Tensor]],
                     valid: torch.Tensor, last: Events) -> torch.Tensor:
        """(B, d) state after one event ``last`` (B, 1) placed after a history (``history_kv``)
        whose ``valid`` (B, T) positions hold events: equal to ``encode`` of the whole sequence at
        its last position, without re-encoding the history."""
        x = self.embed(last)
        for block, (k, v) in zip(self.blocks, history):
            x = block.extend(x, k, v, valid)[0]
        return self.ln_f(x)[:, -1]

    # ---- per-level generation head ------------------------------------------------------------
    def out_weight(self, level: int) -> torch.Tensor:
        """(V_level, d) output embedding of level ``level``'s codes."""
        if self.out is not None:
            return self.out[level]
        start = self.cfg.sid_offsets[level]
        return self.tok.weight[start:start + self.cfg.codebook_sizes[level]]

    def level_logits(self, h: torch.Tensor, prefix: torch.Tensor, level: int) -> torch.Tensor:
        """h (..., d), prefix (..., >= level) codes of levels < level -> (..., V_level) logits."""
        z = h
        for i in range(level):
            z = z + self.prefix[i](prefix[..., i])
        return self.heads[level](z, self.out_weight(level))

    def forward(self, ev: Events, target_codes: torch.Tensor) -> list[torch.Tensor]:
        """Teacher-forced logits at every position that has a target, in one pass.

        target_codes (B, T, L) with -1 = no target -> L tensors (N, V_j), N = number of
        positions with a target (row order of ``target_codes[target_codes[..., 0] >= 0]``).
        The heads run on those positions only (histories are mostly padding).
        """
        h = self.encode(ev)
        has_target = target_codes[..., 0] >= 0
        h, prefix = h[has_target], target_codes[has_target]
        return [self.level_logits(h, prefix, j) for j in range(len(self.cfg.codebook_sizes))]

    # ---- decoding interface (see onefeed.decoding: a step function, no model class) ----------
    def last_state(self, ev: Events) -> torch.Tensor:
        """(B, T) histories -> (B, d) state after the most recent event."""
        return self.encode(trim_left(ev), last_only=True)[:, -1]

    def step(self, state: torch.Tensor, prefix: torch.Tensor, level: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoding step function: state (N, d), prefix (N, level) -> (log-probs (N, V), state)."""
        return F.log_softmax(self.level_logits(state, prefix, level).float(), dim=-1), state
