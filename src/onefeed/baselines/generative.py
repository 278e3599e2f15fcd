"""Adapter: the generative recommender (``onefeed.train.rec``) in the baselines' shape, so the
bench runs it as the ``tiger`` row (OneFeed §4.4 "OneRec-style": same SIDs, recommendation
objective only) or, with a joint checkpoint, the ``onefeed`` row.

Suite row (``kind = "external"``)::

    [models.tiger]
    kind = "external"
    entry = "onefeed.baselines.generative:GenerativeAdapter"
    params = { sid = "runs/beauty/sid/rqkmeans", config = "configs/model/beauty.toml",
               out = "runs/beauty/bench-tiger", beam = 50, overrides = [] }

``params.data`` (the prepared dataset dir the bench runs on) is recorded in each trained
run's manifest with the SID dir (``run_inputs``).

``params.seen``: "keep" (default), "exclude" or "auto" (chosen on validation NDCG@10) — whether
the model's own lists may contain the user's history items (``_seen_rule``).

``params.checkpoint`` (a trained model dir with config.json + model.safetensors; ``{seed}`` in
it is replaced by the seed, e.g. ``runs/beauty/model/tiger-seed{seed}/best``) skips training. Otherwise ``fit`` trains with ``train.seed = seed`` into ``<out>/seed<seed>`` and
loads its ``best`` checkpoint. ``recommend`` is the trie-constrained beam search of
``evaluation.generative`` (beam >= k; codes are mapped to item ids before scoring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from onefeed.baselines.base import TrainLog
from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases


def run_inputs(params: dict[str, Any]) -> dict[str, Any]:
    """The manifest's provenance of a run trained from a suite row: absolute ``data`` (when the
    row names it in ``params.data``; ``onefeed run`` does) and ``sid`` dirs, the config file and
    overrides, so ``onefeed recommend / evaluate --run`` find the inputs without flags."""
    from onefeed.checkpoint import input_record

    return {**input_record(params.get("data"), params["sid"]),
            "config_file": str(params["config"]) if params.get("config") else None,
            "overrides": list(params.get("overrides", []))}


class GenerativeAdapter:
    def __init__(self) -> None:
        self.model = None
        self.params: dict[str, Any] = {}

    def fit(self, ds: Dataset, cfg: dict[str, Any], seed: int) -> TrainLog:
        import torch

        from onefeed.train import rec
        from onefeed.decoding.trie import Trie
        from onefeed.sid.table import SidTable
        from onefeed.tasks.rec import sid_tensor

        self.params = dict(cfg)
        if "sid" not in cfg:
            raise ValueError("generative adapter: params.sid (a SID table dir) is required")
        sid = SidTable.load(cfg["sid"])
        log = TrainLog()
        # a trained run to load instead of training; "{seed}" picks one run per seed
        checkpoint = str(cfg["checkpoint"]).format(seed=seed) if cfg.get("checkpoint") else None
        if not checkpoint:
            out = Path(cfg.get("out", "runs/bench-generative")) / f"seed{seed}"
            run_cfg = rec.load_run_config(cfg.get("config"),
                                          list(cfg.get("overrides", [])) +
                                          [f"train.seed={seed}"])
            state = rec.train(ds, sid, run_cfg, out, resume=bool(cfg.get("resume", True)),
                              provenance=run_inputs(cfg))
            for h in state.get("history", []):
                log.epochs.append(int(h["epoch"]))
                log.loss.append(float(h["loss"]) if h.get("loss") is not None else float("nan"))
                log.valid_ndcg10.append(float(h["valid_ndcg@10"]))
            log.best_epoch = int(state.get("best_epoch", -1))
            if state.get("train_seconds") is not None:
                log.train_seconds = float(state["train_seconds"])
            checkpoint = out / "best"
        self.model, run_cfg, self.vocab = rec.load_model(checkpoint)
        self.max_len = int(run_cfg.model.max_len)  # the model's window (histories are cut)
        self.codes = sid_tensor(sid)
        self.trie = Trie.from_table(sid.codes, sid.codebook_sizes)
        self.seen = self._seen_rule(ds, log)
        torch.set_grad_enabled(True)
        return log

    def _seen_rule(self, ds: Dataset, log: TrainLog) -> str:
        """``params.seen``: "keep" (default: history items may be recommended), "exclude", or
        "auto" (whichever is better on validation NDCG@10; the choice goes to the log)."""
        from onefeed.data.views import rec_cases
        from onefeed.evaluation.generative import choose_seen_rule
        from onefeed.evaluation.seen import check_seen_rule

        rule = check_seen_rule(str(self.params.get("seen", "keep")), "generative adapter")
        if rule == "auto":
            valid = rec_cases(ds, "valid", self.max_len)
            choice = choose_seen_rule(self.model, valid.history, valid.targets, self.codes,
                                      self.vocab, self.trie, int(self.params.get("beam", 20)))
            log.choices.update(choice)
            rule = choice["seen"]
        log.choices["seen"] = rule
        return rule

    def recommend(self, cases: RecCases, k: int) -> np.ndarray:
        from onefeed.evaluation.generative import recommend, recommend_unseen

        if self.model is None:
            raise RuntimeError("GenerativeAdapter.recommend called before fit")
        beam = max(int(self.params.get("beam", k)), k)
        history = cases.history[:, -self.max_len:]
        if self.seen == "exclude":
            items, _ = recommend_unseen(self.model, history, self.codes, self.vocab,
                                        self.trie, beam, k)
            return items
        items, _ = recommend(self.model, history, self.codes, self.vocab, self.trie, beam, k)
        return items[:, :k]
