"""Markdown report + PNG plots of one bench run (``results.json`` document + per_case.parquet).

Tables show mean ± std over seeds (seed count per row), the best mean per column in bold, and
the paired p-value of each row against the best row on the key metric (per-case values averaged
over seeds, paired by user; t-test in the table, bootstrap in results.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from onefeed.evaluation.protocol import Protocol
from onefeed.evaluation.significance import paired_bootstrap, paired_ttest

TABLES = {  # task key in results.json -> (title, key metric, columns)
    "metrics": ("Recommendation", "ndcg@10",
                ["recall@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr@10",
                 "coverage@10", "tail_recall@10", "recall@30", "head_recall@30",
                 "tail_recall@30"]),
    "metrics_search": ("Search (held-out weak queries)", "ndcg@10",
                       ["recall@1", "recall@10", "ndcg@10", "mrr@10", "recall@20", "recall@30",
                        "head_recall@30", "tail_recall@30"]),
    "metrics_query": ("Query generation", "hr@10",
                      ["hr@1", "hr@10", "mrr@10", "ed_hr@10", "bleu@1", "bleu@10", "rouge_l@1",
                       "distinct_2@10", "retrievability@1"]),
}
TASK_OF = {"metrics": "rec", "metrics_search": "search", "metrics_query": "query"}


def significance(per_case: pl.DataFrame, task: str, metric: str, models: list[str],
                 best: str) -> dict[str, dict[str, float]]:
    """p-values of each model vs ``best`` on ``metric``; per-user values averaged over seeds."""
    if metric not in per_case.columns:
        return {}
    sub = per_case.filter(pl.col("task") == task)
    per_user = sub.group_by("model", "user").agg(pl.col(metric).mean())
    ref = per_user.filter(pl.col("model") == best).select("user", pl.col(metric).alias("ref"))
    out = {}
    for name in models:
        if name == best:
            continue
        pair = (per_user.filter(pl.col("model") == name).join(ref, on="user", how="inner")
                .sort("user"))
        if pair.height < 2:
            continue
        a, b = pair[metric].to_numpy(), pair["ref"].to_numpy()
        out[name] = {"vs": best, "metric": metric, "n": pair.height,
                     "ttest_p": paired_ttest(a, b), "bootstrap_p": paired_bootstrap(a, b)}
    return out


def _fmt(stat: dict[str, Any] | None, bold: bool) -> str:
    if stat is None:
        return "–"
    text = f"{stat['mean']:.4f}"
    if len(stat.get("per_seed", [])) > 1:
        text += f" ± {stat['std']:.4f}"
    return f"**{text}**" if bold else text


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def table(doc: dict[str, Any], key: str) -> str:
    """One markdown table of the models that report ``key``; '' if none."""
    title, key_metric, columns = TABLES[key]
    rows = {n: m for n, m in doc["models"].items() if key in m}
    if not rows:
        return ""
    columns = [c for c in columns if any(c in m[key] for m in rows.values())]
    best = {c: max(m[key][c]["mean"] for m in rows.values() if c in m[key]) for c in columns}
    head = ["model", "seeds", *columns, f"p ({key_metric} vs best)", "train s", "infer s"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for name, m in rows.items():
        sig = m.get("significance", {}).get(key)
        cells = [f"`{name}`", str(len(m["seeds"]))]
        cells += [_fmt(m[key].get(c), c in m[key] and m[key][c]["mean"] == best[c])
                  for c in columns]
        cells.append("best" if sig is None and m.get("is_best", {}).get(key) else
                     _p(sig["ttest_p"]) if sig else "–")
        cells.append(f"{m['train_seconds']['mean']:.1f}")
        cells.append(f"{m['infer_seconds']['mean']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def references_table(doc: dict[str, Any]) -> str:
    refs = doc.get("references") or []
    if not refs:
        return ""
    metrics = sorted({k for r in refs for k in r["metrics"]})
    ours = {n: m["metrics"] for n, m in doc["models"].items() if "metrics" in m}
    lines = ["### Literature reference rows (not run here)", "",
             "| row | source | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 2)]
    for r in refs:
        lines.append(f"| {r['name']} | {r['source']} | "
                     + " | ".join(f"{r['metrics'].get(m, float('nan')):.4f}" for m in metrics)
                     + " |")
    for name, m in ours.items():
        if all(k in m for k in metrics):
            lines.append(f"| ours: `{name}` | this run | "
                         + " | ".join(f"{m[k]['mean']:.4f}" for k in metrics) + " |")
    return "\n".join(lines) + "\n"


def add_significance(doc: dict[str, Any], per_case: pl.DataFrame | None) -> None:
    """Mark the best row per task and attach p-values vs it (in place)."""
    for key, (_, metric, _) in TABLES.items():
        rows = {n: m for n, m in doc["models"].items() if key in m and metric in m[key]}
        if not rows:
            continue
        best = max(rows, key=lambda n: rows[n][key][metric]["mean"])
        doc["models"][best].setdefault("is_best", {})[key] = True
        if per_case is None:
            continue
        for name, sig in significance(per_case, TASK_OF[key], metric, list(rows), best).items():
            doc["models"][name].setdefault("significance", {})[key] = sig


def add_comparisons(doc: dict[str, Any], per_case: pl.DataFrame | None) -> None:
    """``doc["comparisons"]``: each ``doc["compare"]`` pair [a, b], on every task both rows
    have, on the task's key metric: means, the users paired, and a's p-values vs b."""
    out = []
    for a, b in doc.get("compare", []):
        ma, mb = doc["models"].get(a), doc["models"].get(b)
        if ma is None or mb is None or per_case is None:
            continue
        for key, (_, metric, _) in TABLES.items():
            if metric not in ma.get(key, {}) or metric not in mb.get(key, {}):
                continue
            sig = significance(per_case, TASK_OF[key], metric, [a], b).get(a)
            if sig is not None:
                out.append({"a": a, "b": b, "task": key, "metric": metric,
                            "mean_a": ma[key][metric]["mean"], "mean_b": mb[key][metric]["mean"],
                            "seeds_a": len(ma["seeds"]), "seeds_b": len(mb["seeds"]),
                            "n": sig["n"], "ttest_p": sig["ttest_p"],
                            "bootstrap_p": sig["bootstrap_p"]})
    doc["comparisons"] = out


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def comparisons_table(doc: dict[str, Any]) -> str:
    rows = doc.get("comparisons", [])
    if not rows:
        return ""
    lines = ["### Head to head (paired over users; per-user values averaged over each row's "
             "seeds)", "", "| a | b | task | metric | a | b | a − b | p (t-test) | p (bootstrap) |",
             "|---" * 9 + "|"]
    for r in rows:
        lines.append(f"| `{r['a']}` ({_seeds(r['seeds_a'])}) | `{r['b']}` ({_seeds(r['seeds_b'])}) | "
                     f"{TASK_OF[r['task']]} | {r['metric']} | {r['mean_a']:.4f} | "
                     f"{r['mean_b']:.4f} | {r['mean_a'] - r['mean_b']:+.4f} | "
                     f"{_p(r['ttest_p'])} | {_p(r['bootstrap_p'])} |")
    return "\n".join(lines)


def k_ticks(ks: list[int], n: int) -> list[int]:
    """x ticks of a Recall@K curve over K = 1..n: 1, the protocol's Ks up to n, and n."""
    return sorted({1, n, *(int(k) for k in ks if 1 <= int(k) <= n)})


def recall_figure(doc: dict[str, Any], task: str = "rec"):  # -> matplotlib Figure | None
    """Recall@K for K = 1..curve length, one line per model; ticks at the protocol's Ks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {n: m["curves"][task]["recall_at_k"] for n, m in doc["models"].items()
              if m.get("curves", {}).get(task, {}).get("recall_at_k")}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=name)
    ks = doc.get("protocol", {}).get("search_ks" if task == "search" else "ks", [])
    ax.set_xticks(k_ticks(ks, max(len(c) for c in curves.values())))
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title(f"{doc['suite']}: {'recommendation' if task == 'rec' else task} Recall@K")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_recall_curves(doc: dict[str, Any], path: Path, task: str = "rec") -> bool:
    import matplotlib.pyplot as plt

    fig = recall_figure(doc, task)
    if fig is None:
        return False
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_training(doc: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {(n, s): log for n, m in doc["models"].items()
              for s, log in m.get("training", {}).items() if log.get("valid_ndcg10")}
    if not series:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for (name, seed), log in series.items():
        ax1.plot(log["epochs"], log["valid_ndcg10"], label=f"{name} s{seed}")
        ax2.plot(log["epochs"], log["loss"], label=f"{name} s{seed}")
    from matplotlib.ticker import MaxNLocator

    ax1.set_xlabel("epoch")
    ax1.set_ylabel("valid NDCG@10")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("train loss")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _commit_lines(doc: dict[str, Any]) -> list[str]:
    """Which commit made which rows' seeds, when they differ from the last run's commit."""
    made: dict[str, list[str]] = {}
    for name, m in doc["models"].items():
        for seed, commit in sorted(m.get("commits", {}).items()):
            made.setdefault(commit, []).append(f"`{name}` {seed}")
    if not made or set(made) == {doc["commit"]}:
        return []
    lines = ["Seeds were run at more than one commit (rows without a record predate per-seed "
             "commits):", ""]
    lines += [f"- `{c}`: {', '.join(rows)}" for c, rows in made.items()]
    return lines + [""]


def render(doc: dict[str, Any], plots: list[str]) -> str:
    proto = Protocol(**doc["protocol"])
    single = [n for n, m in doc["models"].items() if len(m["seeds"]) == 1]
    parts = [f"# Bench `{doc['suite']}`" + (" (quick mode)" if doc.get("quick") else ""), "",
             "## Protocol", "", proto.describe(doc["dataset"]), "",
             f"Commit `{doc['commit']}`, {doc['created']}, machine "
             f"{doc['machine'].get('cpu_model', doc['machine'].get('processor'))} "
             f"({doc['machine'].get('cpu_count')} cores). Seeds {doc['seeds']}; "
             f"single-seed rows (no ± std): {', '.join(f'`{n}`' for n in single) or 'none'}. "
             "Bold = best mean per column; p = paired t-test over users vs the best row "
             "(bootstrap p in results.json).", ""]
    parts += _commit_lines(doc)
    dirs: dict[str, list[str]] = {}
    for name, m in doc["models"].items():
        dirs.setdefault(str(m.get("dataset", {}).get("dir", "?")), []).append(name)
    if len(dirs) > 1:
        parts += ["Rows were run from more than one dataset directory (same suite, same "
                  "n_items; compare only if the split is identical):", ""]
        parts += [f"- `{d}`: {', '.join(f'`{n}`' for n in names)}" for d, names in dirs.items()]
        parts.append("")
    parts += ["## Results", ""]
    for key in TABLES:
        t = table(doc, key)
        if t:
            parts += [t, ""]
    head = comparisons_table(doc)
    if head:
        parts += [head, ""]
    ref = references_table(doc)
    if ref:
        parts += [ref, ""]
    if doc.get("auto"):
        parts += [auto_section(doc["auto"]), ""]
    notes = {n: m["note"] for n, m in doc["models"].items() if m.get("note")}
    if notes:
        parts += ["## Notes", ""] + [f"- `{n}`: {t}" for n, t in notes.items()] + [""]
    if plots:
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(parts)


def auto_section(auto: dict[str, Any]) -> str:
    """Markdown of ``results.json["auto"]`` (``onefeed bench auto``): the SID rule, the grid,
    every trial's validation score and the chosen point per row, the skipped rows."""
    sid = auto.get("sid", {})
    lines = ["## Hyperparameters chosen on validation (`onefeed bench auto`)", "",
             f"- Semantic IDs: {sid.get('rule', '')} → {sid.get('levels')} levels × "
             f"{sid.get('codebook_size')} codes for {sid.get('n_items')} items.",
             f"- Selection: {auto.get('selection', '')}",
             f"- Budget: {auto.get('trial_minutes')} min of training per trial.", ""]
    for row, trials in auto.get("trials", {}).items():
        lines += [f"**{row}** (chosen: `{auto['chosen'].get(row)}`)", "",
                  f"| point | valid {auto.get('metric', 'score')} | train s |", "|---|---|---|"]
        for t in trials:
            mark = " **(chosen)**" if t["point"] == auto["chosen"].get(row) else ""
            lines.append(f"| `{t['point']}`{mark} | {t['score']:.4f} | {t['train_seconds']:.0f} |")
        lines.append("")
    for row, why in auto.get("skipped", {}).items():
        lines.append(f"- `{row}` skipped: {why}")
    return "\n".join(lines).rstrip()


def write_report(doc: dict[str, Any], out_dir: str | Path) -> Path:
    """Significance into ``doc``; report.md and PNG plots into ``out_dir``."""
    out_dir = Path(out_dir)
    per_case_path = out_dir / "per_case.parquet"
    per_case = pl.read_parquet(per_case_path) if per_case_path.exists() else None
    add_significance(doc, per_case)
    add_comparisons(doc, per_case)
    plots = []
    if plot_recall_curves(doc, out_dir / "recall_at_k.png"):
        plots.append("recall_at_k.png")
    if plot_recall_curves(doc, out_dir / "search_recall_at_k.png", task="search"):
        plots.append("search_recall_at_k.png")
    if plot_training(doc, out_dir / "training_curves.png"):
        plots.append("training_curves.png")
    path = out_dir / "report.md"
    path.write_text(render(doc, plots), encoding="utf-8")
    return path

