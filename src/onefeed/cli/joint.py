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
    from onefeed import training_joint
    from onefeed.cli.model import check_inputs

    check_inputs(data, sid)
    training_joint.load_run_config(config, list(set_))  # a bad config fails before any loading
    out = out or data.parent / "model" / f"joint-{sid.name}"
    with quiet_output(quiet):
        state = training_joint.run(data, sid, config, out, list(set_), resume=resume)
    typer.echo(json.dumps({"run": str(out), "best_epoch": state["best_epoch"],
                           "best_valid": state.get("best_valid"),
                           "train_minutes": round(state["train_seconds"] / 60, 1)}, indent=2))


def _load(run: Path) -> tuple[Any, Any]:
    from onefeed import training_joint
    from onefeed.artifacts import ArtifactError
    from onefeed.checkpoint import check_trained_on
    from onefeed.cli.model import input_dir, manifest_json
    from onefeed.data.schemas import DataError, Dataset
    from onefeed.sid.table import check_dataset

    manifest_path = run / "manifest.json"
    if not manifest_path.exists():
        raise typer.BadParameter(f"{run}: not a joint run (no manifest.json)")
    manifest = manifest_json(manifest_path)
    if manifest.get("kind") != "joint-generative":
        raise typer.BadParameter(f"{run}: manifest kind {manifest.get('kind')!r}, expected "
                                 "'joint-generative' (train with onefeed joint train)")
    if not manifest.get("data"):
        raise typer.BadParameter(f"{run}: its manifest names no data dir (trained from in-memory "
                                 "data by a bench adapter without params.data)")
    try:
        data_dir, sid_dir = input_dir(run, manifest["data"]), input_dir(run, manifest["sid"])
        ds = Dataset.load(data_dir)
    except (FileNotFoundError, DataError, ArtifactError) as exc:
        raise typer.BadParameter(f"{run}: its dataset {manifest['data']} is unreadable: {exc}")
    model, run_cfg, _ = training_joint.load_joint(run / "best")
    try:
        check_trained_on(run, manifest, data_dir, sid_dir)
        check_dataset(sid_dir, data_dir)
        return ds, training_joint.predictor(model, run_cfg, ds, sid_dir)
    except ArtifactError as exc:  # SIDs changed or built from another dataset
        raise typer.BadParameter(f"{run}: {exc}") from None


def _user_index(ds: Any, user: str) -> int:
    import polars as pl

    hit = ds.users.filter(pl.col("user_id") == user)
    if hit.is_empty():
        raise typer.BadParameter(f"unknown user {user!r} (not in {ds.name}'s users)")
    return int(hit["user"][0])


def _items(ds: Any, ids: Any) -> list[dict[str, Any]]:
    items = ds.items.sort("item")
    return item_rows(ids, items["item_id"].to_list(), items["title"].to_list())


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
    import numpy as np

    ds, pred = _load(run)
    u = _user_index(ds, user)
    out = pred.recommend(np.array([u]), split, k, max(beam, k), exclude_seen=exclude_seen)[0]
    print_result({"user": user, "items": _items(ds, out)}, as_json)


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
    import numpy as np

    from onefeed.tasks.joint import encode_texts

    if not query.strip():
        raise typer.BadParameter("query is empty")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:  # argv bytes that were not UTF-8 arrive as lone surrogates
        raise typer.BadParameter("query is not valid UTF-8 text") from None
    if len(query) > 1000:
        raise typer.BadParameter(f"query is {len(query)} characters; at most 1000")
    ds, pred = _load(run)
    u = _user_index(ds, user)
    if query not in pred.jd.query_text:  # a new query: add it to the query table
        import dataclasses

        words = encode_texts([query], pred.vocab, pred.jd.query_words.shape[1])
        pred.jd = dataclasses.replace(pred.jd, query_words=np.concatenate(
            [pred.jd.query_words, words]), query_text=pred.jd.query_text + [query])
    if bm25_lam is None:
        out = pred.search(np.array([u]), [query], split, k, max(beam, k))[0]
    else:
        from onefeed.search.bm25 import BM25Config, BM25Retriever
        from onefeed.search.fusion import score_fusion

        bm25 = BM25Retriever()
        bm25.fit(ds, BM25Config())
        items, scores = bm25.retrieve_scores([query], max(bm25_depth, k))
        model = pred.score_search(np.array([u]), [query], split, items)
        out = score_fusion(items, scores, model, bm25_lam, k)[0]
    print_result({"user": user, "query": query, "items": _items(ds, out)}, as_json)


@app.command("suggest")
def suggest_cmd(run: Path = typer.Option(..., help=RUN_HELP),
                user: str = typer.Option(..., help=USER_HELP),
                k: int = typer.Option(5, "-k", "--k", min=1, max=50, help="how many queries"),
                split: Split = typer.Option("test", help=SPLIT_HELP),
                beam: int = typer.Option(10, min=1, help=BEAM_HELP),
                as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Queries the user is likely to search next (NSQP)."""
    import numpy as np

    ds, pred = _load(run)
    u = _user_index(ds, user)
    out = pred.generate_queries(np.array([u]), split, k, max(beam, k))[0]
    print_result({"user": user, "queries": query_rows(out)}, as_json)
