"""``onefeed bench closed-loop``: OneFeed §3.10's feedback loop on the synthetic world, with a
no-feedback control -> bench/results/closed-loop.{json,md,png} (``onefeed.bench.closed_loop``)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("closed-loop")(bench_closed_loop)


def bench_closed_loop(
    config: Path = typer.Option(Path("configs/bench/closed-loop.toml"),
                                help="ClosedLoopConfig TOML"),
    rounds: int = typer.Option(None, min=1, help="fine-tune rounds (default: the config's)"),
    seeds: str = typer.Option(None, help="comma-separated seeds (default: the config's)"),
    quick: bool = typer.Option(False, help="a tiny smoke run (2 rounds, 1 seed, tiny world)"),
    set_: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    work: Path = typer.Option(None, help="scratch dir for models and logs (default: temp)"),
    out: Path = typer.Option(None, help="default bench/results/closed-loop.{json,md,png}"),
) -> None:
    """Serve -> simulated feedback -> log -> fine-tune, N rounds; feedback vs control."""
    import tempfile

    from onefeed.artifacts import write_json
    from onefeed.bench import closed_loop as cl
    from onefeed.paths import results_root

    overrides = list(set_)
    if rounds is not None:
        overrides.append(f"rounds={rounds}")
    if seeds:
        try:
            overrides.append(f"seeds=[{','.join(str(int(s)) for s in seeds.split(','))}]")
        except ValueError:
            raise typer.BadParameter(f"--seeds {seeds!r}: give integers like 0,1,2") from None
    cfg = cl.load_config(config if config and config.exists() else None, overrides, quick)
    out = out or results_root() / ("closed-loop-quick" if quick else "closed-loop")
    with tempfile.TemporaryDirectory(prefix="onefeed-loop-") as tmp:
        doc = cl.run(cfg, Path(work) if work else Path(tmp), progress=typer.echo)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    cl.plot(doc, png)
    write_json(out.with_suffix(".json"), doc)
    out.with_suffix(".md").write_text(cl.markdown(doc, png.name))
    typer.echo(out.with_suffix(".md").read_text())
