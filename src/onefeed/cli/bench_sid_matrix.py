"""``onefeed bench sid-matrix``: every strategy x quantiser on one prepared dataset.

Builds (or reuses, when the saved config matches) each table under ``runs/<name>/sid/`` and
writes ``bench/results/sid-matrix-<dataset>.{json,md}`` after every table, so an interrupted
run resumes where it stopped. See ``onefeed.sid.matrix`` for what is measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from onefeed.cli.output import QUIET_HELP
from onefeed.cli.output import quiet as quiet_output

console = Console()


def _fmt(values: list[float], digits: int) -> str:
    return "/".join(f"{v:.{digits}f}" for v in values)


def _yes(value) -> str:
    return "—" if value is None else ("yes" if value else "NO")


def _behaviour(table: dict) -> str:
    agree = table.get("behaviour_agreement")
    if not agree:
        return "—"
    return f"{_fmt(agree['train_graph'], 3)} / {_fmt(agree['valid_next'], 3)}"


def markdown(result: dict) -> str:
    lines = [f"# onefeed bench sid-matrix — {result['dataset']}", "",
             f"`{result['command']}` (last of {len(result.get('commands', [1]))} resumable "
             f"invocations, listed in the JSON) · commit `{result['commit']}` · base overrides "
             f"`{' '.join(result['base']) or '(defaults)'}` · "
             f"{result['n_items']} items", "",
             "Collision rate: GenSAR §4.4.2 `(1 - unique IDs / items) x 100` on the codes "
             "before the disambiguation level. Utilisation / perplexity per level include the "
             "disambiguation level (last). Coherence: P(same category path | same first code) "
             "/ P(same path | random pair), then the same for 'share any category label' "
             "(sampled, seeded; the meaningful one for flat labels such as ML genres). Behaviour "
             "train / valid: share of the training co-click + co-search graph's weight, then of "
             "validation next-item transitions (last history item -> target), on item pairs "
             "sharing the 1- / 2-level prefix (what `calibration.weight` > 0 raises; tables "
             "measured before this column have —). Build s: "
             "wall time of the build that made the table (shared 2-core machine; embeddings "
             "and fine-tunes served from cache count ~0 s).", "",
             "| table | id | build s | collisions % | unique | utilisation | perplexity | "
             "coherence path / any | behaviour train / valid | rebuild = | save→load = |",
             "|---" * 11 + "|"]
    for name, row in result["tables"].items():
        checks = row.get("checks", {})
        for key in ("sid", "sid_semantic", "sid_collab"):
            if key not in row:
                continue
            t = row[key]
            coh, any_ = t["coherence_same_path"], t["coherence_any_category"]
            lines.append(
                f"| {name} | {key} | {row['build_s']:.1f} | {t['collision_rate']:.2f} | "
                f"{_yes(t['unique'])} | {_fmt(t['utilisation'], 2)} | "
                f"{_fmt(t['perplexity'], 0)} | {'—' if coh is None else f'{coh:.1f}'} / "
                f"{'—' if any_ is None else f'{any_:.2f}'} | {_behaviour(t)} | "
                f"{_yes(checks.get('rebuild_identical'))} | "
                f"{_yes(checks.get('reload_identical'))} |")
    tuned = {n: r["fine_tune"] for n, r in result["tables"].items() if "fine_tune" in r}
    if tuned:
        lines += ["", "Bi-encoder fine-tunes (CPU, cached by pairs + config; `cache_hit` means "
                  "an earlier table trained it):", ""]
        seen = set()
        for name, ft in tuned.items():
            for kind, log in ft.items():
                if kind in seen:
                    continue
                seen.add(kind)
                lines.append(f"- {kind}: {log.get('steps')} steps over {log.get('pairs')} "
                             f"pairs, {log.get('seconds', 0):.0f} s, loss "
                             f"{log.get('loss_first', 0):.3f} -> {log.get('loss_last_mean', 0):.3f}"
                             f" (first seen in {name})")
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("sid-matrix")
    def bench_sid_matrix(
        data: Path = typer.Option(..., help="Prepared dataset dir (runs/<name>/data)."),
        only: str = typer.Option("", help="Comma list of table names or quantizers "
                                          "(e.g. rq_kmeans,content-joint); default all."),
        codebook_size: int = typer.Option(256, help="Codes per level (ML-100K: 32)."),
        set_: list[str] = typer.Option([], "--set", help="Extra SidConfig override for every "
                                                         "table, e.g. --set rqvae.epochs=100"),
        checks: bool = typer.Option(True, help="Rebuild + save/load identity checks."),
        rebuild_checks: bool = typer.Option(True, help="With --checks: also rebuild each "
                                                       "table (doubles the build time)."),
        out: Path | None = typer.Option(None, help="Results dir (default bench/results)."),
        quiet: bool = typer.Option(False, help=QUIET_HELP),
    ) -> None:
        """Build and measure every strategy x quantiser table (resumable)."""
        from onefeed.artifacts import atomic_write_text, git_commit, machine_info, write_json
        from onefeed.data.schemas import Dataset
        from onefeed.paths import results_root
        from onefeed.sid.matrix import default_specs, run_matrix

        ds = Dataset.load(data)
        specs = default_specs()
        if only:
            wanted = {w.strip() for w in only.split(",") if w.strip()}
            specs = [s for s in specs if s.name in wanted or s.name.split("-")[1] in wanted]
            if not specs:
                raise typer.BadParameter(f"--only {only!r} matches no table")
        base = ["seed=0", "levels=3", f"codebook_size={codebook_size}", *set_]
        out = out or results_root()
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"sid-matrix-{ds.name}.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        if previous.get("base") not in (None, base):
            previous = {}  # other base settings: nothing to merge with
        command = "onefeed bench sid-matrix " + " ".join(
            [f"--data {data}", f"--codebook-size {codebook_size}", *(f"--set {s}" for s in set_),
             *([f"--only {only}"] if only else []),
             *([] if rebuild_checks else ["--no-rebuild-checks"])])
        result = {"dataset": ds.name, "data": str(data), "n_items": ds.n_items, "base": base,
                  "command": command, "commands": [*previous.get("commands", []), command],
                  "commit": git_commit(), "machine": machine_info(),
                  "load_average_start": os.getloadavg(),
                  "tables": dict(previous.get("tables", {}))}

        def save(name: str, row: dict) -> None:
            result["tables"][name] = row
            result["load_average_last"] = os.getloadavg()
            order = [s.name for s in default_specs()]
            result["tables"] = dict(sorted(result["tables"].items(),
                                           key=lambda kv: order.index(kv[0])
                                           if kv[0] in order else len(order)))
            write_json(path, result)
            atomic_write_text(out / f"sid-matrix-{ds.name}.md", markdown(result))
            sid = row.get("sid", {})
            console.print(f"[bold]{name}[/]: build {row['build_s']:.1f} s, collisions "
                          f"{sid.get('collision_rate', float('nan')):.2f}%, checks "
                          f"{escape(str(row.get('checks')))}")

        with quiet_output(quiet):
            run_matrix(ds, data, data.resolve().parent / "sid", specs, base,
                       previous.get("tables", {}), checks, not quiet, on_row=save,
                       rebuild=rebuild_checks)
        console.print(markdown(result), markup=False)
