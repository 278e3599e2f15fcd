"""``onefeed bench catalogue``: SID build, trie and beam search at 10^5 / 10^6 synthetic items.

Thin: parses options, runs ``onefeed.bench.catalogue.run``, writes
bench/results/catalogue.{json,md} (machine, commit, config, seed, targets).
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("catalogue")(bench_catalogue)


def bench_catalogue(
    scales: str = typer.Option("100000,1000000", help="comma-separated catalogue sizes"),
    compare_at: str = typer.Option("100000,1000000", help="scales at which the old DenseTrie "
                                                          "runs too (\"\" = none)"),
    fit_sample: int = typer.Option(100000, help="items RQ-KMeans is fitted on"),
    codebook_size: int = typer.Option(256, help="codes per RQ-KMeans level"),
    levels: int = typer.Option(3, help="RQ-KMeans levels (+ the disambiguation level)"),
    balanced: bool = typer.Option(False, help="balanced k-means instead of faiss k-means"),
    requests: int = typer.Option(300, help="single-user requests per trie"),
    text_sample: int = typer.Option(256, help="texts for the MiniLM throughput (0 = skip)"),
    seed: int = typer.Option(0, help="seed of the synthetic items, model and histories"),
    out: Path = typer.Option(None, help="default bench/results/catalogue.{json,md}"),
) -> None:
    """Large catalogues: SID build time / peak RSS, trie bytes, per-step decode time and
    single-request latency at beam 20; old vs new trie side by side; targets met / missed."""
    from rich.progress import Progress

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.bench.catalogue import CatalogueBenchConfig, markdown, run
    from onefeed.paths import results_root

    sizes = tuple(int(s) for s in scales.split(",") if s.strip())
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter(f"--scales: expected positive sizes, got {scales!r}")
    compare = tuple(int(s) for s in compare_at.split(",") if s.strip())
    cfg = CatalogueBenchConfig(scales=sizes, compare_at=compare, fit_sample=fit_sample,
                               codebook_size=codebook_size, levels=levels, balanced=balanced,
                               requests=requests, text_sample=text_sample, seed=seed)
    with Progress() as bar:
        def task(label: str, total: int):
            tid = bar.add_task(label, total=total)
            return lambda n: bar.advance(tid, n)

        result = run(cfg, task)
    result = {"benchmark": result.pop("benchmark"), "commit": git_commit(),
              "machine": machine_info(), **result}
    out = out or results_root() / "catalogue"
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(markdown(result))
    typer.echo(markdown(result))
