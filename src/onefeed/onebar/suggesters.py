"""One batched shape for everything that suggests queries for triggers (baselines and model):

    Suggester.suggest(triggers, histories, k) -> list[list[str]]   # one list (or [REJECT]) each

* ``BaselineSuggester`` — a fitted ``onebar.baselines`` object, one trigger at a time.
* ``ModelSuggester``    — a generator with ``suggest(evidence_texts, k, beam)`` (the
  ``onebar.model.QuerySuggester`` interface): it serialises each trigger's evidence
  (``EvidenceIndex.evidence``, cached per item: OneBar §4 precomputes everything but the
  user's history) in ``cfg.format`` and decodes with beam ``beam``.
* ``SafeSuggester``     — ``labels.safe_suggestions`` over any suggester: what may be exposed.

Not to be confused with ``baselines.Suggester`` (the baselines' ``fit`` / per-trigger shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from onefeed.onebar.config import OneBarConfig
from onefeed.onebar.evidence import Evidence, EvidenceIndex, serialise
from onefeed.onebar.labels import safe_suggestions


class Suggester(Protocol):
    def suggest(self, triggers: Sequence[int], histories: Sequence[list[str]], k: int
                ) -> list[list[str]]: ...


class QueryModel(Protocol):
    """What ``ModelSuggester`` needs of a model (``onebar.model.QuerySuggester``): per text a
    ranked list of queries, or of (query, log-prob) pairs."""

    def suggest(self, evidence_texts: list[str], k: int, beam: int
                ) -> list[list[str]] | list[list[tuple[str, float]]]: ...


class BaselineSuggester:
    def __init__(self, baseline) -> None:
        self.baseline = baseline  # fitted: suggest(trigger, history, k) -> list[str]

    def suggest(self, triggers: Sequence[int], histories: Sequence[list[str]], k: int
                ) -> list[list[str]]:
        return [self.baseline.suggest(int(t), list(h), k) for t, h in zip(triggers, histories)]


class ModelSuggester:
    def __init__(self, model: QueryModel, index: EvidenceIndex, cfg: OneBarConfig,
                 beam: int | None = None) -> None:
        self.model, self.index, self.cfg = model, index, cfg
        self.beam = beam or cfg.k
        self._cached: dict[int, Evidence] = {}  # item -> evidence without user history

    def item_evidence(self, item: int) -> Evidence:
        """The trigger's history-free evidence, computed once per item."""
        if item not in self._cached:
            self._cached[item] = self.index.evidence(item)
        return self._cached[item]

    def evidence(self, item: int, history: list[str]) -> Evidence:
        """The cached item evidence plus the user's history filtered for this trigger."""
        ev = self.item_evidence(item)
        if not history:
            return ev
        return Evidence(ev.trigger_title, ev.trigger_categories, ev.trigger_brand, ev.anchors,
                        ev.rag, self.index.filter_history(item, history))

    def texts(self, triggers: Sequence[int], histories: Sequence[list[str]]) -> list[str]:
        return [serialise(self.evidence(int(t), list(h)), self.cfg.format)
                for t, h in zip(triggers, histories)]

    def suggest(self, triggers: Sequence[int], histories: Sequence[list[str]], k: int
                ) -> list[list[str]]:
        if not triggers:
            return []
        out = self.model.suggest(self.texts(triggers, histories), k, max(self.beam, k))
        if len(out) != len(triggers):
            raise ValueError(f"model returned {len(out)} lists for {len(triggers)} triggers")
        return [[q if isinstance(q, str) else q[0] for q in row] for row in out]


class SafeSuggester:
    """``inner`` with ``safe_suggestions`` applied to every list (0 blocked terms exposed)."""

    def __init__(self, inner: Suggester, block_list: Sequence[str]) -> None:
        self.inner, self.block_list = inner, list(block_list)

    def suggest(self, triggers: Sequence[int], histories: Sequence[list[str]], k: int
                ) -> list[list[str]]:
        return [safe_suggestions(q, self.block_list, k)
                for q in self.inner.suggest(triggers, histories, k)]
