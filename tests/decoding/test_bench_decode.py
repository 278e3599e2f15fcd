"""The decode benchmark's measuring loop and report on a toy catalogue (no trained model)."""

import time

import numpy as np
from rich.progress import Progress

from onefeed.cli.bench_decode import _compare, _latency, _markdown
from onefeed.decoding import beam as beam_module
from onefeed.decoding.beam import beam_search
from onefeed.decoding.reference import DictTrie, reference_beam_search
from onefeed.decoding.trie import Trie

from .toy import ToyStep, toy_catalogue, toy_state

SIZES = (8, 16, 12)


def test_compare_measures_both_sides_and_reports(monkeypatch):
    monkeypatch.setattr(beam_module, "profile_clock", time.thread_time)  # as the bench does
    codes = toy_catalogue(80, SIZES)
    step = ToyStep(SIZES)
    sides = {"ours": (beam_search, Trie.from_table(codes, SIZES)),
             "reference": (reference_beam_search, DictTrie.from_codes(codes))}

    def decode(name, beam, rows, prof):
        fn, trie = sides[name]
        t0 = time.thread_time()
        state = toy_state(len(rows), seed=int(rows[0, 0]))
        prof["encode"] = prof.get("encode", 0.0) + time.thread_time() - t0
        return fn(step, state, trie, len(rows), beam, profile=prof)

    hist = np.arange(20)[:, None]
    with Progress(disable=True) as bar:
        row = _compare(decode, hist, 10, 8, time.thread_time, bar)
        lat = _latency(decode, hist, 4, bar)
    assert row["identical_top_k"] == 1.0 and row["users"] == 20
    for side in ("ours", "reference"):
        rec = row[side]
        assert 0 < rec["mask_seconds"] < rec["decode_seconds"] <= rec["seconds"]
        assert rec["step_seconds"] > 0 and rec["wall_seconds"] > 0
    assert 0 < row["ours"]["advance_seconds"] <= row["ours"]["mask_seconds"]
    report = _markdown({"run": "toy", "split": "test", "n_items": 80, "codebook_sizes": SIZES,
                        "batch_size": 8, "threads": 1, "clock": "thread_time", "seed": 0,
                        "commit": "x", "machine": {}, "throughput": [row],
                        "latency_ms_beam20": lat})
    assert "| 10 | 20 |" in report and "advancing beams" in report
