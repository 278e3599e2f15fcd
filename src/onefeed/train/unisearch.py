"""UniSearch training: unified pre-training through ``onefeed.train.loop.fit`` (then the codes
are frozen) and SPO post-training steps (UniSearch §3.3).

    model, index = train_unisearch(dataset_or_search_data, UniSearchRunConfig(), out)
    hits = search(model, index, ["red lipstick"], k=10)          # onefeed.tasks.unisearch
    spo_step(model, ref, index, queries, reward_fn, SPOConfig(), optimizer)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from onefeed import checkpoint
from onefeed import config as config_lib
from onefeed.decoding.beam import beam_search
from onefeed.models.unisearch import UniSearch, UniSearchConfig
from onefeed.objectives.spo import group_advantages, spo_loss, token_kl
from onefeed.tasks.unisearch import (LearnedIndex, SearchData, UniSearchTask,
                                     UniSearchTaskConfig, dataset_search_data, freeze, word_ids)
from onefeed.train.config import TrainConfig
from onefeed.train.loop import fit, seed_everything

RewardFn = Callable[[Sequence[str], np.ndarray], np.ndarray]  # (queries, items (Q, G)) -> (Q, G)


@dataclass
class UniSearchRunConfig:
    model: UniSearchConfig = field(default_factory=UniSearchConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(warmup_steps=50))
    task: UniSearchTaskConfig = field(default_factory=UniSearchTaskConfig)


@dataclass
class SPOConfig:
    RANGES: ClassVar[dict[str, str]] = {"group": ">= 2", "beta": ">= 0", "clip": ">= 0",
        "lr": "> 0", "steps": ">= 0", "batch_queries": ">= 1"}
    group: int = 8  # G: candidates beam-searched per query
    beta: float = 0.04  # KL weight to the reference (Eq. 8)
    clip: float = 0.0  # PPO clip of the ratio (0 = none, as Eq. 8)
    lr: float = 1e-4  # post_train_spo's Adam learning rate
    steps: int = 100  # post_train_spo's SPO steps
    batch_queries: int = 32  # queries per SPO step
    seed: int = 0


def train_unisearch(data: Any, cfg: UniSearchRunConfig, out: str | Path,
                    resume: bool = True, provenance: dict[str, Any] | None = None
                    ) -> tuple[UniSearch, LearnedIndex]:
    """Unified pre-training on (query, clicked item) pairs (``SearchData``, or a prepared
    ``Dataset`` through ``dataset_search_data``); keeps ``out/best`` + ``out/last`` and freezes
    the best weights' codes into ``out/codes`` (``tasks.unisearch.freeze``). ``provenance``
    (e.g. ``checkpoint.input_record(data_dir, ...)``) joins ``out/manifest.json``."""
    out = Path(out)
    torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    search_data: SearchData = data if isinstance(data, SearchData) else \
        dataset_search_data(data, cfg.model)
    model = UniSearch(cfg.model)
    task = UniSearchTask(search_data, cfg.task, model)
    config = {"run": config_lib.to_dict(cfg)}
    manifest = {"kind": "unisearch", "config": config["run"],
                "n_pairs": int(len(search_data.items)), "n_items": search_data.n_items,
                "codes": "codes", **(provenance or {})}
    fit(model, task, cfg.train, out, config, manifest, resume, name="train-unisearch")
    model.load_state_dict(checkpoint.load_weights(out / "best"))
    model.eval()
    return model, freeze(model, search_data.item_words, out / "codes", cfg.task.spare_codes)


def reference_copy(model: UniSearch) -> UniSearch:
    """A frozen copy of ``model``: SPO's reference policy pi_ref."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def candidate_log_probs(model: UniSearch, query_words: torch.Tensor, codes: torch.Tensor
                        ) -> torch.Tensor:
    """Per-token log-probs (Q, G, L) of candidate code tuples ``codes`` (Q, G, >= L)."""
    q, g = codes.shape[:2]
    n_levels = model.cfg.n_levels
    state = tuple(x.repeat_interleave(g, 0) for x in model.search_state(query_words))
    flat = codes[..., :n_levels].reshape(q * g, n_levels).clamp(min=0)
    return model.code_log_probs(state, flat).view(q, g, n_levels)


def spo_step(model: UniSearch, ref: UniSearch, index: LearnedIndex, queries: Sequence[str],
             reward_fn: RewardFn, cfg: SPOConfig, optimizer: torch.optim.Optimizer
             ) -> dict[str, float]:
    """One SPO update (UniSearch Eq. 7-8): beam-search ``cfg.group`` candidates per query with
    the current policy, reward them, and step ``optimizer`` on L_SPO (on-policy, so the
    ratio's value is 1 and its gradient that of log pi). Dropout is off throughout."""
    model.eval()
    words = torch.as_tensor(word_ids(queries, model.cfg.max_query_words))
    with torch.no_grad():
        found = beam_search(index.step_fn(model), model.search_state(words), index.trie,
                            len(queries), cfg.group, cfg.group)
    items = found.items.numpy()
    present = torch.as_tensor(items >= 0)  # (Q, G): fewer items than G under the trie
    rewards = torch.as_tensor(np.asarray(reward_fn(queries, items), dtype=np.float32))
    mean = (rewards * present).sum(1, keepdim=True) / present.sum(1, keepdim=True).clamp(min=1)
    adv = group_advantages(torch.where(present, rewards, mean)) * present
    logp = candidate_log_probs(model, words, found.codes)
    with torch.no_grad():
        ref_logp = candidate_log_probs(ref, words, found.codes)
    mask = present.unsqueeze(-1).expand_as(logp)
    loss = spo_loss(logp, adv, ref_logp, cfg.beta, clip=cfg.clip or None, mask=mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "reward": float(rewards[present].mean()),
            "kl": float(token_kl(logp.detach(), ref_logp)[mask].mean())}


def post_train_spo(model: UniSearch, index: LearnedIndex, queries: Sequence[str],
                   reward_fn: RewardFn, cfg: SPOConfig) -> list[dict[str, float]]:
    """SPO post-training (UniSearch §3.3): ``cfg.steps`` :func:`spo_step` s on random batches
    of ``queries`` against a frozen copy of the starting model. The codes stay frozen (the
    generator's decoder and query encoder move). -> per-step stats."""
    ref = reference_copy(model)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    history = []
    for _ in range(cfg.steps):
        pick = rng.choice(len(queries), min(cfg.batch_queries, len(queries)), replace=False)
        history.append(spo_step(model, ref, index, [queries[i] for i in pick], reward_fn, cfg,
                                opt))
    return history


def click_reward(pairs: Sequence[tuple[str, int]], miss: float = 0.0) -> RewardFn:
    """A reward from logged clicks: 1 for an item clicked after the query in ``pairs``
    (query, item), ``miss`` otherwise (the R_interaction part of UniSearch Eq. 6)."""
    clicked: dict[str, set[int]] = {}
    for q, item in pairs:
        clicked.setdefault(q, set()).add(int(item))

    def reward(queries: Sequence[str], items: np.ndarray) -> np.ndarray:
        return np.array([[1.0 if int(i) in clicked.get(q, ()) else miss for i in row]
                         for q, row in zip(queries, items)], dtype=np.float32)

    return reward


def run_state(out: str | Path) -> dict[str, Any]:
    """The training state of a ``train_unisearch`` run (``out/last/state.json``: epochs reached,
    best epoch and score, ``train_seconds``, the validation history); {} when there is none."""
    import json

    path = Path(out) / "last" / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}
