"""``FeedbackEvent``: one impression, click, skip, dwell or query a client reported.

The same rules as ``POST /feedback``'s request model (``onefeed.serve.schemas.FeedbackIn``),
checked again here because the log is also written without the service (scripts, tests):

    kind        needs
    impression  item            (shown; a negative unless clicked: see export.py)
    click       item            (+ query: a click on a search result)
    skip        item            (scrolled past)
    dwell       item, dwell_ms  (time spent on the item)
    query       query           (a search the user typed)

A bad event raises ``FeedbackError`` naming the field, e.g. ``dwell_ms: -5 is not an integer
in [0, 86400000]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

KINDS: tuple[str, ...] = ("impression", "click", "skip", "dwell", "query")
ITEM_KINDS: tuple[str, ...] = ("impression", "click", "skip", "dwell")
MAX_TIMESTAMP = 1e11  # unix seconds, as FeedbackIn
MAX_POSITION = 1_000_000
MAX_DWELL_MS = 86_400_000  # one day
TEXT_LIMITS = {"user": 256, "item": 256, "query": 10_000, "request_id": 256}


class FeedbackError(ValueError):
    """A feedback event, log target or log file that cannot be used (one line naming it)."""


def _text(name: str, value: Any, required: bool) -> None:
    if value is None:
        if required:
            raise FeedbackError(f"{name}: required")
        return
    if not isinstance(value, str):
        raise FeedbackError(f"{name}: {value!r} is not a string")
    if not value:
        raise FeedbackError(f"{name}: empty")
    if len(value) > TEXT_LIMITS[name]:
        raise FeedbackError(f"{name}: {len(value)} characters; at most {TEXT_LIMITS[name]}")


def _integer(name: str, value: Any, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise FeedbackError(f"{name}: {value!r} is not an integer in [0, {high}]")


@dataclass(frozen=True)
class FeedbackEvent:
    user: str
    kind: str
    timestamp: float  # unix seconds (client time)
    item: str | None = None
    query: str | None = None
    position: int | None = None  # rank at which the item was shown
    dwell_ms: int | None = None
    request_id: str | None = None  # the response it reacts to (ItemsResponse.request_id)

    def __post_init__(self) -> None:
        _text("user", self.user, True)
        if self.kind not in KINDS:
            raise FeedbackError(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        t = self.timestamp
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                or not 0 <= t <= MAX_TIMESTAMP:
            raise FeedbackError(f"timestamp: {t!r} is not a number of unix seconds in "
                                f"[0, {MAX_TIMESTAMP:g}]")
        object.__setattr__(self, "timestamp", float(t))
        _text("item", self.item, False)
        _text("query", self.query, False)
        _text("request_id", self.request_id, False)
        _integer("position", self.position, MAX_POSITION)
        _integer("dwell_ms", self.dwell_ms, MAX_DWELL_MS)
        if self.kind in ITEM_KINDS and self.item is None:
            raise FeedbackError(f"a {self.kind} event needs an item")
        if self.kind == "query" and self.query is None:
            raise FeedbackError("a query event needs a query")
        if self.kind == "dwell" and self.dwell_ms is None:
            raise FeedbackError("a dwell event needs dwell_ms")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS: tuple[str, ...] = tuple(FeedbackEvent.__dataclass_fields__)
