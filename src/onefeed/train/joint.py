"""Training loop of the joint model (GenSAR §3.3-3.4): NRIP + NSIP + NSQP + DESC2ID + ID2DESC,
optionally with OneFeed's SID-query alignment (ALIGN, §3.7) and candidate-enhancement
consistency (CONSIST, §3.8), and per-task gradient-norm scaling (``tasks.balance``).

One optimizer step sums the weighted task losses of one batch of history windows (every
position trained in one pass: its task is decided by the next event, see ``tasks.joint``) plus
a batch of items for the two history-free text-alignment tasks. Early stopping watches the
mean of validation NDCG@10 over the item tasks with non-zero weight (recommendation on each
user's valid target; personalised search on the valid held-out queries). :class:`JointTask`
is that objective; the loop (schedule, optimizer, checkpoints, DDP) is
``onefeed.train.loop.fit``, shared with ``onefeed.train.rec``.

    onefeed train-joint --data runs/beauty/data --sid runs/beauty/sid/content-joint \
        --config configs/model/beauty-joint.toml --out runs/beauty/model/joint-seed0
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
import torch

from onefeed import checkpoint
from onefeed import config as config_lib
from onefeed.artifacts import git_commit, machine_info
from onefeed.data.schemas import Dataset
from onefeed.evaluation.joint import JointPredictor
from onefeed.evaluation.metrics import ndcg_at_k, target_ranks
from onefeed.models import ModelConfig, build_model
from onefeed.models.joint import JointModel, text_vocab_tokens
from onefeed.objectives.alignment import bpr, info_nce, sequence_log_prob
from onefeed.objectives.balance import ema, equalising_scales, pcgrad_coefficients
from onefeed.objectives.generation import sid_nll, text_nll
from onefeed.tasks import cross_task
from onefeed.tasks.joint import (NRIP, NSIP, NSQP, S_I, S_Q, IdLayout, JointBatch, JointData,
                                 encode_texts, item_texts, joint_batch, joint_data,
                                 path_code_tensors, training_windows)
from onefeed.tasks.rec import length_bucketed_batches
from onefeed.tokens import Vocab
from onefeed.checkpoint import checkpoint_config
from onefeed.train.config import TrainConfig
from onefeed.train.loop import fit, seed_everything
from onefeed.train.rec import load_model
from onefeed.train.task import rank_shard, steps_for


@dataclass
class TaskConfig:
    RANGES: ClassVar[dict[str, str]] = {"nrip": ">= 0", "nsip": ">= 0", "nsqp": ">= 0",
        "desc2id": ">= 0", "id2desc": ">= 0", "desc_batch": ">= 1", "id2desc_batch": ">= 0",
        "max_text_targets": ">= 1", "max_query_words": ">= 1", "max_desc_words": ">= 1",
        "valid_search_users": ">= 0", "max_history_items": ">= 0", "align": ">= 0",
        "align_temperature": "> 0", "align_batch": ">= 2", "consistency": ">= 0",
        "consistency_k": ">= 1", "consistency_batch": ">= 1", "balance_every": ">= 1",
        "balance_momentum": "(0, 1]", "pcgrad_every": ">= 1"}
    identifier: str = "auto"  # IdLayout.load: auto | single | semantic | collab
    nrip: float = 1.0  # next recommendation item (GenSAR §3.3.1)
    nsip: float = 1.0  # next search item (§3.3.2)
    nsqp: float = 0.3  # next search query (§3.3.3)
    desc2id: float = 0.5  # item text -> search identifier (§3.3.4)
    id2desc: float = 0.1  # identifier -> item text (§3.3.4)
    behaviour_tokens: bool = True  # False: GenSAR Table 5 "w/o behaviour token"
    desc_batch: int = 128  # items per step for DESC2ID
    id2desc_batch: int = 32  # of those, items per step for ID2DESC (the text head is dear)
    max_text_targets: int = 64  # NSQP positions per step (sampled)
    max_query_words: int = 12
    max_desc_words: int = 16
    valid_search_users: int = 2000  # validation cases per item task (0 = all)
    max_history_items: int = 20  # item events of history at evaluation (TIGER: 20; 0 = no cap)
    # OneFeed cross-task objectives (docs/JOINT.md "OneFeed objectives"); 0 = off
    align: float = 0.0  # SID-query InfoNCE (OneFeed §3.7, Eq. 9; gamma of Eq. 11)
    align_temperature: float = 0.07  # tau of Eq. 9
    align_batch: int = 64  # (query, item) training pairs per step (the in-batch candidates)
    consistency: float = 0.0  # BPR over BM25 candidates (OneFeed §3.8, Eq. 10; delta of Eq. 11)
    consistency_k: int = 20  # BM25 candidates retrieved per training query
    consistency_batch: int = 64  # (positive, negative) pairs per step
    # per-task gradient balancing (docs/JOINT.md): "gradnorm" = gradient-norm loss scaling;
    # "pcgrad" = PCGrad on every parameter two tasks share; "pcgrad-last" = PCGrad's task
    # coefficients from the last encoder block's gradients, applied as the step's task weights
    balance: Literal["none", "gradnorm", "pcgrad", "pcgrad-last"] = "none"
    balance_every: int = 50  # steps between gradient-norm measurements
    balance_momentum: float = 0.1  # EMA momentum of the task scales
    pcgrad_every: int = 1  # pcgrad-last: steps of an epoch between coefficient measurements
    # NRIP's targets (tasks.joint.joint_batch): "feed" = next feed click (GenSAR); "all" = the
    # next item engaged with, a search click's item too (predicted before its query)
    nrip_targets: Literal["feed", "all"] = "feed"


@dataclass
class JointRunConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(arch="joint", words=True))
    train: TrainConfig = field(default_factory=TrainConfig)
    tasks: TaskConfig = field(default_factory=TaskConfig)


def load_run_config(path: str | Path | None, overrides: list[str] | None = None
                    ) -> JointRunConfig:
    return config_lib.load(JointRunConfig, path, overrides)


def item_task_weights(t: TaskConfig) -> dict[str, float]:
    return {"NRIP": t.nrip, "NSIP": t.nsip}


def task_weights(t: TaskConfig) -> dict[str, float]:
    """Each task's weight, in the order the losses are summed (Eq. 11 mapping: docs/JOINT.md)."""
    return {"NRIP": t.nrip, "NSIP": t.nsip, "NSQP": t.nsqp, "DESC2ID": t.desc2id,
            "ID2DESC": t.id2desc, "ALIGN": t.align, "CONSIST": t.consistency}


@dataclass
class Prepared:
    """Everything the loop and the predictor derive from (dataset, SID dir, config)."""

    layout: IdLayout
    vocab: Vocab
    jd: JointData
    descs: np.ndarray  # (n_items, W) word pieces of each item's text
    model_cfg: ModelConfig
    text_tokens: torch.Tensor


def prepare(ds: Dataset, sid_dir: str | Path, run_cfg: JointRunConfig) -> Prepared:
    t = run_cfg.tasks
    layout = IdLayout.load(sid_dir, t.identifier)
    from onefeed.sid.table import check_dataset
    check_dataset(sid_dir, ds)  # a SID build from another dataset: refuse (issue 19)
    layout.check_unique()
    if layout.codes.shape[0] != ds.n_items:
        raise ValueError(f"SID table has {layout.codes.shape[0]} items, dataset {ds.n_items}")
    vocab = Vocab.build(layout.codebook_sizes)
    eval_q = ds.eval_queries["query"].unique().to_list()
    jd = joint_data(ds, vocab, t.max_query_words, extra_queries=eval_q)
    descs = encode_texts(item_texts(ds), vocab, t.max_desc_words)
    train_q = np.unique(jd.query[(jd.split == 0) & (jd.behaviour == S_Q)])
    # output words: training query text and item text only (never held-out query text)
    text_tokens = text_vocab_tokens(vocab, [torch.as_tensor(jd.query_words[train_q]),
                                            torch.as_tensor(descs)])
    m = dataclasses.replace(
        run_cfg.model, arch="joint", words=True, codebook_sizes=tuple(layout.codebook_sizes),
        n_items=ds.n_items, vocab_size=vocab.size, sid_offsets=tuple(vocab.sid_offsets),
        behaviour_offset=vocab.behaviour_offset, n_text_vocab=int(len(text_tokens)),
        rec_cols=tuple(layout.rec_cols), search_cols=tuple(layout.search_cols),
        max_text_len=max(run_cfg.model.max_text_len, t.max_query_words, t.max_desc_words))
    return Prepared(layout, vocab, jd, descs, m, text_tokens)


def load_joint(directory: str | Path) -> tuple[JointModel, JointRunConfig, Vocab]:
    return load_model(directory, JointRunConfig)  # type: ignore[return-value]


def predictor(model: JointModel, run_cfg: JointRunConfig, ds: Dataset, sid_dir: str | Path
              ) -> JointPredictor:
    p = prepare(ds, sid_dir, run_cfg)
    if tuple(p.layout.rec_cols) != tuple(model.cfg.rec_cols) or \
            tuple(p.layout.codebook_sizes) != tuple(model.cfg.codebook_sizes):
        raise ValueError(f"{sid_dir}: identifier layout differs from the model's")
    return JointPredictor(model, p.layout, p.jd, p.vocab, run_cfg.tasks.behaviour_tokens,
                          max_items=run_cfg.tasks.max_history_items)


# ---- one step ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointStep:
    """One step's examples: a batch of history windows plus the step's random picks."""

    batch: JointBatch  # (B, T) positions; the task of each is decided by the next event
    text_at: torch.Tensor | None  # (N, 2) (row, position) of the NSQP targets trained, or None
    items: torch.Tensor | None  # (desc_batch,) items of DESC2ID; the first id2desc_batch: ID2DESC
    align: torch.Tensor | None = None  # (m, 2) (query row, item) training pairs of ALIGN
    consist_at: torch.Tensor | None = None  # (n, 2) (row, position) of NRIP targets: positives
    consist_neg: torch.Tensor | None = None  # (n,) a BM25 candidate negative per position
    order: tuple[int, ...] | None = None  # PCGrad: the step's random order of the weighted tasks
    measure: bool = True  # pcgrad-last: measure the coefficients at this step (else reuse)


@dataclass(frozen=True)
class CrossTaskData:
    """Precomputed once per run from the training split (``tasks.cross_task``)."""

    align_pairs: np.ndarray  # (P, 2) (query row, item)
    negatives: cross_task.Pool  # per user, BM25 candidates the user did not interact with


def cross_task_data(ds: Dataset, p: Prepared, t: TaskConfig,
                    negatives: cross_task.Pool | None = None) -> CrossTaskData:
    """ALIGN pairs and CONSIST negatives of the switched-on objectives (empty when off).

    ``negatives``: explicit per-user negatives (e.g. items a user skipped in a served list,
    ``onefeed.bench.closed_loop``) joined to the BM25 candidates of the CONSIST pool; items the
    user has train events on are dropped from it (``cross_task.merge_pools``)."""
    pairs = np.zeros((0, 2), dtype=np.int64)
    if t.align:
        held = set(zip(ds.eval_queries["query"].to_list(), ds.eval_queries["item"].to_list()))
        pairs = cross_task.align_pairs(p.jd, held)
    pool = cross_task.Pool(np.zeros(p.jd.n_users + 1, dtype=np.int64), np.zeros(0, np.int64))
    if t.consistency:
        from onefeed.search.bm25 import BM25Config, BM25Retriever

        bm25 = BM25Retriever()
        bm25.fit(ds, BM25Config())
        pool = cross_task.consistency_negatives(p.jd, bm25.retrieve, t.consistency_k)
        if negatives is not None:
            pool = cross_task.merge_pools(p.jd, pool, negatives)
    return CrossTaskData(pairs, pool)


def joint_step(windows: np.ndarray, p: Prepared, codes: dict[str, torch.Tensor], t: TaskConfig,
               rng: np.random.Generator, cross: CrossTaskData | None = None) -> JointStep:
    """Build one step's batch and draw its samples (NSQP positions, DESC items, then the
    switched-on cross-task samples: nothing more is drawn from ``rng`` when they are off)."""
    batch = joint_batch(windows, p.jd, codes, p.vocab, t.behaviour_tokens, t.nrip_targets)
    text_at = None
    sel = (batch.task == NSQP).nonzero()
    if t.nsqp and len(sel):
        if len(sel) > t.max_text_targets:
            sel = sel[torch.as_tensor(rng.choice(len(sel), t.max_text_targets, replace=False))]
        text_at = sel
    items = None
    if t.desc2id or t.id2desc:
        items = torch.as_tensor(rng.choice(len(p.descs), min(t.desc_batch, len(p.descs)),
                                           replace=False))
    align = consist_at = consist_neg = None
    if cross is not None and t.align and len(cross.align_pairs) >= 2:
        align = torch.as_tensor(cross_task.sample_distinct_pairs(cross.align_pairs,
                                                                 t.align_batch, rng))
    if cross is not None and t.consistency:
        consist_at, consist_neg = _consistency_samples(windows, batch, p.jd, cross.negatives,
                                                       t.consistency_batch, rng)
    return JointStep(batch, text_at, items, align, consist_at, consist_neg)


def _consistency_samples(windows: np.ndarray, batch: JointBatch, jd: JointData,
                         pool: cross_task.Pool, n: int, rng: np.random.Generator
                         ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Up to ``n`` NRIP positions of the batch (positive: their next item) with one
    negative each from the window's user's BM25 pool; (None, None) when there is none."""
    sel = (batch.task == NRIP).nonzero().numpy()
    first = windows[np.arange(len(windows)), (windows >= 0).argmax(1)]  # a train event
    users = np.searchsorted(jd.user_start, first, side="right") - 1
    neg = cross_task.sample_negatives(pool, users[sel[:, 0]], rng) if len(sel) else \
        np.zeros(0, dtype=np.int64)
    sel, neg = sel[neg >= 0], neg[neg >= 0]
    if not len(sel):
        return None, None
    if len(sel) > n:
        keep = np.sort(rng.choice(len(sel), n, replace=False))
        sel, neg = sel[keep], neg[keep]
    return torch.as_tensor(sel), torch.as_tensor(neg)


def joint_loss(model: JointModel, p: Prepared, step: JointStep, codes: dict[str, torch.Tensor],
               path_codes: dict[str, torch.Tensor], t: TaskConfig, label_smoothing: float = 0.0,
               scales: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the task losses on one step; also each task's loss value.
    ``label_smoothing`` (``train.label_smoothing``) applies to the identifier tasks (NRIP, NSIP,
    DESC2ID), as in the item-only core's recipe; ``scales`` (``tasks.balance``) multiply the
    task weights."""
    losses = task_losses(model, p, step, codes, path_codes, t, label_smoothing)
    return weighted_sum(losses, task_weights(t), scales, model)


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float],
                 scales: dict[str, float] | None, model: torch.nn.Module
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """(sum of weight * scale * loss, each loss's value), summed in ``losses``' order."""
    total = next(model.parameters()).new_zeros(())
    for name, loss in losses.items():
        w = weights[name] if scales is None else weights[name] * scales.get(name, 1.0)
        total = total + w * loss
    return total, {name: loss.item() for name, loss in losses.items()}


def task_losses(model: JointModel, p: Prepared, step: JointStep, codes: dict[str, torch.Tensor],
                path_codes: dict[str, torch.Tensor], t: TaskConfig, label_smoothing: float = 0.0
                ) -> dict[str, torch.Tensor]:
    """The unweighted loss of each task with non-zero weight and examples in ``step``."""
    batch = step.batch
    h = _TaskStates(model, batch.events)
    out: dict[str, torch.Tensor] = {}
    for path, name, w, item in (("rec", "NRIP", t.nrip, batch.rec_item),
                                ("search", "NSIP", t.nsip,
                                 batch.target_item.masked_fill(batch.task != NSIP, -1))):
        sel = item >= 0
        if not w or not sel.any():
            continue
        hh = model.head_input(h[name][sel], name)
        target = path_codes[path][item[sel]]
        out[name] = sid_nll(model.sid_logits(hh, target, path), target, label_smoothing)
    if step.text_at is not None:
        sel = step.text_at
        hh = h["NSQP"][sel[:, 0], sel[:, 1]]
        words = batch.target_words[sel[:, 0], sel[:, 1]]
        logits, targets = model.text_loss_inputs(model.head_input(hh, "NSQP"), words)
        out["NSQP"] = text_nll(logits[None], targets[None])
    beh = lambda name: p.vocab.behaviour(name) if t.behaviour_tokens else 1  # noqa: E731
    if step.items is not None:
        items = step.items
        words = torch.as_tensor(p.descs)[items]
        if t.desc2id:
            st = model.head_input(model.text_state(words, beh("search_query"), "DESC2ID"),
                                  "DESC2ID")
            target = path_codes["search"][items]
            out["DESC2ID"] = sid_nll(model.sid_logits(st, target, "search"), target,
                                     label_smoothing)
        if t.id2desc:
            few, fw = items[:t.id2desc_batch], words[:t.id2desc_batch]
            st = model.head_input(model.item_state(few, codes["search"][few],
                                                   beh("search_click"), "ID2DESC"), "ID2DESC")
            logits, targets = model.text_loss_inputs(st, fw)
            out["ID2DESC"] = text_nll(logits[None], targets[None])
    if t.align and step.align is not None:
        out["ALIGN"] = align_loss(model, p, step.align, codes, t.align_temperature, beh)
    if t.consistency and step.consist_at is not None:
        out["CONSIST"] = consistency_loss(model, h["NRIP"], batch, step.consist_at,
                                          step.consist_neg,
                                          path_codes["rec"])
    return out


class _TaskStates:
    """The window batch's states per task, computed on first use: the shared encoder's for
    every task, unless the model gives each task its own final block (``task_adapters =
    "block"``: the shared blocks run once, then each task's block)."""

    def __init__(self, model: JointModel, events) -> None:
        self.model = model
        if model.task_blocks is None:
            self.shared, self.hidden = model.encode(events), None
        else:
            self.shared, self.hidden = None, model.hidden(events)
        self.cache: dict[str, torch.Tensor] = {}

    def __getitem__(self, task: str) -> torch.Tensor:
        if self.hidden is None:
            return self.shared
        if task not in self.cache:
            self.cache[task] = self.model.finish(self.hidden, task)
        return self.cache[task]


def align_loss(model: JointModel, p: Prepared, pairs: torch.Tensor,
               codes: dict[str, torch.Tensor], temperature: float, beh) -> torch.Tensor:
    """OneFeed Eq. 9 on (m, 2) (query row, item) pairs: h_s is the item as a one-event history
    (a search click on it, ``search`` identifier), h_q the query text as a one-event history
    (a search query) — the two states DESC2ID / ID2DESC already condition on."""
    q, items = pairs[:, 0], pairs[:, 1]
    h_s = model.item_state(items, codes["search"][items], beh("search_click"))
    h_q = model.text_state(torch.as_tensor(p.jd.query_words)[q], beh("search_query"))
    return info_nce(h_s, h_q, temperature)


def consistency_loss(model: JointModel, h: torch.Tensor, batch: JointBatch, at: torch.Tensor,
                     neg: torch.Tensor, rec_codes: torch.Tensor) -> torch.Tensor:
    """OneFeed Eq. 10: BPR of score(u, i+) over score(u, i-), score = the NRIP log-prob of the
    item's ``rec`` codes (teacher-forced) from the state at the (row, position) ``at``; i+ is
    the position's next training item, i- a BM25 candidate the user did not interact with."""
    hh = model.head_input(h[at[:, 0], at[:, 1]], "NRIP")
    pos_codes, neg_codes = rec_codes[batch.target_item[at[:, 0], at[:, 1]]], rec_codes[neg]
    pos = sequence_log_prob(model.sid_logits(hh, pos_codes, "rec"), pos_codes)
    return bpr(pos, sequence_log_prob(model.sid_logits(hh, neg_codes, "rec"), neg_codes))


def task_grad_norms(losses: dict[str, torch.Tensor], params: list[torch.nn.Parameter]
                    ) -> torch.Tensor:
    """(K,) L2 norm of each loss's gradient on ``params`` (the graph is kept for backward)."""
    norms = []
    for loss in losses.values():
        grads = [g for g in torch.autograd.grad(loss, params, retain_graph=True,
                                                allow_unused=True) if g is not None]
        norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                     if grads else loss.new_zeros(()))
    return torch.stack(norms).detach().double()


PCGRAD = ("pcgrad", "pcgrad-last")


def _task_grads(losses: list[torch.Tensor], params: list[torch.nn.Parameter]
                ) -> list[list[torch.Tensor]]:
    """Each loss's dense gradient of every parameter (zeros where it does not reach; the
    graph is kept for the loop's backward)."""
    out = []
    for loss in losses:
        gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out.append([torch.zeros_like(q) if g is None else g.to_dense() if g.is_sparse else g
                    for q, g in zip(params, gs)])
    return out


def _last_shared(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The last shared layer: the encoder's last block and its final norm."""
    return [*model.blocks[-1].parameters(), *model.ln_f.parameters()]


# ---- validation -------------------------------------------------------------------------------------
def validate(pred: JointPredictor, ds: Dataset, t: TaskConfig, beam: int, seed: int,
             split: str = "valid") -> dict[str, float]:
    """NDCG@10 / Recall@10 of each item task with non-zero weight on ``split``."""
    out: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    eq = (ds.eval_queries.filter(pl.col("split") == split).sort(["user", "item"])
          .unique(["user"], keep="first", maintain_order=True))
    if t.valid_search_users and eq.height > t.valid_search_users:
        eq = eq[np.sort(rng.choice(eq.height, t.valid_search_users, replace=False))]
    users = eq["user"].to_numpy().astype(np.int64)
    targets = eq["item"].to_numpy().astype(np.int64)
    if t.nrip:
        rec_t = rec_targets(pred.jd, users, split)
        ranks = target_ranks(pred.recommend(users, split, 10, beam), rec_t)
        out["rec_ndcg@10"] = float(ndcg_at_k(ranks, 10).mean())
        out["rec_recall@10"] = float(((ranks >= 0) & (ranks < 10)).mean())
    if t.nsip:
        ranks = target_ranks(pred.search(users, eq["query"].to_list(), split, 10, beam), targets)
        out["search_ndcg@10"] = float(ndcg_at_k(ranks, 10).mean())
        out["search_recall@10"] = float(((ranks >= 0) & (ranks < 10)).mean())
    scores = [v for k, v in out.items() if k.endswith("ndcg@10")]
    out["score"] = float(np.mean(scores)) if scores else 0.0
    return out


def rec_targets(jd: JointData, users: np.ndarray, split: str) -> np.ndarray:
    """Each user's first recommendation (non-query) item of ``split``, -1 for users without."""
    from onefeed.tasks.joint import SPLIT_CODES

    code = SPLIT_CODES[split]
    out = np.full(len(users), -1, dtype=np.int64)
    for r, u in enumerate(users):
        lo, hi = jd.user_start[u], jd.user_start[u + 1]
        hits = np.flatnonzero((jd.split[lo:hi] == code) & (jd.behaviour[lo:hi] != S_Q))
        if len(hits):
            out[r] = jd.item[lo + hits[0]]
    return out


# ---- the task: NRIP + NSIP + NSQP + DESC2ID + ID2DESC (+ ALIGN, CONSIST) ----------------------
class JointTask:
    """The joint model's weighted multi-task objective (GenSAR §3.3-3.4, OneFeed Eq. 11);
    scored by the mean validation NDCG@10 of the item tasks with non-zero weight.

    Under DDP each rank trains on its shard of the windows (one process keeps them all, in
    the order the length bucketing shuffles them) and validates every case itself.

    ``tasks.balance = "gradnorm"``: every ``balance_every`` training steps each task's gradient
    norm on the shared encoder (``model.blocks``) is measured and the task scales move (EMA)
    towards equal weighted norms (``objectives.balance``); the scales are logged in the
    history (``task_scale``). They are not checkpointed: a resumed run restarts them at 1."""

    def __init__(self, ds: Dataset, p: Prepared, run_cfg: JointRunConfig,
                 negatives: cross_task.Pool | None = None) -> None:
        self.ds, self.p, self.t, self.cfg = ds, p, run_cfg.tasks, run_cfg.train
        self.codes = path_code_tensors(p.layout)
        self.path_codes = {n: torch.as_tensor(p.layout.path_codes(n)) for n in ("rec", "search")}
        self.windows = training_windows(p.jd, run_cfg.model.max_len)
        if negatives is not None and not self.t.consistency:
            raise ValueError("explicit negatives are used by the consistency loss only: set "
                             "tasks.consistency > 0")
        self.cross = cross_task_data(ds, p, self.t, negatives) \
            if self.t.align or self.t.consistency else None
        self.scales = {name: 1.0 for name, w in task_weights(self.t).items() if w}
        self._calls = 0
        self._surgery = {"steps": 0, "measured": 0, "seconds": 0.0, "pairs": 0,
                         "projections": 0}
        self._coef: dict[str, float] | None = None  # pcgrad-last: the last measured a_k
        self._pred: JointPredictor | None = None

    def steps_per_epoch(self, world: int) -> int:
        return steps_for(len(self.windows), self.cfg.batch_size, world)

    def batches(self, epoch: int, rng: np.random.Generator, rank: int, world: int
                ) -> Iterator[JointStep]:
        windows = self.windows if world == 1 else \
            self.windows[rank_shard(len(self.windows), rng, rank, world)]
        for i, rows in enumerate(length_bucketed_batches(windows, self.cfg.batch_size, rng)):
            step = joint_step(windows[rows], self.p, self.codes, self.t, rng, self.cross)
            if self.t.balance in PCGRAD:  # drawn last: nothing else moves
                step = dataclasses.replace(
                    step, order=tuple(rng.permutation(len(self.scales)).tolist()),
                    measure=i % self.t.pcgrad_every == 0)
            yield step

    def loss(self, model: torch.nn.Module, batch: JointStep
             ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.t.balance == "none":
            return joint_loss(model, self.p, batch, self.codes, self.path_codes, self.t,
                              self.cfg.label_smoothing)
        losses = task_losses(model, self.p, batch, self.codes, self.path_codes, self.t,
                             self.cfg.label_smoothing)
        if self.t.balance in PCGRAD:
            return self.surgery(model, losses, batch.order, batch.measure)
        if model.training:
            if self._calls % self.t.balance_every == 0:
                self.rebalance(model, losses)
            self._calls += 1
        return weighted_sum(losses, task_weights(self.t), self.scales, model)

    def rebalance(self, model: torch.nn.Module, losses: dict[str, torch.Tensor]) -> None:
        """Move the task scales towards equal weighted gradient norms on the shared encoder.
        Norms are averaged over DDP ranks (a task absent from a step counts 0 there), so
        every rank agrees; a task with no gradient anywhere keeps its scale."""
        from onefeed.train.loop import all_sum

        names = list(self.scales)
        present = {k: losses[k] for k in names if k in losses}
        if not present:
            return
        params = [q for q in model.blocks.parameters() if q.requires_grad]
        measured = dict(zip(present, task_grad_norms(present, params).tolist()))
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        norms = torch.as_tensor(all_sum(np.array([measured.get(k, 0.0) for k in names])) / world)
        weights = torch.tensor([task_weights(self.t)[k] for k in names], dtype=torch.float64)
        old = torch.tensor([self.scales[k] for k in names], dtype=torch.float64)
        new = torch.where(norms > 0, ema(old, equalising_scales(norms, weights),
                                         self.t.balance_momentum), old)
        self.scales = dict(zip(names, new.tolist()))

    def surgery(self, model: torch.nn.Module, losses: dict[str, torch.Tensor],
                order: tuple[int, ...] | None, measure: bool = True
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """PCGrad over the weighted task losses (``tasks.balance = "pcgrad" | "pcgrad-last"``).

        Returns a loss whose value is the plain weighted sum and whose gradient is the
        projected one, so the loop's backward, clipping, non-finite guard and DDP averaging
        apply unchanged (under DDP each rank projects its own task gradients; the combined
        gradients are averaged once by the loop's backward).

        * ``pcgrad``: each task's gradient of every parameter (one backward per task); the
          parameters at least two tasks reach are PCGrad-combined, the others keep the plain
          sum. The returned loss is ``sum (g . p)`` over the parameters (plus the loss value),
          so the loop's backward costs nothing more.
        * ``pcgrad-last``: the task gradients of the last encoder block only (backward through
          the heads and that block) give PCGrad's coefficients a_k; the returned loss is
          ``sum a_k w_k L_k`` (exact PCGrad on that block, the same task mixture elsewhere).
          With ``tasks.pcgrad_every = n`` the coefficients are measured on the first of every
          n steps of an epoch and reused in between (a task first seen since: a_k = 1), so a
          resumed run (epochs restart at a measurement) repeats the uninterrupted one."""
        total, parts = weighted_sum(losses, task_weights(self.t), None, model)
        if not model.training or len(losses) < 2:
            return total, parts
        started = time.perf_counter()
        names = list(losses)
        perm = list(order) if order is not None else list(range(len(self.scales)))
        visit = {name: perm.index(r) for r, name in enumerate(self.scales)}
        seq = sorted(range(len(names)), key=lambda i: visit[names[i]])  # the step's order
        weighted = [task_weights(self.t)[n] * losses[n] for n in names]
        if self.t.balance == "pcgrad":
            params = [q for q in model.parameters() if q.requires_grad]
            grads = _task_grads(weighted, params)  # K lists of per-parameter gradients
            stacks = [torch.stack([g[i] for g in grads]).flatten(1) for i in range(len(params))]
            del grads
            shared = [int((st != 0).any(1).sum()) >= 2 for st in stacks]
            gram = torch.zeros(len(names), len(names), dtype=torch.float64)
            for st, is_shared in zip(stacks, shared):
                if is_shared:
                    gram += (st @ st.t()).double()
            coef, made = pcgrad_coefficients(gram, seq)
            a = coef.float()
            dot = total.new_zeros(())
            for q, st, is_shared in zip(params, stacks, shared):
                g = (a @ st if is_shared else st.sum(0)).view_as(q)
                dot = dot + (g * q).sum()
            out = total.detach() + (dot - dot.detach())
        elif measure or self._coef is None:
            measure = True
            params = [q for q in _last_shared(model) if q.requires_grad]
            grads = _task_grads(weighted, params)
            flat = torch.stack([torch.cat([g.flatten() for g in gs]) for gs in grads]).double()
            coef, made = pcgrad_coefficients(flat @ flat.t(), seq)
            self._coef = dict(zip(names, coef.tolist()))
        else:
            made = 0
        if self.t.balance == "pcgrad-last":
            mixed = sum(self._coef.get(n, 1.0) * weighted[k] for k, n in enumerate(names))
            out = mixed + (total - mixed).detach()
        self._surgery["steps"] += 1
        if self.t.balance == "pcgrad" or measure:
            self._surgery["measured"] += 1
            self._surgery["pairs"] += len(names) * (len(names) - 1)
        self._surgery["projections"] += made
        self._surgery["seconds"] += time.perf_counter() - started
        return out, parts

    def history_fields(self) -> dict[str, Any]:
        """Extra fields of each history entry (``fit``): the task scales under
        ``gradnorm``; under PCGrad the share of (task, other task) pairs that conflicted and
        the seconds spent on the surgery since the last entry (its per-step overhead)."""
        if self.t.balance == "gradnorm":
            return {"task_scale": dict(self.scales)}
        if self.t.balance in PCGRAD:
            s, self._surgery = self._surgery, {"steps": 0, "measured": 0, "seconds": 0.0,
                                               "pairs": 0, "projections": 0}
            return {"pcgrad": {"steps": s["steps"], "measured": s["measured"],
                               "seconds": round(s["seconds"], 3),
                               "conflict_rate": s["projections"] / max(1, s["pairs"])}}
        return {}

    def validate(self, model: torch.nn.Module, rank: int, world: int) -> dict[str, float]:
        if self._pred is None or self._pred.model is not model:
            self._pred = JointPredictor(model, self.p.layout, self.p.jd, self.p.vocab,
                                        self.t.behaviour_tokens, max_items=self.t.max_history_items)
        return validate(self._pred, self.ds, self.t, self.cfg.eval_beam, self.cfg.seed)


def train_joint(ds: Dataset, sid_dir: str | Path, run_cfg: JointRunConfig, out: str | Path,
                resume: bool = True, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the joint model, early-stop on the validation score, keep ``out/best``/``last``."""
    cfg = run_cfg.train
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    p = prepare(ds, sid_dir, run_cfg)
    run_cfg = dataclasses.replace(run_cfg, model=p.model_cfg)
    model: JointModel = build_model(run_cfg.model)  # type: ignore[assignment]
    model.set_text_vocab(p.text_tokens)
    model.sparse_embedding_grads(int(os.environ.get("WORLD_SIZE", "1")) == 1)
    task = JointTask(ds, p, run_cfg)
    manifest = {"kind": "joint-generative", "config": config_lib.to_dict(run_cfg),
                "layout": p.layout.describe(), "n_windows": int(len(task.windows)),
                "n_text_vocab": int(len(p.text_tokens)), "commit": git_commit(),
                "machine": machine_info(), **(provenance or {})}
    return fit(model, task, cfg, out, checkpoint_config(run_cfg, p.vocab), manifest, resume,
               name="train-joint")


def fine_tune(model: JointModel, ds: Dataset, sid_dir: str | Path, run_cfg: JointRunConfig,
              out: str | Path, negatives: cross_task.Pool | None = None,
              provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue training a loaded joint ``model`` on ``ds`` (e.g. a log with new feedback
    appended) for ``run_cfg.train`` (set ``max_steps``), into a fresh ``out`` (best/ + last/).

    The optimizer and schedule start afresh; the weights are ``model``'s. ``ds`` must keep the
    model's catalogue and its text vocabulary (new query texts would need new output words:
    refused). ``negatives``: explicit consistency-loss negatives (``JointTask``)."""
    cfg = run_cfg.train
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    p = prepare(ds, sid_dir, run_cfg)
    if p.model_cfg.n_items != model.cfg.n_items or \
            p.text_tokens.shape != model.text_vocab.shape or \
            not torch.equal(p.text_tokens.cpu(), model.text_vocab.cpu()):
        raise ValueError("fine_tune: the dataset changes the model's catalogue or text "
                         "vocabulary (new items or new query words); train a new model")
    run_cfg = dataclasses.replace(run_cfg, model=model.cfg)
    task = JointTask(ds, p, run_cfg, negatives)
    manifest = {"kind": "joint-generative", "config": config_lib.to_dict(run_cfg),
                "layout": p.layout.describe(), "n_windows": int(len(task.windows)),
                "fine_tuned": True, "commit": git_commit(), "machine": machine_info(),
                **(provenance or {})}
    return fit(model, task, cfg, out, checkpoint_config(run_cfg, p.vocab), manifest,
               resume=False, name="fine-tune-joint")


def run(data: str | Path, sid_dir: str | Path, config_path: str | Path | None, out: str | Path,
        overrides: list[str] | None = None, resume: bool = True) -> dict[str, Any]:
    ds = Dataset.load(data)
    run_cfg = load_run_config(config_path, overrides)
    provenance = {**checkpoint.input_record(data, sid_dir),
                  "config_file": str(config_path) if config_path else None,
                  "overrides": list(overrides or [])}
    return train_joint(ds, sid_dir, run_cfg, out, resume=resume, provenance=provenance)


__all__ = ["JointRunConfig", "TaskConfig", "train_joint", "fine_tune", "load_joint", "predictor",
           "rec_targets", "S_I"]
