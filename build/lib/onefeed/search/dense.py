"""Dense retrieval: a bi-encoder (all-MiniLM-L6-v2 by default) + exact inner product (faiss
IndexFlatIP) over unit vectors, full ranking of the whole item corpus.

``model_dir`` is the hook for a search-tuned bi-encoder: any SentenceTransformer directory, e.g.
the MiniLM fine-tuned on train weak queries that ``onefeed sid build --strategy search`` saves
as ``runs/<name>/sid/search-rq_kmeans/biencoder_search`` (Spotify §3.1); the bench lists it as
``dense-tuned``. Item and query texts are then both encoded by that model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from onefeed.data.schemas import Dataset
from onefeed.embeddings.content import content_embeddings, load_encoder
from onefeed.embeddings.text import item_texts
from onefeed.paths import runs_root


@dataclass
class DenseConfig:
    model_dir: str | None = None  # None = packaged all-MiniLM-L6-v2 (checksum-verified)
    batch_size: int = 64
    cache: bool = True  # cache item embeddings under runs/cache/content
    progress: bool = True


class DenseRetriever:
    Config = DenseConfig

    def __init__(self) -> None:
        self.cfg = DenseConfig()
        self.index: faiss.IndexFlatIP | None = None
        self.emb = np.zeros((0, 0), dtype=np.float32)
        self.encoder = None

    def fit(self, ds: Dataset, cfg: DenseConfig, seed: int = 0) -> None:
        self.fit_texts(item_texts(ds.items), cfg)

    def fit_texts(self, texts: list[str], cfg: DenseConfig | None = None) -> None:
        self.cfg = cfg or DenseConfig()
        if self.cfg.model_dir is not None:
            weights = Path(self.cfg.model_dir) / "model.safetensors"
            if not weights.exists():
                raise FileNotFoundError(
                    f"dense model_dir {self.cfg.model_dir}: no model.safetensors (build it with "
                    "`onefeed sid build --strategy search`, which saves biencoder_search/)")
        cache = runs_root() / "cache" / "content" if self.cfg.cache else None
        emb, _ = content_embeddings(texts, cache, self.cfg.model_dir, self.cfg.batch_size,
                                    self.cfg.progress)
        self.emb = np.ascontiguousarray(emb, dtype=np.float32)
        self.index = faiss.IndexFlatIP(emb.shape[1])
        self.index.add(self.emb)
        self.encoder = load_encoder(self.cfg.model_dir)

    def encode(self, queries: list[str]) -> np.ndarray:
        assert self.encoder is not None
        return self.encoder.encode(queries, batch_size=self.cfg.batch_size,
                                   normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False).astype(np.float32)

    def score(self, queries: list[str], candidates: np.ndarray) -> np.ndarray:
        """(n, D) cosine of each query with its candidate items (-1 slots -> -1.0)."""
        if self.index is None:
            raise RuntimeError("DenseRetriever.score called before fit")
        candidates = np.asarray(candidates, dtype=np.int64)
        q = self.encode(queries) if queries else np.zeros((0, self.emb.shape[1]), np.float32)
        cos = np.einsum("nd,nkd->nk", q, self.emb[np.maximum(candidates, 0)])
        return np.where(candidates >= 0, cos, -1.0).astype(np.float32)

    def retrieve(self, queries: list[str], k: int) -> np.ndarray:
        """(n, k) item ids by cosine similarity, best first."""
        if self.index is None:
            raise RuntimeError("DenseRetriever.retrieve called before fit")
        if not queries:
            return np.zeros((0, k), dtype=np.int64)
        _, ids = self.index.search(self.encode(queries), min(k, self.index.ntotal))
        return ids.astype(np.int64)
