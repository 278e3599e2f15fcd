"""``onefeed bench ddp``: each training path at world size 1 and 2 (torchrun, gloo, CPU) on a
tiny fixture; loss-curve and final-metric differences -> bench/results/ddp-worldsize.{json,md}."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("ddp")(bench_ddp)


def bench_ddp(
    paths: str = typer.Option("rqvae,biencoder,biencoder_nodropout,loop",
                              help="comma-separated: rqvae, biencoder, biencoder_nodropout, loop"),
    worlds: str = typer.Option("1,2", help="comma-separated world sizes (first = reference)"),
    work: Path = typer.Option(None, help="scratch dir for the runs (default: a temp dir)"),
    out: Path = typer.Option(None, help="default bench/results/ddp-worldsize.{json,md}"),
) -> None:
    """Results for a seed vs the world size: every rank's weights must agree, and world size
    W's loss curve and final metric are compared with world size 1's."""
    import tempfile

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.bench import ddp
    from onefeed.paths import results_root

    chosen = tuple(p.strip() for p in paths.split(",") if p.strip())
    unknown = sorted(set(chosen) - set(ddp.PATHS))
    if unknown:
        raise typer.BadParameter(f"unknown path(s) {unknown}; known: {list(ddp.PATHS)}")
    sizes = tuple(int(w) for w in worlds.split(","))
    out = out or results_root() / "ddp-worldsize"
    with tempfile.TemporaryDirectory(prefix="onefeed-ddp-") as tmp:
        runs = ddp.measure(Path(work) if work else Path(tmp), chosen, sizes)
    result = {"kind": "bench-ddp-worldsize", "commit": git_commit(), "machine": machine_info(),
              "backend": "gloo", "threads_per_rank": 1, "worlds": list(sizes), "runs": runs}
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(ddp.markdown(result))
    typer.echo(out.with_suffix(".md").read_text())
