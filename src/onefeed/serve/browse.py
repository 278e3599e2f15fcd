"""Read-only browsing of the served run's logged users: ``GET /users`` and
``GET /users/{id}/history`` (what the demo page picks a user from and shows).

Both read the run's prepared ``Dataset`` (events sorted by user, position); the per-user event
offsets are computed once per loaded predictor, so a history is a slice, not a scan.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from onefeed.predict import Predictor
from onefeed.serve.schemas import ErrorResponse


class UserSummary(BaseModel):
    user: str = Field(description="user id (users.user_id)")
    events: int = Field(description="events in their logged history")


class UsersResponse(BaseModel):
    users: list[UserSummary]
    total: int = Field(description="users of the served run")
    limit: int
    offset: int


class LoggedEvent(BaseModel):
    position: int = Field(description="0-based chronological index within the user")
    behaviour: Literal["rec_click", "search_query", "search_click"]
    item: str | None = Field(description="item id (null for a search_query)")
    title: str | None = Field(description="the item's title (null for a search_query)")
    query: str | None = Field(description="search text (search_query / search_click)")
    timestamp: int | None = Field(description="unix seconds, null when the source has no time")
    split: Literal["train", "valid", "test"]


class HistoryResponse(BaseModel):
    user: str
    events: list[LoggedEvent] = Field(description="the last ``limit`` events, oldest first")
    total: int = Field(description="events in the whole logged history")


class _Index:
    """Per-user event offsets of one predictor's dataset (``starts[u]:starts[u + 1]``)."""

    def __init__(self, pred: Predictor) -> None:
        self.pred = pred
        ev = pred.ds.events
        users = ev["user"].to_numpy()
        if len(users) > 1 and (np.diff(users) < 0).any():  # prepare sorts; a guard, not a path
            raise ValueError(f"{pred.run_dir}: dataset events are not sorted by user")
        self.starts = np.searchsorted(users, np.arange(pred.ds.n_users + 1), side="left")
        order = pred.ds.users.sort("user")
        self.user_ids: list[str] = [str(u) for u in order["user_id"].to_list()]

    def count(self, u: int) -> int:
        return int(self.starts[u + 1] - self.starts[u])

    def history(self, u: int, limit: int) -> list[LoggedEvent]:
        lo, hi = int(self.starts[u]), int(self.starts[u + 1])
        rows = self.pred.ds.events.slice(max(lo, hi - limit), min(limit, hi - lo))
        pred = self.pred
        out = []
        for r in rows.iter_rows(named=True):
            item = r["item"]
            out.append(LoggedEvent(
                position=r["position"], behaviour=r["behaviour"],
                item=None if item is None else pred.item_ids[item],
                title=None if item is None else pred.titles[item],
                query=r["query"], timestamp=r["timestamp"], split=r["split"]))
        return out


def router(current: Any) -> APIRouter:
    """The routes over ``current()``, the predictor serving now (it changes on reload).
    ``{user_id:id}`` is app.IdConvertor: any id, even one with ``/`` or a newline."""
    api = APIRouter()
    cache: dict[str, _Index] = {}

    def index() -> _Index:
        pred = current()
        got = cache.get("index")
        if got is None or got.pred is not pred:
            got = cache["index"] = _Index(pred)
        return got

    @api.get("/users", response_model=UsersResponse, responses={422: {"model": ErrorResponse}})
    async def users(limit: int = Query(50, ge=1, le=1000, description="users per page"),
                    offset: int = Query(0, ge=0, le=10**9, description="users to skip")
                    ) -> UsersResponse:
        """User ids of the served run, in the dataset's order, with their history lengths."""
        ix = index()
        page = range(min(offset, len(ix.user_ids)), min(offset + limit, len(ix.user_ids)))
        return UsersResponse(users=[UserSummary(user=ix.user_ids[u], events=ix.count(u))
                                    for u in page],
                             total=len(ix.user_ids), limit=limit, offset=offset)

    @api.get("/users/{user_id:id}/history", response_model=HistoryResponse,
             responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
    async def history(user_id: str,
                      limit: int = Query(50, ge=1, le=1000, description="most recent events")
                      ) -> HistoryResponse:
        """A logged user's events (what ``/recommend`` with ``user`` reads), oldest first."""
        ix = index()
        u = ix.pred.user(user_id, "user_id")  # UnknownUser -> 404 naming user_id
        return HistoryResponse(user=user_id, events=ix.history(u, limit), total=ix.count(u))

    return api


__all__ = ["HistoryResponse", "LoggedEvent", "UserSummary", "UsersResponse", "router"]
