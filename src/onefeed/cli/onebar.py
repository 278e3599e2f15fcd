"""``onefeed onebar build`` and ``onefeed suggest``: content-grounded query suggestion (issue 15).

    onefeed onebar build --data runs/beauty/data --out runs/beauty/onebar
    onefeed suggest --run runs/beauty/onebar --item B00ABC --user A1YJ... -k 8

``suggest`` prints ``{"item", "user", "queries", "reject", "method"}`` as JSON
(``onebar.serving.TriggerSuggester``, the call the service's /suggest uses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import typer

from onefeed.cli.output import QUIET_HELP
from onefeed.cli.output import quiet as quiet_output

app = typer.Typer(help="OneBar: evidence, [REJECT] labels and examples for query suggestion.",
                  no_args_is_help=True, rich_markup_mode=None)
Method = Literal["anchor-cascade", "query-prior", "keyword", "model"]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="onebar")
    root.command("suggest")(suggest_cmd)


@app.command("build")
def build_cmd(
    data: Path = typer.Option(..., help="prepared dataset dir (onefeed data prepare)"),
    config: Optional[Path] = typer.Option(Path("configs/onebar/default.toml"),
                                          help="OneBarConfig TOML"),
    out: Optional[Path] = typer.Option(None, help="artifact dir (default <data>/../onebar)"),
    embeddings: Optional[Path] = typer.Option(None, help="reuse item embeddings: an .npy file or "
                                              "a SID build dir (default: MiniLM over item text, "
                                              "cached)"),
    set_: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
) -> None:
    """Plant the unsafe set, embed items, build the evidence index and the examples, save."""
    from onefeed.artifacts import OutputError, check_not_input
    from onefeed.onebar import pipeline
    from onefeed.onebar.config import load_config

    if not (data / "manifest.json").is_file():
        raise typer.BadParameter(f"--data {data}: not a prepared dataset (no manifest.json); "
                                 "run onefeed data prepare")
    cfg = load_config(config if config and config.exists() else None, list(set_))
    out = out or data.parent / "onebar"
    try:
        check_not_input(out, [data, embeddings if embeddings and embeddings.is_dir() else None],
                        "--out")
        if embeddings and embeddings.is_file() and embeddings.resolve().is_relative_to(
                out.resolve()):  # an .npy protects itself only, not its whole folder
            raise OutputError(f"--out {out} holds the input {embeddings}: choose another")
        with quiet_output(quiet):
            run = pipeline.build(data, cfg, out, embeddings, progress=not quiet)
    except OutputError as exc:  # a file, a foreign dir or another artifact kind at --out
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps({"out": str(out), "items": run.index.n_items,
                           "planted": len(run.planted), "examples": run.manifest["examples"],
                           "seconds": run.manifest["timings_s"]["total"]}, indent=2))


def suggest_cmd(
    run: Path = typer.Option(..., help="OneBar artifact dir (onefeed onebar build)"),
    item: str = typer.Option(..., help="the watched item: its id as in the source data "
                             "(items.item_id)"),
    user: Optional[str] = typer.Option(None, help="user id (users.user_id): adds their recent "
                                       "queries as history"),
    k: int = typer.Option(8, "-k", "--k", min=1, max=50, help="how many queries"),
    method: Method = typer.Option("anchor-cascade", help="a baseline, or model (needs a "
                                  "checkpoint in RUN/model)"),
    beam: Optional[int] = typer.Option(None, min=1, help="beam size for --method model "
                                       "(default: the config's k, widened to -k)"),
    model: Optional[Path] = typer.Option(None, help="--method model: a QuerySuggester "
                                         "checkpoint dir other than RUN/model, e.g. "
                                         "RUN/models/onebar/seed0 (the bench's trained rows)"),
) -> None:
    """Queries to show under the watched item (or reject), as JSON."""
    from onefeed.artifacts import ArtifactError
    from onefeed.onebar.serving import SuggestError, TriggerSuggester
    from onefeed.onebar.pipeline import load as load_run

    if not (run / "manifest.json").is_file():
        raise typer.BadParameter(f"--run {run}: not a OneBar artifact (no manifest.json); run "
                                 "onefeed onebar build")
    if model is not None and method != "model":
        raise typer.BadParameter(f"--model {model}: only with --method model")
    try:
        if model is None:
            suggester = TriggerSuggester.from_dir(run, method, beam)
        else:
            suggester = TriggerSuggester(load_run(run), "model", _checkpoint(model), beam)
        result = suggester.suggest(item, user, k)
    except (SuggestError, ArtifactError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(json.dumps({"item": item, "user": user, "queries": result.queries,
                           "reject": result.reject, "method": result.method}, indent=2))


def _checkpoint(directory: Path):
    """The QuerySuggester saved in ``directory`` (``QuerySuggester.save``), or a clear error."""
    from onefeed.onebar.model import QuerySuggester

    if not (directory / "config.json").is_file():
        raise typer.BadParameter(f"--model {directory}: no QuerySuggester checkpoint here (no "
                                 "config.json; written by QuerySuggester.save)")
    try:
        return QuerySuggester.load(directory)
    except (ValueError, OSError, RuntimeError) as exc:
        raise typer.BadParameter(f"--model {directory}: {exc}") from None
