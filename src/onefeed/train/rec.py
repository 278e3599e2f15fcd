"""Training of the generative recommender (NRIP only): its run config and task.

``train`` builds the model and a :class:`RecTask` and runs the one loop,
``onefeed.train.loop.fit`` (AdamW, warm-up + cosine, clipping, non-finite guards, early
stopping on validation NDCG@10, checkpoints with exact resume, DDP); the loop's settings,
``TrainConfig``, are ``onefeed.train.config``'s. Under ``torchrun --nproc_per_node N`` (DDP,
gloo) each rank trains on its shard of the windows and evaluates its shard of the validation
users; metrics are summed across ranks so every rank takes the same early-stopping decision.

    python -m onefeed.train.rec --data runs/x/data --sid runs/x/sid/y --config c.toml --out DIR
    torchrun --nproc_per_node 2 -m onefeed.train.rec ...   (same arguments)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from onefeed import checkpoint
from onefeed import config as config_lib
from onefeed.artifacts import git_commit, machine_info
from onefeed.checkpoint import checkpoint_config
from onefeed.data.schemas import Dataset
from onefeed.data.views import rec_cases, train_sequences
from onefeed.decoding.trie import Trie
from onefeed.evaluation.generative import RunProtocol, evaluate_cases
from onefeed.models import GenerativeRecommender, ModelConfig, build_config, build_model
from onefeed.objectives.generation import sid_nll
from onefeed.sid.table import SidTable
from onefeed.tasks.rec import (RecBatch, length_bucketed_batches, rec_batch, sid_tensor,
                               training_windows)
from onefeed.tokens import Vocab
from onefeed.train.config import TrainConfig
from onefeed.train.loop import all_sum, fit, seed_everything
from onefeed.train.task import rank_shard, steps_for


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---- checkpoints (format and commit in onefeed.checkpoint) -------------------------------------
def load_model(directory: str | Path, run_cls: type = RunConfig
               ) -> tuple[GenerativeRecommender, Any, Vocab]:
    """Rebuild a model from ``directory``'s config.json (read as ``run_cls``) and load its
    safetensors weights, verified against the checkpoint's manifest."""
    directory = Path(directory)
    weights = checkpoint.load_weights(directory)
    info = json.loads((directory / "config.json").read_text())
    run_cfg = config_lib.from_dict(run_cls, info["run"])
    model = build_model(run_cfg.model)
    model.load_state_dict(weights)
    model.eval()
    return model, run_cfg, Vocab.from_dict(info["vocab"])


# ---- the task: next recommendation item ---------------------------------------------------
class RecTask:
    """NRIP alone (TIGER-style generative retrieval): the next item's semantic ID after a
    history window; scored by validation NDCG@10 (each rank decodes its shard of users)."""

    def __init__(self, ds: Dataset, sid: SidTable, vocab: Vocab, run_cfg: RunConfig) -> None:
        cfg, max_len = run_cfg.train, run_cfg.model.max_len
        self.vocab, self.batch_size, self.label_smoothing = vocab, cfg.batch_size, \
            cfg.label_smoothing
        self.codes = sid_tensor(sid)
        self.trie = Trie.from_table(sid.codes, sid.codebook_sizes)
        self.windows = training_windows(train_sequences(ds), max_len)
        valid = rec_cases(ds, "valid", max_len)
        if cfg.eval_users and cfg.eval_users < len(valid.users):
            pick = np.random.default_rng(cfg.seed).choice(len(valid.users), cfg.eval_users, False)
            valid = type(valid)(*(a[np.sort(pick)] for a in valid))
        self.valid = valid
        self.protocol = RunProtocol("valid", max_len, beam=cfg.eval_beam)

    def steps_per_epoch(self, world: int) -> int:
        return steps_for(len(self.windows), self.batch_size, world)

    def batches(self, epoch: int, rng: np.random.Generator, rank: int, world: int
                ) -> Iterator[RecBatch]:
        shard = rank_shard(len(self.windows), rng, rank, world)
        for rows in length_bucketed_batches(self.windows[shard], self.batch_size, rng):
            yield rec_batch(self.windows[shard[rows]], self.codes, self.vocab)

    def loss(self, model: torch.nn.Module, batch: RecBatch
             ) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch.events, batch.target_codes)
        targets = batch.target_codes[batch.target_codes[..., 0] >= 0]
        loss = sid_nll(logits, targets, self.label_smoothing)
        return loss, {"NRIP": loss.item()}

    def validate(self, model: torch.nn.Module, rank: int, world: int) -> dict[str, float]:
        """NDCG@10 and Recall@10 on the validation users, summed over ranks."""
        v, shard = self.valid, np.arange(rank, len(self.valid.users), world)
        res = evaluate_cases(model, v.users[shard], v.history[shard], v.targets[shard],
                             self.codes, self.vocab, self.trie, self.protocol)
        names = ["ndcg@10", "recall@10"]
        sums = all_sum(np.array([res.per_user[n].sum() for n in names] + [res.per_user.height],
                                np.float64))
        out = {n: float(sums[i] / max(sums[-1], 1)) for i, n in enumerate(names)}
        return {**out, "score": out["ndcg@10"]}


def train(ds: Dataset, sid: SidTable, run_cfg: RunConfig, out: str | Path,
          resume: bool = True, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, early-stop on validation NDCG@10, keep ``out/best`` and ``out/last``."""
    cfg = run_cfg.train
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    sid.check_dataset(ds)  # a SID table built from another dataset: refuse (issue 19)
    if sid.n_items != ds.n_items:
        raise ValueError(f"SID table has {sid.n_items} items, dataset has {ds.n_items}")
    vocab = Vocab.build(sid.codebook_sizes)
    run_cfg = dataclasses.replace(run_cfg, model=build_config(run_cfg.model, vocab, ds.n_items))
    model = build_model(run_cfg.model)
    task = RecTask(ds, sid, vocab, run_cfg)
    manifest = {"kind": "generative-recommender", "config": config_lib.to_dict(run_cfg),
                "n_windows": int(len(task.windows)), "commit": git_commit(),
                "machine": machine_info(), **(provenance or {})}
    return fit(model, task, cfg, out, checkpoint_config(run_cfg, vocab), manifest, resume,
               name="train", best_key="best_ndcg10")


def load_run_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    return config_lib.load(RunConfig, path, overrides)


def run(data: str | Path, sid_dir: str | Path, config_path: str | Path | None, out: str | Path,
        overrides: list[str] | None = None, resume: bool = True) -> dict[str, Any]:
    """Load the inputs, train, and record where they came from."""
    ds = Dataset.load(data)
    sid = SidTable.load(sid_dir)
    run_cfg = load_run_config(config_path, overrides)
    provenance = {**checkpoint.input_record(data, sid_dir),
                  "config_file": str(config_path) if config_path else None,
                  "overrides": list(overrides or [])}
    return train(ds, sid, run_cfg, out, resume=resume, provenance=provenance)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m onefeed.train.rec")
    parser.add_argument("--data", required=True)
    parser.add_argument("--sid", required=True)
    parser.add_argument("--config")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args(argv)
    run(args.data, args.sid, args.config, args.out, args.overrides, not args.no_resume)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
