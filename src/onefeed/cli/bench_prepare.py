"""``onefeed bench prepare``: wall time and peak memory of ``prepare`` on real and synthetic data.

Each case runs in a fresh subprocess (``python -m onefeed.cli.bench_prepare CONFIG [--set ...]``)
that loads, prepares and saves into a temp dir and prints its timings and its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) as JSON, so memory is the whole process's peak, imports
included, and one case's memory never mixes with another's. Synthetic cases are sized to a
target number of raw events by first measuring events per user on a small world.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from onefeed.paths import REPO, results_root

CONFIGS = REPO / "configs" / "prepare"
REAL_CASES = [("ml-100k", "ml-100k.toml"), ("ml-1m-partial", "ml-1m-partial.toml"),
              ("beauty", "beauty.toml")]
TARGETS = {"beauty": 30.0, "synthetic-1M": 60.0}  # seconds (issue 2, item 9)
MEM_TARGET_GIB = 2.0  # at 1M events


def run_case(config: Path, overrides: list[str]) -> dict:
    """Run one case in a subprocess; returns the child's JSON plus peak RSS (GiB)."""
    cmd = [sys.executable, "-m", "onefeed.cli.bench_prepare", str(config), *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, errs = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"ok": False, "error": (errs.strip().splitlines() or ["?"])[-1],
                "process_wall_s": round(wall, 2)}
    rec = json.loads(out.strip().splitlines()[-1])
    rec.update(ok=True, process_wall_s=round(wall, 2))
    return rec


def timed_prepare(cfg: Any) -> tuple[Any, Any, dict[str, float]]:
    """load + prepare + save (to a temporary dir) of ``cfg``: (raw, dataset, seconds per step)."""
    from onefeed.data.prepare import load_raw_for, prepare

    t0 = time.perf_counter()
    raw = load_raw_for(cfg)
    t1 = time.perf_counter()
    ds = prepare(cfg, raw)
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ds.save(Path(tmp) / "data")
    t3 = time.perf_counter()
    return raw, ds, {"load_s": round(t1 - t0, 2), "prepare_s": round(t2 - t1, 2),
                     "save_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2)}


def _child(argv: list[str]) -> None:
    """Inside the subprocess: load + prepare + save; print one JSON line."""
    import resource

    from onefeed.data.prepare import load_config

    config, overrides = argv[0], argv[1:]
    raw, ds, seconds = timed_prepare(load_config(config, overrides))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    c = ds.manifest["counts"]
    print(json.dumps({
        "raw_events": raw.events.height, "users": c["users"], "items": c["items"],
        "events": c["events"], "item_events": c["item_events"], **seconds,
        "peak_rss_gib": round(peak_kib / 2**20, 3),
        "leakage": ds.manifest["leakage"], "config": ds.manifest["config"]}))


def _synthetic_overrides(target_events: int, probe_users: int = 2000) -> list[str]:
    """n_users for ``target_events`` raw events, from events/user measured on a small world."""
    from onefeed.data.datasets import load_raw

    probe = load_raw("synthetic", n_users=probe_users, seed=0)
    per_user = probe.events.height / probe_users
    n_users = max(100, int(round(target_events / per_user)))
    # the catalogue grows with the users (synthetic.toml's 2 users per item)
    return [f"options.n_users={n_users}", f"options.n_items={max(100, n_users // 2)}",
            f"name=synthetic-{target_events}"]


def _fmt(load: list[float] | None) -> str:
    return "?" if not load else "/".join(f"{x:.1f}" for x in load)


def _scaling(cases: dict[str, dict]) -> list[str]:
    """Memory target at 1M events and the 1M -> 10M growth of time and memory."""
    one, ten = cases.get("synthetic-1M", {}), cases.get("synthetic-10M", {})
    out = []
    if one.get("ok"):
        ok = "ok" if one["peak_rss_gib"] < MEM_TARGET_GIB else "MISSED"
        out.append(f"Peak memory at 1M events: {one['peak_rss_gib']} GiB ({ok}: "
                   f"< {MEM_TARGET_GIB:.0f} GiB).")
    if one.get("ok") and ten.get("ok"):
        ev = ten["raw_events"] / one["raw_events"]
        mem = ten["peak_rss_gib"] / one["peak_rss_gib"]
        out.append(f"1M -> 10M: events x{ev:.1f}, peak memory x{mem:.1f} "
                   f"({'linear or better' if mem <= ev else 'FASTER than linear'}), "
                   f"prepare time x{ten['prepare_s'] / one['prepare_s']:.1f}.")
    return [""] + out if out else []


def _markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# prepare benchmark ({report['created_at']})", "",
             f"commit `{report['git_commit']}`; machine: {m.get('cpu_model', '?')}, "
             f"{m.get('cpu_count')} cores, {m.get('memory_gib')} GiB; "
             f"seed {report['seed']}. Command: `{report['command']}`.",
             f"Load average (1/5/15 min) before {_fmt(report.get('load_average_before'))}, after "
             f"{_fmt(report.get('load_average_after'))}: a shared 2-core machine.", "",
             "| case | raw events | users | items | load s | prepare s | save s | total s | "
             "peak RSS GiB | target |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["cases"].items():
        if not r.get("ok"):
            lines.append(f"| {name} | failed: {r.get('error')} |||||||||")
            continue
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if r["total_s"] < target else "MISSED") + \
            f" (< {target:.0f} s)"
        lines.append(f"| {name} | {r['raw_events']:,} | {r['users']:,} | {r['items']:,} | "
                     f"{r['load_s']} | {r['prepare_s']} | {r['save_s']} | {r['total_s']} | "
                     f"{r['peak_rss_gib']} | {verdict} |")
    lines += _scaling(report["cases"])
    lines += ["", "Peak RSS is the whole subprocess (Python + polars + imports). "
              "ml-1m-partial is users 1-2,999 of ML-1M only; it is NOT ML-1M."]
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def bench_prepare(
        scales: str = typer.Option("1000000,10000000",
                                   help="Synthetic raw-event targets, comma list ('' to skip)."),
        real: bool = typer.Option(True, help="Run the real-data cases (a case whose files are "
                                  "absent is reported as failed)."),
        out: Path = typer.Option(None, help="Output dir (default bench/results)."),
        scale: str = typer.Option("", "--scale", help="Out-of-core mode: synthetic raw-event "
                                  "counts like 1M,10M,50M, each written to Parquet and prepared "
                                  "from a lazy scan -> prepare-scale.{json,md}."),
        budget: float = typer.Option(2.0, help="--scale: PrepareConfig.memory_budget_gib."),
        watchdog_gib: float = typer.Option(None, help="--scale: kill a run whose RSS exceeds "
                                           "this many GiB (recorded as not completed)."),
        tmp: Path = typer.Option(None, help="--scale: folder for the generated Parquet files."),
    ) -> None:
        """Wall time + peak memory of `data prepare` (ML-100K, ML-1M part, Beauty, synthetic)."""
        import datetime as dt

        if scale:
            from rich.console import Console

            from onefeed.cli.bench_prepare_scale import bench_scale, parse_scale

            try:
                parse_scale(scale)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--scale") from None
            bench_scale(scale, budget, watchdog_gib, out, tmp, Console())
            return

        from rich.console import Console

        from onefeed.artifacts import git_commit, machine_info, write_json

        from rich.markup import escape

        console = Console()
        cases: dict[str, dict] = {}
        load_before = list(os.getloadavg())  # the machine is shared: say how busy it was
        plan = [(n, CONFIGS / f, []) for n, f in REAL_CASES] if real else []
        for target in [int(s) for s in scales.split(",") if s.strip()]:
            label = (f"synthetic-{target // 1_000_000}M" if target >= 1_000_000
                     else f"synthetic-{target}")
            plan.append((label, CONFIGS / "synthetic.toml", target))
        for name, config, extra in plan:
            console.print(f"[bold]{name}[/bold] ...")
            overrides = _synthetic_overrides(extra) if isinstance(extra, int) else []
            cases[name] = run_case(config, overrides)
            console.print(escape(f"  {cases[name]}") if not cases[name].get("ok") else
                          f"  {cases[name]['total_s']} s, peak {cases[name]['peak_rss_gib']} GiB")
        report = {"created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
                  "git_commit": git_commit(), "machine": machine_info(), "seed": 0,
                  "command": "onefeed bench prepare " + " ".join(sys.argv[3:]), "cases": cases}
        folder = out or results_root()
        write_json(folder / "prepare.json", report)
        (folder / "prepare.md").write_text(_markdown(report))
        console.print(_markdown(report), markup=False)


if __name__ == "__main__":
    _child(sys.argv[1:])
