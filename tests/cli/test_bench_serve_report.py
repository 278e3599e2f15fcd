"""``onefeed bench serve``'s record: targets computed from the measured numbers only, and the
markdown states the machine's load instead of assuming it."""

from onefeed.cli.bench_serve import ENDPOINTS, _markdown, _targets


def _cell(p99, rps):
    return {"p50_ms": p99 / 2, "p95_ms": p99 * 0.9, "p99_ms": p99, "rps": rps}


def test_targets_and_markdown_from_the_numbers():
    levels = [1, 32]
    batched = {e: {"concurrency": {"1": _cell(20.0 if e != "suggest" else 31.0, 80),
                                   "32": _cell(300.0, 600 if e == "recommend" else 200)}}
               for e in ENDPOINTS}
    unbatched = {e: {"concurrency": {"1": _cell(15.0, 90), "32": _cell(400.0, 100)}}
                 for e in ENDPOINTS}
    ratio = {e: {c: round(batched[e]["concurrency"][c]["rps"]
                          / unbatched[e]["concurrency"][c]["rps"], 2) for c in ("1", "32")}
             for e in ENDPOINTS}
    targets = _targets({"batched": batched}, ratio, levels)
    assert targets["recommend_p99_ms_c1"]["met"] and not targets["suggest_p99_ms_c1"]["met"]
    assert targets["recommend_rps_ratio_c32"] == {"value": 6.0, "target": 5.0, "met": True}
    assert not targets["search_rps_ratio_c32"]["met"]  # 2.0x
    doc = {"run": "r", "commit": "abc", "seed": 0, "load_average_1min_at_start": 0.42,
           "machine": {"cpu_model": "cpu", "cpu_count": 2},
           "config": {"beam": 20, "k": 10, "requests_per_level": 300,
                      "client": "wrk (...)", "seconds_per_level": 5.0,
                      "batched": ["beam=20", "batching=true", "max_wait_ms=3"],
                      "unbatched": ["beam=20", "batching=false"]},
           "endpoints": batched, "unbatched": {"endpoints": unbatched},
           "ratio_rps_batched_vs_unbatched": ratio, "targets": targets, "command": "c",
           "state_cache": {"batched": {"entries": 256.0, "hits": 900.0, "misses": 256.0},
                           "unbatched": {}}}
    md = _markdown(doc, levels)
    assert "1-min load average 0.42 when the run started" in md
    assert "shared with other jobs" not in md
    assert "- client: wrk (...); 5 s per run" in md
    assert ("- batched server: `beam=20 batching=true max_wait_ms=3`; unbatched: "
            "`beam=20 batching=false`") in md
    doc["config"]["repeats"] = 3
    assert "5 s per run; median of 3 interleaved runs per cell and server" in _markdown(doc, levels)
    assert "| /recommend | 32 | 150.0 / 270.0 / 300.0 | 600 | 200.0 / 360.0 / 400.0 | 100 | 6.00x |" in md
    assert "- suggest_p99_ms_c1: 31.0 (target 30.0) — NOT met" in md
    assert "batched: history-state cache 900 hits / 1156 reads (256 entries kept:" in md
    assert "unbatched: history-state" not in md  # no counters: nothing claimed


def test_repeated_runs_give_the_median_cell():
    from onefeed.cli.bench_serve import _median_cell

    runs = [{"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 9.0, "rps": 300.0, "requests": 10,
             "errors": 0},
            {"p50_ms": 3.0, "p95_ms": 4.0, "p99_ms": 5.0, "rps": 100.0, "requests": 20,
             "errors": 1},
            {"p50_ms": 2.0, "p95_ms": 3.0, "p99_ms": 7.0, "rps": 200.0, "requests": 30,
             "errors": 0}]
    assert _median_cell(runs) == {"p50_ms": 2.0, "p95_ms": 3.0, "p99_ms": 7.0, "rps": 200.0,
                                  "rps_runs": [300.0, 100.0, 200.0], "requests": 60,
                                  "errors": 1}


def test_cache_counters_are_read_from_metrics(monkeypatch):
    import httpx

    from onefeed.cli.bench_serve import _cache_stats

    text = ('# TYPE onefeed_state_cache gauge\nonefeed_state_cache{what="entries"} 3.0\n'
            'onefeed_state_cache{what="hits"} 7.0\nonefeed_requests_total{x="y"} 1.0\n')
    monkeypatch.setattr(httpx, "get", lambda url, timeout: httpx.Response(200, text=text))
    assert _cache_stats("http://x") == {"entries": 3.0, "hits": 7.0}
