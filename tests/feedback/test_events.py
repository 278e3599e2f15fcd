"""FeedbackEvent refuses bad events with one line naming the field (the rules of FeedbackIn)."""

import math

import pytest

from onefeed.feedback import FeedbackError, FeedbackEvent

OK = {"user": "u1", "kind": "click", "timestamp": 1.7e9, "item": "i1"}

BAD = [
    ({"user": ""}, "user: empty"),
    ({"user": None}, "user: required"),
    ({"user": 7}, "user: 7 is not a string"),
    ({"user": "u" * 257}, "user: 257 characters; at most 256"),
    ({"kind": "look"}, "kind: 'look' is not one of impression, click, skip, dwell, query"),
    ({"timestamp": -1.0}, "timestamp: -1.0 is not a number of unix seconds in [0, 1e+11]"),
    ({"timestamp": math.nan}, "timestamp: nan is not a number of unix seconds in [0, 1e+11]"),
    ({"timestamp": "1.7e9"}, "timestamp: '1.7e9' is not a number of unix seconds in "
     "[0, 1e+11]"),
    ({"timestamp": True}, "timestamp: True is not a number of unix seconds in [0, 1e+11]"),
    ({"item": None}, "a click event needs an item"),
    ({"kind": "impression", "item": None}, "a impression event needs an item"),
    ({"kind": "skip", "item": None}, "a skip event needs an item"),
    ({"kind": "dwell"}, "a dwell event needs dwell_ms"),
    ({"kind": "query", "item": None}, "a query event needs a query"),
    ({"query": ""}, "query: empty"),
    ({"query": "q" * 10001}, "query: 10001 characters; at most 10000"),
    ({"position": -1}, "position: -1 is not an integer in [0, 1000000]"),
    ({"position": 2.0}, "position: 2.0 is not an integer in [0, 1000000]"),
    ({"position": False}, "position: False is not an integer in [0, 1000000]"),
    ({"dwell_ms": 86400001}, "dwell_ms: 86400001 is not an integer in [0, 86400000]"),
    ({"request_id": ""}, "request_id: empty"),
    ({"item": 3}, "item: 3 is not a string"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_event_is_refused_naming_the_field(change, message):
    with pytest.raises(FeedbackError) as exc:
        FeedbackEvent(**{**OK, **change})
    assert str(exc.value) == message


def test_good_events():
    e = FeedbackEvent("u1", "dwell", 5, item="i1", dwell_ms=0, position=0, request_id="r")
    assert e.timestamp == 5.0 and isinstance(e.timestamp, float)
    assert e.as_dict() == {"user": "u1", "kind": "dwell", "timestamp": 5.0, "item": "i1",
                           "query": None, "position": 0, "dwell_ms": 0, "request_id": "r"}
    assert FeedbackEvent("u1", "query", 0, query="red").item is None
    assert FeedbackEvent("u1", "click", 1e11, item="i", query="red").query == "red"


def test_the_service_schema_converts_as_the_app_does():
    """app.py: FeedbackEvent(**FeedbackIn.model_dump()) for every kind the schema accepts."""
    from onefeed.serve.schemas import FeedbackIn

    for body in ({"user": "u", "kind": "impression", "timestamp": 1.0, "item": "i",
                  "position": 3, "request_id": "r"},
                 {"user": "u", "kind": "dwell", "timestamp": 2.0, "item": "i", "dwell_ms": 9},
                 {"user": "u", "kind": "query", "timestamp": 3.0, "query": "red shoes"}):
        e = FeedbackEvent(**FeedbackIn(**body).model_dump())
        assert {k: v for k, v in e.as_dict().items() if v is not None} == body
