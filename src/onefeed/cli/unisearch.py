"""``onefeed unisearch train`` and ``onefeed search``: UniSearch end-to-end generative search
(issue 16, docs/UNISEARCH.md).

    onefeed unisearch train --data runs/beauty/data --out runs/beauty/model/unisearch \\
        [--config configs/unisearch/default.toml] [--set task.hard_negatives=2] [--no-resume]
    onefeed search --run runs/beauty/model/unisearch --query "matte red lipstick" -k 10

``search`` serves any run ``onefeed.predict.Predictor`` loads (a UniSearch run reads the query
only; a joint run also needs ``--user``) and prints the result shape of ``cli/output.py``
(``{"user", "query", "items": [{"rank", "item_id", "title", "score"}]}``) as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from onefeed.cli.output import QUIET_HELP, item_rows, print_result
from onefeed.cli.output import quiet as quiet_output
from onefeed.paths import REPO

app = typer.Typer(help="UniSearch: end-to-end generative search (learned item codes).",
                  no_args_is_help=True, rich_markup_mode=None)
DEFAULT_CONFIG = REPO / "configs" / "unisearch" / "default.toml"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="unisearch")
    root.command("search")(search_cmd)


@app.command("train")
def train_cmd(
    data: Path = typer.Option(..., help="prepared dataset dir (onefeed data prepare)"),
    out: Optional[Path] = typer.Option(None, help="run dir (default <data>/../model/unisearch)"),
    config: Optional[Path] = typer.Option(None, help="UniSearchRunConfig TOML (default "
                                          "configs/unisearch/default.toml when it exists)"),
    set_: list[str] = typer.Option([], "--set", help="override key=value, e.g. "
                                   "task.hard_negatives=2 (repeatable)"),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="continue from OUT/last if it exists (--no-resume: start "
                                     "over)"),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
) -> None:
    """Unified pre-training (RCL + codebook + NLL), then freeze the codes into OUT/codes."""
    from onefeed import config as config_lib
    from onefeed.data.schemas import Dataset, dataset_fingerprint
    from onefeed.train.unisearch import UniSearchRunConfig, run_state, train_unisearch

    if not (data / "manifest.json").is_file():
        raise typer.BadParameter(f"--data {data}: not a prepared dataset (no manifest.json); "
                                 "run onefeed data prepare")
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    cfg = config_lib.load(UniSearchRunConfig, config, list(set_))  # fails before any loading
    out = out or data.parent / "model" / "unisearch"
    provenance = {"data": str(data.resolve()), "data_sha256": dataset_fingerprint(data),
                  "config_path": str(config) if config else None}
    with quiet_output(quiet):
        _, index = train_unisearch(Dataset.load(data), cfg, out, resume, provenance)
    state = run_state(out)
    typer.echo(json.dumps({"run": str(out), "epochs": state.get("epoch"),
                           "best_epoch": state.get("best_epoch"),
                           "best_valid": state.get("best_score"),
                           "train_minutes": round(state.get("train_seconds", 0.0) / 60, 1),
                           "collision_rate": index.table.meta.get("collision_rate")}, indent=2))


def _ask(call: Any, *args: Any, **kwargs: Any) -> Any:
    from onefeed.predict import PredictError

    try:
        return call(*args, **kwargs)
    except PredictError as exc:
        raise typer.BadParameter(str(exc)) from None


def search_cmd(
    run: Path = typer.Option(..., help="run dir: onefeed unisearch train (or a joint run)"),
    query: str = typer.Option(..., help="free text"),
    user: Optional[str] = typer.Option(None, help="user id (users.user_id); a UniSearch run "
                                       "checks it but reads the query only"),
    k: int = typer.Option(10, "-k", "--k", min=1, max=200, help="how many items"),
    beam: int = typer.Option(20, min=1, help="beam size (widened to at least k)"),
    bm25_lam: Optional[float] = typer.Option(
        None, min=0.0, help="fuse with BM25: its top --bm25-depth items re-scored by bm25/max "
        "+ lam * the model's log p (the bench's unisearch-bm25-fused row; its lam tuned on "
        "valid is in bench/results/beauty-unisearch/results.json)"),
    bm25_depth: int = typer.Option(100, min=1, max=1000, help="with --bm25-lam: how many BM25 "
                                   "candidates are re-scored"),
) -> None:
    """Items for a query, as JSON (generative search over the run's codes)."""
    from onefeed.artifacts import ArtifactError
    from onefeed.predict import PredictError, Predictor

    if not query.strip():
        raise typer.BadParameter("query is empty")
    if len(query) > 1000:
        raise typer.BadParameter(f"query is {len(query)} characters; at most 1000")
    try:
        pred = Predictor.from_run(run)
    except (PredictError, ArtifactError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if pred.kind != "unisearch" and user is None:
        raise typer.BadParameter(f"--run {run} is a {pred.kind} run: its search reads the "
                                 "user's history; pass --user")
    hits = _ask(pred.search, [query], [user], k, beam, fuse_bm25=bm25_lam,
                bm25_depth=bm25_depth, split="all")[0]
    rows = item_rows([pred.index[h.item] for h in hits], pred.item_ids, pred.titles,
                     [h.score for h in hits])
    print_result({"user": user, "query": query, "items": rows}, as_json=True)
