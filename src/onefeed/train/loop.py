"""The one training loop: ``fit(model, task, cfg, out, config)``.

AdamW (:func:`make_optimizer`), linear warm-up then cosine decay (:func:`lr_at`), gradient
clipping and non-finite guards (:func:`guarded_step`), validation every ``eval_every`` epochs
with early stopping on the task's ``score`` after ``patience`` evaluations without
improvement, a wall-time limit, crash-consistent ``out/last`` + ``out/best`` checkpoints
(``onefeed.checkpoint.commit``) with exact resume (:func:`resume_state`), a rich progress
bar, and DDP under ``torchrun`` (gloo): the task's loss runs through
DistributedDataParallel, so gradients are averaged over ranks, and every decision
(skip a step, stop for time, stop early) is taken by all ranks together.

What is trained on and how it is scored is the task's (``onefeed.train.task.Task``).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from onefeed import checkpoint
from onefeed.artifacts import write_json
from onefeed.checkpoint import NonFiniteError
from onefeed.distributed import all_sum, any_rank, dist_info, wrap
from onefeed.train.config import TrainConfig
from onefeed.train.task import Task


# ---- distributed helpers: onefeed.distributed (one home for every training path) -----------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---- one step ------------------------------------------------------------------------------------
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
    if not any_rank(not finite):
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


class TaskObjective(torch.nn.Module):
    """``task.loss(model, batch)`` as a module's forward, so DistributedDataParallel sees it
    (a task may call any of the model's methods, not only its forward)."""

    def __init__(self, model: torch.nn.Module, task: Task) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        return self.task.loss(self.model, batch)


# ---- checkpoints ---------------------------------------------------------------------------------
def resume_state(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 rank: int = 0, world: int = 1) -> dict[str, Any] | None:
    """``checkpoint.resume`` on every rank; rank 0 first repairs an interrupted commit."""
    found = checkpoint.resume(out, model, optimizer) if rank == 0 else None
    if world > 1:
        dist.barrier()
        if rank:
            found = checkpoint.resume(out, model, optimizer, repair=False)
    return found


def record_rank_checksum(out: Path, model: torch.nn.Module, rank: int) -> None:
    """Each rank writes a checksum of its weights (DDP ranks must agree)."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    write_json(out / "ranks" / f"rank{rank}.json",
               {"sum": float(flat.sum()), "abs_sum": float(flat.abs().sum()),
                "first": flat[:8].tolist()})


# ---- the loop ------------------------------------------------------------------------------------
def progress_columns() -> tuple:
    """Rich progress columns of the training loop: bar, steps, times and a free info field."""
    from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))


def new_state(best_key: str = "best_score") -> dict[str, Any]:
    """The loop state of a fresh run (saved as last/state.json at every commit)."""
    return {"epoch": 0, "step": 0, best_key: None, "best_epoch": -1, "bad_evals": 0,
            "history": [], "train_seconds": 0.0, "skipped_steps": 0, "best": None}


def improves(score: float, best: float | None) -> bool:
    """Whether a validation score beats the best so far (None: nothing scored yet; a NaN
    score never improves)."""
    return not math.isnan(score) and (best is None or score > best)


def record_validation(state: dict[str, Any], valid: dict[str, float], best_key: str) -> bool:
    """Note a validation's score in ``state`` (best so far, or one more bad evaluation);
    returns whether it improved on the best."""
    if not improves(valid["score"], state[best_key]):
        state["bad_evals"] += 1
        return False
    state.update({best_key: valid["score"]}, best_epoch=state["epoch"], bad_evals=0,
                 best_valid=valid)
    return True


def fit(model: torch.nn.Module, task: Task, cfg: TrainConfig, out: str | Path,
        config: dict[str, Any], manifest: dict[str, Any] | None = None, resume: bool = True,
        name: str = "train", best_key: str = "best_score") -> dict[str, Any]:
    """Train ``model`` on ``task``; keep ``out/last`` (resume point) and ``out/best``.

    ``config`` is each checkpoint's config.json; ``manifest`` (with the world size added) is
    written to ``out/manifest.json`` by rank 0. ``best_key`` names the best score in the state
    (the recommender's runs call it ``best_ndcg10``). Returns the final state.
    """
    from rich.progress import Progress

    out = Path(out)
    rank, world = dist_info()
    optimizer = make_optimizer(model, cfg)
    total_steps = cfg.max_steps or task.steps_per_epoch(world) * cfg.epochs
    state = new_state(best_key)
    if resume:
        state = resume_state(out, model, optimizer, rank, world) or state
    objective = TaskObjective(model, task)
    step_loss = wrap(objective, find_unused_parameters=True) if world > 1 else objective
    if rank == 0 and manifest is not None:
        write_json(out / "manifest.json", {**manifest, "world_size": world})
    t_start = time.time() - state["train_seconds"]
    stop = state.get("stopped", False)
    with Progress(*progress_columns(), disable=rank != 0) as bar:
        bar_id = bar.add_task(name, total=total_steps, completed=state["step"], info="")
        while not stop and state["epoch"] < cfg.epochs and state["step"] < total_steps:
            epoch = state["epoch"]
            rng = np.random.default_rng([cfg.seed, epoch])
            objective.train()
            losses: list[float] = []
            parts: dict[str, list[float]] = {}
            for batch in task.batches(epoch, rng, rank, world):
                lr = lr_at(state["step"], total_steps, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, part = step_loss(batch)
                if guarded_step(loss, model, optimizer, cfg, state):
                    losses.append(loss.item())
                    for k, v in part.items():
                        parts.setdefault(k, []).append(v)
                state["step"] += 1
                recent = f"{np.mean(losses[-50:]):.3f}" if losses else "-"
                bar.update(bar_id, advance=1, info=f"epoch {epoch} loss {recent}")
                if state["step"] >= total_steps:
                    break
            state["epoch"] = epoch + 1
            last = state["epoch"] >= cfg.epochs or state["step"] >= total_steps
            over_time = any_rank(bool(cfg.time_limit_min)
                                 and time.time() - t_start > 60 * cfg.time_limit_min)
            improved = False
            if state["epoch"] % cfg.eval_every == 0 or last or over_time:
                model.eval()  # no dropout while validating
                with torch.no_grad():
                    valid = task.validate(model, rank, world)
                state["history"].append({
                    "epoch": state["epoch"], "step": state["step"],
                    "loss": float(np.mean(losses)) if losses else None,
                    "task_loss": {k: float(np.mean(x)) for k, x in parts.items()},
                    **{f"valid_{k}": x for k, x in valid.items()},
                    "skipped_steps": state.get("skipped_steps", 0),
                    "seconds": time.time() - t_start,
                    **(task.history_fields() if hasattr(task, "history_fields") else {})})
                improved = record_validation(state, valid, best_key)
                stop = any_rank(state["bad_evals"] >= cfg.patience or over_time)
                state["stopped"] = stop
                if rank == 0:
                    bar.console.print(f"epoch {state['epoch']}: valid "
                                      + " ".join(f"{k} {x:.4f}" for k, x in valid.items())
                                      + f" (best {state[best_key]:.4f} @ {state['best_epoch']})")
            state["train_seconds"] = time.time() - t_start
            if rank == 0:  # last/ then best/, consistently (onefeed.checkpoint.commit)
                checkpoint.commit(out, model, config, optimizer, state, improved,
                                  state[best_key])
    if rank == 0 and not (out / "best").exists():  # no validation ran: best/ = the last weights
        checkpoint.commit(out, model, config, optimizer, state, True, None)
    record_rank_checksum(out, model, rank)
    if world > 1:
        dist.barrier()
    return state


__all__ = ["Task", "all_sum", "dist_info", "fit", "guarded_step", "lr_at", "make_optimizer",
           "progress_columns", "resume_state", "seed_everything"]
