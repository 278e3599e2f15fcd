"""Item text for the text encoders: the template, and the fast batched encoding of it.

``"Title: …; Brand: …; Categories: a > b > c; Tags: x, y; Description: …"`` — fields
that are null/empty for an item are left out, so an item with no metadata gets ``""``
(callers treat that as "no text" and fall back to the collaborative embedding).
``encode_fast`` (token-length batches, bf16 autocast) stands on ``encode_plain`` (fp32
sentence-transformers); the model is loaded by ``onefeed.embeddings.content.load_encoder``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

MAX_DESCRIPTION_CHARS = 400  # MiniLM reads ~256 word pieces; long descriptions only cost time


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def item_text(title: object = None, brand: object = None, categories: object = None,
              tags: object = None, description: object = None) -> str:
    """The template for one item; empty fields are skipped."""
    parts = []
    if _clean(title):
        parts.append(f"Title: {_clean(title)}")
    if _clean(brand):
        parts.append(f"Brand: {_clean(brand)}")
    cats = [_clean(c) for c in (categories or []) if _clean(c)]
    if cats:
        parts.append("Categories: " + " > ".join(cats))
    tag_list = [_clean(t) for t in (tags or []) if _clean(t)]
    if tag_list:
        parts.append("Tags: " + ", ".join(tag_list))
    desc = _clean(description)
    if desc:
        parts.append(f"Description: {desc[:MAX_DESCRIPTION_CHARS]}")
    return "; ".join(parts)


def item_texts(items: pl.DataFrame) -> list[str]:
    """One text per row of a ``Dataset.items`` frame (rows in ``item`` order)."""
    items = items.sort("item")
    cols = {name: (items[name].to_list() if name in items.columns else [None] * items.height)
            for name in ("title", "brand", "categories", "tags", "description")}
    return [item_text(*(cols[n][i] for n in ("title", "brand", "categories", "tags",
                                            "description")))
            for i in range(items.height)]


def texts_sha256(texts: list[str]) -> str:
    """Order-sensitive hash of a list of texts (the content-embedding cache key)."""
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# ----------------------------------------------------------------------------- encoding
#
# Where the time goes (docs/SEMANTIC_IDS.md, "Content-embedding speed"): ~82% of an fp32
# MiniLM forward on this CPU is the Linear GEMMs, already near the core's fp32 peak, so fp32
# tops out near ~100 items per CPU-second on Beauty (~37 word pieces per text). Two changes
# keep the vectors and cut the time:
#   1. batches of equal *token* length (sentence-transformers sorts by characters, which pads
#      Beauty batches by ~26%; token-length sorting pads by ~2%);
#   2. bf16 autocast for the Linear, attention and GELU maths (fp32 accumulation; the residual
#      stream, LayerNorm and pooling stay fp32) where the CPU has native bf16 (AVX512-BF16 /
#      AMX): ~2x the GEMM rate at cosine >= 0.9999 to the fp32 vectors.
#   3. the cores share the work by batch, not by op: with torch's intra-op threads every op
#      (LayerNorm, GELU, a small GEMM) ends in a barrier where one core waits for the other;
#      two worker threads on one intra-op thread each never wait (torch releases the GIL
#      inside ops): 1.07-1.29x the items/s on this 2-core machine (``onefeed bench sid``).
# (Measured and rejected: eager attention, slower than SDPA; dynamic int8, cosine 0.93;
# ONNX Runtime fp32 and torch.compile, no faster — docs/SEMANTIC_IDS.md.)

PRECISIONS = ("auto", "fp32", "bf16")
PARALLEL = ("batches", "ops")


@dataclass(frozen=True)
class TextEncoderConfig:
    """How item text is turned into vectors (defaults = the measured fast path)."""

    precision: str = "auto"  # "auto": bf16 where the CPU has native bf16, else fp32
    batch_size: int = 64  # texts per forward pass (32-128 measured within noise)
    max_seq_length: int = 256  # MiniLM's limit; no Beauty text exceeds it (max 224 pieces)
    threads: int | None = None  # cores for the encode; None = torch's current thread count
    parallel: str = "batches"  # "batches": each core encodes whole batches on one thread;
    # "ops": every op split across the cores (torch intra-op threads, the older path)


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (otherwise bf16 is emulated and slower)."""
    import torch

    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(precision: str) -> str:
    """"fp32" or "bf16" for a configured precision ("auto" depends on the CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"text encoder precision {precision!r}: expected one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def encoder_tag(precision: str, max_seq_length: int) -> str:
    """Short settings tag for cache keys, e.g. ``"bf16-len256"`` (settings change vectors)."""
    return f"{resolve_precision(precision)}-len{max_seq_length}"


def saved_max_seq_length(model_dir: str | Path, default: int = 256) -> int:
    """``max_seq_length`` a sentence-transformers dir will load with (for cache keys)."""
    cfg = Path(model_dir) / "sentence_bert_config.json"
    if not cfg.exists():
        return default
    value = json.loads(cfg.read_text()).get("max_seq_length")
    return int(value) if value else default


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first; each index exactly once.

    lengths: (n,) token counts. The caller must scatter results back with these indices.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def token_lengths(model, texts: list[str]) -> np.ndarray:
    """(n,) word pieces per text as the model will see it (special tokens, truncation)."""
    ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length,
                          add_special_tokens=True)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))


def encode_plain(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Reference: ``SentenceTransformer.encode`` in fp32. (n, dim) float32 unit vectors."""
    emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                       convert_to_tensor=True, show_progress_bar=False)
    return emb.float().numpy()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_fast(model, texts: list[str], cfg: TextEncoderConfig = TextEncoderConfig(),
                progress: bool = True) -> np.ndarray:
    """(n, dim) float32 unit vectors, row i for texts[i]; parity with ``encode_plain`` is tested.

    Token-length batches + bf16 autocast + batch-parallel cores (see the section comment).
    Every batch goes through the model's own tokeniser and modules (transformer, pooling,
    normalisation), so the vectors are ``model.encode``'s; a batch is always encoded whole by
    one thread, so the result does not depend on ``threads`` or ``parallel``.
    """
    import torch
    from rich.progress import Progress

    from onefeed.embeddings.content import embedding_dim

    if cfg.parallel not in PARALLEL:
        raise ValueError(f"text encoder parallel {cfg.parallel!r}: expected one of {PARALLEL}")
    out = np.zeros((len(texts), embedding_dim(model)), dtype=np.float32)
    if not texts:
        return out
    bf16 = resolve_precision(cfg.precision) == "bf16"
    cores = cfg.threads or torch.get_num_threads()
    workers = cores if cfg.parallel == "batches" else 1
    seq_before, model.max_seq_length = model.max_seq_length, cfg.max_seq_length
    try:
        batches = length_batches(token_lengths(model, texts), cfg.batch_size)
        with _torch_threads(cores // workers), Progress(disable=not progress,
                                                        transient=True) as bar:
            task = bar.add_task("encoding item text", total=len(texts))
            tokenizer_lock = threading.Lock()  # HF fast tokenisers are not re-entrant

            def encode(worker: int) -> None:
                # autocast and inference mode are per-thread: each worker enters its own
                with torch.inference_mode(), \
                        torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    for idx in batches[worker::workers]:
                        with tokenizer_lock:
                            features = model.preprocess([texts[i] for i in idx])
                        emb = model(features)["sentence_embedding"].float()
                        out[idx] = torch.nn.functional.normalize(emb, dim=1).numpy()
                        bar.advance(task, len(idx))

            if workers == 1:
                encode(0)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(encode, range(workers)))  # list(): re-raise worker errors
    finally:
        model.max_seq_length = seq_before
    return out
