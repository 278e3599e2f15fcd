"""OneBar's generator: a small encoder-decoder from serialised evidence to a query or [REJECT].

OneBar §3.3: the evidence fields are serialised into one ``[SEP]``-delimited string (Eq. 4)
and a BART-style encoder-decoder decodes either a search query or the single token
``[REJECT]`` (abstain: no bottom-bar exposure). Here the encoder reads the evidence as
word pieces of ``onefeed.tokens`` (each ``[SEP]`` becomes the SEP special, so empty fields keep
the schema's shape) with bidirectional ``onefeed.models.transformer.Block`` s; the decoder is
``onefeed.models.encoder_decoder.CrossBlock`` s whose cross-attention keys and values are
computed once per evidence (``Memory``), so a beam step costs only the short query prefix.

Output vocabulary (local ids, for fast CPU decoding): 0 = EOS, 1 = [REJECT], then the word
pieces seen in the targets the model was built from (``QuerySuggester.build``); output rows
are tied to the input embedding of those tokens. A target is ``w_1 .. w_n EOS`` or
``[REJECT] EOS``; decoding allows [REJECT] only as the first token and then only EOS.
Queries come back in the tokenizer's normal form (lower-cased, accents stripped:
``normalise``). ``forward`` returns logits; losses live in ``onefeed.objectives``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from onefeed import config as config_lib
from onefeed.decoding.text import prefix_parents, text_beam_search
from onefeed.models.config import ModelConfig
from onefeed.models.encoder_decoder import CrossBlock
from onefeed.models.transformer import Block, init_weights
from onefeed.tokens import Vocab, wordpiece_tokenizer

REJECT = "[REJECT]"
SEP = "[SEP]"
EOS_LOCAL, REJECT_LOCAL = 0, 1  # local output ids
IGNORE = -100  # target padding
KIND = "onebar-query-suggester"


@dataclass
class SuggesterConfig:
    RANGES: ClassVar[dict[str, str]] = {"d_model": ">= 1", "n_heads": ">= 1", "d_ff": ">= 1",
        "enc_layers": ">= 1", "dec_layers": ">= 1", "dropout": "[0, 1)",
        "max_evidence_len": ">= 1", "max_query_len": ">= 1", "n_out": ">= 0"}
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 512
    enc_layers: int = 2
    dec_layers: int = 2
    dropout: float = 0.1
    max_evidence_len: int = 128  # word pieces of the serialised evidence (longer: cut)
    max_query_len: int = 16  # word pieces of a query (longer targets: cut, then EOS)
    n_out: int = 0  # filled by build: EOS + [REJECT] + target word pieces

    def blocks(self) -> ModelConfig:
        """The fields ``Block`` / ``CrossBlock`` read."""
        return ModelConfig(d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff,
                           dropout=self.dropout)


class Memory(NamedTuple):
    """Encoded evidence: per decoder layer the cross-attention keys and values."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (B, h, T, d/h) keys, values
    valid: torch.Tensor  # (B, T) bool

    def select(self, rows: torch.Tensor) -> "Memory":
        return Memory([(k[rows], v[rows]) for k, v in self.kv], self.valid[rows])


class Rollouts(NamedTuple):
    rows: torch.Tensor  # (N,) evidence row of each rollout
    tokens: torch.Tensor  # (N, S) local ids, EOS-terminated (unless cut at max length), -100 pad


class DecoderBlock(CrossBlock):
    """``CrossBlock`` reading cross-attention keys/values precomputed by ``memory_kv``."""

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, d) -> keys, values (B, h, T, d/h)."""
        b, t, d = memory.shape
        k, v = self.kv(memory).split(d, dim=2)
        return tuple(z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                     for z in (k, v))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor,  # type: ignore[override]
                kv: tuple[torch.Tensor, torch.Tensor], mem_valid: torch.Tensor) -> torch.Tensor:
        """x (N, S, d), kv per ``memory_kv`` (N rows), mem_valid (N, T) -> (N, S, d)."""
        s = x.shape[1]
        x = self.self_block(x, torch.ones(s, s, dtype=torch.bool, device=x.device).tril())
        return self.cross(x, kv, mem_valid)

    def cross(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
              mem_valid: torch.Tensor) -> torch.Tensor:
        n, s, d = x.shape
        q = self.q(self.ln(x)).view(n, s, self.n_heads, d // self.n_heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mem_valid[:, None, None, :])
        return x + self.drop(self.proj(y.transpose(1, 2).reshape(n, s, d)))

    def self_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention keys, values (N, h, S, d/h) of layer inputs x (N, S, d)."""
        b, d = self.self_block, x.shape[2]
        k, v = F.linear(b.ln1(x), b.qkv.weight[d:], b.qkv.bias[d:]).split(d, dim=2)
        return tuple(z.view(x.shape[0], -1, self.n_heads, d // self.n_heads).transpose(1, 2)
                     for z in (k, v))  # type: ignore[return-value]

    def step(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor],
             kv: tuple[torch.Tensor, torch.Tensor], mem_valid: torch.Tensor
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One new position x (N, 1, d) after cached self-attention keys/values ``past``
        (N, h, t, d/h) -> (output (N, 1, d), keys/values (N, h, t + 1, d/h)); equal to the
        last position of ``forward`` over the whole prefix."""
        b, (n, _, d), h = self.self_block, x.shape, self.n_heads
        q, k, v = (z.view(n, 1, h, d // h).transpose(1, 2) for z in b.qkv(b.ln1(x)).split(d, 2))
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v)  # the new position sees every earlier one
        x = x + b.drop(b.proj(y.transpose(1, 2).reshape(n, 1, d)))
        x = x + b.drop(b.mlp(b.ln2(x)))
        return self.cross(x, kv, mem_valid), (k, v)


def normalise(text: str) -> str:
    """A query in the form the model reads and writes (word pieces decoded)."""
    tok = wordpiece_tokenizer()
    return text if text == REJECT else tok.decode(tok.encode(text, add_special_tokens=False).ids)


def target_logp(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of token log-probs: logits (N, S, V), targets (N, S) local ids, -100 pad -> (N,)."""
    keep = targets != IGNORE
    logp = F.log_softmax(logits.float(), -1).gather(2, targets.clamp(min=0).unsqueeze(-1))[..., 0]
    return (logp * keep).sum(1)


def constrain(logits: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """Decoding rules on next-token logits (N, V) after prefixes (N, t): no empty query,
    [REJECT] only first, and after [REJECT] only EOS (in place; returns ``logits``)."""
    if prefix.shape[1] == 0:
        logits[:, EOS_LOCAL] = float("-inf")
        return logits
    logits[:, REJECT_LOCAL] = float("-inf")
    rejected = prefix[:, 0] == REJECT_LOCAL
    logits[rejected] = float("-inf")
    logits[rejected, EOS_LOCAL] = 0.0
    return logits


class QuerySuggester(nn.Module):
    def __init__(self, cfg: SuggesterConfig) -> None:
        super().__init__()
        if cfg.n_out < 2:
            raise ValueError("SuggesterConfig.n_out < 2: build the model with "
                             "QuerySuggester.build(target_texts, cfg)")
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}")
        self.cfg, self.vocab = cfg, Vocab.build(())
        d, blocks = cfg.d_model, cfg.blocks()
        self.tok = nn.Embedding(self.vocab.size, d, padding_idx=0)
        self.enc_pos = nn.Embedding(cfg.max_evidence_len, d)
        self.enc_blocks = nn.ModuleList(Block(blocks) for _ in range(cfg.enc_layers))
        self.ln_enc = nn.LayerNorm(d)
        self.dec_pos = nn.Embedding(cfg.max_query_len + 1, d)
        self.dec_blocks = nn.ModuleList(DecoderBlock(blocks) for _ in range(cfg.dec_layers))
        self.ln_dec = nn.LayerNorm(d)
        self.out_bias = nn.Parameter(torch.zeros(cfg.n_out))
        self.drop = nn.Dropout(cfg.dropout)
        # out_tokens: local id -> vocab token; out_local: vocab token -> local id (-1 = none)
        self.register_buffer("out_tokens", torch.zeros(cfg.n_out, dtype=torch.long))
        self.register_buffer("out_local", torch.full((self.vocab.size,), -1, dtype=torch.long),
                             persistent=False)
        self._out_cache: tuple[tuple[int, ...], torch.Tensor] | None = None
        self.apply(self._init)

    _init = staticmethod(init_weights)

    @classmethod
    def build(cls, target_texts: Sequence[str], cfg: SuggesterConfig | None = None
              ) -> "QuerySuggester":
        """A fresh model whose output vocabulary covers every word piece of ``target_texts``
        (all queries it will be trained on or asked to score, in any stage)."""
        cfg = cfg or SuggesterConfig()
        tok = wordpiece_tokenizer()
        texts = [t for t in target_texts if t != REJECT]
        pieces = sorted({i for e in tok.encode_batch(texts, add_special_tokens=False)
                         for i in e.ids})
        vocab = Vocab.build(())
        tokens = [vocab.special("EOS"), vocab.special(REJECT)] + [vocab.word_offset + i
                                                                   for i in pieces]
        model = cls(SuggesterConfig(**{**asdict(cfg), "n_out": len(tokens)}))
        model.set_out_tokens(torch.tensor(tokens))
        return model

    def set_out_tokens(self, tokens: torch.Tensor) -> None:
        self.out_tokens.copy_(tokens)
        self.out_local.fill_(-1)
        self.out_local[self.out_tokens] = torch.arange(len(self.out_tokens))

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):  # type: ignore[override]
        out = super().load_state_dict(state, strict=strict, assign=assign)
        self.set_out_tokens(self.out_tokens.clone())
        return out

    # ---- text <-> ids -------------------------------------------------------------------------
    def encode_evidence(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Serialised evidence strings -> (ids (B, T) vocab ids, 0-padded; valid (B, T))."""
        fields = [t.split(SEP) for t in texts]
        flat = wordpiece_tokenizer().encode_batch([f for fs in fields for f in fs],
                                                  add_special_tokens=False)
        off, sep, rows, i = self.vocab.word_offset, self.vocab.special("SEP"), [], 0
        for text, fs in zip(texts, fields):
            row: list[int] = []
            for j in range(len(fs)):
                row += ([sep] if j else []) + [off + x for x in flat[i + j].ids]
            i += len(fs)
            if not row:
                raise ValueError(f"empty evidence {text!r}: at least one field must hold text")
            rows.append(row[: self.cfg.max_evidence_len])
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
        return ids, ids > 0

    def encode_targets(self, texts: Sequence[str]) -> torch.Tensor:
        """Queries (or "[REJECT]") -> (N, S) local targets ``w_1 .. w_n EOS``, -100 pad.
        A word piece outside the output vocabulary raises ValueError."""
        enc = wordpiece_tokenizer().encode_batch(list(texts), add_special_tokens=False)
        off, rows = self.vocab.word_offset, []
        for text, e in zip(texts, enc):
            if text == REJECT:
                rows.append([REJECT_LOCAL, EOS_LOCAL])
                continue
            local = self.out_local[torch.tensor([off + x for x in e.ids], dtype=torch.long)]
            if not len(local) or (local < 0).any():
                raise ValueError(f"query {text!r} is empty or has word pieces outside the "
                                 "model's output vocabulary (build it with every target)")
            rows.append(local[: self.cfg.max_query_len].tolist() + [EOS_LOCAL])
        out = torch.full((len(rows), max(map(len, rows))), IGNORE, dtype=torch.long)
        for r, row in enumerate(rows):
            out[r, : len(row)] = torch.tensor(row)
        return out

    def decode_targets(self, tokens: torch.Tensor) -> list[str]:
        """(N, S) local ids (stop at the first EOS or pad) -> texts ("[REJECT]" kept)."""
        pieces = []
        for row in tokens.tolist():
            n = next((i for i, x in enumerate(row) if x in (EOS_LOCAL, IGNORE)), len(row))
            pieces.append(row[:n])
        off, table = self.vocab.word_offset, self.out_tokens.tolist()
        words = [[] if p[:1] == [REJECT_LOCAL] else [table[x] - off for x in p] for p in pieces]
        texts = wordpiece_tokenizer().decode_batch(words)
        return [REJECT if p[:1] == [REJECT_LOCAL] else t for p, t in zip(pieces, texts)]

    # ---- network ------------------------------------------------------------------------------
    def encode(self, ids: torch.Tensor, valid: torch.Tensor) -> Memory:
        """(B, T) evidence -> cross-attention memory of every decoder layer."""
        t = ids.shape[1]
        mask = (valid[:, None, :] | torch.eye(t, dtype=torch.bool)).unsqueeze(1)
        x = self.drop(self.tok(ids) + self.enc_pos.weight[:t])
        for block in self.enc_blocks:
            x = block(x, mask)
        x = self.ln_enc(x)
        return Memory([b.memory_kv(x) for b in self.dec_blocks], valid)

    def out_weight(self) -> torch.Tensor:
        """(V_out, d) output rows, tied to the input embedding. Without gradients the gather
        is cached until the embedding changes (a 3 MB copy per request otherwise)."""
        if torch.is_grad_enabled():
            return self.tok(self.out_tokens)
        key = (self.tok.weight._version, self.tok.weight.data_ptr(), self.out_tokens._version)
        if self._out_cache is None or self._out_cache[0] != key:
            self._out_cache = (key, self.tok(self.out_tokens))
        return self._out_cache[1]

    def decode(self, memory: Memory, prefix: torch.Tensor) -> torch.Tensor:
        """memory of N rows, prefix (N, t) local ids -> (N, t + 1, d) states after BOS, w_1..w_t."""
        n, t = prefix.shape
        bos = torch.full((n, 1), self.vocab.special("BOS"), dtype=torch.long)
        x = torch.cat([bos, self.out_tokens[prefix]], dim=1)
        x = self.drop(self.tok(x) + self.dec_pos.weight[: t + 1])
        for block, kv in zip(self.dec_blocks, memory.kv):
            x = block(x, kv, memory.valid)
        return self.ln_dec(x)

    def decode_cached(self, memory: Memory, prefix: torch.Tensor
                      ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """``decode`` plus every layer's self-attention keys/values (N, h, t + 1, d/h)."""
        n, t = prefix.shape
        bos = torch.full((n, 1), self.vocab.special("BOS"), dtype=torch.long)
        x = torch.cat([bos, self.out_tokens[prefix]], dim=1)
        x = self.drop(self.tok(x) + self.dec_pos.weight[: t + 1])
        past = []
        for block, kv in zip(self.dec_blocks, memory.kv):
            past.append(block.self_kv(x))
            x = block(x, kv, memory.valid)
        return self.ln_dec(x), past

    def decode_step(self, memory: Memory, last: torch.Tensor, t: int,
                    past: list[tuple[torch.Tensor, torch.Tensor]]
                    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The state (N, d) after prefixes of length t whose last token is ``last`` (N,) local,
        from the keys/values ``past`` of their first t - 1 tokens; -> (state, new past)."""
        x = self.drop(self.tok(self.out_tokens[last]) + self.dec_pos.weight[t]).unsqueeze(1)
        new = []
        for block, kv, p in zip(self.dec_blocks, memory.kv, past):
            x, p = block.step(x, p, kv, memory.valid)
            new.append(p)
        return self.ln_dec(x)[:, 0], new

    def forward(self, ids: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced next-token logits (N, S, V_out) of targets (N, S) (local, -100 pad)
        given evidence (B, T); ``rows`` (N,) = each target's evidence row (None: row n)."""
        memory = self.encode(ids, valid)
        if rows is not None:
            memory = memory.select(rows)
        y = self.decode(memory, targets[:, :-1].clamp(min=0))
        return y @ self.out_weight().t() + self.out_bias

    def logits(self, evidence: Sequence[str], targets: torch.Tensor,
               rows: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` from evidence strings."""
        return self(*self.encode_evidence(evidence), targets, rows)

    def sequence_logp(self, evidence: Sequence[str], targets: Sequence[str],
                      rows: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) log p(target | evidence) summed over tokens incl. EOS (with gradients);
        ``rows`` (N,) maps targets to evidence (None: one evidence per target)."""
        tgt = self.encode_targets(targets)
        return target_logp(self.logits(evidence, tgt, rows), tgt)

    # ---- generation ---------------------------------------------------------------------------
    def next_logits(self, memory: Memory, rows: torch.Tensor, prefix: torch.Tensor
                    ) -> torch.Tensor:
        """Constrained next-token logits (N, V_out) of prefixes (N, t) of evidence ``rows``:
        the plain full-prefix pass (``Stepper`` is the cached one)."""
        y = self.decode(memory.select(rows), prefix)[:, -1]
        return constrain(y @ self.out_weight().t() + self.out_bias, prefix)

    @torch.inference_mode()
    def suggest(self, evidence: Sequence[str], k: int = 8, beam: int = 8,
                length_penalty: float = 0.0) -> list[list[tuple[str, float]]]:
        """Top-``k`` (query, log-prob) per evidence by batched beam search; a "[REJECT]"
        entry means abstain (serving suppresses the bar when it ranks first)."""
        with eval_mode(self):
            step = Stepper(self, self.encode(*self.encode_evidence(evidence)))
            tokens, scores = text_beam_search(step, len(evidence), beam, k,
                                              self.cfg.max_query_len + 1, length_penalty)
        kk = tokens.shape[1]
        texts, flat = self.decode_targets(tokens.flatten(0, 1)), scores.flatten().tolist()
        return [[(texts[i], flat[i]) for i in range(r * kk, (r + 1) * kk) if flat[i] > -1e30]
                for r in range(len(evidence))]  # -inf: fewer than k hypotheses

    @torch.no_grad()
    def sample(self, evidence: Sequence[str], n: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Rollouts:
        """``n`` on-policy rollouts per evidence (ancestral sampling under the decoding rules,
        eval mode), rows in order evidence 0 x n, evidence 1 x n, ..."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        with eval_mode(self):
            step = Stepper(self, self.encode(*self.encode_evidence(evidence)))
            rows = torch.arange(len(evidence)).repeat_interleave(n)
            seqs = torch.zeros(len(rows), 0, dtype=torch.long)
            done = torch.zeros(len(rows), dtype=torch.bool)
            for _ in range(self.cfg.max_query_len + 1):
                live = (~done).nonzero().squeeze(1)
                if not len(live):
                    break
                logits = step(rows[live], seqs[live]) / temperature
                pick = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
                col = torch.full((len(rows),), IGNORE, dtype=torch.long)
                col[live] = pick
                seqs = torch.cat([seqs, col.unsqueeze(1)], dim=1)
                done |= col == EOS_LOCAL
        return Rollouts(rows, seqs)

    # ---- artifacts ----------------------------------------------------------------------------
    def config_json(self) -> dict:
        return {"kind": KIND, "model": asdict(self.cfg)}

    def save(self, directory: str | Path) -> None:
        """``directory``/model.safetensors + config.json (the model is rebuilt from it)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                  str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(self.config_json(), indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "QuerySuggester":
        """A model saved by ``save`` (or a training checkpoint's best/ or last/), in eval mode."""
        directory = Path(directory)
        info = json.loads((directory / "config.json").read_text())
        if info.get("kind") != KIND:
            raise ValueError(f"{directory}: not a {KIND} (kind = {info.get('kind')!r})")
        model = cls(config_lib.from_dict(SuggesterConfig, info["model"], "model."))
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model.eval()


class Stepper:
    """Next-token logits for ``text_beam_search`` and sampling with a self-attention cache.

    A call with prefixes (N, t) finds each prefix's parent among the previous call's
    prefixes (same evidence row, same first t - 1 tokens) and runs the decoder on the new
    token only; when some prefix has no parent (first call, or any other pattern) it runs the
    full-prefix pass. Either way the logits equal ``QuerySuggester.next_logits``."""

    def __init__(self, model: QuerySuggester, memory: Memory) -> None:
        self.model, self.memory, self.out_weight = model, memory, model.out_weight()
        self.rows: torch.Tensor | None = None
        self.prefix = torch.zeros(0, 0, dtype=torch.long)
        self.past: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, rows: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.rows is None or not torch.equal(rows, self.rows):
            self.selected = self.memory.select(rows)  # beams keep their rows between steps
        memory = self.selected
        parent = prefix_parents(self.rows, self.prefix, rows, prefix)
        if parent is None:
            y, past = m.decode_cached(memory, prefix)
            y = y[:, -1]
        else:
            past = [(k[parent], v[parent]) for k, v in self.past]
            y, past = m.decode_step(memory, prefix[:, -1], prefix.shape[1], past)
        self.rows, self.prefix, self.past = rows, prefix, past
        return constrain(y @ self.out_weight.t() + m.out_bias, prefix)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run with dropout off, then restore the model's training flag."""
    if not model.training:  # nothing to switch (train(False) walks every submodule)
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train(True)
