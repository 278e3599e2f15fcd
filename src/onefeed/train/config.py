"""``TrainConfig``: the one loop's settings (``onefeed.train.loop.fit``), shared by every run
config that trains through it (rec, joint, UniSearch, OneBar)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


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
