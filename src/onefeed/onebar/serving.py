"""``TriggerSuggester``: the one call behind ``onefeed suggest`` and the service's ``/suggest``.

    TriggerSuggester.from_dir("runs/beauty/onebar", method="anchor-cascade")
        .suggest("B00ABC", user="A1YJ...", k=8) -> SuggestResult(queries, reject, method)

Items and users are given by their source ids (``items.item_id`` / ``users.user_id``; an
integer index is accepted when no id matches). The user's history is their last
``history_window`` queries in the whole log. Evidence is cached per item (``ModelSuggester``);
``labels.safe_suggestions`` guards every answer, so no blocked term is ever exposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from onefeed.onebar.baselines import BASELINES
from onefeed.onebar.labels import REJECT
from onefeed.onebar.pairs import UserQueries
from onefeed.onebar.pipeline import OneBarRun, load
from onefeed.onebar.suggesters import BaselineSuggester, ModelSuggester, SafeSuggester

METHODS: tuple[str, ...] = (*BASELINES, "model")
END = 2**62  # a position after every event: the whole log is history


class SuggestError(ValueError):
    """Bad input to ``suggest``: an unknown item, user or method, or no model checkpoint."""


@dataclass(frozen=True)
class SuggestResult:
    queries: list[str] = field(default_factory=list)  # what is shown, best first; [] on reject
    reject: bool = False  # the suggester abstained ([REJECT]) or nothing safe was left
    method: str = ""


def load_model(run: OneBarRun):
    """The run's trained ``onebar.model.QuerySuggester`` (``<run>/model``)."""
    path = run.model_dir()
    if not path.is_dir():
        raise SuggestError(f"{run.directory}: no model checkpoint (expected {path}/, written by "
                           "QuerySuggester.save); use a baseline --method or train one")
    try:
        from onefeed.onebar.model import QuerySuggester
    except ModuleNotFoundError as exc:
        raise SuggestError(f"--method model needs onefeed.onebar.model ({exc})") from None
    return QuerySuggester.load(path)


class TriggerSuggester:
    def __init__(self, run: OneBarRun, method: str = "anchor-cascade", model=None,
                 beam: int | None = None) -> None:
        if method not in METHODS:
            raise SuggestError(f"method {method!r} unknown; known: {list(METHODS)}")
        ds = run.dataset()
        self.run, self.method, self.cfg = run, method, run.cfg
        self.item_index = {str(i): n for n, i in enumerate(ds.items.sort("item")["item_id"])}
        self.user_index = {str(u): int(n) for n, u in ds.users.select("user", "user_id")
                           .iter_rows()}
        self.n_items, self.n_users = ds.n_items, ds.n_users
        self.queries = UserQueries(ds)
        if method == "model":
            inner = ModelSuggester(model if model is not None else load_model(run), run.index,
                                   run.cfg, beam)
        else:
            baseline = BASELINES[method]()
            baseline.fit(ds, run.index, run.cfg)
            inner = BaselineSuggester(baseline)
        self.suggester = SafeSuggester(inner, run.cfg.block_list)

    @classmethod
    def from_dir(cls, directory: str | Path, method: str = "anchor-cascade",
                 beam: int | None = None) -> "TriggerSuggester":
        return cls(load(directory), method, beam=beam)

    def item(self, item: str | int) -> int:
        """The item's index from its source id (or an index in range); else SuggestError."""
        return _lookup(self.item_index, item, self.n_items, "item", "items.item_id")

    def user(self, user: str | int) -> int:
        return _lookup(self.user_index, user, self.n_users, "user", "users.user_id")

    def history(self, user: int) -> list[str]:
        """The user's last ``history_window`` queries, most recent last."""
        return self.queries.before(user, END, self.cfg.history_window)

    def suggest(self, item: str | int, user: str | int | None = None, k: int | None = None
                ) -> SuggestResult:
        """Up to ``k`` (default ``cfg.k``) safe queries for the watched ``item``, or a reject."""
        k = k or self.cfg.k
        if k < 1:
            raise SuggestError(f"k = {k}: must be >= 1")
        trigger = self.item(item)
        history = self.history(self.user(user)) if user is not None else []
        queries = self.suggester.suggest([trigger], [history], k)[0]
        shown = [q for q in queries if q != REJECT][:k]
        return SuggestResult(shown, not shown, self.method)


def _lookup(index: dict[str, int], key: str | int, n: int, what: str, column: str) -> int:
    text = str(key)
    if text in index:
        return index[text]
    if text.isdigit() and int(text) < n:
        return int(text)
    raise SuggestError(f"{what} {text!r} not found ({column}, or an index < {n})")
