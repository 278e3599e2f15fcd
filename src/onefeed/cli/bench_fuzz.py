"""``onefeed bench fuzz``: seeded malformed inputs through every loader and command
(``onefeed.fuzzing``) -> bench/results/fuzz.{json,md}."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def fuzz_cmd(
    cases: int = typer.Option(5000, "--cases", min=1, help="cases per loader"),
    command_cases: int = typer.Option(100, "--command-cases", min=0,
                                      help="cases per CLI command (0 = skip commands)"),
    prepare_cases: int = typer.Option(-1, "--prepare-cases", min=-1,
                                      help="generic CSV cases through the whole of prepare "
                                           "(-1 = cases / 5; ~40 ms each)"),
    seed: int = typer.Option(0, "--seed", help="generator seed (each case has its own RNG)"),
    loaders: str = typer.Option("", "--loaders", help="comma-separated subset of loaders"),
    out: Path = typer.Option(None, "--out", help="output dir (default bench/results)"),
) -> None:
    """Fuzz loaders and commands; count clean / traceback / accepted_invalid outcomes."""
    import logging

    from onefeed import fuzzing
    from onefeed.artifacts import write_json
    from onefeed.paths import results_root

    names = [n.strip() for n in loaders.split(",") if n.strip()] or None
    unknown = sorted(set(names or []) - set(fuzzing.LOADER_CASES))
    if unknown:
        raise typer.BadParameter(f"unknown loader(s) {unknown}; known: "
                                 f"{sorted(fuzzing.LOADER_CASES)}")
    logging.disable(logging.WARNING)  # prepare's warnings on tiny fixtures are expected noise
    t0 = time.perf_counter()
    loader_tallies = fuzzing.fuzz_loaders(cases, seed, names)
    prepare_cases = cases // 5 if prepare_cases < 0 else prepare_cases
    if prepare_cases:
        loader_tallies["prepare"] = fuzzing.fuzz_prepare(prepare_cases, seed)
    command_tallies = fuzzing.fuzz_commands(command_cases, seed) if command_cases else {}
    result = fuzzing.report(loader_tallies, command_tallies, seed)
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result["command"] = (f"onefeed bench fuzz --cases {cases} --command-cases {command_cases} "
                         f"--prepare-cases {prepare_cases} --seed {seed}"
                         + (f" --loaders {loaders}" if loaders else ""))
    folder = out or results_root()
    write_json(folder / "fuzz.json", result)
    (folder / "fuzz.md").write_text(fuzzing.markdown(result) + "\n")
    typer.echo(fuzzing.markdown(result))
    typer.echo(f"wrote {folder / 'fuzz.json'} and fuzz.md ({result['wall_seconds']} s)")


def register(app: typer.Typer) -> None:
    app.command("fuzz")(fuzz_cmd)
