"""One model for recommendation, search and query generation (GenSAR §3.3-3.4, OneFeed §3.3-3.6).

The decoder-only ``GenerativeRecommender`` (shared behaviour encoder, per-level SID heads)
gains what the joint tasks need:

* query events: a history event may be a search query, embedded as the mean of its word-piece
  embeddings (the same table as SID and behaviour tokens) plus its behaviour token;
* identifier paths: the code table may hold two identifiers (GenSAR's joint IDs share a
  prefix); NRIP decodes the ``rec`` columns, NSIP / DESC2ID the ``search`` columns, with one
  head and one prefix embedding per column, so shared levels share parameters;
* task tokens: the state a head reads is ``h_t + e[task]`` (NRIP, NSIP, DESC2ID, ID2DESC,
  NSQP), the decoder-only form of GenSAR's task prompt — at inference the task token picks the
  task;
* task adapters (``task_adapters``, off by default): a small residual bottleneck, or one more
  transformer block, per task between the shared encoder and that task's heads
  (``head_input`` / ``states``);
* a text head (NSQP, ID2DESC): a small causal transformer over word pieces whose first input
  is the conditioned state, with output embeddings tied to the input word-piece table and
  restricted to the word pieces seen in training text (``text_vocab``).

``forward`` returns logits only; losses live in ``onefeed.objectives``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from onefeed.models.config import ModelConfig
from onefeed.models.transformer import (Block, Events, GenerativeRecommender, event_mask,
                                        history_mask, trim_left)
from onefeed.tokens import TASKS, Vocab


class TextHead(nn.Module):
    """p(w_1..w_n | c): a causal transformer over [c, w_1, ..., w_n] (prefix-conditioned)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.pos = nn.Embedding(cfg.max_text_len + 1, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.text_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.bias = nn.Parameter(torch.zeros(cfg.n_text_vocab))

    def forward(self, cond: torch.Tensor, word_emb: torch.Tensor, out_weight: torch.Tensor,
                last_only: bool = False, keep: torch.Tensor | None = None) -> torch.Tensor:
        """cond (N, d), word_emb (N, t, d) -> (N, t + 1, V_text) next-word logits
        (``last_only``: (N, V_text) at the last position, for decoding; ``keep`` (N, t + 1)
        bool: (M, V_text) at the kept positions only, so training skips padded targets)."""
        x = torch.cat([cond.unsqueeze(1), word_emb], dim=1)
        t = x.shape[1]
        x = x + self.pos(torch.arange(t, device=x.device))
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()[None, None]
        for i, block in enumerate(self.blocks):
            # decoding needs the last position only: the last block computes just that one
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        if last_only:
            x = x[:, -1]
        elif keep is not None:
            x = x[keep]
        return self.ln(x) @ out_weight.t() + self.bias

    def decode(self, cond: torch.Tensor, word_emb: torch.Tensor, out_weight: torch.Tensor,
               past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
               ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Cached decoding (inference): -> (N, V_text) next-word logits after [c, w_1..w_t]
        (``forward(..., last_only=True)``) and every block's keys / values of those t + 1
        positions. ``past``: the keys / values of the first t positions, row-aligned with
        ``cond``; then only the newest word runs through the blocks."""
        t = word_emb.shape[1]
        if past is None:
            x = torch.cat([cond.unsqueeze(1), word_emb], dim=1)
            x = x + self.pos(torch.arange(t + 1, device=x.device))
            mask = torch.ones(t + 1, t + 1, dtype=torch.bool, device=x.device).tril()[None, None]
            past = []
            for block in self.blocks:
                past.append(block.keys_values(x))
                x = block(x, mask)
            x = x[:, -1]
        else:
            x = word_emb[:, -1:] + self.pos.weight[t]
            new = []
            for block, (k, v) in zip(self.blocks, past):
                x, k, v = block.extend(x, k, v)
                new.append((k, v))
            past, x = new, x[:, -1]
        return torch.addmm(self.bias, self.ln(x), out_weight.t()), past


class TaskAdapter(nn.Module):
    """h + W_up GELU(W_down LN(h)) (a Houlsby-style bottleneck adapter); W_up starts at zero,
    so an untrained adapter is the identity."""

    def __init__(self, d: int, bottleneck: int, dropout: float) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.down = nn.Linear(d, bottleneck)
        self.up = nn.Linear(bottleneck, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.drop(self.up(F.gelu(self.down(self.ln(h)))))


class JointModel(GenerativeRecommender):
    def __init__(self, cfg: ModelConfig) -> None:
        if not cfg.words or not cfg.n_text_vocab:
            raise ValueError("JointModel needs words = true and n_text_vocab > 0")
        super().__init__(cfg)
        d = cfg.d_model
        # one prefix embedding per column (any column can precede another in some path)
        self.prefix = nn.ModuleList(nn.Embedding(v, d) for v in cfg.codebook_sizes)
        self.text = TextHead(cfg)
        # text_vocab: local index -> vocab token (index 0 = EOS); vocab token -> local index
        self.register_buffer("text_vocab", torch.zeros(cfg.n_text_vocab, dtype=torch.long))
        self.register_buffer("text_local", torch.full((cfg.vocab_size,), -1, dtype=torch.long),
                             persistent=False)
        self.task_offset = cfg.behaviour_offset + 3
        self.rec_cols = tuple(cfg.rec_cols) or tuple(range(len(cfg.codebook_sizes)))
        self.search_cols = tuple(cfg.search_cols) or tuple(range(len(cfg.codebook_sizes)))
        self.adapters = nn.ModuleDict({t: TaskAdapter(d, cfg.adapter_dim, cfg.dropout)
                                       for t in TASKS}) if cfg.task_adapters == "adapter" else None
        self.task_blocks = nn.ModuleDict({t: Block(cfg) for t in TASKS}) \
            if cfg.task_adapters == "block" else None
        for m in (self.prefix, self.text, self.adapters, self.task_blocks):
            if m is not None:
                m.apply(self._init)
        if self.adapters is not None:
            for a in self.adapters.values():
                nn.init.zeros_(a.up.weight)
        for table in (self.tok, self.item):
            if table is not None:
                table.weight.register_post_accumulate_grad_hook(_densify)

    def sparse_embedding_grads(self, on: bool = True) -> None:
        """The word-piece table is large (~31k x d) and read ~30 times a training step (codes,
        behaviours, words, task tokens, tied output rows): a dense embedding gradient
        zero-fills and adds the whole table per read. ``on``: sparse per-read gradients, made
        dense once per backward (``_densify``), the same gradient for less memory traffic.
        Single process only: DistributedDataParallel expects a sparse gradient from a sparse
        embedding module, so ``train_joint`` turns this on only outside DDP."""
        for table in (self.tok, self.item):
            if table is not None:
                table.sparse = on

    def set_text_vocab(self, tokens: torch.Tensor) -> None:
        """tokens (n_text_vocab,) vocab ids, EOS first; also after loading weights."""
        if tokens.shape[0] != self.cfg.n_text_vocab:
            raise ValueError(f"text vocab has {tokens.shape[0]} tokens, config says "
                             f"{self.cfg.n_text_vocab}")
        self.text_vocab.copy_(tokens)
        self.refresh_text_vocab()

    def refresh_text_vocab(self) -> None:
        self.text_local.fill_(-1)
        self.text_local[self.text_vocab] = torch.arange(len(self.text_vocab))

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):  # type: ignore[override]
        out = super().load_state_dict(state, strict=strict, assign=assign)
        self.refresh_text_vocab()
        return out

    # ---- conditioning -------------------------------------------------------------------------
    def task_vec(self, name: str, n: int) -> torch.Tensor:
        if not self.cfg.task_tokens:
            return self.tok.weight.new_zeros(n, self.cfg.d_model)
        tok = torch.full((n,), self.task_offset + TASKS.index(name), dtype=torch.long,
                         device=self.tok.weight.device)
        return self.tok(tok)

    def out_weight(self, level: int) -> torch.Tensor:
        """(V_level, d) output rows of level ``level``: a sparse-gradient read of the tied
        code rows (the same values as the slice of ``GenerativeRecommender.out_weight``)."""
        if self.out is not None:
            return self.out[level]
        start = self.cfg.sid_offsets[level]
        rows = torch.arange(start, start + self.cfg.codebook_sizes[level],
                            device=self.tok.weight.device)
        return self.tok(rows)

    def head_input(self, h: torch.Tensor, task: str) -> torch.Tensor:
        """What ``task``'s heads read from a state h (N, d): h through the task's adapter
        (if any), plus the task token's embedding."""
        if self.adapters is not None:
            h = self.adapters[task](h)
        return h + self.task_vec(task, h.shape[0])

    # ---- per-task states (task_adapters = "block") ------------------------------------------------
    def hidden(self, ev: Events) -> tuple[torch.Tensor, torch.Tensor]:
        """The shared blocks' output before the final norm, and the attention mask."""
        if ev.items.shape[1] > self.cfg.max_len:
            raise ValueError(f"history length {ev.items.shape[1]} > max_len {self.cfg.max_len}")
        mask = history_mask(event_mask(ev))
        x = self.drop(self.embed(ev))
        for block in self.blocks:
            x = block(x, mask)
        return x, mask

    def finish(self, hidden: tuple[torch.Tensor, torch.Tensor], task: str | None,
               last_only: bool = False) -> torch.Tensor:
        """States of ``task`` from ``hidden``: its own block (``block`` mode), then the norm."""
        x, mask = hidden
        if self.task_blocks is not None and task is not None:
            x = self.task_blocks[task](x, mask, last_only=last_only)
        elif last_only:
            x = x[:, -1:]
        return self.ln_f(x)

    def states(self, ev: Events, task: str | None = None, last_only: bool = False
               ) -> torch.Tensor:
        """(B, T, d) states ``task``'s heads build on (``encode`` unless each task has its own
        final block); ``task`` None: the shared encoder's."""
        if self.task_blocks is None or task is None:
            return self.encode(ev, last_only=last_only)
        return self.finish(self.hidden(ev), task, last_only)

    def cols(self, path: str) -> tuple[int, ...]:
        return self.rec_cols if path == "rec" else self.search_cols

    # ---- SID paths ------------------------------------------------------------------------------
    def path_logits(self, h: torch.Tensor, prefix: torch.Tensor, cols: tuple[int, ...],
                    j: int) -> torch.Tensor:
        """Logits of the j-th column of path ``cols`` given the path's earlier codes."""
        z = h
        for i in range(j):
            z = z + self.prefix[cols[i]](prefix[..., i])
        return self.heads[cols[j]](z, self.out_weight(cols[j]))

    def sid_logits(self, h: torch.Tensor, codes: torch.Tensor, path: str) -> list[torch.Tensor]:
        """Teacher-forced logits of every level of ``path``; codes (N, L_path)."""
        cols = self.cols(path)
        return [self.path_logits(h, codes, cols, j) for j in range(len(cols))]

    def path_step(self, path: str):
        """A decoding step function for ``onefeed.decoding.beam_search`` over ``path``."""
        cols = self.cols(path)

        def step(state: torch.Tensor, prefix: torch.Tensor, level: int):
            return F.log_softmax(self.path_logits(state, prefix, cols, level).float(), -1), state

        return step

    # ---- text -----------------------------------------------------------------------------------
    def text_out_weight(self) -> torch.Tensor:
        return self.tok(self.text_vocab)

    def text_logits(self, cond: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """cond (N, d), words (N, W) vocab ids (0 = pad) -> (N, W + 1, V_text) logits whose
        targets are ``text_targets(words)``."""
        return self.text(cond, self.tok(words), self.text_out_weight())

    def text_loss_inputs(self, cond: torch.Tensor, words: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training form of ``text_logits``: -> (M, V_text) logits and (M,) targets at the M
        positions that have a target (words and EOS; padding after EOS is never projected).
        Trailing all-pad columns are dropped first: the text head is causal, so this is exact."""
        width = int((words > 0).sum(1).max()) if words.numel() else 0
        words = words[:, :max(width, 1)]
        targets = self.text_targets(words)
        keep = targets != -100
        return self.text(cond, self.tok(words), self.text_out_weight(), keep=keep), targets[keep]

    def text_targets(self, words: torch.Tensor) -> torch.Tensor:
        """(N, W) vocab ids -> (N, W + 1) local targets: the words then EOS (0), -100 after."""
        n, w = words.shape
        local = self.text_local[words].masked_fill(words == 0, -100)
        lengths = (words > 0).sum(1)
        out = torch.full((n, w + 1), -100, dtype=torch.long, device=words.device)
        out[:, :w] = local
        out[torch.arange(n), lengths] = 0  # EOS
        return out

    # ---- history-free inputs (DESC2ID / ID2DESC) --------------------------------------------------
    def text_state(self, words: torch.Tensor, behaviour: int, task: str | None = None
                   ) -> torch.Tensor:
        """A one-event history holding text ``words`` (N, W) -> (N, d) state (``task``: the
        task's own final block, if any)."""
        n = words.shape[0]
        ev = Events(torch.full((n, 1), -1, dtype=torch.long),
                    torch.full((n, 1, len(self.cfg.codebook_sizes)), -1, dtype=torch.long),
                    torch.full((n, 1), behaviour, dtype=torch.long), None, words.unsqueeze(1),
                    torch.ones(n, 1, dtype=torch.bool))
        return self.states(ev, task)[:, -1]

    def item_state(self, items: torch.Tensor, codes: torch.Tensor, behaviour: int,
                   task: str | None = None) -> torch.Tensor:
        """A one-event history holding ``items`` with combined-width ``codes`` (N, C)."""
        ev = Events(items.unsqueeze(1), codes.unsqueeze(1),
                    torch.full((len(items), 1), behaviour, dtype=torch.long))
        return self.states(ev, task)[:, -1]

    def last_state(self, ev: Events, task: str | None = None) -> torch.Tensor:
        return self.states(trim_left(ev), task, last_only=True)[:, -1]


def _densify(param: torch.Tensor) -> None:
    """Post-accumulate hook: a sparse embedding gradient becomes the dense tensor the
    optimizer, clipping and DDP expect (rows summed once)."""
    if param.grad is not None and param.grad.is_sparse:
        param.grad = param.grad.to_dense()


def text_vocab_tokens(vocab: Vocab, word_rows: list[torch.Tensor]) -> torch.Tensor:
    """EOS followed by every distinct word-piece token in ``word_rows`` (sorted)."""
    words = torch.unique(torch.cat([w.flatten() for w in word_rows]))
    words = words[words > 0]
    return torch.cat([torch.tensor([vocab.special("EOS")]), words])
