"""The trained rows of ``onefeed bench beauty-onebar`` (issue 15, OneBar §3.4): each row trains
its stage on the artifact's training period, early-stops on validation HR@8 (valid examples
scored with ``onebar.evaluate``, never test) and saves the model under
``<artifact>/models/<row>/seed<seed>`` (``QuerySuggester.save`` + ``row.json``); a saved model
whose ``row.json`` key (configs of its stage and every stage before, artifact fingerprint,
format, seed) matches is reused without training.

* ``onebar-stage1``: SFT on ``run.example_texts("train")`` (``stages.train_sft``), each
  [REJECT] pair repeated ``reject_repeat`` times (1.6% of ML-100K's pairs: without it the
  model never ranks [REJECT] first).
* ``onebar-stage2``: Stage 1 + softmax DPO (``stages.train_listwise``) against the frozen
  Stage 1 model, on simulated feedback of the training period: per sampled training trigger
  the candidate list is Stage 1's top-``candidates`` beams plus the logged next query; the
  logged query is the click, beams within ``max_distance`` edits of it are dropped (they match
  the click: not negatives), and so are beams logged after the same trigger item by another
  training session (``trigger_clicks``: clicked there, so not an exposure without a click);
  the other beams are exposures without a click.
* ``onebar``: Stage 2 + PIOPD (``stages.train_piopd``); the teacher is the Stage 1 model
  fine-tuned by SFT on ``stages.teacher_pairs`` (evidence with posterior queries inserted);
  with several ``divergences`` each is trained and the best on valid HR@8 kept.
* ``onebar-stage1-verbose``: Stage 1 on the instruction-prompt serialisation (Table 4's
  schema vs verbose comparison; served in the same format).

Training runs in pseudo-epochs of ``rows_per_epoch`` sampled rows (one validation each), so a
stage's ``time_limit_min`` is honoured within a few minutes even on a large training set.
Stages II and III also validate their starting model: when no epoch beats it on valid HR@8,
the starting weights are kept (``row.json``: ``kept_start``). Early stopping scores lists
that never abstain; each row then abstains when the [REJECT] beam's log-prob reaches the
threshold with the best reject F1 on the same valid examples (``reject_threshold``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from onefeed import config as cfglib
from onefeed.artifacts import fingerprint, write_json
from onefeed.evaluation.query_metrics import levenshtein
from onefeed.onebar import stages
from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.evaluate import score
from onefeed.onebar.labels import REJECT, Example, safe_suggestions
from onefeed.onebar.model import QuerySuggester, SuggesterConfig, normalise
from onefeed.onebar.stages import CandidateList, ListwiseConfig, Pair, PiopdConfig
from onefeed.onebar.suggesters import ModelSuggester
from onefeed.train.task import steps_for
from onefeed.train.config import TrainConfig

STAGE_ROWS: tuple[str, ...] = ("onebar-stage1", "onebar-stage1-verbose", "onebar-stage2",
                               "onebar")
STAGES_OF: dict[str, tuple[str, ...]] = {  # the trained models a row is built from, in order
    "onebar-stage1": ("onebar-stage1",), "onebar-stage1-verbose": ("onebar-stage1-verbose",),
    "onebar-stage2": ("onebar-stage1", "onebar-stage2"),
    "onebar": ("onebar-stage1", "onebar-stage2", "onebar-teacher", "onebar")}


def _train(**kw: Any) -> Callable[[], TrainConfig]:
    base = dict(batch_size=64, epochs=50, eval_every=1, patience=3, weight_decay=0.01)
    return lambda: TrainConfig(**{**base, **kw})


@dataclass
class OneBarTrainConfig:
    """Training of the model rows (chosen on valid only)."""

    RANGES: ClassVar[dict[str, str]] = {"beam": ">= 1", "valid_cases": ">= 0",
        "rows_per_epoch": ">= 0", "candidates": ">= 1", "max_lists": ">= 0",
        "verbose_evidence_len": ">= 1", "eval_batch": ">= 1", "reject_repeat": ">= 1"}
    model: SuggesterConfig = field(default_factory=lambda: SuggesterConfig(
        d_model=64, n_heads=4, d_ff=256, enc_layers=2, dec_layers=2, dropout=0.1,
        max_evidence_len=96, max_query_len=16))
    verbose_evidence_len: int = 160  # max_evidence_len of the verbose-format row
    beam: int = 8  # serving and validation beam
    valid_cases: int = 0  # valid examples for early stopping (0 = all; else a seed-0 subset)
    rows_per_epoch: int = 6400  # training rows per pseudo-epoch, one validation each (0 = all)
    reject_repeat: int = 1  # Stage I: each [REJECT] pair this many times
    eval_batch: int = 64  # evidence texts per batched beam search
    sft: TrainConfig = field(default_factory=_train(lr=1e-3, warmup_steps=100,
                                                    time_limit_min=8.0))
    candidates: int = 4  # Stage 1 beams per Stage II candidate list
    max_lists: int = 4000  # training triggers sampled for Stage II (0 = all)
    trigger_clicks: bool = True  # queries logged after the same trigger item are no negatives
    listwise: ListwiseConfig = field(default_factory=lambda: ListwiseConfig(
        beta=0.1, sft_weight=1.0, train=_train(lr=5e-5, batch_size=32, warmup_steps=20,
                                               patience=2, time_limit_min=4.0)()))
    teacher: TrainConfig = field(default_factory=_train(lr=5e-4, warmup_steps=50,
                                                        patience=2, time_limit_min=4.0))
    piopd: PiopdConfig = field(default_factory=lambda: PiopdConfig(
        train=_train(lr=1e-4, batch_size=32, warmup_steps=20, patience=2,
                     time_limit_min=4.0)()))
    divergences: list[str] = field(default_factory=lambda: ["fkl+rkl"])  # >1: pick on valid

    def check(self) -> None:
        unknown = [d for d in self.divergences if d not in ("fkl", "rkl", "jsd", "fkl+rkl")]
        if unknown or not self.divergences:
            raise ValueError(f"divergences {self.divergences}: give one or more of fkl, rkl, "
                             "jsd, fkl+rkl")


# ---- pseudo-epochs ----------------------------------------------------------------------------

class Chunked:
    """A ``stages`` task whose epoch is ``rows`` sampled rows (a fresh sample each epoch)."""

    def __init__(self, task: Any, rows: int) -> None:
        self.task, self.rows = task, min(rows or task.n, task.n)

    def steps_per_epoch(self, world: int) -> int:
        return steps_for(self.rows, self.task.batch_size, world)

    def batches(self, epoch: int, rng: np.random.Generator, rank: int, world: int):
        limit = self.steps_per_epoch(world)
        for i, batch in enumerate(self.task.batches(epoch, rng, rank, world)):
            if i >= limit:
                return
            yield batch

    def __getattr__(self, name: str) -> Any:  # loss, validate, history_fields
        return getattr(self.task, name)


def fit_stage(model: QuerySuggester, task: Any, cfg: TrainConfig, rows: int, out: Path,
              kind: str) -> dict[str, Any]:
    """``task`` trained in pseudo-epochs by the stages' loop (best weights loaded)."""
    return stages._fit(model, Chunked(task, rows), cfg, out, kind, False,
                       {"rows_per_epoch": rows})


# ---- scoring a model ------------------------------------------------------------------------

def decide(ranked: Sequence[tuple[str, float]], reject_at: float | None) -> list[str]:
    """A beam list -> what to show: ``[REJECT]`` when its log-prob is >= ``reject_at`` (None:
    when it ranks first, the paper's rule), else the queries without it."""
    rej = next((lp for q, lp in ranked if q == REJECT), None)
    if rej is not None and (rej >= reject_at if reject_at is not None else
                            ranked[0][0] == REJECT):
        return [REJECT]
    return [q for q, _ in ranked if q != REJECT]


class ModelRow:
    """A model row's ``SuggestFn`` (one trigger per call: what latency times) plus ``many``
    (batched beam search over examples: the scoring pass) and ``info`` (training record).
    Abstains by ``decide(beams, reject_at)``; ``reject_at = inf`` never abstains."""

    def __init__(self, model: QuerySuggester, index: Any, cfg: OneBarConfig, beam: int,
                 batch: int = 64, info: dict[str, Any] | None = None,
                 reject_at: float | None = None) -> None:
        self.model, self.suggester = model, ModelSuggester(model, index, cfg, beam)
        self.beam, self.batch, self.info, self.reject_at = beam, batch, info or {}, reject_at

    def ranked(self, triggers: Sequence[int], histories: Sequence[list[str]], k: int
               ) -> list[list[tuple[str, float]]]:
        return self.model.suggest(self.suggester.texts(triggers, histories), k,
                                  max(self.beam, k))

    def __call__(self, trigger: int, history: list[str], k: int) -> list[str]:
        return decide(self.ranked([trigger], [history], k)[0], self.reject_at)

    def many_ranked(self, examples: Sequence[Example], k: int
                    ) -> list[list[tuple[str, float]]]:
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(examples), self.batch):
            part = examples[start:start + self.batch]
            out += self.ranked([e.trigger for e in part], [list(e.history) for e in part], k)
        return out

    def many(self, examples: Sequence[Example], k: int) -> list[list[str]]:
        return [decide(r, self.reject_at) for r in self.many_ranked(examples, k)]


def validator(index: Any, cfg: OneBarConfig, examples: Sequence[Example], beam: int,
              batch: int) -> stages.Validator:
    """HR@8 (``cfg.k``) of a model's guarded suggestions on ``examples`` (valid split), never
    abstaining: matching quality only (the abstention threshold is set after training; a
    young model ranks [REJECT], its most frequent target, first everywhere)."""
    def hr(model: QuerySuggester) -> float:
        row = ModelRow(model, index, cfg, beam, batch, reject_at=float("inf"))
        shown = [safe_suggestions(s, cfg.block_list, cfg.k) for s in row.many(examples, cfg.k)]
        return float(score(shown, examples, cfg)["metrics"][f"hr@{cfg.k}"])
    return hr


def reject_threshold(reject_logp: np.ndarray, labels: np.ndarray) -> float:
    """The [REJECT] log-prob threshold with the best reject F1 on (valid) examples (ties: the
    highest); ``reject_logp`` is -inf where [REJECT] is not among the beams; inf (never
    abstain) when no labelled example has it."""
    best, best_f1 = float("inf"), 0.0
    for thr in sorted(set(reject_logp[np.isfinite(reject_logp)].tolist()), reverse=True):
        pred = reject_logp >= thr
        tp = float((pred & labels).sum())
        f1 = 2 * tp / (pred.sum() + labels.sum()) if tp else 0.0
        if f1 > best_f1:
            best, best_f1 = thr, f1
    return best


# ---- simulated feedback (Stage II) ----------------------------------------------------------

def candidate_lists(model: QuerySuggester, pairs: Sequence[Pair], n: int, beam: int,
                    max_distance: int, batch: int = 64,
                    also_clicked: Sequence[Collection[str]] | None = None
                    ) -> list[CandidateList]:
    """Per answerable pair: [logged query] + the model's top-``n`` beams that are neither
    [REJECT] nor within ``max_distance`` edits of it (nor outside the model's output
    vocabulary once re-tokenised, e.g. a lone "##x" piece), nor in the pair's
    ``also_clicked`` queries (normalised); pairs left with no negative skipped."""
    keep = [i for i, p in enumerate(pairs) if p.target != REJECT]
    others = [set(also_clicked[i]) if also_clicked is not None else set() for i in keep]
    pairs = [pairs[i] for i in keep]

    def scorable(q: str) -> bool:
        try:
            model.encode_targets([q])
        except ValueError:
            return False
        return True

    lists = []
    for start in range(0, len(pairs), batch):
        part = pairs[start:start + batch]
        beams = model.suggest([p.evidence for p in part], n, max(beam, n))
        for p, ranked, other in zip(part, beams, others[start:start + batch]):
            clicked = normalise(p.target)
            neg = [q for q, _ in ranked if q != REJECT and q != clicked and q not in other
                   and levenshtein(q, clicked) > max_distance and scorable(q)]
            neg = list(dict.fromkeys(neg))
            if neg:
                lists.append(CandidateList(p.evidence, (p.target, *neg), 0))
    return lists


# ---- the rows -------------------------------------------------------------------------------

@dataclass
class Stage:
    model: QuerySuggester
    key: dict[str, Any]
    info: dict[str, Any]


def _seeded(cfg: TrainConfig, seed: int) -> TrainConfig:
    return dataclasses.replace(cfg, seed=seed)


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


class Trainer:
    """Trains (or reuses) every stage of one (artifact, seed); stages are memoised."""

    def __init__(self, run: Any, cfg: OneBarConfig, train: OneBarTrainConfig, seed: int,
                 progress: Callable[[str], None] = print) -> None:
        self.run, self.cfg, self.train, self.seed, self.progress = run, cfg, train, seed, progress
        self.base_key = {"artifact": fingerprint(run.manifest["files"]), "seed": seed,
                         "validator": "hr@8, never abstaining",
                         "beam": train.beam, "valid_cases": train.valid_cases,
                         "rows_per_epoch": train.rows_per_epoch}
        self.done: dict[str, Stage] = {}
        self._pairs: dict[str, list[Pair]] = {}
        self._valid: list[Example] | None = None

    # data
    def pairs(self, fmt: str) -> list[Pair]:
        if fmt not in self._pairs:
            self._pairs[fmt] = [Pair(e, t) for e, t in self.run.example_texts("train", fmt)]
        return self._pairs[fmt]

    def valid(self) -> list[Example]:
        if self._valid is None:
            ex = self.run.examples("valid")
            self._valid = [ex[i] for i in _sample(len(ex), self.train.valid_cases, 0)]
        return self._valid

    def serving_cfg(self, fmt: str) -> OneBarConfig:
        return dataclasses.replace(self.cfg, format=fmt)

    def validate(self, fmt: str) -> stages.Validator:
        return validator(self.run.index, self.serving_cfg(fmt), self.valid(), self.train.beam,
                         self.train.eval_batch)

    def fresh_cfg(self, fmt: str) -> SuggesterConfig:
        if fmt == "verbose":
            return dataclasses.replace(self.train.model,
                                       max_evidence_len=self.train.verbose_evidence_len)
        return self.train.model

    def fresh(self, fmt: str) -> QuerySuggester:
        """A seeded untrained model whose output vocabulary covers the training queries."""
        torch.manual_seed(self.seed)
        return QuerySuggester.build([p.target for p in self.pairs(fmt)], self.fresh_cfg(fmt))

    # storage
    def directory(self, name: str) -> Path:
        return self.run.directory / "models" / name / f"seed{self.seed}"

    def cached(self, name: str, key: dict[str, Any]) -> Stage | None:
        d = self.directory(name)
        if not (d / "row.json").is_file():
            return None
        info = json.loads((d / "row.json").read_text())
        if info.get("key") != json.loads(json.dumps(key)):
            return None
        self.progress(f"  {name} seed {self.seed}: reusing {d}")
        return Stage(QuerySuggester.load(d), key, info)

    def save(self, name: str, model: QuerySuggester, key: dict[str, Any],
             info: dict[str, Any]) -> Stage:
        d = self.directory(name)
        model.save(d)
        write_json(d / "row.json", {"row": name, "key": key, **info})
        return Stage(model.eval(), key, json.loads((d / "row.json").read_text()))

    def stage(self, name: str, key: dict[str, Any], train: Callable[[Path], tuple[
            QuerySuggester, dict[str, Any]]]) -> Stage:
        """The memoised / saved stage ``name``, else ``train(work dir)`` -> (model, info)."""
        if name in self.done:
            return self.done[name]
        found = self.cached(name, key)
        if found is None:
            work = self.directory(name) / "train"
            if work.exists():
                shutil.rmtree(work)
            self.progress(f"  training {name} seed {self.seed} ...")
            start = time.perf_counter()
            model, info = train(work)
            info = {"train_seconds": time.perf_counter() - start, **info}
            found = self.save(name, model, key, info)
            self.progress(f"  {name}: {info['train_seconds']:.0f} s, valid hr@8 "
                          f"{info.get('valid_hr@8')}")
        self.done[name] = found
        return found

    # stages
    def sft(self, fmt: str = "schema") -> Stage:
        name = "onebar-stage1" if fmt == "schema" else f"onebar-stage1-{fmt}"
        key = {**self.base_key, "format": fmt, "model": cfglib.to_dict(self.fresh_cfg(fmt)),
               "sft": cfglib.to_dict(self.train.sft), "reject_repeat": self.train.reject_repeat}

        def train(work: Path) -> tuple[QuerySuggester, dict[str, Any]]:
            model = self.fresh(fmt)
            pairs = repeat_rejects(self.pairs(fmt), self.train.reject_repeat)
            task = stages.SftTask(model, pairs, self.train.sft.batch_size, self.validate(fmt))
            state = fit_stage(model, task, _seeded(self.train.sft, self.seed),
                              self.train.rows_per_epoch, work, "onebar-sft")
            return model, summary(state, len(pairs))
        return self.stage(name, key, train)

    def listwise(self) -> Stage:
        s1 = self.sft()
        t = self.train
        key = {**s1.key, "candidates": t.candidates, "max_lists": t.max_lists,
               "trigger_clicks": t.trigger_clicks,
               "listwise": cfglib.to_dict(t.listwise)}

        def train(work: Path) -> tuple[QuerySuggester, dict[str, Any]]:
            pairs = self.pairs("schema")
            pick = _sample(len(pairs), t.max_lists, self.seed)
            clicks = trigger_queries(self.run.examples("train")) if t.trigger_clicks else None
            start = time.perf_counter()
            lists = candidate_lists(s1.model, [pairs[i] for i in pick], t.candidates, t.beam,
                                    self.cfg.max_distance, t.eval_batch,
                                    [clicks[i] for i in pick] if clicks else None)
            feedback = time.perf_counter() - start
            model = QuerySuggester.load(self.directory("onebar-stage1"))
            ref = stages.frozen_copy(s1.model)
            task = stages.ListwiseTask(model, ref, lists, _seeded_listwise(t.listwise,
                                       self.seed), self.validate("schema"))
            info = self.fit_from_start(model, task, _seeded(t.listwise.train, self.seed),
                                       work, "onebar-listwise", s1.info.get("valid_hr@8"))
            return model, {**info, "n_rows": len(lists), "feedback_seconds": feedback,
                           "triggers_sampled": len(pick)}
        return self.stage("onebar-stage2", key, train)

    def teacher(self) -> Stage:
        s1 = self.sft()
        key = {**s1.key, "teacher": cfglib.to_dict(self.train.teacher)}

        def train(work: Path) -> tuple[QuerySuggester, dict[str, Any]]:
            model = QuerySuggester.load(self.directory("onebar-stage1"))
            pairs = stages.teacher_pairs(self.pairs("schema"),
                                         np.random.default_rng(self.seed))
            task = stages.SftTask(model, pairs, self.train.teacher.batch_size, None)
            state = fit_stage(model, task, _seeded(self.train.teacher, self.seed),
                              self.train.rows_per_epoch, work, "onebar-teacher")
            return model, summary(state, len(pairs), validated=False)
        return self.stage("onebar-teacher", key, train)

    def piopd(self) -> Stage:
        s2, teacher = self.listwise(), self.teacher()
        t = self.train
        key = {**s2.key, "teacher": teacher.key["teacher"], "piopd": cfglib.to_dict(t.piopd),
               "divergences": list(t.divergences)}

        def train(work: Path) -> tuple[QuerySuggester, dict[str, Any]]:
            pairs = self.pairs("schema")
            best: tuple[float, QuerySuggester, dict[str, Any]] | None = None
            tried = {}
            for div in t.divergences:
                model = QuerySuggester.load(self.directory("onebar-stage2"))
                cfg = dataclasses.replace(t.piopd, divergence=div)
                task = stages.PiopdTask(model, stages.frozen_copy(teacher.model), pairs, cfg,
                                        self.validate("schema"))
                info = {**self.fit_from_start(model, task, _seeded(cfg.train, self.seed),
                                              work / div, "onebar-piopd",
                                              s2.info.get("valid_hr@8")),
                        "n_rows": len(pairs), "divergence": div}
                tried[div] = info["valid_hr@8"]
                if best is None or info["valid_hr@8"] > best[0]:
                    best = (info["valid_hr@8"], model, info)
            assert best is not None
            return best[1], {**best[2], "divergences_valid_hr@8": tried}
        return self.stage("onebar", key, train)

    def fit_from_start(self, model: QuerySuggester, task: Any, cfg: TrainConfig, work: Path,
                       kind: str, start_score: float | None) -> dict[str, Any]:
        """``fit_stage``; the starting weights are kept when no epoch beats their valid score
        (``start_score``: the previous stage's best, else measured here)."""
        if start_score is None:
            start_score = self.validate("schema")(model)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        info = summary(fit_stage(model, task, cfg, self.train.rows_per_epoch, work, kind), 0)
        info["start_valid_hr@8"] = start_score
        info["kept_start"] = not info["valid_hr@8"] > start_score
        if info["kept_start"]:
            model.load_state_dict(start)
            info["valid_hr@8"] = start_score
        return info

    def row(self, name: str) -> Stage:
        if name == "onebar-stage1":
            return self.sft()
        if name == "onebar-stage1-verbose":
            return self.sft("verbose")
        if name == "onebar-stage2":
            return self.listwise()
        if name == "onebar":
            return self.piopd()
        raise KeyError(f"{name}: not a trained row; known: {list(STAGE_ROWS)}")


def repeat_rejects(pairs: Sequence[Pair], times: int) -> list[Pair]:
    """``pairs`` with every [REJECT] pair ``times`` times (in place of once)."""
    return [q for p in pairs for q in ([p] * times if p.target == REJECT else [p])]


def trigger_queries(examples: Sequence[Example]) -> list[frozenset[str]]:
    """Per example: every normalised query logged after its trigger item in ``examples``."""
    found: dict[int, set[str]] = defaultdict(set)
    for e in examples:
        if not e.reject:
            found[e.trigger].add(normalise(e.target))
    return [frozenset(found[e.trigger]) for e in examples]


def _seeded_listwise(cfg: ListwiseConfig, seed: int) -> ListwiseConfig:
    return dataclasses.replace(cfg, train=_seeded(cfg.train, seed))


def summary(state: dict[str, Any], n_rows: int, validated: bool = True) -> dict[str, Any]:
    """What row.json keeps of a loop state: epochs, steps, best valid score (None without a
    validator: the loop then counts evaluations), history."""
    return {"n_rows": n_rows, "epochs": state["epoch"], "steps": state["step"],
            "loop_seconds": state["train_seconds"],
            "valid_hr@8": state.get("best_score") if validated else None,
            "best_epoch": state.get("best_epoch"), "stopped": state.get("stopped"),
            "history": [{k: v for k, v in h.items() if k in ("epoch", "step", "loss",
                         "task_loss", "valid_score", "seconds")} for h in state["history"]]}


def trained_row(name: str) -> Callable[[Any, int], ModelRow]:
    """A suite row ``(context, seed) -> ModelRow`` training (or reusing) stage ``name``;
    the context carries ``run``, ``cfg`` and ``train`` (``OneBarTrainConfig``)."""
    def make(ctx: Any, seed: int) -> ModelRow:
        trainers = ctx.trainers
        if seed not in trainers:
            trainers[seed] = Trainer(ctx.run, ctx.cfg, ctx.train, seed, ctx.progress)
        st = trainers[seed].row(name)
        fmt = st.key["format"]
        info = {k: v for k, v in st.info.items() if k not in ("key", "history")}
        info["stages"] = {n: {k: s.info.get(k) for k in ("train_seconds", "epochs", "steps",
                                                         "valid_hr@8", "divergence",
                                                         "kept_start")}
                          for n, s in trainers[seed].done.items() if n in STAGES_OF[name]}
        row = ModelRow(st.model, ctx.run.index, dataclasses.replace(ctx.cfg, format=fmt),
                       ctx.train.beam, ctx.train.eval_batch, info)
        valid = trainers[seed].valid()
        lp = np.array([next((x for q, x in r if q == REJECT), -np.inf)
                       for r in row.many_ranked(valid, ctx.cfg.k)])
        row.reject_at = reject_threshold(lp, np.array([e.reject for e in valid]))
        info["reject_at"] = row.reject_at  # chosen on valid
        return row
    return make


__all__ = ["OneBarTrainConfig", "Trainer", "ModelRow", "candidate_lists", "decide",
           "reject_threshold", "trained_row", "validator", "STAGE_ROWS"]
