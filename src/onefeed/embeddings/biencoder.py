"""Search-tuned and multi-task bi-encoders (Spotify "Semantic IDs for joint search and rec" §3).

* search-tuned: MiniLM fine-tuned on (train weak query, item text) pairs with in-batch negatives
  (sentence-transformers ``MultipleNegativesRankingLoss``);
* multi-task (§3.2): the same encoder trained on search pairs *and* co-occurring item pairs from
  train-split sessions; each step sums the two contrastive losses (one batch of each).

CPU budget: one epoch over capped, seeded samples of pairs, ``max_seq_length`` 64. Only
split == "train" queries and events are read. Under ``torchrun`` the encoder trains in
DistributedDataParallel with the whole batch's negatives on every rank (``fine_tune``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np
import polars as pl
import torch

from onefeed.distributed import barrier, dist_info, gather_rows, split_rows, wrap
from onefeed.embeddings.content import load_encoder

Pair = tuple[str, str]


@dataclass
class BiEncoderConfig:
    RANGES: ClassVar[dict[str, str]] = {"max_search_pairs": ">= 0", "max_item_pairs": ">= 0",
        "epochs": ">= 1", "batch_size": ">= 2", "lr": "> 0", "max_seq_length": ">= 1"}
    max_search_pairs: int = 4096
    max_item_pairs: int = 4096
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    max_seq_length: int = 64
    seed: int = 0


def search_pairs(queries: pl.DataFrame, texts: list[str]) -> list[Pair]:
    """(query, item text) for every split == "train" weak query whose item has text."""
    train = queries.filter(pl.col("split") == "train").sort(["item", "query"])
    return [(q, texts[i]) for i, q in zip(train["item"].to_list(), train["query"].to_list())
            if q and texts[i]]


def item_pairs(sequences: list[np.ndarray], texts: list[str]) -> list[Pair]:
    """Distinct (item text, next item text) pairs of consecutive items in train sequences."""
    seen: set[tuple[int, int]] = set()
    out = []
    for seq in sequences:
        for a, b in zip(seq[:-1].tolist(), seq[1:].tolist()):
            key = (min(a, b), max(a, b))
            if a != b and key not in seen and texts[a] and texts[b]:
                seen.add(key)
                out.append((texts[a], texts[b]))
    return out


def sample(pairs: list[Pair], cap: int, seed: int) -> list[Pair]:
    """A seeded random subset of at most ``cap`` pairs, in shuffled order."""
    order = np.random.default_rng(seed).permutation(len(pairs))[:cap]
    return [pairs[i] for i in order]


def _batches(pairs: list[Pair], size: int, rng: np.random.Generator) -> list[list[Pair]]:
    order = rng.permutation(len(pairs))
    return [[pairs[i] for i in order[s:s + size]] for s in range(0, len(pairs) - 1, size)
            if len(order[s:s + size]) > 1]


def _tokenize(model, texts: list[str]) -> dict:
    fn = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
    return fn(texts)


def _embed_columns():
    try:  # sentence-transformers 6: one merged forward over the columns
        from sentence_transformers.base.losses.merged_forward import embed_columns
    except ImportError:
        def embed_columns(model, features):
            return [model(f)["sentence_embedding"] for f in features]
    return embed_columns


class ColumnEncoder(torch.nn.Module):
    """Tokenized columns -> sentence embeddings, as the module DistributedDataParallel wraps."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.embed = _embed_columns()

    def forward(self, features: list[dict]) -> list[torch.Tensor]:
        return self.embed(self.model, features)


def ddp_pair_loss(encoder: torch.nn.Module, loss_fn, model, batch: list[Pair], rank: int,
                  world: int) -> torch.Tensor:
    """The full batch's in-batch-negatives loss on every rank, this rank embedding only its
    rows ``rank::world`` (with gradients); the other ranks' embeddings are gathered without.

    Returned as ``world * loss``: DistributedDataParallel averages the ranks' gradients, and
    each rank's holds exactly the part flowing through its own rows, so the average is the
    one-process gradient of the whole batch (every pair still sees all others as negatives).
    """
    rows = split_rows(len(batch), world)
    mine = batch[rank::world] or batch[:1]  # an empty share still runs forward (DDP syncs)
    local = encoder([_tokenize(model, [a for a, _ in mine]), _tokenize(model, [b for _, b in mine])])
    columns = []
    for emb in local:
        parts = gather_rows(emb[: rows[rank]], rows)
        parts[rank] = emb[: rows[rank]]
        columns.append(torch.cat(parts))
    return loss_fn.compute_loss_from_embeddings(columns, None) * world


def save_encoder(model, out_dir: Path) -> None:
    """``model.save``; on a torchrun rank other than 0, where transformers writes no weights
    or config (it saves on rank 0 only), those two files are written here."""
    model.save(str(out_dir))
    if (out_dir / "model.safetensors").exists():
        return
    from safetensors.torch import save_file

    hf = model[0].auto_model
    hf.config.to_json_file(str(out_dir / "config.json"))
    save_file({k: v.detach().contiguous() for k, v in hf.state_dict().items()},
              str(out_dir / "model.safetensors"), metadata={"format": "pt"})


def fine_tune(pair_sets: list[list[Pair]], cfg: BiEncoderConfig, out_dir: str | Path | None,
              progress: bool = True):
    """Train MiniLM on one or more pair sets (losses summed per step); save to ``out_dir``.

    Under ``torchrun`` the encoder trains in DistributedDataParallel: every rank draws the same
    batches and embeds its share of each (:func:`ddp_pair_loss`); each rank saves to its own
    ``out_dir`` (None: nothing is saved). Returns (model, log with steps, pairs per set, seconds, losses).
    """
    from rich.progress import Progress
    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss)
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    pair_sets = [p for p in pair_sets if len(p) > 1]
    if not pair_sets:
        raise ValueError("fine_tune: no training pairs (need train queries or train sessions)")
    rank, world = dist_info()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = load_encoder(max_seq_length=cfg.max_seq_length)
    loss_fn = MultipleNegativesRankingLoss(model)
    encoder = wrap(ColumnEncoder(model), find_unused_parameters=True) if world > 1 else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    model.train()
    start, steps, losses = time.perf_counter(), 0, []
    with Progress(disable=not progress or rank != 0, transient=True) as bar:
        for _ in range(cfg.epochs):
            per_set = [_batches(p, cfg.batch_size, rng) for p in pair_sets]
            n_steps = max(len(b) for b in per_set)
            task = bar.add_task("fine-tuning bi-encoder", total=n_steps)
            for step in range(n_steps):
                loss = torch.zeros(())
                for batches in per_set:  # summed contrastive losses (Spotify §3.2)
                    batch = batches[step % len(batches)]
                    if encoder is not None:
                        loss = loss + ddp_pair_loss(encoder, loss_fn, model, batch, rank, world)
                        continue
                    feats = [_tokenize(model, [a for a, _ in batch]),
                             _tokenize(model, [b for _, b in batch])]
                    loss = loss + loss_fn(feats, None)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()) / world)
                steps += 1
                bar.advance(task)
    model.eval()
    if out_dir is not None:  # every rank saves to its own out_dir (the caller chooses)
        save_encoder(model, Path(out_dir))
    barrier()
    log = {"steps": steps, "pairs": [len(p) for p in pair_sets],
           "seconds": time.perf_counter() - start, "world_size": world, "losses": losses,
           "loss_first": losses[0], "loss_last_mean": float(np.mean(losses[-10:]))}
    return model, log
