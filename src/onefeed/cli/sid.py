"""``onefeed sid build`` / ``onefeed sid inspect``: parse, call onefeed.sid, format."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from onefeed.cli.output import QUIET_HELP
from onefeed.cli.output import quiet as quiet_output

app = typer.Typer(help="Semantic IDs: build item code tables and inspect them.",
                  no_args_is_help=True, rich_markup_mode=None)
console = Console()


@app.command()
def build(
    data: Path = typer.Option(..., help="Prepared dataset dir (runs/<name>/data)."),
    strategy: str | None = typer.Option(None, help="content (default)|collaborative|search|"
                                                    "multitask|fused_concat|fused_svd|separate|"
                                                    "prefix_share (Spotify; quantizer joint)"),
    quantizer: str | None = typer.Option(None, help="rq_kmeans (default)|rqvae|joint (--set "
                                                    "joint.method=learned: GenSAR Eq. 6-10)"),
    out: Path | None = typer.Option(None, help="Output dir (default runs/<name>/sid/"
                                               "<strategy>-<quantizer>)."),
    config: Path | None = typer.Option(None, help="TOML file with SidConfig fields."),
    set_: list[str] = typer.Option([], "--set", help="Override, e.g. --set levels=4 "
                                                     "--set rqvae.epochs=50"),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
    force: bool = typer.Option(False, "--force", help="Replace the SID build already at --out "
                                                      "(models trained on it will be stale)."),
) -> None:
    """Build a SidTable from a prepared dataset."""
    from onefeed import config as cfg_mod
    from onefeed.artifacts import ArtifactError, OutputError
    from onefeed.data.schemas import Dataset
    from onefeed.sid.build import SidConfig
    from onefeed.sid.build import build as build_sid

    if strategy == "prefix_share" and quantizer is None:
        quantizer = "joint"  # Prefix-share IDs come out of the joint (shared + specific) quantiser
    chosen = [f"{key}={value}" for key, value in (("strategy", strategy),
                                                  ("quantizer", quantizer)) if value]
    cfg = cfg_mod.load(SidConfig, config, [*chosen, *set_])
    out = out or data.resolve().parent / "sid" / f"{cfg.strategy}-{cfg.quantizer}"
    try:
        with quiet_output(quiet):
            table = build_sid(Dataset.load(data), cfg, out, progress=not quiet, data_dir=data,
                              replace=force)
    except (OutputError, ArtifactError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    console.print(f"wrote {escape(str(out))}: {table.n_items} items x {table.n_levels} levels "
                  f"{list(table.codebook_sizes)}, collision rate before disambiguation "
                  f"{table.meta['collision_rate']:.2f}%")
    warn_degenerate(list(table.codebook_sizes), table.n_items, cfg.codebook_size)


def warn_degenerate(sizes: list[int], n_items: int, codebook_size: int) -> bool:
    """Log a warning when a level has a single code (it tells items apart not at all)."""
    flat = [j for j, size in enumerate(sizes) if size <= 1]
    if flat:
        logging.getLogger("onefeed.sid").warning(
            "SID levels %s have a single code (codebook sizes %s for %d items, codebook_size="
            "%d): they carry no information. Lower levels / codebook_size, or give items more "
            "text (description, categories) or interactions", flat, sizes, n_items,
            codebook_size)
    return bool(flat)


@app.command()
def inspect(
    directory: Path = typer.Argument(..., help="A `onefeed sid build` output dir."),
    data: Path | None = typer.Option(None, help="Dataset dir for titles/categories "
                                                "(default: the one recorded in the manifest)."),
    table_dir: str = typer.Option("", help="Sub-table to inspect (joint: sid_collab)."),
) -> None:
    """Print collision rate, utilisation, perplexity, prefix examples, coherence; write a PNG."""
    from onefeed.artifacts import write_json
    from onefeed.cli.model import manifest_json
    from onefeed.data.schemas import Dataset
    from onefeed.sid.diagnostics import (behaviour_agreement, behaviour_pairs, diagnose,
                                         plot_usage, semantic_codes)
    from onefeed.sid.table import SidTable

    table = SidTable.load(directory / table_dir if table_dir else directory)
    manifest_path = directory / "manifest.json"
    manifest = manifest_json(manifest_path) if manifest_path.exists() else {}
    data = data or (Path(manifest["dataset"]["path"]) if manifest.get("dataset", {}).get("path")
                    else None)
    ds = Dataset.load(data) if data is not None and data.exists() else None
    report = diagnose(table, ds.items if ds is not None else None,
                      seed=int(manifest.get("seed", 0)))
    if ds is not None and ds.n_items == table.n_items:
        report["behaviour_agreement"] = behaviour_agreement(semantic_codes(table),
                                                           behaviour_pairs(ds))
    name = table_dir or "sid"
    png = plot_usage(table, directory / f"{name}_code_usage.png")
    write_json(directory / f"{name}_diagnostics.json", report)
    _print(report)
    console.print(f"code-usage plot: {png}\ndiagnostics: {directory / f'{name}_diagnostics.json'}",
                  markup=False)


def _print(report: dict) -> None:
    console.print(f"{report['n_items']} items, {report['n_levels']} levels, sizes "
                  f"{report['codebook_sizes']}, unique={report['unique']}, collision rate "
                  f"(before disambiguation) {report['collision_rate']:.2f}%")
    t = Table("level", "codebook", "utilisation", "perplexity")
    for j, size in enumerate(report["codebook_sizes"]):
        t.add_row(str(j), str(size), f"{report['utilisation'][j]:.3f}",
                  f"{report['perplexity'][j]:.1f}")
    console.print(t)
    for key, groups in report.get("examples", {}).items():
        for g in groups:
            head = escape(f"{key} {g['prefix']}")
            console.print(f"[bold]{head}[/] ({g['n_items']} items): "
                          + escape(" | ".join(g["titles"])))
    for key, c in report.get("coherence", {}).items():
        console.print(f"coherence ({key}): P(share | same first code) {c['p_same_code']:.3f} / "
                      f"P(share | random) {c['p_random']:.3f} = ratio {c['ratio']:.2f}")
    agree = report.get("behaviour_agreement")
    if agree:
        console.print("behaviour agreement (share on a shared 1- / 2-level prefix): training "
                      f"co-click graph weight {'/'.join(f'{v:.3f}' for v in agree['train_graph'])}"
                      f", validation next-item pairs "
                      f"{'/'.join(f'{v:.3f}' for v in agree['valid_next'])}", markup=False)
