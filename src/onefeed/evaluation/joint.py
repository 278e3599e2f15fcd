"""Inference with the joint model: recommend, personalised search, next-query generation.

``JointPredictor`` bundles a trained ``JointModel`` with its identifier layout, the flat event
arrays and one trie per identifier path. Every method takes user ids and the split whose first
item event is the prediction point (cases are built with ``tasks.joint.history_before``), so
the history is everything the user did before that point — feed clicks, searches and search
clicks. All item outputs are trie-constrained (every output is a real item) and ranked over the
whole catalogue.
"""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np
import torch

from onefeed.decoding.beam import beam_search
from onefeed.decoding.state_cache import StateCache, row_keys, select
from onefeed.decoding.text import prefix_parents, text_beam_search
from onefeed.decoding.trie import Trie
from onefeed.evaluation.seen import Decode, choose_seen, decode_unseen
from onefeed.models.joint import JointModel
from onefeed.models.transformer import Events, event_mask, trim_left
from onefeed.tasks.joint import (IdLayout, JointData, event_tensors, history_before,
                                 path_code_tensors, query_index, with_queries)
from onefeed.tokens import Vocab

CACHED_TASKS = frozenset({"NRIP", "NSQP"})
"""Tasks whose state is the history's alone (cached whole); a search (NSIP) state includes the
query: its history's keys and values are cached instead (``_query_after_history``)."""


class JointPredictor:
    def __init__(self, model: JointModel, layout: IdLayout, jd: JointData, vocab: Vocab,
                 behaviour_tokens: bool = True, batch_size: int = 512, max_items: int = 0
                 ) -> None:
        self.model, self.layout, self.jd, self.vocab = model.eval(), layout, jd, vocab
        self.behaviour_tokens = behaviour_tokens
        self.batch_size = batch_size
        self.codes = path_code_tensors(layout)
        self.tries = {p: Trie.from_table(layout.path_codes(p), layout.path_sizes(p))
                      for p in ("rec", "search")}
        self.max_len = model.cfg.max_len
        self.max_items = max_items  # > 0: at most this many item events of history
        self.state_cache: StateCache | None = None  # set by a server: history states reused

    # ---- states -----------------------------------------------------------------------------------
    def _states(self, idx: np.ndarray, task: str, jd: JointData | None = None,
                keys: list[Hashable | None] | None = None) -> torch.Tensor:
        """(n, T) event indices into ``jd`` (default: the predictor's own flat arrays; any
        other ``JointData``, e.g. explicit histories built by ``onefeed.predict``) -> (n, d).

        With a ``state_cache``: ``keys`` name rows whose history the caller can identify (a
        logged user). NRIP / NSQP rows without one (None, or no ``keys``) are keyed by content;
        NSIP rows with one read their history's keys / values (``_query_after_history``), the
        others are encoded whole."""
        jd, idx = with_queries(self.jd if jd is None else jd, idx)

        def events(rows: np.ndarray) -> Events:
            return event_tensors(rows, jd, self.codes, self.vocab, self.behaviour_tokens)

        def encode(ev: Events) -> torch.Tensor:
            return self.model.head_input(self.model.last_state(ev, task), task)

        if self.state_cache is None:
            return encode(events(idx))
        if task == "NSIP" and keys is not None and self.model.task_blocks is None:
            return self._query_after_history(events(idx), keys, encode)
        if task not in CACHED_TASKS:
            return encode(events(idx))
        keyed: list[Hashable | None] = list(keys) if keys is not None else [None] * len(idx)
        unnamed = [i for i, key in enumerate(keyed) if key is None]
        if len(unnamed) == len(idx):  # all by content: one set of event tensors serves both
            ev = events(idx)
            return self.state_cache.get(task, [("content", key) for key in row_keys(ev)],
                                        lambda rows: encode(select(ev, rows)))
        if unnamed:
            for i, key in zip(unnamed, row_keys(events(idx[unnamed]))):
                keyed[i] = ("content", key)
        return self.state_cache.get(task, keyed, lambda rows: encode(events(idx[rows])))

    def _query_after_history(self, ev: Events, keys: list[Hashable | None],
                             encode: Any) -> torch.Tensor:
        """NSIP states of rows whose last event is the query: a named row's history is read
        as cached keys / values (encoded once per user and split) and only the query event
        goes through the blocks; unnamed rows are encoded whole."""
        cache, model = self.state_cache, self.model
        assert cache is not None
        out = torch.empty(len(keys), model.cfg.d_model)
        named = [i for i, key in enumerate(keys) if key is not None]
        unnamed = [i for i, key in enumerate(keys) if key is None]
        if unnamed:
            out[unnamed] = encode(select(ev, unnamed))
        if not named:
            return out
        sub = select(ev, named)
        history = Events(*(t[:, :-1] if t is not None else None for t in sub))
        query = Events(*(t[:, -1:] if t is not None else None for t in sub))
        full = [("NSIP-history", keys[i]) for i in named]
        found = cache.fetch(full)
        missing = [j for j, f in enumerate(found) if f is None]
        if missing:
            hist = trim_left(select(history, missing))
            kv, valid = model.history_kv(hist), event_mask(hist)
            for r, j in enumerate(missing):
                keep = valid[r]
                found[j] = [(k[r][:, keep].clone(), v[r][:, keep].clone()) for k, v in kv]
                cache.put(full[j], found[j])
        n_max = max(entry[0][0].shape[1] for entry in found)
        heads, hd = found[0][0][0].shape[0], found[0][0][0].shape[2]
        valid = torch.zeros(len(named), n_max, dtype=torch.bool)
        layers = [(torch.zeros(len(named), heads, n_max, hd),
                   torch.zeros(len(named), heads, n_max, hd)) for _ in found[0]]
        for r, entry in enumerate(found):  # left-padded: what counts is the valid mask
            n = entry[0][0].shape[1]
            valid[r, n_max - n:] = True
            for (k_all, v_all), (k, v) in zip(layers, entry):
                k_all[r, :, n_max - n:], v_all[r, :, n_max - n:] = k, v
        state = model.extend_state(layers, valid, query)
        out[named] = model.head_input(state, "NSIP")
        return out

    @torch.no_grad()
    def _decode(self, idx: np.ndarray, task: str, path: str, beam: int, k: int,
                jd: JointData | None = None, keys: list[Hashable | None] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        items = np.full((len(idx), k), -1, dtype=np.int64)
        scores = np.full((len(idx), k), -np.inf, dtype=np.float32)
        order = np.argsort((idx != -1).sum(axis=1), kind="stable")
        step = self.model.path_step(path)
        for start in range(0, len(idx), self.batch_size):
            rows = order[start:start + self.batch_size]
            state = self._states(idx[rows], task, jd,
                                 None if keys is None else [keys[r] for r in rows])
            res = beam_search(step, state, self.tries[path], len(rows), beam, k)
            items[rows], scores[rows] = res.items.numpy(), res.scores.numpy()
        return items, scores

    # ---- tasks -----------------------------------------------------------------------------------
    def recommend(self, users: np.ndarray, split: str, k: int, beam: int | None = None,
                  exclude_seen: bool = False) -> np.ndarray:
        """NRIP: (n,) users -> (n, k) items, best first. ``exclude_seen``: none of the items of
        the history window (``seen.decode_unseen``: the beam widened by the window length;
        -1 where fewer than k remain)."""
        idx = self._history(users, split)
        beam = max(beam or k, k)
        if exclude_seen:
            return decode_unseen(self._rec_decoder(idx), np.arange(len(idx)),
                                 self.history_items(idx), beam, k)[0]
        return self._decode(idx, "NRIP", "rec", beam, k)[0]

    def choose_seen_rule(self, users: np.ndarray, split: str, targets: np.ndarray, beam: int,
                         max_cases: int = 5000, seed: int = 0) -> dict[str, Any]:
        """Keep or exclude history items from NRIP lists, whichever gives the higher NDCG@10 on
        these cases ((n,) users, (n,) target items; ``seen.choose_seen``)."""
        idx = self._history(users, split)
        return choose_seen(self._rec_decoder(idx), self.history_items(idx), np.asarray(targets),
                           beam, max_cases, seed)

    def seen_items(self, users: np.ndarray, split: str) -> np.ndarray:
        """(n,) users -> (n, max_len) the item ids NRIP sees before ``split`` (-1 elsewhere)."""
        return self.history_items(self._history(users, split))

    def history_items(self, idx: np.ndarray) -> np.ndarray:
        """(n, T) flat event indices -> (n, T) their item ids (-1 for queries and padding)."""
        return np.where(idx >= 0, self.jd.item[np.maximum(idx, 0)], -1)

    def _history(self, users: np.ndarray, split: str) -> np.ndarray:
        """(n, max_len) event indices of each user's history before ``split`` (no query)."""
        return history_before(self.jd, np.asarray(users), split, self.max_len,
                              max_items=self.max_items)

    def _rec_decoder(self, idx: np.ndarray) -> Decode:
        """NRIP beam search over rows of ``idx``, in the shape the seen-item rule takes."""
        return lambda rows, beam, k: self._decode(idx[rows], "NRIP", "rec", beam, k)

    def search(self, users: np.ndarray, queries: list[str], split: str, k: int,
               beam: int | None = None) -> np.ndarray:
        """NSIP: history before ``split`` + the query -> (n, k) items, best first."""
        idx = self._search_history(users, queries, split)
        return self._decode(idx, "NSIP", "search", max(beam or k, k), k)[0]

    def _search_history(self, users: np.ndarray, queries: list[str], split: str) -> np.ndarray:
        """Event indices of each user's history before ``split`` with the query appended."""
        return history_before(self.jd, np.asarray(users), split, self.max_len,
                              query_index(self.jd, queries), self.max_items)

    @torch.no_grad()
    def score_search(self, users: np.ndarray, queries: list[str], split: str,
                     candidates: np.ndarray) -> np.ndarray:
        """NSIP log p(item | history, query) of given candidates: (n, D) items (-1 = empty) ->
        (n, D) float32 (-inf at empty slots). Teacher-forced over the search identifier path,
        so any item can be scored, e.g. an index's candidates (OneFeed §3.7 fusion)."""
        idx = self._search_history(users, queries, split)
        candidates = np.asarray(candidates, dtype=np.int64)
        out = np.full(candidates.shape, -np.inf, dtype=np.float32)
        path_codes = torch.as_tensor(self.layout.path_codes("search"))
        cols = self.model.cols("search")
        step = max(1, self.batch_size // 4)
        for start in range(0, len(idx), step):
            sl = slice(start, min(start + step, len(idx)))
            cand = torch.as_tensor(candidates[sl])
            valid = cand >= 0
            state = self._states(idx[sl], "NSIP")  # (b, d)
            h = state.unsqueeze(1).expand(-1, cand.shape[1], -1)[valid]  # (m, d)
            codes = path_codes[cand[valid]]  # (m, L)
            logp = torch.zeros(len(codes))
            for j in range(len(cols)):
                logits = self.model.path_logits(h, codes, cols, j).float()
                logp += logits.log_softmax(-1).gather(1, codes[:, j:j + 1]).squeeze(1)
            block = np.full(cand.shape, -np.inf, dtype=np.float32)
            block[valid.numpy()] = logp.numpy()
            out[sl] = block
        return out

    @torch.no_grad()
    def generate_queries(self, users: np.ndarray, split: str, k: int, beam: int | None = None,
                         max_words: int = 10, length_penalty: float = 0.0) -> list[list[str]]:
        """NSQP: (n,) users -> per user the top-k next queries (distinct strings)."""
        return self.generate_from(self._history(users, split), k, beam, max_words,
                                  length_penalty)

    @torch.no_grad()
    def generate_from(self, idx: np.ndarray, k: int, beam: int | None = None,
                      max_words: int = 10, length_penalty: float = 0.0,
                      jd: JointData | None = None, keys: list[Hashable | None] | None = None
                      ) -> list[list[str]]:
        """NSQP over (n, T) event indices into ``jd`` (default: the predictor's own)."""
        beam = beam or k  # finished hypotheses pile up over steps: beam may be < k
        out: list[list[str]] = [[] for _ in range(len(idx))]
        for start in range(0, len(idx), self.batch_size):
            rows = np.arange(start, min(start + self.batch_size, len(idx)))
            cond = self._states(idx[rows], "NSQP", jd,
                                None if keys is None else [keys[r] for r in rows])
            # first the top 2k hypotheses: they are the top 2k of the full set (the beam
            # search is exact for any k), so a row they give k distinct strings is done;
            # the rest (distinct word pieces that decode alike) decode again with them all
            full = hypotheses(k, beam, max_words)
            first = min(full, 2 * k)
            for n_hyp in (first, full):
                tokens, scores = self._text_beam(cond, beam, n_hyp, max_words, length_penalty)
                words = torch.where(tokens > 0, self.model.text_vocab[tokens], 0)
                for r, toks, sc in zip(rows, words.tolist(), scores.tolist()):
                    out[r] = self._strings(toks, sc, k)
                short = [i for i, r in enumerate(rows) if len(out[r]) < k]
                if n_hyp == full or not short:
                    break
                rows, cond = rows[short], cond[short]
        return out

    def _text_beam(self, cond: torch.Tensor, beam: int, k: int, max_words: int,
                   length_penalty: float) -> tuple[torch.Tensor, torch.Tensor]:
        step = TextSteps(self.model, cond, self._continuation_pieces())
        return text_beam_search(step, cond.shape[0], beam, k, max_words, length_penalty)

    def _continuation_pieces(self) -> torch.Tensor:
        """(n_text_vocab,) bool: local text tokens that are word-piece continuations (``##x``)."""
        if not hasattr(self, "_continuation"):
            names = [self.vocab.name(int(t)) if self.vocab.kind(int(t)) == "word" else ""
                     for t in self.model.text_vocab.tolist()]
            self._continuation = torch.tensor([n.startswith("##") for n in names])
        return self._continuation

    def _strings(self, tokens: list[list[int]], scores: list[float], k: int) -> list[str]:
        out: list[str] = []
        for toks, sc in zip(tokens, scores):
            if sc == -np.inf:
                continue
            text = self.vocab.decode_words([t for t in toks if t > 0]).strip()
            if text and text not in out:
                out.append(text)
            if len(out) == k:
                break
        return out


class TextSteps:
    """``next_logits`` of the joint model's text head for ``text_beam_search``, with a
    self-attention cache: a call whose prefixes all extend the previous call's (found by
    ``prefix_parents``) runs the head on the newest word only; any other call runs the full
    prefix. Either way the logits equal ``model.text(..., last_only=True)``'s."""

    def __init__(self, model: JointModel, cond: torch.Tensor, continuation: torch.Tensor) -> None:
        self.model, self.cond, self.continuation = model, cond, continuation
        self.out_weight = model.text_out_weight()
        self.rows: torch.Tensor | None = None
        self.prefix = torch.zeros(0, 0, dtype=torch.long)
        self.past: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, rows: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        m = self.model
        words = m.tok(m.text_vocab[local])
        parent = prefix_parents(self.rows, self.prefix, rows, local)
        past = None if parent is None else [(k[parent], v[parent]) for k, v in self.past]
        logits, self.past = m.text.decode(self.cond[rows], words, self.out_weight, past)
        self.rows, self.prefix = rows, local
        return _start_on_a_word(logits, local, self.continuation)


def _start_on_a_word(logits: torch.Tensor, local: torch.Tensor, continuation: torch.Tensor
                     ) -> torch.Tensor:
    """A text cannot start inside a word ("##uze"): no continuation piece comes first."""
    return logits.masked_fill(continuation, float("-inf")) if local.shape[1] == 0 else logits


def hypotheses(k: int, beam: int, max_words: int) -> int:
    """Finished hypotheses the text beam keeps to return ``k`` strings: more than ``k``, since
    distinct word-piece sequences may decode to one string."""
    return min(beam * max_words, max(beam, 4 * k))


def full_prefix_logits(model: JointModel, cond: torch.Tensor, continuation: torch.Tensor):
    """``next_logits`` without a cache (each call runs the text head over the whole prefix):
    the reference ``TextSteps`` is checked and benchmarked against."""
    out_weight = model.text_out_weight()

    def next_logits(rows: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        logits = model.text(cond[rows], model.tok(model.text_vocab[local]), out_weight,
                            last_only=True)
        return _start_on_a_word(logits, local, continuation)

    return next_logits
