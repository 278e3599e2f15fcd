"""Adapter: the joint model (``onefeed.train.joint``) as a bench row — the ``onefeed`` row
and every variant of the joint-model studies.

It answers all three bench tasks from one trained model:
``recommend(cases, k)`` (NRIP), ``search(users, queries, k)`` (NSIP: personalised, history +
held-out query) and ``generate(cases, k)`` (NSQP: next queries). Histories are the users' mixed
events before the bench split's target (``params.split``, default ``test``), so the model sees
the searches that the item-only rows cannot use.

Suite row::

    [models.onefeed]
    kind = "external"
    entry = "onefeed.baselines.joint:JointAdapter"
    params = { sid = "runs/beauty/sid/content-rq_kmeans", config = "configs/model/beauty-joint.toml",
               out = "runs/beauty/model/study/joint", overrides = [], beam = 20 }

``params.checkpoint`` (``{seed}`` templated) loads a trained model instead of training one;
``params.tasks`` ("rec,search,query") limits what the bench scores (a rec-only model has no
search head worth scoring).

``params.seen``: "keep" (default), "exclude" or "auto" (chosen on validation NDCG@10) — whether
the NRIP lists may contain items of the user's history window; the rule of the generative
adapter (``evaluation.seen``), recorded the same way in ``training.<seed>.choices``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from onefeed.baselines.base import TrainLog
from onefeed.baselines.generative import run_inputs
from onefeed.data.schemas import Dataset
from onefeed.data.views import RecCases


class JointAdapter:
    def __init__(self) -> None:
        self.pred = None
        self.params: dict[str, Any] = {}

    def fit(self, ds: Dataset, cfg: dict[str, Any], seed: int) -> TrainLog:
        import torch

        from onefeed.train import joint as tj

        self.params = dict(cfg)
        if "sid" not in cfg:
            raise ValueError("joint adapter: params.sid (a SID table dir) is required")
        log = TrainLog()
        checkpoint = str(cfg["checkpoint"]).format(seed=seed) if cfg.get("checkpoint") else None
        if not checkpoint:
            out = Path(cfg.get("out", "runs/bench-joint")) / f"seed{seed}"
            run_cfg = tj.load_run_config(cfg.get("config"), list(cfg.get("overrides", []))
                                         + [f"train.seed={seed}"])
            state = tj.train_joint(ds, cfg["sid"], run_cfg, out,
                                   resume=bool(cfg.get("resume", True)),
                                   provenance=run_inputs(cfg))
            for h in state.get("history", []):
                log.epochs.append(int(h["epoch"]))
                log.loss.append(float(h["loss"]) if h.get("loss") is not None else float("nan"))
                log.valid_ndcg10.append(float(h.get("valid_score", float("nan"))))
            log.best_epoch = int(state.get("best_epoch", -1))
            if state.get("train_seconds") is not None:
                log.train_seconds = float(state["train_seconds"])
            checkpoint = str(out / "best")
        model, run_cfg, _ = tj.load_joint(checkpoint)
        self.pred = tj.predictor(model, run_cfg, ds, cfg["sid"])
        self.split = str(cfg.get("split", "test"))
        self.tasks = set(str(cfg.get("tasks", "rec,search,query")).split(","))
        unknown = self.tasks - {"rec", "search", "query"}
        if unknown:
            raise ValueError(f"joint adapter: params.tasks has unknown {sorted(unknown)}")
        # tasks this row is not scored on are hidden from the bench
        for task, method in (("rec", "recommend"), ("search", "search"), ("query", "generate")):
            if task not in self.tasks:
                setattr(self, method, None)
        self.seen = self._seen_rule(log) if "rec" in self.tasks else "keep"
        torch.set_grad_enabled(True)
        return log

    def _seen_rule(self, log: TrainLog) -> str:
        """``params.seen``, with "auto" decided on (at most 5,000 seeded) valid users."""
        from onefeed.evaluation.seen import check_seen_rule
        from onefeed.train.joint import rec_targets

        rule = check_seen_rule(str(self.params.get("seen", "keep")), "joint adapter")
        if rule == "auto":
            users = np.arange(self.pred.jd.n_users)
            targets = rec_targets(self.pred.jd, users, "valid")
            has = targets >= 0
            choice = self.pred.choose_seen_rule(users[has], "valid", targets[has],
                                                self._beam(10))
            log.choices.update(choice)
            rule = choice["seen"]
        log.choices["seen"] = rule
        return rule

    def _beam(self, k: int) -> int:
        return max(int(self.params.get("beam", k)), k)

    def recommend(self, cases: RecCases, k: int) -> np.ndarray:
        if self.pred is None:
            raise RuntimeError("JointAdapter.recommend called before fit")
        return self.pred.recommend(cases.users, self.split, k, self._beam(k),
                                   exclude_seen=self.seen == "exclude")

    def search(self, users: np.ndarray, queries: list[str], k: int) -> np.ndarray:
        if self.pred is None:
            raise RuntimeError("JointAdapter.search called before fit")
        return self.pred.search(users, queries, self.split, k, self._beam(k))

    def generate(self, cases: RecCases, k: int) -> list[list[str]]:
        if self.pred is None:
            raise RuntimeError("JointAdapter.generate called before fit")
        return self.pred.generate_queries(cases.users, self.split, k,
                                          int(self.params.get("query_beam", k)))


class FusedJointAdapter(JointAdapter):
    """The joint model fused with a BM25 index (OneFeed §3.7), the ``onefeed+bm25`` row.

    * search (``params.search_fusion``): ``"rrf"`` (default), RRF of BM25's ranking and the
      model's beam-searched NSIP ranking; ``"score"``, BM25's top ``fusion_depth`` candidates
      re-scored by ``bm25 / max + lam * log p(item | history, query)`` with the model's
      teacher-forced NSIP log-probability (``fusion.score_fusion``; the ``hybrid`` baseline
      does the same with a dense cosine);
    * feed enhancement: RRF of the NRIP ranking and BM25's results for the model's top
      generated next query (NSQP), i.e. generated queries fetch extra feed candidates.

    Each fusion weight (of the model's list in search, of the query candidates in the feed) is
    chosen on the validation split (``params.tune_users`` valid cases) from a fixed grid; a
    weight of 0 means fusion did not help on validation and the row equals its base list.
    ``params.feed_fusion = false`` skips the feed side (it generates a query per user).
    """

    def fit(self, ds: Dataset, cfg: dict[str, Any], seed: int) -> dict[str, Any]:  # type: ignore[override]
        from onefeed.search.bm25 import BM25Config, BM25Retriever
        from onefeed.search.fusion import tune_lambda, tune_weight
        from onefeed.search.hybrid import valid_queries
        from onefeed.train.joint import rec_targets

        log = super().fit(ds, cfg, seed).as_dict()
        self.bm25 = BM25Retriever()
        self.bm25.fit(ds, BM25Config())
        self.depth = int(cfg.get("fusion_depth", 100))
        eq = valid_queries(ds, int(cfg.get("tune_users", 2000)), seed)
        users, queries = eq["user"].to_numpy().astype(np.int64), eq["query"].to_list()
        self.w_search = self.w_feed = 0.0
        fusion: dict[str, Any] = {"tune_split": "valid", "tune_cases": len(users)}
        self.search_fusion = str(cfg.get("search_fusion", "rrf"))
        if self.search_fusion not in ("rrf", "score"):
            raise ValueError(f"params.search_fusion must be 'rrf' or 'score', got "
                             f"{self.search_fusion!r}")
        if self.search is not None and self.search_fusion == "score":
            items, scores = self.bm25.retrieve_scores(queries, self.depth)
            other = self.pred.score_search(users, queries, "valid", items)
            self.w_search, fusion["search"] = tune_lambda(items, scores, other,
                                                          eq["item"].to_numpy())
        elif self.search is not None:
            gen = self.pred.search(users, queries, "valid", 30, self._beam(30))
            base = self.bm25.retrieve(queries, self.depth)
            self.w_search, fusion["search"] = tune_weight(base, gen, eq["item"].to_numpy())
        if self.recommend is not None and cfg.get("feed_fusion", True):
            base = self.pred.recommend(users, "valid", 30, self._beam(30),
                                       exclude_seen=self.seen == "exclude")
            extra = self._feed_extra(users, "valid", 30)
            self.w_feed, fusion["feed"] = tune_weight(base, extra,
                                                      rec_targets(self.pred.jd, users, "valid"))
        fusion.update(w_search=self.w_search, w_feed=self.w_feed)
        log["fusion"] = fusion
        return log

    def search(self, users: np.ndarray, queries: list[str], k: int) -> np.ndarray:  # type: ignore[override]
        from onefeed.search.fusion import rrf, score_fusion

        if self.search_fusion == "score":
            items, scores = self.bm25.retrieve_scores(queries, max(self.depth, k))
            if not self.w_search:
                return items[:, :k]
            other = self.pred.score_search(users, queries, self.split, items)
            return score_fusion(items, scores, other, self.w_search, k)
        base = self.bm25.retrieve(queries, max(self.depth, k))
        if not self.w_search:
            return base[:, :k]
        gen = super().search(users, queries, max(k, 30))
        return rrf([base, gen], [1.0, self.w_search], k)

    def recommend(self, cases: RecCases, k: int) -> np.ndarray:  # type: ignore[override]
        from onefeed.search.fusion import rrf

        base = super().recommend(cases, max(k, 30))
        if not self.w_feed:
            return base[:, :k]
        return rrf([base, self._feed_extra(cases.users, self.split, 30)], [1.0, self.w_feed], k)

    def _feed_extra(self, users: np.ndarray, split: str, n: int) -> np.ndarray:
        """(n_users, n) BM25's items for each user's top generated next query; under
        ``seen = "exclude"`` without the history items, as the model's own list."""
        from onefeed.evaluation.metrics import drop_seen

        top = [q[0] if q else "" for q in self.pred.generate_queries(users, split, 1, 5)]
        if self.seen != "exclude":
            return self.bm25.retrieve(top, n)
        seen = self.pred.seen_items(users, split)
        return drop_seen(self.bm25.retrieve(top, n + seen.shape[1]), seen, n)


class SeparateEncodersAdapter:
    """OneFeed's "separate encoders" ablation: recommendation from one trained model, search
    from another (``params.rec_checkpoint`` / ``params.search_checkpoint``, ``{seed}``
    templated: the ``rec-only`` and ``search-only`` rows' checkpoints), so no encoder is shared.
    Nothing is trained here; both checkpoints must exist (run those rows first)."""

    def __init__(self) -> None:
        self.rec = JointAdapter()
        self.srch = JointAdapter()

    def fit(self, ds: Dataset, cfg: dict[str, Any], seed: int) -> TrainLog:
        for key in ("rec_checkpoint", "search_checkpoint"):
            path = Path(str(cfg.get(key, "")).format(seed=seed))
            if not cfg.get(key) or not (path / "model.safetensors").is_file():
                raise ValueError(f"separate-encoders adapter: params.{key} {str(path)!r} is not "
                                 "a trained checkpoint (train its row first)")
        base = {k: v for k, v in cfg.items() if k not in ("rec_checkpoint", "search_checkpoint")}
        log = self.rec.fit(ds, {**base, "checkpoint": cfg["rec_checkpoint"], "tasks": "rec"}, seed)
        self.srch.fit(ds, {**base, "checkpoint": cfg["search_checkpoint"], "tasks": "search",
                           "seen": "keep"}, seed)
        return log

    def recommend(self, cases: RecCases, k: int) -> np.ndarray:
        return self.rec.recommend(cases, k)

    def search(self, users: np.ndarray, queries: list[str], k: int) -> np.ndarray:
        return self.srch.search(users, queries, k)


class QueryFeedAdapter(JointAdapter):
    """OneFeed's "w/o SID generator" ablation: the feed comes only from the model's generated
    queries. Each user's ``params.feed_hypotheses`` generated next queries (NSQP) are filtered
    to the top ``params.feed_queries`` intents (``search.intent``: safety list, retrievability,
    near-duplicates; ``params.intent`` overrides its config), each fetches BM25's top
    ``params.feed_depth`` items, and the lists are fused by equal-weight RRF; no NRIP list is
    used. ``params.seen`` ("auto" by default) decides on validation cases whether
    history items are dropped from that list. Search is not scored (without the SID generator
    it would be BM25's)."""

    def fit(self, ds: Dataset, cfg: dict[str, Any], seed: int) -> TrainLog:  # type: ignore[override]
        from onefeed.evaluation.metrics import ndcg_at_k, target_ranks
        from onefeed.evaluation.seen import check_seen_rule
        from onefeed.config import from_dict
        from onefeed.search.bm25 import BM25Config, BM25Retriever
        from onefeed.search.intent import IntentConfig
        from onefeed.train.joint import rec_targets

        rule = check_seen_rule(str(cfg.get("seen", "auto")), "query-feed adapter")
        log = super().fit(ds, {**cfg, "tasks": "query", "seen": "keep"}, seed)
        self.recommend = self._recommend  # type: ignore[method-assign]
        self.search = None  # type: ignore[assignment]
        self.bm25 = BM25Retriever()
        self.bm25.fit(ds, BM25Config())
        self.intent = from_dict(IntentConfig, {"n_queries": int(cfg.get("feed_queries", 5)),
                                               **dict(cfg.get("intent", {}))})
        self.n_queries = self.intent.n_queries
        self.n_hyps = int(cfg.get("feed_hypotheses", 4 * self.n_queries))
        self.depth = int(cfg.get("feed_depth", 50))
        if rule == "auto":
            users = np.arange(self.pred.jd.n_users)
            targets = rec_targets(self.pred.jd, users, "valid")
            pick = users[targets >= 0]
            pick = np.sort(np.random.default_rng(seed).permutation(pick)[:5000])
            scores = {}
            for r in ("keep", "exclude"):
                top = self._feed(pick, "valid", 10, r == "exclude")
                scores[r] = float(ndcg_at_k(target_ranks(top, targets[pick]), 10).mean())
            rule = max(scores, key=lambda r: (scores[r], r == "keep"))
            log.choices.update({"seen_valid_ndcg@10": scores, "seen_cases": len(pick)})
        log.choices["seen"] = self.seen = rule
        return log

    def _feed(self, users: np.ndarray, split: str, k: int, exclude: bool) -> np.ndarray:
        from onefeed.evaluation.metrics import drop_seen
        from onefeed.search.fusion import rrf
        from onefeed.search.intent import select_intents

        hyps = self.pred.generate_queries(users, split, self.n_hyps,
                                          max(self.n_hyps, int(self.params.get("query_beam", 10))))
        queries = select_intents(hyps, self.intent, self._n_matches)
        seen = self.pred.seen_items(users, split) if exclude else None
        width = k + (seen.shape[1] if exclude else 0)
        lists = []
        for j in range(self.n_queries):
            col = [q[j] if j < len(q) else "" for q in queries]
            lists.append(self.bm25.retrieve(col, self.depth))
        fused = rrf(lists, [1.0] * len(lists), max(width, k))
        return drop_seen(fused, seen, k) if exclude else fused[:, :k]

    def _n_matches(self, queries: list[str]) -> np.ndarray:
        need = max(self.intent.min_matches, 1)
        return (self.bm25.retrieve(queries, need) >= 0).sum(1)

    def _recommend(self, cases: RecCases, k: int) -> np.ndarray:
        return self._feed(cases.users, self.split, k, self.seen == "exclude")
