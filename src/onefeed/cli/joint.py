"""``onefeed joint``: train the joint model, then recommend, search and suggest queries with it.

    onefeed joint train --data runs/beauty/data --sid runs/beauty/sid/content-rq_kmeans \\
        --config configs/model/beauty-joint.toml --out runs/beauty/model/joint
    onefeed joint recommend --run runs/beauty/model/joint --user A1YJEY40YUW4SE -k 10
    onefeed joint search    --run runs/beauty/model/joint --user A1YJEY40YUW4SE \\
        --query "matte red lipstick" -k 10
    onefeed joint suggest   --run runs/beauty/model/joint --user A1YJEY40YUW4SE -k 5

Users are given by their original id (``users.user_id``); the history is everything the user
did before ``--split``'s target (``test``: the whole log up to the last event). Output is a
table, or JSON with ``--json`` (the shape of ``onefeed recommend``: ``cli/output.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

import typer

Split = Literal["valid", "test"]  # whose target the history stops before

from onefeed.cli.output import JSON_HELP, QUIET_HELP, item_rows, print_result, query_rows
from onefeed.cli.output import quiet as quiet_output

app = typer.Typer(help="The joint search + recommendation + query model.", no_args_is_help=True,
                  rich_markup_mode=None)

RUN_HELP = "run dir written by onefeed joint train (or the onefeed row of onefeed run)"
USER_HELP = "user id as in the source data (users.user_id)"
SPLIT_HELP = ("the history ends before this split's target: test = the whole log, valid = "
              "without the last event")
BEAM_HELP = "beam size (widened to at least k)"
EXCLUDE_SEEN_HELP = ("leave out items already in the user's history window (the beam is widened "
                     "by the window length)")


@app.command("train")
def train_cmd(
    data: Path = typer.Option(..., help="prepared dataset dir (onefeed data prepare)"),
    sid: Path = typer.Option(..., help="SID dir (onefeed sid build; a joint build gives "
                             "GenSAR's shared-prefix identifiers)"),
    config: Optional[Path] = typer.Option(None, help="configs/model/<x>-joint.toml"),
    out: Optional[Path] = typer.Option(None, help="run dir (default runs/<data>/model/joint-"
                                       "<sid>)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. tasks.nsqp=0"),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="continue from OUT/last if it exists (--no-resume: start "
                                     "over)"),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
) -> None:
    """Train on NRIP + NSIP + NSQP + DESC2ID + ID2DESC (weights in the config's [tasks])."""
    from onefeed.train import joint as tj
    from onefeed.cli.model import check_inputs

    check_inputs(data, sid)
    tj.load_run_config(config, list(set_))  # a bad config fails before any loading
    out = out or data.parent / "model" / f"joint-{sid.name}"
    with quiet_output(quiet):
        state = tj.run(data, sid, config, out, list(set_), resume=resume)
    typer.echo(json.dumps({"run": str(out), "best_epoch": state["best_epoch"],
                           "best_valid": state.get("best_valid"),
                           "train_minutes": round(state["train_seconds"] / 60, 1)}, indent=2))


def _load(run: Path) -> Any:
    """The run as a :class:`onefeed.predict.Predictor` (the one the bench and the service use)."""
    from onefeed.artifacts import ArtifactError
    from onefeed.cli.model import manifest_json
    from onefeed.predict import PredictError, Predictor

    manifest_path = run / "manifest.json"
    if not manifest_path.exists():
        raise typer.BadParameter(f"{run}: not a joint run (no manifest.json)")
    manifest = manifest_json(manifest_path)
    if manifest.get("kind") != "joint-generative":
        raise typer.BadParameter(f"{run}: manifest kind {manifest.get('kind')!r}, expected "
                                 "'joint-generative' (train with onefeed joint train)")
    try:
        return Predictor.from_run(run)
    except (PredictError, ArtifactError) as exc:  # e.g. the data was re-prepared since
        raise typer.BadParameter(str(exc)) from None


def _hit_rows(pred: Any, hits: Any) -> list[dict[str, Any]]:
    return item_rows([pred.index[h.item] for h in hits], pred.item_ids, pred.titles,
                     [h.score for h in hits])


def _ask(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a Predictor call; its input errors (unknown user, empty query) become usage errors."""
    from onefeed.predict import PredictError

    try:
        return call(*args, **kwargs)
    except PredictError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("recommend")
def recommend_cmd(run: Path = typer.Option(..., help=RUN_HELP),
                  user: str = typer.Option(..., help=USER_HELP),
                  k: int = typer.Option(10, "-k", "--k", min=1, max=200, help="how many items"),
                  split: Split = typer.Option("test", help=SPLIT_HELP),
                  beam: int = typer.Option(20, min=1, help=BEAM_HELP),
                  exclude_seen: bool = typer.Option(False, "--exclude-seen/--keep-seen",
                                                    help=EXCLUDE_SEEN_HELP),
                  as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Next items for a user's feed (NRIP)."""
    pred = _load(run)
    hits = _ask(pred.recommend, [user], k, beam, exclude_seen=exclude_seen, split=split)[0]
    print_result({"user": user, "items": _hit_rows(pred, hits)}, as_json)


@app.command("search")
def search_cmd(run: Path = typer.Option(..., help=RUN_HELP),
               user: str = typer.Option(..., help=USER_HELP),
               query: str = typer.Option(..., help="free text (up to 12 word pieces are read)"),
               k: int = typer.Option(10, "-k", "--k", min=1, max=200, help="how many items"),
               split: Split = typer.Option("test", help=SPLIT_HELP),
               beam: int = typer.Option(20, min=1, help=BEAM_HELP),
               bm25_lam: float | None = typer.Option(
                   None, min=0.0, help="fuse with BM25: its top --bm25-depth items re-scored by "
                   "bm25/max + lam * the model's log p (the bench's onefeed-hybrid row; its lam "
                   "tuned on valid is `fusion.w_search` in results.json: 0.02-0.03 on Beauty, "
                   "0.1 on ML-100K)"),
               bm25_depth: int = typer.Option(100, min=1, max=1000,
                                              help="with --bm25-lam: how many BM25 candidates "
                                                   "are re-scored"),
               as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Items for a query, personalised by the user's history (NSIP; optionally fused with BM25)."""
    if not query.strip():
        raise typer.BadParameter("query is empty")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:  # argv bytes that were not UTF-8 arrive as lone surrogates
        raise typer.BadParameter("query is not valid UTF-8 text") from None
    if len(query) > 1000:
        raise typer.BadParameter(f"query is {len(query)} characters; at most 1000")
    pred = _load(run)
    hits = _ask(pred.search, [query], [user], k, beam, fuse_bm25=bm25_lam,
                bm25_depth=bm25_depth, split=split)[0]
    print_result({"user": user, "query": query, "items": _hit_rows(pred, hits)}, as_json)


@app.command("suggest")
def suggest_cmd(run: Path = typer.Option(..., help=RUN_HELP),
                user: str = typer.Option(..., help=USER_HELP),
                k: int = typer.Option(5, "-k", "--k", min=1, max=50, help="how many queries"),
                split: Split = typer.Option("test", help=SPLIT_HELP),
                beam: int = typer.Option(10, min=1, help=BEAM_HELP),
                as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Queries the user is likely to search next (NSQP)."""
    pred = _load(run)
    out = _ask(pred.suggest, [user], k, beam, split=split)[0]
    print_result({"user": user, "queries": query_rows(out)}, as_json)
