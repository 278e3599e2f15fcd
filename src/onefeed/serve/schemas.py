"""Pydantic models of every request and response of ``onefeed serve`` (the OpenAPI schema).

Requests are strict (``"k": "10"`` is a type error, unknown fields are refused) so a client
mistake is a 422 naming the field rather than a silent coercion. Static bounds live here;
bounds that are settings (``max_k``, ``max_query_chars``, ``max_history``) are checked by the
handlers against ``ServeSettings`` and reported the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID = Field(min_length=1, max_length=256)


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class HistoryEvent(Strict):
    """One event of an explicit history, oldest first."""

    behaviour: Literal["rec_click", "search_query", "search_click"]
    item: str | None = Field(None, min_length=1, max_length=256,
                             description="item id (rec_click / search_click)")
    query: str | None = Field(None, min_length=1, max_length=100000,
                              description="query text (search_query)")

    @model_validator(mode="after")
    def _fields_match_behaviour(self) -> "HistoryEvent":
        if self.behaviour == "search_query" and not (self.query and self.query.strip()):
            raise ValueError("a search_query event needs a non-empty query")
        if self.behaviour != "search_query" and self.item is None:
            raise ValueError(f"a {self.behaviour} event needs an item")
        return self


class WhoRequest(Strict):
    user: str | None = Field(None, min_length=1, max_length=256,
                             description="user id (users.user_id): their logged history")
    history: list[HistoryEvent] | None = Field(
        None, description="explicit history, oldest first (appended after the user's own "
        "history when both are given)")


class RecommendRequest(WhoRequest):
    k: int = Field(10, ge=1, le=1000, description="how many items")
    exclude_seen: bool = Field(False, description="leave out items of the history window")

    @model_validator(mode="after")
    def _someone(self) -> "RecommendRequest":
        if self.user is None and not self.history:
            raise ValueError("give a user or a non-empty history")
        return self


class SearchRequest(WhoRequest):
    query: str = Field(min_length=1, max_length=100000)
    k: int = Field(10, ge=1, le=1000)
    fuse_bm25: float | None = Field(
        None, ge=0, le=1000, description="fuse with BM25: its top candidates re-scored by "
        "bm25/max + fuse_bm25 * the model's log p (0.02-0.1 worked on the benches)")


class SuggestRequest(WhoRequest):
    trigger_item: str | None = Field(None, min_length=1, max_length=256,
                                     description="an item just clicked (appended last)")
    k: int = Field(5, ge=1, le=50)

    @model_validator(mode="after")
    def _someone(self) -> "SuggestRequest":
        if self.user is None and not self.history and self.trigger_item is None:
            raise ValueError("give a user, a history or a trigger_item")
        return self


class Item(BaseModel):
    item: str
    title: str
    score: float


class ItemsResponse(BaseModel):
    items: list[Item]
    request_id: str
    model: str = Field(description="run kind: joint, rec or unisearch")


class FeedResponse(ItemsResponse):
    source: Literal["recommend"] = Field(
        "recommend", description="what produced the feed: plain recommendation until fused "
        "SID + query candidates land")


class SuggestResponse(BaseModel):
    queries: list[str]
    rejected: bool = Field(False, description="the content-grounded suggester abstained "
                           "([REJECT]: nothing safe and grounded for the trigger item); "
                           "queries is then empty")
    request_id: str
    source: str = Field("nsqp", description="nsqp (next query from the history) or "
                        "onebar:<method> (content-grounded, for the trigger_item)")


class FeedbackIn(Strict):
    user: str = Field(min_length=1, max_length=256)
    kind: Literal["impression", "click", "skip", "dwell", "query"]
    timestamp: float = Field(ge=0, le=1e11, description="unix seconds")
    item: str | None = Field(None, min_length=1, max_length=256)
    query: str | None = Field(None, min_length=1, max_length=10000)
    position: int | None = Field(None, ge=0, le=1000000)
    dwell_ms: int | None = Field(None, ge=0, le=86400000)
    request_id: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _kind_fields(self) -> "FeedbackIn":
        if self.kind == "query" and self.query is None:
            raise ValueError("a query event needs a query")
        if self.kind in ("impression", "click", "skip", "dwell") and self.item is None:
            raise ValueError(f"a {self.kind} event needs an item")
        if self.kind == "dwell" and self.dwell_ms is None:
            raise ValueError("a dwell event needs dwell_ms")
        return self


class FeedbackRequest(Strict):
    events: list[FeedbackIn] = Field(min_length=1)


class FeedbackResponse(BaseModel):
    ids: list[int] = Field(description="log ids, returned only after the events are committed")
    accepted: int


class ItemIn(Strict):
    item: str = Field(min_length=1, max_length=256, description="new item id")
    text: str = Field(min_length=1, max_length=20000,
                      description="the item's text (embedded with MiniLM for its codes)")
    title: str | None = Field(None, min_length=1, max_length=1000)


class ItemAdded(BaseModel):
    item: str
    codes: list[int]
    n_items: int


class ItemRemoved(BaseModel):
    item: str
    removed: bool
    n_items: int


class ReloadRequest(Strict):
    run: str | None = Field(None, min_length=1, max_length=4096,
                            description="run dir to load (default: the current one again)")


class ReloadResponse(BaseModel):
    run: str
    kind: str
    seconds: float
    n_items: int


class Health(BaseModel):
    status: Literal["ok"]
    run: str
    kind: str
    n_items: int
    n_users: int
    batching: bool
    reloads: int
    uptime_s: float


class ErrorResponse(BaseModel):
    error: str = Field(description="one line naming the problem")
    field: str | None = Field(None, description="the request field at fault, if any")
