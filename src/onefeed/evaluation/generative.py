"""Full-ranking evaluation of a generative recommender (no sampled negatives).

Per case: encode the history, decode the top-K items with the trie-constrained beam search
(beam >= largest K), map decoded codes to item ids (the trie's leaves are item ids, and SID
rows are unique, so a colliding code tuple can never count as a hit), then compute
Recall/NDCG/HR/MRR@K from the target's rank with ``onefeed.evaluation.metrics``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import torch

from onefeed.data.schemas import Dataset
from onefeed.data.views import rec_cases
from onefeed.decoding.beam import beam_search
from onefeed.decoding.trie import Trie
from onefeed.evaluation.metrics import (DEFAULT_KS, drop_seen, per_case_metrics, summarise,
                                        target_ranks)
from onefeed.evaluation.seen import Decode, choose_seen, decode_unseen
from onefeed.models.transformer import GenerativeRecommender
from onefeed.tasks.rec import history_events
from onefeed.tokens import Vocab


@dataclass(frozen=True)
class RunProtocol:
    """How one trained run is evaluated (``onefeed evaluate``, validation during training).
    Bench suites use ``evaluation.protocol.Protocol``, which adds search and query settings."""

    split: str  # valid | test
    max_history: int  # most recent events kept
    filter_seen: bool = False  # drop history items from the ranking (TIGER: no)
    beam: int = 20
    ks: tuple[int, ...] = DEFAULT_KS
    ranking: str = "full"  # every item is a candidate; no sampled negatives

    def header(self) -> str:
        return (f"protocol: split={self.split} history<={self.max_history} "
                f"seen-items={'filtered' if self.filter_seen else 'not filtered'} "
                f"ranking={self.ranking} beam={self.beam} K={list(self.ks)}")


class EvalResult(NamedTuple):
    protocol: RunProtocol
    metrics: dict[str, float]
    per_user: pl.DataFrame  # user, target, rank, one column per metric

    def report(self) -> str:
        lines = [self.protocol.header(), f"cases: {self.per_user.height}"]
        lines += [f"{name:>10}: {value:.4f}" for name, value in self.metrics.items()]
        return "\n".join(lines)

    def save(self, directory: str | Path) -> None:
        from onefeed.artifacts import write_json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.per_user.write_parquet(directory / f"per_user_{self.protocol.split}.parquet")
        write_json(directory / f"metrics_{self.protocol.split}.json",
                   {"protocol": asdict(self.protocol), "metrics": self.metrics,
                    "n_cases": self.per_user.height})


@torch.no_grad()
def recommend(model: GenerativeRecommender, histories: np.ndarray, codes: torch.Tensor,
              vocab: Vocab, trie: Trie, beam: int, k: int, batch_size: int = 1024,
              progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, H) left-padded histories -> (n, k) item ids and (n, k) log-probs, best first.

    Users are decoded in batches of similar history length (less padding to encode).
    """
    model.eval()
    order = np.argsort((histories >= 0).sum(axis=1), kind="stable")
    items_out = np.full((len(histories), k), -1, dtype=np.int64)
    scores_out = np.full((len(histories), k), -np.inf, dtype=np.float32)
    for start in range(0, len(histories), batch_size):
        rows = order[start:start + batch_size]
        state = model.last_state(history_events(histories[rows], codes, vocab))
        res = beam_search(model.step, state, trie, len(rows), beam, k)
        items_out[rows] = res.items.numpy()
        scores_out[rows] = res.scores.numpy()
        if progress is not None:
            progress(len(rows))
    return items_out, scores_out


def recommend_unseen(model: GenerativeRecommender, histories: np.ndarray, codes: torch.Tensor,
                     vocab: Vocab, trie: Trie, beam: int, k: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) item ids not in each row's history, and their scores (``seen.decode_unseen``)."""
    return decode_unseen(_decoder(model, histories, codes, vocab, trie),
                         np.arange(len(histories)), histories, beam, k)


def choose_seen_rule(model: GenerativeRecommender, histories: np.ndarray, targets: np.ndarray,
                     codes: torch.Tensor, vocab: Vocab, trie: Trie, beam: int,
                     max_cases: int = 5000, seed: int = 0) -> dict[str, Any]:
    """Keep or exclude history items on these (validation) cases (``seen.choose_seen``)."""
    return choose_seen(_decoder(model, histories, codes, vocab, trie), histories, targets, beam,
                       max_cases, seed)


def _decoder(model: GenerativeRecommender, histories: np.ndarray, codes: torch.Tensor,
             vocab: Vocab, trie: Trie) -> Decode:
    """``recommend`` over rows of ``histories``, in the shape the seen-item rule takes."""
    return lambda rows, beam, k: recommend(model, histories[rows], codes, vocab, trie, beam, k)


def evaluate_cases(model: GenerativeRecommender, users: np.ndarray, histories: np.ndarray,
                   targets: np.ndarray, codes: torch.Tensor, vocab: Vocab, trie: Trie,
                   protocol: RunProtocol, progress: Any = None) -> EvalResult:
    k = max(protocol.ks)
    if protocol.beam < k:
        raise ValueError(f"beam {protocol.beam} < largest K {k}")
    beam = protocol.beam + (protocol.max_history if protocol.filter_seen else 0)
    topk, _ = recommend(model, histories, codes, vocab, trie, beam, beam, progress=progress)
    topk = drop_seen(topk, histories, k) if protocol.filter_seen else topk[:, :k]
    ranks = target_ranks(topk, targets)
    per_case = per_case_metrics(ranks, protocol.ks)
    frame = pl.DataFrame({"user": users, "target": targets, "rank": ranks,
                          **{name: vals for name, vals in per_case.items()}})
    return EvalResult(protocol, summarise(per_case), frame)


def evaluate(model: GenerativeRecommender, ds: Dataset, codes: torch.Tensor, vocab: Vocab,
             trie: Trie, protocol: RunProtocol, progress: Any = None) -> EvalResult:
    """Full-ranking evaluation of every user with a target in ``protocol.split``."""
    cases = rec_cases(ds, protocol.split, protocol.max_history)
    return evaluate_cases(model, cases.users, cases.history, cases.targets, codes, vocab, trie,
                          protocol, progress)
