"""Golden content hashes of prepared artifacts (issue 18: out-of-core prepare keeps outputs).

The hashes were written from the in-memory pipeline before the out-of-core refactor. Each
frame's hash is the sha256 of its schema and its rows as NDJSON in the order written, so row
order, dtypes and values must all stay the same. ``manifest`` hashes the manifest without the
fields that name the run (time, commit, version, config, source).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from onefeed.data.prepare import PrepareConfig, prepare, prepare_to_dir
from onefeed.data.schemas import FRAMES, Dataset
from onefeed.data.synthetic import SyntheticConfig, generate

VOLATILE = ("created_at", "git_commit", "onefeed_version", "config", "source", "kind", "files")


def frame_hash(frame) -> str:
    h = hashlib.sha256(repr(list(frame.schema.items())).encode())
    h.update(frame.write_ndjson().encode())
    return h.hexdigest()[:16]


def dataset_hashes(ds: Dataset) -> dict[str, str]:
    out = {name: frame_hash(getattr(ds, name)) for name in FRAMES}
    stable = {k: v for k, v in ds.manifest.items() if k not in VOLATILE}
    # which five single-event users are named came from an unordered group_by: compare as a set
    stable["validation"] = dict(stable["validation"], single_event_examples=sorted(
        stable["validation"]["single_event_examples"]))
    out["manifest"] = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str)
                                     .encode()).hexdigest()[:16]
    return out


CASES = {
    "loo": dict(protocol="leave_one_out"),
    "temporal-first": dict(protocol="temporal", dedup="first_per_user_item", k_core=3),
    "loo-keep-short": dict(protocol="leave_one_out", k_core=0, drop_short_users=False),
}

GOLDEN: dict[str, dict[str, str]] = {
    "loo": {
        "events": "1eb096c10fa9a5d6",
        "items": "c9ad326d11ce16bc",
        "users": "6f68562a5fa665b7",
        "queries": "dffe21e3de8ff3f9",
        "eval_queries": "3e10ca7eee9fe0dd",
        "manifest": "f6aa31d853452140"
    },
    "loo-keep-short": {
        "events": "4655909368074408",
        "items": "3721c4cb63e789c0",
        "users": "1e47e65e142294f9",
        "queries": "2d175ed563c6b534",
        "eval_queries": "3e10ca7eee9fe0dd",
        "manifest": "214fc638bf0feb1b"
    },
    "temporal-first": {
        "events": "fc1124daff04fc31",
        "items": "c9ad326d11ce16bc",
        "users": "f9893db94e081e9b",
        "queries": "a22dd91d74445542",
        "eval_queries": "0789f35e5bb0be63",
        "manifest": "08f4da97f37db7b9"
    }
}


def _raw():
    # reviews on some clicks, so review-sourced weak queries (with evidence) are exercised
    import polars as pl

    _, raw = generate(SyntheticConfig(n_users=300, n_items=150, seed=3))
    word = pl.col("item_id")  # an item-specific review word: digits spelled as letters
    for d in range(10):
        word = word.str.replace_all(str(d), "abcdefghjk"[d], literal=True)
    ev = raw.events.with_columns(
        pl.when((pl.col("behaviour") == "rec_click") & (pl.int_range(pl.len()) % 3 == 0))
        .then(pl.lit("great ") + word + pl.lit(" quality, lovely zorbic finish"))
        .alias("review"))
    # a few exact duplicates, so drop_duplicates has work
    ev = pl.concat([ev, ev.slice(0, 40)])
    # short users (1 and 2 item events) and an item without metadata
    extra = pl.DataFrame({"user_id": ["s1", "s2", "s2", "s3"], "item_id": ["i1", "i2", "zz", "zz"],
                          "timestamp": [1_700_000_000, 1_700_000_005, 1_700_000_009, 1_700_000_011],
                          "order": [0, 0, 1, 0], "behaviour": ["rec_click"] * 4},
                         schema_overrides={"timestamp": pl.Int64, "order": pl.Int64})
    ev = pl.concat([ev, extra], how="diagonal_relaxed").select(ev.columns)
    return type(raw)(ev, raw.items, raw.source)


@pytest.fixture(scope="module")
def golden_raw():
    return _raw()


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepared_artifacts_match_golden_hashes(case, golden_raw, tmp_path):
    cfg = PrepareConfig(name="golden", **CASES[case])
    assert dataset_hashes(prepare(cfg, golden_raw)) == GOLDEN[case]
    _, path = prepare_to_dir(cfg, tmp_path / "data", golden_raw)
    assert dataset_hashes(Dataset.load(path)) == GOLDEN[case]  # the parquet files too


if __name__ == "__main__":  # regenerate: python tests/data/test_prepare_golden.py
    raw = _raw()
    print(json.dumps({c: dataset_hashes(prepare(PrepareConfig(name="golden", **CASES[c]), raw))
                      for c in sorted(CASES)}, indent=4))
