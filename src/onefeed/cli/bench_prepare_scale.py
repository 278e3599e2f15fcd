"""``onefeed bench prepare --scale 1M,10M,50M``: out-of-core prepare on large synthetic logs.

Per scale, two fresh subprocesses, each under GNU time (``/usr/bin/time -v``: wall time and
the maximum resident set size):

1. ``generate`` writes the synthetic world to Parquet one user block at a time
   (``synthetic.write_parquet``), sized to the target number of raw events;
2. ``prepare`` scans those files lazily (``dataset = "raw-files"``), prepares and saves into a
   temp dir — the measured run (``runs.<events>.seconds`` / ``peak_rss_gib``).

A watchdog samples the RSS of each subprocess tree and kills it above ``--watchdog-gib``; a
killed run is recorded as not completed, with the reason, and its targets as not met.
Targets (issue 18): 10M events under 2.5 GiB peak, time growth 1M -> 10M at most linear,
50M events completing within 24 GiB.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TIME = "/usr/bin/time"
PEAK_10M_GIB = 2.5
PEAK_50M_GIB = 24.0
PROBE_USERS = 2000


def parse_scale(text: str) -> list[int]:
    """``"1M,10M,50k,2000"`` -> [1_000_000, 10_000_000, 50_000, 2000]."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", part)
        if not m:
            raise ValueError(f"--scale: {part!r} is not a count like 1M, 10M or 50000")
        mult = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
        out.append(int(float(m.group(1)) * mult))
    if not out:
        raise ValueError("--scale: no scales given")
    return out


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else str(n)


def synthetic_options(target_events: int) -> dict[str, int]:
    """n_users (and n_items, 2 users per item) for ``target_events`` raw events."""
    from onefeed.data.synthetic import SyntheticConfig, generate

    _, probe = generate(SyntheticConfig(n_users=PROBE_USERS, n_items=PROBE_USERS // 2), False)
    n_users = max(100, int(round(target_events * PROBE_USERS / probe.events.height)))
    return {"n_users": n_users, "n_items": max(100, n_users // 2), "seed": 0}


def _rss_tree_gib(pid: int) -> float:
    """RSS of ``pid`` and its descendants (from /proc), GiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                todo += [int(k) for k in kids]
        except (OSError, ValueError):
            continue
    return total / 2**20


def run_measured(args: list[str], limit_gib: float | None) -> dict[str, Any]:
    """Run ``python -m onefeed.cli.bench_prepare_scale ARGS`` under GNU time (+ watchdog)."""
    cmd = [sys.executable, "-m", "onefeed.cli.bench_prepare_scale", *args]
    if Path(TIME).exists():
        cmd = [TIME, "-v", *cmd]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    killed: dict[str, Any] = {}
    sampled = [0.0]

    def watch() -> None:
        while proc.poll() is None:
            rss = _rss_tree_gib(proc.pid)
            sampled[0] = max(sampled[0], rss)
            if limit_gib is not None and rss > limit_gib:
                killed.update(reason=f"killed by the watchdog: RSS {rss:.2f} GiB > "
                                     f"{limit_gib:g} GiB after {time.perf_counter() - start:.0f} s",
                              rss_gib=round(rss, 3))
                os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - start
    rec: dict[str, Any] = {"wall_s": round(wall, 2), "sampled_peak_rss_gib": round(sampled[0], 3)}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    if m:
        rec["peak_rss_gib"] = round(int(m.group(1)) / 2**20, 3)
    else:
        rec["peak_rss_gib"] = rec["sampled_peak_rss_gib"]
    if killed:
        rec.update(completed=False, **killed)
        return rec
    if proc.returncode != 0:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("\t")]
        rec.update(completed=False, reason=f"exit {proc.returncode}: "
                   + (lines[-1] if lines else "?")[:300])
        return rec
    rec.update(completed=True, **json.loads(out.strip().splitlines()[-1]))
    if not m:  # no GNU time: the child's own getrusage peak, else the sampled one
        rec["peak_rss_gib"] = max(rec["sampled_peak_rss_gib"], rec.get("self_peak_rss_gib", 0))
    return rec


def run_scale(n: int, folder: Path, budget_gib: float, limit_gib: float | None) -> dict:
    """Generate then prepare one scale; ``folder`` is removed afterwards."""
    options = synthetic_options(n)
    gen = run_measured(["generate", str(folder), json.dumps(options)], limit_gib)
    run: dict[str, Any] = {"target_events": n, "synthetic": options,
                           "generate": {k: gen.get(k) for k in
                                        ("completed", "reason", "wall_s", "peak_rss_gib",
                                         "events_written")}}
    if not gen.get("completed"):
        run.update(completed=False, reason="generate: " + gen.get("reason", "?"))
        return run
    prep = run_measured(["prepare", str(folder), f"memory_budget_gib={budget_gib}",
                         f"name=synthetic-{label(n)}"], limit_gib)
    # a run that did not complete has no time: only how long it ran before it was stopped
    run.update({"completed": prep["completed"],
                "seconds" if prep["completed"] else "seconds_until_stopped": prep["wall_s"],
                "peak_rss_gib": prep["peak_rss_gib"],
                "sampled_peak_rss_gib": prep["sampled_peak_rss_gib"]})
    for key in ("reason", "raw_events", "users", "items", "events", "item_events", "load_s",
                "prepare_s", "save_s", "leakage"):
        if key in prep:
            run[key] = prep[key]
    return run


def targets(runs: dict[str, dict]) -> dict[str, dict]:
    """Targets met / missed / not run, computed from the runs."""
    def get(n: int) -> dict | None:
        return runs.get(str(n))

    out: dict[str, dict] = {}
    ten, one, fifty = get(10_000_000), get(1_000_000), get(50_000_000)
    if ten is None:
        out["peak_10M_lt_2.5GiB"] = {"status": "not run"}
    elif not ten.get("completed"):
        out["peak_10M_lt_2.5GiB"] = {"status": "missed", "why": ten.get("reason")}
    else:
        out["peak_10M_lt_2.5GiB"] = {"status": "met" if ten["peak_rss_gib"] < PEAK_10M_GIB
                                     else "missed", "peak_rss_gib": ten["peak_rss_gib"]}
    if one is None or ten is None:
        out["time_growth_1M_10M_at_most_linear"] = {"status": "not run"}
    elif not (one.get("completed") and ten.get("completed")):
        out["time_growth_1M_10M_at_most_linear"] = {"status": "missed",
                                                     "why": "a run did not complete"}
    else:
        ev = ten["raw_events"] / one["raw_events"]
        tm = ten["seconds"] / one["seconds"]
        out["time_growth_1M_10M_at_most_linear"] = {
            "status": "met" if tm <= ev else "missed", "events_ratio": round(ev, 2),
            "seconds_ratio": round(tm, 2)}
    if fifty is None:
        out["50M_completes_within_24GiB"] = {"status": "not run"}
    elif not fifty.get("completed"):
        out["50M_completes_within_24GiB"] = {"status": "not completed",
                                             "why": fifty.get("reason")}
    else:
        out["50M_completes_within_24GiB"] = {
            "status": "met" if fifty["peak_rss_gib"] < PEAK_50M_GIB else "missed",
            "peak_rss_gib": fifty["peak_rss_gib"]}
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# prepare --scale benchmark ({report['created_at']})", "",
             f"commit `{report['git_commit']}`; machine: {m.get('cpu_model', '?')}, "
             f"{m.get('cpu_count')} cores, {m.get('memory_gib')} GiB; seed {report['seed']}; "
             f"memory_budget_gib {report['config']['memory_budget_gib']}; watchdog "
             f"{report['watchdog_gib']} GiB. Command: `{report['command']}`.",
             f"Load average before {report['load_average_before']}, after "
             f"{report['load_average_after']} (a shared 2-core machine; another job was running).",
             "", "Each run: a fresh subprocess under `/usr/bin/time -v` that scans the synthetic "
             "Parquet files (written beforehand, block by block, by a separate subprocess), "
             "prepares and saves. Seconds = that subprocess's wall time; peak = its maximum RSS.",
             "", "| events (target) | raw events | completed | seconds | peak RSS GiB | "
             "load / prepare / save s | generate s (peak GiB) |", "|---|---|---|---|---|---|---|"]
    for key, r in report["runs"].items():
        g = r.get("generate", {})
        gen = f"{g.get('wall_s')} ({g.get('peak_rss_gib')})"
        if not r.get("completed"):
            lines.append(f"| {int(key):,} | — | no: {r.get('reason')} | — | "
                         f"{r.get('peak_rss_gib', '—')} | — | {gen} |")
            continue
        lines.append(f"| {int(key):,} | {r['raw_events']:,} | yes | {r['seconds']} | "
                     f"{r['peak_rss_gib']} | {r['load_s']} / {r['prepare_s']} / {r['save_s']} "
                     f"| {gen} |")
    lines += ["", "| target | status | numbers |", "|---|---|---|"]
    for name, t in report["targets"].items():
        rest = ", ".join(f"{k} {v}" for k, v in t.items() if k != "status")
        lines.append(f"| {name} | {t['status']} | {rest} |")
    return "\n".join(lines) + "\n"


def bench_scale(scale: str, budget_gib: float, watchdog_gib: float | None,
                out: Path | None, tmp: Path | None, console) -> dict:
    import datetime as dt

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.config import to_dict
    from onefeed.data.prepare import PrepareConfig
    from onefeed.paths import REPO, results_root

    scales = parse_scale(scale)
    cfg = PrepareConfig(name="synthetic-scale", dataset="raw-files",
                        memory_budget_gib=budget_gib, max_history=50)
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, dict] = {}
    for n in scales:
        console.print(f"[bold]{label(n)}[/bold] events ...")
        folder = Path(tempfile.mkdtemp(prefix=f"onefeed-scale-{label(n)}-", dir=tmp))
        try:
            runs[str(n)] = run_scale(n, folder, budget_gib, watchdog_gib)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        r = runs[str(n)]
        console.print(f"  completed={r.get('completed')} seconds={r.get('seconds')} "
                      f"peak={r.get('peak_rss_gib')} GiB {r.get('reason', '')}", markup=False)
    report = {"created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "git_commit": git_commit(REPO), "machine": machine_info(), "seed": 0,
              "command": "onefeed bench prepare " + " ".join(sys.argv[3:]),
              "load_average_before": load_before,
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "watchdog_gib": watchdog_gib, "measured_with": TIME + " -v"
              if Path(TIME).exists() else "RSS sampling of /proc",
              "config": to_dict(cfg), "runs": runs, "targets": targets(runs)}
    folder = out or results_root()
    write_json(folder / "prepare-scale.json", report)
    (folder / "prepare-scale.md").write_text(markdown(report))
    console.print(markdown(report), markup=False)
    return report


def _child(argv: list[str]) -> None:
    """``generate FOLDER OPTIONS_JSON`` or ``prepare FOLDER [OVERRIDES]``: print one JSON line."""
    if argv[0] == "generate":
        from onefeed.config import from_dict
        from onefeed.data.synthetic import SyntheticConfig, write_parquet

        src = write_parquet(from_dict(SyntheticConfig, json.loads(argv[2])), argv[1])
        print(json.dumps({"events_written": src["events_written"],
                          "self_peak_rss_gib": _self_peak_gib()}))
        return
    from onefeed.cli.bench_prepare import timed_prepare
    from onefeed.data.prepare import load_config

    folder, overrides = argv[1], argv[2:]
    cfg = load_config(None, ["dataset=raw-files", f"path={folder}", "max_history=50",
                             *overrides])
    _, ds, seconds = timed_prepare(cfg)
    seconds.pop("total_s")  # the scale record times the whole process instead
    c = ds.manifest["counts"]
    print(json.dumps({
        "raw_events": ds.manifest["validation"]["n_events"], "users": c["users"],
        "items": c["items"], "events": c["events"], "item_events": c["item_events"], **seconds,
        "leakage": ds.manifest["leakage"], "self_peak_rss_gib": _self_peak_gib()}))


def _self_peak_gib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)  # KiB on Linux


if __name__ == "__main__":
    _child(sys.argv[1:])
