"""Lexical retrieval: BM25 (bm25s) over each item's text, full ranking of the whole corpus."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bm25s
import numpy as np

from onefeed.data.schemas import DataError, Dataset
from onefeed.embeddings.text import item_texts

# bm25s sets its logger to DEBUG; once anything configures root logging (an imported library
# does) every index build printed "DEBUG:bm25s:Building index from IDs objects"
logging.getLogger("bm25s").setLevel(logging.WARNING)


@dataclass
class BM25Config:
    k1: float = 1.5
    b: float = 0.75
    stopwords: str = "en"


class BM25Retriever:
    """``fit(ds)`` indexes ``item_texts(ds.items)``; ``retrieve(queries, k)`` -> (n, k) item ids.

    Rows are padded with -1 when fewer than k items share any term with the query.
    """

    Config = BM25Config

    def __init__(self) -> None:
        self.cfg = BM25Config()
        self.index: bm25s.BM25 | None = None
        self.n_items = 0

    def fit(self, ds: Dataset, cfg: BM25Config, seed: int = 0) -> None:
        self.fit_texts(item_texts(ds.items), cfg)

    def fit_texts(self, texts: list[str], cfg: BM25Config | None = None) -> None:
        self.cfg = cfg or BM25Config()
        tokens = bm25s.tokenize(texts, stopwords=self.cfg.stopwords, show_progress=False)
        if not tokens.vocab:
            raise DataError(f"BM25: none of the {len(texts)} item texts has a word to index "
                            "(a dataset without item text has no keyword search)")
        self.n_items = len(texts)
        self.index = bm25s.BM25(k1=self.cfg.k1, b=self.cfg.b)
        self.index.index(tokens, show_progress=False)

    def scores(self, queries: list[str]) -> np.ndarray:
        """(n, n_items) BM25 scores (plain reference path; fine for small corpora)."""
        assert self.index is not None
        tokens = bm25s.tokenize(queries, stopwords=self.cfg.stopwords, return_ids=False,
                                show_progress=False)
        return np.stack([self.index.get_scores(t) for t in tokens]) if queries else \
            np.zeros((0, self.n_items))

    def retrieve(self, queries: list[str], k: int) -> np.ndarray:
        """(n, k) item ids best first; -1 where the query matches fewer than k items."""
        return self.retrieve_scores(queries, k)[0]

    def retrieve_scores(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``retrieve`` plus each slot's BM25 score: (n, k) ids, (n, k) float32 (0 at -1)."""
        if self.index is None:
            raise RuntimeError("BM25Retriever.retrieve called before fit")
        k = min(k, self.n_items)
        out = np.full((len(queries), k), -1, dtype=np.int64)
        out_scores = np.zeros((len(queries), k), dtype=np.float32)
        if not queries:
            return out, out_scores
        tokens = bm25s.tokenize(queries, stopwords=self.cfg.stopwords, return_ids=False,
                                show_progress=False)
        for row, toks in enumerate(tokens):
            if not toks:
                continue
            scores = self.index.get_scores(toks)
            top = np.argsort(-scores, kind="stable")[:k]
            top = top[scores[top] > 0]
            out[row, :len(top)] = top
            out_scores[row, :len(top)] = scores[top]
        return out, out_scores

    def n_matches(self, queries: list[str]) -> np.ndarray:
        """(n,) number of corpus items with a positive BM25 score for each query."""
        assert self.index is not None
        tokens = bm25s.tokenize(queries, stopwords=self.cfg.stopwords, return_ids=False,
                                show_progress=False)
        return np.array([int((self.index.get_scores(t) > 0).sum()) if t else 0 for t in tokens])
