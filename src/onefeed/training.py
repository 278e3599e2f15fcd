"""One readable training loop for the generative recommender.

AdamW, linear warm-up then cosine decay, gradient clipping, early stopping on validation
NDCG@10, checkpoints (``onefeed.checkpoint``: safetensors weights, optimizer and RNG state,
checksums) with exact resume, guards against non-finite losses and gradients, rich progress
bars and fixed seeds. The same code runs under ``torchrun --nproc_per_node N``
(DDP, gloo): each rank trains on its shard of the windows, evaluates its shard of the
validation users, and metrics are summed across ranks so every rank takes the same
early-stopping decision.

    python -m onefeed.training --data runs/x/data --sid runs/x/sid/y --config c.toml --out DIR
    torchrun --nproc_per_node 2 -m onefeed.training ...   (same arguments)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.distributed as dist
from onefeed import checkpoint
from onefeed import config as config_lib
from onefeed.artifacts import git_commit, machine_info, write_json
from onefeed.checkpoint import NonFiniteError, load_optimizer  # noqa: F401 (re-exported)
from onefeed.data.schemas import Dataset
from onefeed.data.views import rec_cases, train_sequences
from onefeed.decoding.trie import Trie
from onefeed.evaluation.generative import RunProtocol, evaluate_cases
from onefeed.models import GenerativeRecommender, ModelConfig, build_config, build_model
from onefeed.objectives.generation import sid_nll
from onefeed.sid.table import SidTable
from onefeed.tasks.rec import length_bucketed_batches, rec_batch, sid_tensor, training_windows
from onefeed.tokens import Vocab


@dataclass
class TrainConfig:
    RANGES: ClassVar[dict[str, str]] = {"lr": "> 0", "weight_decay": ">= 0", "betas": "[0, 1)",
        "batch_size": ">= 1", "epochs": ">= 1", "max_steps": ">= 0", "warmup_steps": ">= 0",
        "min_lr_ratio": "[0, 1]", "grad_clip": ">= 0", "label_smoothing": "[0, 1)",
        "eval_every": ">= 1", "patience": ">= 1", "eval_beam": ">= 1", "eval_users": ">= 0",
        "threads": ">= 1", "time_limit_min": ">= 0", "max_skipped_steps": ">= 0"}
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int = 256
    epochs: int = 100
    max_steps: int = 0  # stop after this many optimizer steps (0 = no limit; for smoke tests)
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    eval_every: int = 5  # epochs between validation runs
    patience: int = 4  # validation runs without improvement before stopping
    eval_beam: int = 20
    eval_users: int = 0  # validation users per evaluation (0 = all)
    seed: int = 0
    threads: int = 1
    time_limit_min: float = 0.0  # stop (and keep the best checkpoint) after this wall time
    nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss or gradient: "stop" the run, or "skip" the step
    max_skipped_steps: int = 10  # with "skip": stop anyway after more skipped steps than this


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---- distributed helpers -----------------------------------------------------------------------
def dist_info() -> tuple[int, int]:
    """(rank, world_size), initialising the gloo process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def all_sum(values: np.ndarray) -> np.ndarray:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.as_tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.numpy()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    ratio = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * ratio


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and "tok" not in name and "item" not in name
         and "pos" not in name and "prefix" not in name else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=cfg.betas)


def guarded_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 cfg: TrainConfig, state: dict[str, Any]) -> bool:
    """Backward, clip and step, unless the loss or the gradients are not finite.

    Then ``cfg.nonfinite == "stop"`` raises :class:`NonFiniteError`; ``"skip"`` drops the
    step, counts it in ``state["skipped_steps"]`` and raises once more than
    ``cfg.max_skipped_steps`` were skipped. Returns whether the optimizer stepped. DDP ranks
    agree (the decision is summed over ranks).
    """
    if cfg.nonfinite not in ("stop", "skip"):
        raise ValueError(f"train.nonfinite must be 'stop' or 'skip', not {cfg.nonfinite!r}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = grad_norm(model, cfg.grad_clip)
    finite = bool(torch.isfinite(loss.detach()) & torch.isfinite(norm))
    if all_sum(np.array([float(not finite)]))[0] == 0:
        optimizer.step()
        return True
    optimizer.zero_grad(set_to_none=True)
    what = (f"step {state['step']}: non-finite loss ({loss.item():.4g}) or gradients (norm "
            f"{norm.item():.4g})")
    if cfg.nonfinite == "stop":
        raise NonFiniteError(f"{what}; stopped (train.nonfinite=stop; 'skip' skips such steps). "
                             "The last checkpoint saved before it is intact.")
    state["skipped_steps"] = state.get("skipped_steps", 0) + 1
    if state["skipped_steps"] > cfg.max_skipped_steps:
        raise NonFiniteError(f"{what}; {state['skipped_steps']} steps skipped, more than "
                             f"train.max_skipped_steps={cfg.max_skipped_steps}: stopped")
    return False


def grad_norm(model: torch.nn.Module, clip: float) -> torch.Tensor:
    """Total L2 norm of the gradients (fused per-tensor norms), clipped to ``clip`` if > 0."""
    params = [p for p in model.parameters() if p.grad is not None]
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    if not params:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in params])))


# ---- checkpoints (format and commit in onefeed.checkpoint) -------------------------------------
def checkpoint_config(run_cfg: Any, vocab: Vocab) -> dict[str, Any]:
    """config.json of a checkpoint: the resolved run config and the vocabulary."""
    return {"run": config_lib.to_dict(run_cfg), "vocab": vocab.to_dict()}


def save_checkpoint(directory: Path, model: torch.nn.Module, run_cfg: Any, vocab: Vocab,
                    optimizer: torch.optim.Optimizer | None = None,
                    state: dict[str, Any] | None = None) -> None:
    """One checkpoint directory: weights, config.json, optionally optimizer and state, with a
    checksum manifest (see ``onefeed.checkpoint``)."""
    checkpoint.save_checkpoint(directory, model, checkpoint_config(run_cfg, vocab), optimizer,
                               state)


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


# ---- the loop ------------------------------------------------------------------------------
def progress_columns() -> tuple:
    """Rich progress columns of the training loops: bar, steps, times and a free info field."""
    from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))


def train(ds: Dataset, sid: SidTable, run_cfg: RunConfig, out: str | Path,
          resume: bool = True, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, early-stop on validation NDCG@10, keep ``out/best`` and ``out/last``."""
    from rich.progress import Progress

    out = Path(out)
    rank, world = dist_info()
    cfg = run_cfg.train
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    sid.check_dataset(ds)  # a SID table built from another dataset: refuse (issue 19)
    if sid.n_items != ds.n_items:
        raise ValueError(f"SID table has {sid.n_items} items, dataset has {ds.n_items}")
    vocab = Vocab.build(sid.codebook_sizes)
    run_cfg = dataclasses.replace(run_cfg, model=build_config(run_cfg.model, vocab, ds.n_items))
    model = build_model(run_cfg.model)
    optimizer = make_optimizer(model, cfg)
    codes = sid_tensor(sid)
    trie = Trie.from_table(sid.codes, sid.codebook_sizes)
    windows = training_windows(train_sequences(ds), run_cfg.model.max_len)
    valid = rec_cases(ds, "valid", run_cfg.model.max_len)
    if cfg.eval_users and cfg.eval_users < len(valid.users):
        pick = np.random.default_rng(cfg.seed).choice(len(valid.users), cfg.eval_users, False)
        valid = type(valid)(*(a[np.sort(pick)] for a in valid))
    valid_shard = np.arange(rank, len(valid.users), world)
    steps_per_epoch = (len(windows) // world) // cfg.batch_size + \
        (1 if (len(windows) // world) % cfg.batch_size else 0)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_ndcg10": -1.0, "best_epoch": -1,
                             "bad_evals": 0, "history": [], "train_seconds": 0.0,
                             "skipped_steps": 0, "best": None}
    if resume:
        state = resume_state(out, model, optimizer, rank, world) or state
    saved_config = checkpoint_config(run_cfg, vocab)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if rank == 0:
        write_json(out / "manifest.json", {
            "kind": "generative-recommender", "config": config_lib.to_dict(run_cfg),
            "n_windows": int(len(windows)), "world_size": world, "commit": git_commit(),
            "machine": machine_info(), **(provenance or {})})
    protocol = RunProtocol("valid", run_cfg.model.max_len, beam=cfg.eval_beam)
    t_start = time.time() - state["train_seconds"]
    stop = state.get("stopped", False)
    with Progress(*progress_columns(), disable=rank != 0) as bar:
        task = bar.add_task("train", total=total_steps, completed=state["step"], info="")
        while not stop and state["epoch"] < cfg.epochs and state["step"] < total_steps:
            epoch = state["epoch"]
            rng = np.random.default_rng([cfg.seed, epoch])
            shard = rng.permutation(len(windows))[rank::world][: len(windows) // world]
            ddp.train()
            losses = []
            for rows in length_bucketed_batches(windows[shard], cfg.batch_size, rng):
                batch = rec_batch(windows[shard[rows]], codes, vocab)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(state["step"], total_steps, cfg)
                logits = ddp(batch.events, batch.target_codes)
                targets = batch.target_codes[batch.target_codes[..., 0] >= 0]
                loss = sid_nll(logits, targets, cfg.label_smoothing)
                if guarded_step(loss, model, optimizer, cfg, state):
                    losses.append(loss.item())
                state["step"] += 1
                bar.update(task, advance=1, info=f"epoch {epoch} loss {np.mean(losses[-50:]):.3f}")
                if state["step"] >= total_steps:
                    break
            state["epoch"] = epoch + 1
            last_epoch = state["epoch"] >= cfg.epochs or state["step"] >= total_steps
            over_time = bool(cfg.time_limit_min) and time.time() - t_start > 60 * cfg.time_limit_min
            over_time = bool(all_sum(np.array([float(over_time)]))[0] > 0)  # ranks must agree
            improved = False
            if state["epoch"] % cfg.eval_every == 0 or last_epoch or over_time:
                ndcg = _validate(model, valid, valid_shard, codes, vocab, trie, protocol)
                state["history"].append({"epoch": state["epoch"], "step": state["step"],
                                         "loss": float(np.mean(losses)) if losses else None,
                                         "valid_ndcg@10": ndcg["ndcg@10"],
                                         "valid_recall@10": ndcg["recall@10"],
                                         "skipped_steps": state.get("skipped_steps", 0),
                                         "seconds": time.time() - t_start})
                improved = ndcg["ndcg@10"] > state["best_ndcg10"]
                if improved:
                    state.update(best_ndcg10=ndcg["ndcg@10"], best_epoch=state["epoch"],
                                 bad_evals=0, best_valid=ndcg)
                else:
                    state["bad_evals"] += 1
                stop = state["bad_evals"] >= cfg.patience or over_time
                state["stopped"] = stop
                if rank == 0:
                    bar.console.print(f"epoch {state['epoch']}: valid ndcg@10 "
                                      f"{ndcg['ndcg@10']:.4f} recall@10 {ndcg['recall@10']:.4f}"
                                      f" (best {state['best_ndcg10']:.4f} @ {state['best_epoch']})")
            state["train_seconds"] = time.time() - t_start
            if rank == 0:  # last/ then best/, consistently (onefeed.checkpoint.commit)
                checkpoint.commit(out, model, saved_config, optimizer, state, improved,
                                  state["best_ndcg10"])
    if rank == 0 and not (out / "best").exists():
        checkpoint.commit(out, model, saved_config, optimizer, state, True, None)
    _record_rank_checksum(out, model, rank)
    if world > 1:
        dist.barrier()
    return state


def resume_state(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 rank: int = 0, world: int = 1) -> dict[str, Any] | None:
    """``checkpoint.resume`` on every rank; rank 0 first repairs an interrupted commit."""
    found = checkpoint.resume(out, model, optimizer) if rank == 0 else None
    if world > 1:
        dist.barrier()
        if rank:
            found = checkpoint.resume(out, model, optimizer, repair=False)
    return found


def _validate(model: GenerativeRecommender, valid: Any, shard: np.ndarray, codes: torch.Tensor,
              vocab: Vocab, trie: Trie, protocol: RunProtocol) -> dict[str, float]:
    """Validation metrics summed over ranks (each rank evaluates its shard of users)."""
    res = evaluate_cases(model, valid.users[shard], valid.history[shard], valid.targets[shard],
                         codes, vocab, trie, protocol)
    names = ["ndcg@10", "recall@10"]
    sums = np.array([res.per_user[n].sum() for n in names] + [res.per_user.height], np.float64)
    sums = all_sum(sums)
    return {n: float(sums[i] / max(sums[-1], 1)) for i, n in enumerate(names)}


def _record_rank_checksum(out: Path, model: torch.nn.Module, rank: int) -> None:
    """Each rank writes a checksum of its weights (DDP ranks must agree)."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    write_json(out / "ranks" / f"rank{rank}.json",
               {"sum": float(flat.sum()), "abs_sum": float(flat.abs().sum()),
                "first": flat[:8].tolist()})


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
    parser = argparse.ArgumentParser(prog="python -m onefeed.training")
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
