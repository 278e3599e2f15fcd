"""OneBar's progressive preference internalisation (§3.4): three stages over ``train.loop.fit``.

* Stage I, content-grounded SFT (§3.4.1, Eq. 5): next-token NLL of the clicked query, or of
  ``[REJECT]`` for unsafe triggers, given the serialised evidence (``train_sft``).
* Stage II, list-wise feedback alignment (§3.4.2, Eq. 10): softmax DPO of each trigger's
  clicked candidate against its other logged candidates, relative to a frozen reference, plus
  an SFT anchor on the clicked one (``train_listwise``). Candidates of one trigger share one
  encoder pass.
* Stage III, PIOPD (§3.4.3, Eq. 12-14): a frozen teacher that saw the posterior (clicked)
  queries inside its evidence (``insert_posterior``, Table 5 strategy 3) supervises the
  student's full-vocabulary token distributions on the student's own sampled prefixes, plus
  the SFT anchor and an optional entropy bonus (``train_piopd``). R-Drop and FGM (Eq. 15) are
  not implemented.

``train_progressive`` runs the three in order (Table 7: Stage II and III can be skipped).
Each stage is a ``train.task.Task``: the loop owns AdamW, schedule, guards, checkpoints
(``out/best``, ``out/last``: ``QuerySuggester.load`` reads either) and early stopping on the
``validate`` callback (e.g. HR@8 of ``model.suggest`` on validation triggers; Fig. 7: stop on
validation, not on the loss). Without a callback every evaluation counts as an improvement,
so the last weights are kept. After training the model holds the best weights.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch

from onefeed import checkpoint
from onefeed.objectives.distillation import forward_kl, jsd, neg_entropy, reverse_kl
from onefeed.objectives.generation import text_nll
from onefeed.objectives.listwise import softmax_dpo
from onefeed.onebar.model import (IGNORE, REJECT, SEP, QuerySuggester, SuggesterConfig,
                                  eval_mode, target_logp)
from onefeed.train.loop import fit
from onefeed.train.task import rank_shard, steps_for
from onefeed.train.config import TrainConfig

Validator = Callable[[QuerySuggester], float]  # higher is better (e.g. HR@8 on valid)
# pairs may be Pair s or plain (evidence, target) tuples everywhere below
Divergence = Literal["fkl", "rkl", "jsd", "fkl+rkl"]


class Pair(NamedTuple):
    evidence: str  # serialised, [SEP]-delimited
    target: str  # the clicked query, or "[REJECT]"


def as_pairs(pairs: Sequence[tuple[str, str]]) -> list[Pair]:
    """Plain (evidence, target) tuples (e.g. ``OneBarRun.example_texts``) as ``Pair`` s."""
    return [Pair(*p) for p in pairs]


class CandidateList(NamedTuple):
    evidence: str
    candidates: tuple[str, ...]  # logged queries of one trigger (exposed, clicked or not)
    clicked: int  # index of the clicked candidate


@dataclass
class ListwiseConfig:
    RANGES: ClassVar[dict[str, str]] = {"beta": "> 0", "sft_weight": ">= 0"}
    beta: float = 0.1  # DPO scale (Eq. 9)
    sft_weight: float = 0.1  # lambda of Eq. 10: NLL of the clicked candidate
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, warmup_steps=20))


@dataclass
class PiopdConfig:
    RANGES: ClassVar[dict[str, str]] = {"fkl_weight": ">= 0", "rkl_weight": ">= 0",
        "jsd_beta": "(0, 1)", "sft_weight": ">= 0", "entropy_weight": ">= 0",
        "teacher_temperature": "> 0", "sample_temperature": "> 0", "rollouts": ">= 1"}
    divergence: Divergence = "fkl+rkl"  # Table 6: FKL + RKL best
    fkl_weight: float = 0.5  # "fkl+rkl" weights (Table 4: 0.5 FKL + 0.7 RKL + SFT)
    rkl_weight: float = 0.7
    jsd_beta: float = 0.5
    sft_weight: float = 1.0  # ground-truth anchor on the clicked query
    entropy_weight: float = 0.0  # Eq. 14 (the paper's value is not given)
    teacher_temperature: float = 1.0  # teacher smoothing tau (§5.1)
    sample_temperature: float = 1.0  # student rollouts
    rollouts: int = 1  # sampled trajectories per example (§3.4.3: one)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, warmup_steps=20))


# ---- the teacher's prompt ------------------------------------------------------------------------
EMPTY = "<none>"  # the schema's empty-field value (onebar.evidence.NONE)


def _value_start(words: list[str]) -> int:
    """Index of a field's first value word: after a ``name:`` label, if it has one."""
    return 1 if words and words[0].endswith(":") else 0


def insert_posterior(evidence: str, posterior: Sequence[str], rng: np.random.Generator) -> str:
    """Table 5 strategy 3 (randomised context augmentation): every posterior query goes to a
    random word position of a random field that holds a value (a field's ``name:`` label
    stays first; if no field holds one, any field, whose ``<none>`` the query replaces); the
    [SEP] schema keeps its fields."""
    fields = evidence.split(SEP)
    words = [f.split() for f in fields]
    full = [i for i, w in enumerate(words) if w[_value_start(w):] not in ([], [EMPTY])]
    for query in posterior:
        i = full[int(rng.integers(len(full)))] if full else int(rng.integers(len(fields)))
        w, start = words[i], _value_start(words[i])
        if w[start:] == [EMPTY]:
            del w[start]
        w.insert(start + int(rng.integers(len(w) - start + 1)), query)
    out = []
    for f, w in zip(fields, words):
        lead, trail = f[: len(f) - len(f.lstrip())], f[len(f.rstrip()):]
        out.append(lead + " ".join(w) + trail if w else f)
    return SEP.join(out)


def posteriors(pairs: Sequence[Pair]) -> dict[str, tuple[str, ...]]:
    """evidence -> every clicked query of that evidence ([REJECT] is a safety label, not a
    click: never inserted)."""
    found: dict[str, list[str]] = defaultdict(list)
    for p in as_pairs(pairs):
        if p.target != REJECT and p.target not in found[p.evidence]:
            found[p.evidence].append(p.target)
    return {e: tuple(q) for e, q in found.items()}


def teacher_pairs(pairs: Sequence[Pair], rng: np.random.Generator) -> list[Pair]:
    """The teacher's SFT data: each pair's evidence with its posterior queries inserted."""
    post = posteriors(pairs)
    return [Pair(insert_posterior(p.evidence, post.get(p.evidence, ()), rng), p.target)
            for p in as_pairs(pairs)]


def frozen_copy(model: QuerySuggester) -> QuerySuggester:
    """A deep copy in eval mode without gradients (Stage II's reference, a PIOPD teacher)."""
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


# ---- tasks (train.task.Task) ---------------------------------------------------------------------
class _StageTask:
    """Batching over ``n`` rows and the validation callback; subclasses define ``loss``."""

    def __init__(self, n: int, batch_size: int, validate: Validator | None) -> None:
        if n == 0:
            raise ValueError("no training rows")
        self.n, self.batch_size, self.validator, self.evals = n, batch_size, validate, 0

    def steps_per_epoch(self, world: int) -> int:
        return steps_for(self.n, self.batch_size, world)

    def batches(self, epoch: int, rng: np.random.Generator, rank: int, world: int
                ) -> Iterator[tuple[np.ndarray, int]]:
        """(row indices, seed of the batch's own randomness)."""
        shard = rank_shard(self.n, rng, rank, world)
        for start in range(0, len(shard), self.batch_size):
            yield shard[start:start + self.batch_size], int(rng.integers(2**31))

    def validate(self, model: torch.nn.Module, rank: int, world: int) -> dict[str, float]:
        self.evals += 1
        if self.validator is None:  # no early stopping: the latest weights count as best
            return {"score": float(self.evals)}
        return {"score": float(self.validator(model))}  # type: ignore[arg-type]


class SftTask(_StageTask):
    def __init__(self, model: QuerySuggester, pairs: Sequence[Pair], batch_size: int,
                 validate: Validator | None) -> None:
        super().__init__(len(pairs), batch_size, validate)
        pairs = as_pairs(pairs)
        self.evidence = [p.evidence for p in pairs]
        self.targets = model.encode_targets([p.target for p in pairs])  # checks the vocab

    def loss(self, model: QuerySuggester, batch: tuple[np.ndarray, int]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        rows, _ = batch
        targets = self.targets[torch.from_numpy(rows)]
        targets = targets[:, : int((targets != IGNORE).sum(1).max())]
        loss = text_nll(model.logits([self.evidence[i] for i in rows], targets), targets)
        return loss, {"sft": loss.item()}


class ListwiseTask(_StageTask):
    def __init__(self, model: QuerySuggester, ref: QuerySuggester,
                 lists: Sequence[CandidateList], cfg: ListwiseConfig,
                 validate: Validator | None) -> None:
        super().__init__(len(lists), cfg.train.batch_size, validate)
        if not torch.equal(model.out_tokens, ref.out_tokens):
            raise ValueError("Stage II: the reference must share the model's output vocabulary "
                             "(use frozen_copy of the Stage I model)")
        for cl in lists:
            if not 0 <= cl.clicked < len(cl.candidates) or len(cl.candidates) < 2:
                raise ValueError(f"candidate list {cl.candidates!r}: clicked index "
                                 f"{cl.clicked} outside, or fewer than 2 candidates")
            if len(set(cl.candidates)) < len(cl.candidates):
                raise ValueError(f"candidate list {cl.candidates!r} repeats a query")
        self.lists, self.cfg = list(lists), cfg
        self.ref_logp = [torch.zeros(0)] * len(lists)
        with torch.no_grad(), eval_mode(ref):
            for start in range(0, len(lists), 64):
                part = range(start, min(start + 64, len(lists)))
                flat, rows = self._flatten([self.lists[i] for i in part])
                logp = ref.sequence_logp([self.lists[i].evidence for i in part], flat, rows)
                for j, i in enumerate(part):
                    self.ref_logp[i] = logp[rows == j]

    @staticmethod
    def _flatten(lists: Sequence[CandidateList]) -> tuple[list[str], torch.Tensor]:
        flat = [c for cl in lists for c in cl.candidates]
        rows = torch.tensor([j for j, cl in enumerate(lists) for _ in cl.candidates])
        return flat, rows

    def loss(self, model: QuerySuggester, batch: tuple[np.ndarray, int]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        lists = [self.lists[i] for i in batch[0]]
        flat, rows = self._flatten(lists)
        targets = model.encode_targets(flat)
        logits = model.logits([cl.evidence for cl in lists], targets, rows)
        logp = target_logp(logits, targets)  # (N,)
        width = max(len(cl.candidates) for cl in lists)
        policy = torch.zeros(len(lists), width)
        ref = torch.zeros(len(lists), width)
        valid = torch.zeros(len(lists), width, dtype=torch.bool)
        chosen = torch.zeros(len(lists), width, dtype=torch.bool)
        at = 0
        for j, (i, cl) in enumerate(zip(batch[0], lists)):
            n = len(cl.candidates)
            policy[j, :n], ref[j, :n] = logp[at:at + n], self.ref_logp[i]
            valid[j, :n], chosen[j, cl.clicked] = True, True
            at += n
        dpo = softmax_dpo(policy, ref, chosen, self.cfg.beta, valid)
        starts = torch.tensor([0] + [len(cl.candidates) for cl in lists]).cumsum(0)[:-1]
        picked = starts + torch.tensor([cl.clicked for cl in lists])
        sft = text_nll(logits[picked], targets[picked])
        return dpo + self.cfg.sft_weight * sft, {"dpo": dpo.item(), "sft": sft.item()}


def divergence_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    mask: torch.Tensor, cfg: PiopdConfig) -> dict[str, torch.Tensor]:
    """The divergence terms of ``cfg.divergence`` by name (summed into the PIOPD loss)."""
    if cfg.divergence == "fkl":
        return {"fkl": forward_kl(student_logits, teacher_logits, mask)}
    if cfg.divergence == "rkl":
        return {"rkl": reverse_kl(student_logits, teacher_logits, mask)}
    if cfg.divergence == "jsd":
        return {"jsd": jsd(student_logits, teacher_logits, mask, cfg.jsd_beta)}
    if cfg.divergence == "fkl+rkl":
        return {"fkl": cfg.fkl_weight * forward_kl(student_logits, teacher_logits, mask),
                "rkl": cfg.rkl_weight * reverse_kl(student_logits, teacher_logits, mask)}
    raise ValueError(f"unknown divergence {cfg.divergence!r}; known: fkl, rkl, jsd, fkl+rkl")


class PiopdTask(_StageTask):
    def __init__(self, student: QuerySuggester, teacher: QuerySuggester, pairs: Sequence[Pair],
                 cfg: PiopdConfig, validate: Validator | None) -> None:
        super().__init__(len(pairs), cfg.train.batch_size, validate)
        if not torch.equal(student.out_tokens, teacher.out_tokens):
            raise ValueError("PIOPD: teacher and student must share one output vocabulary "
                             "(initialise both from the same Stage II checkpoint)")
        self.teacher, self.pairs, self.cfg = teacher, as_pairs(pairs), cfg
        self.posterior = posteriors(pairs)
        self.targets = student.encode_targets([p.target for p in pairs])

    def rollout_terms(self, student: QuerySuggester, rows: np.ndarray, seed: int
                      ) -> tuple[dict[str, torch.Tensor], int]:
        """Sample the student's rollouts and match the teacher on them: (the divergence terms
        and the student's negative entropy, each averaged over rollout tokens; the number of
        rollout tokens)."""
        cfg, evidence = self.cfg, [self.pairs[i].evidence for i in rows]
        gen = torch.Generator().manual_seed(seed)
        roll = student.sample(evidence, cfg.rollouts, cfg.sample_temperature, gen)
        mask = roll.tokens != IGNORE
        student_logits = student.logits(evidence, roll.tokens, roll.rows)
        rng = np.random.default_rng(seed)
        prompts = [insert_posterior(e, self.posterior.get(e, ()), rng) for e in evidence]
        with torch.no_grad(), eval_mode(self.teacher):
            teacher_logits = self.teacher.logits(prompts, roll.tokens, roll.rows)
        terms = divergence_loss(student_logits, teacher_logits / cfg.teacher_temperature,
                                mask, cfg)
        if cfg.entropy_weight:
            terms["neg_entropy"] = cfg.entropy_weight * neg_entropy(student_logits, mask)
        return terms, int(mask.sum())

    def loss(self, model: QuerySuggester, batch: tuple[np.ndarray, int]
             ) -> tuple[torch.Tensor, dict[str, float]]:
        rows, seed = batch
        terms, _ = self.rollout_terms(model, rows, seed)
        if self.cfg.sft_weight:
            targets = self.targets[torch.from_numpy(rows)]
            targets = targets[:, : int((targets != IGNORE).sum(1).max())]
            logits = model.logits([self.pairs[i].evidence for i in rows], targets)
            terms["sft"] = self.cfg.sft_weight * text_nll(logits, targets)
        loss = sum(terms.values())
        return loss, {k: v.item() for k, v in terms.items()}  # type: ignore[return-value]


# ---- the stages ----------------------------------------------------------------------------------
def _fit(model: QuerySuggester, task: Any, cfg: TrainConfig, out: str | Path, kind: str,
         resume: bool, extra: dict[str, Any]) -> dict[str, Any]:
    out = Path(out)
    state = fit(model, task, cfg, out, model.config_json(), {"kind": kind, **extra}, resume,
                name=kind)
    model.load_state_dict(checkpoint.load_weights(out / "best"))
    return state


def train_sft(model: QuerySuggester, pairs: Sequence[Pair], cfg: TrainConfig, out: str | Path,
              validate: Validator | None = None, resume: bool = True) -> dict[str, Any]:
    """Stage I: SFT on (evidence, clicked query | [REJECT]) pairs; -> the loop's final state
    (``history`` holds each evaluation's mean loss and score)."""
    task = SftTask(model, pairs, cfg.batch_size, validate)
    return _fit(model, task, cfg, out, "onebar-sft", resume, {"n_pairs": len(pairs)})


def train_listwise(model: QuerySuggester, ref_model: QuerySuggester,
                   lists: Sequence[CandidateList], cfg: ListwiseConfig, out: str | Path,
                   validate: Validator | None = None, resume: bool = True) -> dict[str, Any]:
    """Stage II: softmax DPO against the frozen ``ref_model`` (e.g. ``frozen_copy`` of the
    Stage I model) plus the SFT anchor on clicked candidates."""
    ref_model.eval().requires_grad_(False)
    task = ListwiseTask(model, ref_model, lists, cfg, validate)
    return _fit(model, task, cfg.train, out, "onebar-listwise", resume,
                {"n_lists": len(lists), "beta": cfg.beta, "sft_weight": cfg.sft_weight})


def train_piopd(student: QuerySuggester, teacher: QuerySuggester, examples: Sequence[Pair],
                cfg: PiopdConfig, out: str | Path, validate: Validator | None = None,
                divergence: Divergence | None = None, resume: bool = True) -> dict[str, Any]:
    """Stage III: on-policy distillation from the frozen posterior-aware ``teacher`` (trained
    by ``train_sft`` on ``teacher_pairs``) into ``student``; ``divergence`` overrides
    ``cfg.divergence``."""
    if divergence is not None:
        cfg = dataclasses.replace(cfg, divergence=divergence)
    teacher.eval().requires_grad_(False)
    task = PiopdTask(student, teacher, examples, cfg, validate)
    return _fit(student, task, cfg.train, out, "onebar-piopd", resume,
                {"n_examples": len(examples), "divergence": cfg.divergence})


@dataclass
class ProgressiveConfig:
    """All three stages (OneBar §3.4, Table 7): Stage II and III can be skipped."""

    model: SuggesterConfig = field(default_factory=SuggesterConfig)
    sft: TrainConfig = field(default_factory=TrainConfig)
    listwise: ListwiseConfig = field(default_factory=ListwiseConfig)
    teacher: TrainConfig = field(default_factory=TrainConfig)  # SFT of the PIOPD teacher
    piopd: PiopdConfig = field(default_factory=PiopdConfig)
    listwise_stage: bool = True
    piopd_stage: bool = True
    seed: int = 0  # the teacher prompts' random insertion


def train_progressive(pairs: Sequence[Pair], lists: Sequence[CandidateList],
                      cfg: ProgressiveConfig, out: str | Path,
                      validate: Validator | None = None,
                      validate_teacher: Validator | None = None) -> QuerySuggester:
    """SFT -> list-wise DPO (reference: the SFT model) -> PIOPD (teacher: the Stage II model
    fine-tuned on ``teacher_pairs``, then frozen), each in ``out/<stage>``; -> the student.
    The output vocabulary covers every target and candidate."""
    out, pairs = Path(out), as_pairs(pairs)
    texts = [p.target for p in pairs] + [c for cl in lists for c in cl.candidates]
    model = QuerySuggester.build(texts, cfg.model)
    train_sft(model, pairs, cfg.sft, out / "sft", validate)
    if cfg.listwise_stage and lists:
        train_listwise(model, frozen_copy(model), lists, cfg.listwise, out / "listwise",
                       validate)
    if cfg.piopd_stage:
        teacher = copy.deepcopy(model)
        rng = np.random.default_rng(cfg.seed)
        train_sft(teacher, teacher_pairs(pairs, rng), cfg.teacher, out / "teacher",
                  validate_teacher)
        train_piopd(model, frozen_copy(teacher), pairs, cfg.piopd, out / "piopd", validate)
    return model


@torch.no_grad()
def piopd_divergence(student: QuerySuggester, teacher: QuerySuggester, examples: Sequence[Pair],
                     cfg: PiopdConfig, seed: int = 0, batch_size: int = 64) -> float:
    """The PIOPD divergence (``cfg.divergence``, without SFT and entropy) per token of the
    student's rollouts of every example, drawn with ``seed`` (a diagnostic: before / after)."""
    task = PiopdTask(student, teacher, examples, cfg, None)
    total, tokens = 0.0, 0
    with eval_mode(student):
        for start in range(0, len(examples), batch_size):
            rows = np.arange(start, min(start + batch_size, len(examples)))
            terms, n = task.rollout_terms(student, rows, seed + start)
            total += n * math.fsum(v.item() for k, v in terms.items() if k != "neg_entropy")
            tokens += n
    return total / max(tokens, 1)
