"""``onefeed bench serve``: latency and throughput of the real server, batched vs unbatched.

    onefeed bench serve --run runs/synthetic/model/onefeed/seed0

Starts ``onefeed serve`` over loopback twice on the same run, side by side (micro-batching on,
and ``batching=false``: one request at a time), drives /recommend, /search and /suggest with wrk
(or the bounded asyncio client) at each concurrency, ``--repeats`` times per cell and server,
interleaved in alternating order so that drift of the shared 2 cores hits both servers alike
(the cell is the median run), and writes bench/results/serve.{json,md}:
``endpoints.<e>.concurrency.<c>.{p50_ms,p95_ms,p99_ms,rps}`` (batched), the same under
``unbatched``, and ``ratio_rps_batched_vs_unbatched.<e>.<c>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import typer

ENDPOINTS = ("recommend", "search", "suggest")
CLIENTS = {"wrk": "wrk (onefeed.serve.wrk.drive_wrk: 1 thread, c keep-alive connections)",
           "httpx": "onefeed.serve.loadgen.drive (asyncio + httpx, bounded)"}


def register(app: typer.Typer) -> None:
    app.command("serve")(bench_serve_cmd)


def bench_serve_cmd(
    run: Path = typer.Option(Path("runs/synthetic/model/onefeed/seed0"),
                             help="a joint run (search and suggest need one)"),
    concurrency: str = typer.Option("1,8,32,64", help="comma-separated client concurrencies"),
    requests: int = typer.Option(300, min=10, help="requests per (endpoint, concurrency); at "
                                 "least 8 per client"),
    beam: int = typer.Option(20, min=1, help="beam of every endpoint"),
    k: int = typer.Option(10, min=1, max=100, help="items per /recommend and /search"),
    seed: int = typer.Option(0, help="which users and queries the client sends"),
    client: str = typer.Option("wrk", help="load client: wrk (C, Debian's package: little of "
                               "the 2 cores) or httpx (the asyncio client, no install)"),
    seconds: float = typer.Option(5.0, min=1.0, help="seconds per (endpoint, concurrency) "
                                  "with wrk (httpx sends --requests instead)"),
    repeats: int = typer.Option(3, min=1, max=20, help="measurements per cell and server, "
                                "interleaved batched / unbatched; the cell is their median"),
    out: Path = typer.Option(None, help="JSON path (default bench/results/serve.json)"),
) -> None:
    """Batched vs one-at-a-time server: p50/p95/p99 and requests/s per endpoint."""
    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.paths import results_root
    from onefeed.serve.loadgen import Server, drive
    from onefeed.serve.settings import ServeSettings

    levels = _levels(concurrency)
    if client not in CLIENTS:
        raise typer.BadParameter(f"--client {client!r}: one of {', '.join(CLIENTS)}")
    if client == "wrk":
        from onefeed.serve.wrk import drive_wrk, wrk_binary

        try:
            wrk_binary()
        except RuntimeError as exc:
            raise typer.BadParameter(str(exc)) from None

    def measure(url: str, endpoint: str, c: int) -> dict[str, Any]:
        if client == "wrk":
            return drive_wrk(url, f"/{endpoint}", payloads[endpoint], c, seconds)
        return asyncio.run(drive(url, f"/{endpoint}", payloads[endpoint], c,
                                 max(requests, 8 * c)))

    load_before = os.getloadavg()[0]  # what else the 2 cores were doing when the run started
    payloads = _payloads(run, seed, k)
    common = [f"beam={beam}", f"suggest_beam={beam}"]
    d = ServeSettings()  # the batched server's wait, spelled out so the record names it
    batched = ["batching=true", f"max_batch={d.max_batch}", f"max_wait_ms={d.max_wait_ms:g}",
               f"wait_gap_ms={d.wait_gap_ms:g}"]
    modes = {"batched": common + batched, "unbatched": common + ["batching=false"]}
    results: dict[str, Any] = {m: {e: {"concurrency": {}} for e in ENDPOINTS} for m in modes}
    caches: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:  # both servers up; the idle one takes no CPU
        servers = {m: stack.enter_context(Server(run, sets + [f"catalogue={_scratch(run, m)}"]))
                   for m, sets in modes.items()}
        for server in servers.values():
            for endpoint in ENDPOINTS:  # warm-up: first calls build caches
                asyncio.run(drive(server.url, f"/{endpoint}", payloads[endpoint], 4, 40))
        for endpoint in ENDPOINTS:
            for c in levels:
                runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
                for r in range(repeats):  # interleaved, the order alternating: drift hits both
                    for mode in (list(modes) if r % 2 == 0 else list(modes)[::-1]):
                        runs[mode].append(measure(servers[mode].url, endpoint, c))
                for mode, cells in runs.items():
                    stats = _median_cell(cells)
                    results[mode][endpoint]["concurrency"][str(c)] = stats
                    typer.echo(f"{mode:>9} /{endpoint:<9} c={c:<3} p50 {stats['p50_ms']:7.2f} "
                               f"p99 {stats['p99_ms']:7.2f} ms  {stats['rps']:8.1f} req/s "
                               f"(runs {' '.join(f'{x:.0f}' for x in stats['rps_runs'])})  "
                               f"errors {stats['errors']}")
        for mode, server in servers.items():
            caches[mode] = _cache_stats(server.url)
    ratio = {e: {str(c): round(results["batched"][e]["concurrency"][str(c)]["rps"]
                               / max(results["unbatched"][e]["concurrency"][str(c)]["rps"], 1e-9),
                               2) for c in levels} for e in ENDPOINTS}
    doc = {"name": "serve", "run": str(run), "seed": seed, "commit": git_commit(),
           "machine": machine_info(), "load_average_1min_at_start": round(load_before, 2),
           "config": {"beam": beam, "suggest_beam": beam, "k": k, "suggest_k": 5,
                      "requests_per_level": requests, "concurrency": levels,
                      "batched": modes["batched"], "unbatched": modes["unbatched"],
                      "server": "onefeed serve, 1 uvicorn worker, torch 1 thread, loopback",
                      "client": CLIENTS[client], "seconds_per_level": seconds,
                      "repeats": repeats},
           "command": f"onefeed bench serve --run {run} --concurrency {concurrency} "
                      f"--requests {requests} --beam {beam} --k {k} --seed {seed} "
                      f"--client {client} --seconds {seconds:g} --repeats {repeats}",
           "endpoints": results["batched"], "unbatched": {"endpoints": results["unbatched"]},
           "ratio_rps_batched_vs_unbatched": ratio, "state_cache": caches,
           "targets": _targets(results, ratio, levels)}
    path = out or results_root() / "serve.json"
    write_json(path, doc)
    path.with_suffix(".md").write_text(_markdown(doc, levels))
    typer.echo(f"wrote {path} and {path.with_suffix('.md')}")


def _median_cell(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated measurements of one cell -> the median of each number, every run's req/s and
    the errors summed."""
    import statistics

    out: dict[str, Any] = {key: round(statistics.median(c[key] for c in cells), 3)
                           for key in ("p50_ms", "p95_ms", "p99_ms", "rps")}
    out["rps_runs"] = [c["rps"] for c in cells]
    out["requests"] = sum(int(c["requests"]) for c in cells)
    out["errors"] = sum(int(c["errors"]) for c in cells)
    return out


def _cache_stats(url: str) -> dict[str, float]:
    """The server's history-state cache counters (``onefeed_state_cache`` in /metrics)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("onefeed_state_cache{"):
            what = line.split('what="', 1)[1].split('"', 1)[0]
            out[what] = float(line.rsplit(" ", 1)[1])
    return out


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"--concurrency {text!r}: expected integers like 1,8,32")
    if not levels or min(levels) < 1 or max(levels) > 1024:
        raise typer.BadParameter(f"--concurrency {text!r}: each level in 1..1024")
    return levels


def _scratch(run: Path, mode: str) -> Path:
    """A throw-away item journal: the bench never touches the run's own catalogue."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"onefeed-bench-serve-{mode}-")) / "catalogue.jsonl"


def _payloads(run: Path, seed: int, k: int) -> dict[str, list[dict]]:
    import numpy as np

    from onefeed.artifacts import read_json_object
    from onefeed.cli.model import input_dir
    from onefeed.data.schemas import Dataset

    manifest = read_json_object(run / "manifest.json", f"{run}: not a readable run manifest",
                                typer.BadParameter)
    if manifest.get("kind") != "joint-generative":
        raise typer.BadParameter(f"{run}: not a joint run; /search and /suggest need one")
    ds = Dataset.load(input_dir(run, manifest["data"]))
    rng = np.random.default_rng(seed)
    users = [str(u) for u in rng.choice(ds.users["user_id"].to_list(), 256, replace=False)]
    queries = sorted(set(ds.eval_queries["query"].to_list()))
    qs = [queries[i] for i in rng.choice(len(queries), 256)]
    return {"recommend": [{"user": u, "k": k} for u in users],
            "search": [{"user": u, "query": q, "k": k} for u, q in zip(users, qs)],
            "suggest": [{"user": u, "k": 5} for u in users]}


def _targets(results: dict, ratio: dict, levels: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if 1 in levels:
        for e in ("recommend", "suggest"):
            p99 = results["batched"][e]["concurrency"]["1"]["p99_ms"]
            out[f"{e}_p99_ms_c1"] = {"value": p99, "target": 30.0, "met": p99 <= 30.0}
    if 32 in levels:
        for e in ENDPOINTS:
            r = ratio[e]["32"]
            out[f"{e}_rps_ratio_c32"] = {"value": r, "target": 5.0, "met": r >= 5.0}
    return out


def _per_cell(config: dict) -> str:
    repeats = config.get("repeats", 1)
    times = f"; median of {repeats} interleaved runs per cell and server" if repeats > 1 else ""
    if config.get("client", "").startswith("wrk"):
        return f"{config['seconds_per_level']:g} s per run{times}"
    return f"{config['requests_per_level']}+ requests per run{times}"


def _markdown(doc: dict, levels: list[int]) -> str:
    m = doc["machine"]
    lines = ["# onefeed serve: batched vs one-request-at-a-time", "",
             f"- run `{doc['run']}`, commit `{doc['commit']}`, seed {doc['seed']}",
             f"- CPU {m.get('cpu_model', '?')} ({m.get('cpu_count')} cores; 1-min load average "
             f"{doc.get('load_average_1min_at_start', '?')} when the run started); server: 1 "
             "uvicorn worker, torch 1 thread, loopback; the load client runs on the same cores",
             f"- client: {doc['config']['client']}; {_per_cell(doc['config'])}",
             f"- beam {doc['config']['beam']}, k {doc['config']['k']} (suggest k 5)",
             f"- batched server: `{' '.join(doc['config']['batched'])}`; unbatched: "
             f"`{' '.join(doc['config']['unbatched'])}`", "",
             "| endpoint | c | batched p50 / p95 / p99 ms | batched req/s | unbatched p50 / p95 "
             "/ p99 ms | unbatched req/s | ratio |", "|---|---|---|---|---|---|---|"]
    for e in ENDPOINTS:
        for c in levels:
            b = doc["endpoints"][e]["concurrency"][str(c)]
            u = doc["unbatched"]["endpoints"][e]["concurrency"][str(c)]
            lines.append(f"| /{e} | {c} | {b['p50_ms']:.1f} / {b['p95_ms']:.1f} / "
                         f"{b['p99_ms']:.1f} | {b['rps']:.0f} | {u['p50_ms']:.1f} / "
                         f"{u['p95_ms']:.1f} / {u['p99_ms']:.1f} | {u['rps']:.0f} | "
                         f"{doc['ratio_rps_batched_vs_unbatched'][e][str(c)]:.2f}x |")
    for mode, c in doc.get("state_cache", {}).items():
        if c:
            reads = c.get("hits", 0) + c.get("misses", 0)
            lines.append(f"\n{mode}: history-state cache {c.get('hits', 0):.0f} hits / "
                         f"{reads:.0f} reads ({c.get('entries', 0):.0f} entries kept: a logged "
                         "user's encoded history for /recommend and /suggest, its per-block "
                         "keys / values for /search, which encodes only the query on top)")
    lines += ["", "Targets:", ""]
    for name, t in doc["targets"].items():
        lines.append(f"- {name}: {t['value']} (target {t['target']}) — "
                     f"{'met' if t['met'] else 'NOT met'}")
    lines += ["", f"Command: `{doc['command']}`", "", "```json",
              json.dumps(doc["config"], indent=2), "```", ""]
    return "\n".join(lines)
