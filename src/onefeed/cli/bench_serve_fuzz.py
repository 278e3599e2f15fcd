"""``onefeed bench serve-fuzz``: schemathesis against the OpenAPI of a real ``onefeed serve``.

    onefeed bench serve-fuzz --run runs/synthetic/model/onefeed/seed0 --examples 50

Starts the server over loopback (a throw-away item journal and feedback log: the run's own are
never touched), fuzzes every endpoint of its ``/openapi.json`` with ``--examples`` positive and
as many negative requests (``onefeed.serve.fuzz``), and writes bench/results/serve-fuzz.{json,md}:
requests and status counts per endpoint, and every request breaking the contract (a 5xx, or a 4xx
naming no field). Exits 1 when there is one.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    app.command("serve-fuzz")(bench_serve_fuzz_cmd)


def bench_serve_fuzz_cmd(
    run: Path = typer.Option(Path("runs/synthetic/model/onefeed/seed0"),
                             help="the run to serve (a joint run reaches /search and /suggest)"),
    examples: int = typer.Option(20, min=1, max=100000,
                                 help="requests per endpoint and generation mode"),
    real_share: float = typer.Option(0.5, min=0.0, max=1.0, help="share of requests whose "
                                     "user / item ids are swapped for ones the run knows"),
    modes: str = typer.Option("positive,negative", help="comma-separated generation modes"),
    seed: int = typer.Option(0, help="Hypothesis seed (same seed, same requests)"),
    exclude: list[str] = typer.Option([], help="operation to leave out, e.g. 'POST /feedback'"),
    setting: list[str] = typer.Option([], "--set", help="server setting key=value"),
    out: Path = typer.Option(None, help="JSON path (default bench/results/serve-fuzz.json)"),
) -> None:
    """Fuzz every endpoint of the served OpenAPI: no 5xx, every 4xx names a field."""
    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.paths import results_root
    from onefeed.serve import fuzz
    from onefeed.serve.loadgen import Server

    try:
        cfg = fuzz.FuzzConfig(examples=examples, seed=seed, exclude=tuple(exclude),
                              real_share=real_share,
                              modes=tuple(m.strip() for m in modes.split(",") if m.strip()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    excluded = {**{label: "--exclude" for label in exclude}, **fuzz.unavailable()}
    cfg = dataclasses.replace(cfg, exclude=tuple(excluded))
    scratch = Path(tempfile.mkdtemp(prefix="onefeed-serve-fuzz-"))
    settings = [f"catalogue={scratch / 'catalogue.jsonl'}",
                f"feedback={scratch / 'feedback.sqlite'}", *setting]
    start = time.perf_counter()
    with Server(run, settings) as server:
        schema = fuzz.load_schema(server.url)
        known = fuzz.known_ids(server.url)
        results = fuzz.run(schema, cfg, server.url, known, progress=_echo)
    wall = time.perf_counter() - start
    doc = {"name": "serve-fuzz", "run": str(run), "seed": seed, "commit": git_commit(),
           "machine": machine_info(),
           "config": {"examples": examples, "modes": list(cfg.modes), "server": settings,
                      "real_share": real_share, "known_users": len(known.users),
                      "known_items": len(known.items),
                      "excluded": excluded, "schemathesis": _version("schemathesis"),
                      "hypothesis": _version("hypothesis")},
           "command": f"onefeed bench serve-fuzz --run {run} --examples {examples} "
                      f"--modes {','.join(cfg.modes)} --seed {seed} --real-share {real_share}"
                      + "".join(f" --exclude '{e}'" for e in exclude)
                      + "".join(f" --set {s}" for s in setting),
           "seconds": round(wall, 1), "summary": fuzz.summary(results),
           "endpoints": fuzz.as_dict(results)}
    path = out or results_root() / "serve-fuzz.json"
    write_json(path, doc)
    path.with_suffix(".md").write_text(_markdown(doc))
    s = doc["summary"]
    typer.echo(f"{s['requests']} requests over {s['endpoints']} endpoints in {wall:.0f} s: "
               f"{s['failures']} breaking the contract ({s['server_errors']} 5xx); wrote {path} "
               f"and {path.with_suffix('.md')}")
    if s["failures"]:
        raise typer.Exit(1)


def _echo(r: Any) -> None:
    statuses = " ".join(f"{k}:{v}" for k, v in r.statuses.items())
    skipped = f"  (skipped: {', '.join(r.skipped)})" if r.skipped else ""
    typer.echo(f"{r.label:<32} {r.requests:5d} requests  {statuses}  failures {r.n_failures}"
               f"{skipped}")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _markdown(doc: dict) -> str:
    m, s = doc["machine"], doc["summary"]
    lines = ["# onefeed serve: schema fuzz (schemathesis)", "",
             f"- run `{doc['run']}`, commit `{doc['commit']}`, seed {doc['seed']}, "
             f"{doc['seconds']} s",
             f"- CPU {m.get('cpu_model', '?')} ({m.get('cpu_count')} cores, shared with other "
             f"jobs); schemathesis {doc['config']['schemathesis']}, hypothesis "
             f"{doc['config']['hypothesis']}",
             f"- {doc['config']['examples']} examples per endpoint and mode "
             f"({', '.join(doc['config']['modes'])})",
             f"- **{s['requests']} requests, {s['failures']} breaking the contract, "
             f"{s['server_errors']} 5xx**",
             f"- a share {doc['config']['real_share']} of the ids made real ones "
             f"({doc['config']['known_users']} users, {doc['config']['known_items']} items "
             "known), so requests reach the model rather than stopping at a 404", "",
             "| endpoint | requests | real ids | statuses | failures | skipped |",
             "|---|---|---|---|---|---|"]
    for label, r in doc["endpoints"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        lines.append(f"| `{label}` | {r['requests']} | {r['realised']} | {statuses} | "
                     f"{r['n_failures']} | "
                     f"{', '.join(r['skipped']) or '-'} |")
    for label, why in doc["config"]["excluded"].items():
        lines.append(f"| `{label}` | 0 | - | - | - | excluded: {why} |")
    bad = [(label, f) for label, r in doc["endpoints"].items() for f in r["failures"]]
    if bad:
        lines += ["", "Requests breaking the contract (first few per endpoint):", ""]
        for label, f in bad:
            lines.append(f"- `{label}` ({f['mode']}) {f['status']}: {f['problem'][:200]} — "
                         f"`{f['request'][:300]}`")
    lines += ["", "A mode is skipped where schemathesis has nothing to generate (no parameters "
              "to negate).", "", f"Command: `{doc['command']}`", "", "```json",
              json.dumps(doc["config"], indent=2), "```", ""]
    return "\n".join(lines)
