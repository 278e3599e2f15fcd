"""``onefeed train`` / ``onefeed evaluate`` / ``onefeed recommend``: parse, call, format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from onefeed.cli.output import JSON_HELP, QUIET_HELP, item_rows, print_result
from onefeed.cli.output import quiet as quiet_output


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("recommend")(recommend_cmd)


def train_cmd(
    data: Path = typer.Option(..., help="prepared dataset dir (onefeed data prepare)"),
    sid: Path = typer.Option(..., help="SID table dir (onefeed sid build)"),
    config: Optional[Path] = typer.Option(None, help="configs/model/<x>.toml"),
    out: Optional[Path] = typer.Option(None, help="run dir (default runs/<data>/model/<config>)"),
    set_: list[str] = typer.Option([], "--set", help="override, e.g. train.lr=5e-4"),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="continue from OUT/last if it exists (--no-resume: start "
                                     "over)"),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
) -> None:
    """Train the generative recommender (also runs under torchrun: python -m onefeed.train.rec)."""
    from onefeed.train import rec

    check_inputs(data, sid)
    rec.load_run_config(config, list(set_))  # a bad config fails before anything loads
    if out is None:
        stem = config.stem if config else "default"
        out = data.parent / "model" / f"{sid.name}-{stem}"
    with quiet_output(quiet):
        state = rec.run(data, sid, config, out, list(set_), resume=resume)
    typer.echo(f"run: {out}\nbest valid ndcg@10 {state['best_ndcg10']:.4f} at epoch "
               f"{state['best_epoch']} ({state['train_seconds'] / 60:.1f} min)")


JOINT_KIND = "joint-generative"


def check_inputs(data: Path, sid: Path) -> None:
    """Fail fast, in one line, when ``data`` / ``sid`` are not what train reads."""
    if not (data / "manifest.json").is_file():
        raise typer.BadParameter(f"--data {data}: not a prepared dataset (no manifest.json); "
                                 "run onefeed data prepare")
    if not (sid / "sid_table.json").is_file():
        raise typer.BadParameter(f"--sid {sid}: not a SID table dir (no sid_table.json); "
                                 "run onefeed sid build")


def read_manifest(run: Path) -> dict:
    """A trained run's manifest.json; clear errors for a missing run or manifest."""
    if not (run / "best").is_dir():
        raise typer.BadParameter(f"{run}: no trained run here (no best/ checkpoint dir)")
    path = run / "manifest.json"
    if not path.exists():
        raise typer.BadParameter(f"{run}: no manifest.json (not written by onefeed train)")
    return manifest_json(path)


def manifest_json(path: Path) -> dict:
    """A manifest.json as a dict; unreadable or non-object JSON -> one-line BadParameter."""
    from onefeed.artifacts import read_json_object

    return read_json_object(path, f"{path.parent}: not a readable manifest", typer.BadParameter)


def input_dir(run: Path, value: str | Path) -> Path:
    """A manifest path: absolute, relative to the cwd, or relative to the run dir."""
    path = Path(value)
    if not path.is_absolute() and not path.exists() and (run / path).exists():
        return run / path
    return path


def run_inputs(run: Path, data: Path | None = None, sid: Path | None = None
               ) -> tuple[dict, Path, Path]:
    """A run's manifest and the dataset / SID dirs it was trained on (``data`` / ``sid``
    override the manifest: runs trained by a bench adapter from in-memory data may name no
    data dir). Clear errors for a missing run, manifest or input."""
    manifest = read_manifest(run)
    found = {"data": data or manifest.get("data"), "sid": sid or manifest.get("sid")}
    for name, value in found.items():
        if not value:
            raise typer.BadParameter(f"{run}: its manifest names no {name} dir (trained from "
                                     f"in-memory data, e.g. by a bench adapter); pass --{name}")
        found[name] = input_dir(run, value)
        if not found[name].is_dir():
            raise typer.BadParameter(f"{run}: {name} dir {value} does not exist")
    check_run_inputs(run, manifest, found["data"], found["sid"])
    return manifest, found["data"], found["sid"]


def check_run_inputs(run: Path, manifest: dict, data_dir: Path, sid_dir: Path) -> None:
    """``checkpoint.check_trained_on`` as a clean CLI error: the data and SIDs are the run's own."""
    from onefeed.artifacts import ArtifactError
    from onefeed.checkpoint import check_trained_on

    try:
        check_trained_on(run, manifest, data_dir, sid_dir)
    except ArtifactError as exc:
        raise typer.BadParameter(str(exc)) from None


def _not_joint(run: Path, command: str) -> None:
    if read_manifest(run).get("kind") == JOINT_KIND:
        raise typer.BadParameter(
            f"{run}: this is a joint run (onefeed joint train) and {command} reads "
            "recommendation-only runs: use onefeed joint recommend / search / suggest, or score "
            "it in a bench suite row (onefeed.baselines.joint:JointAdapter)")


def evaluate_cmd(
    run: Path = typer.Option(..., help="run dir written by onefeed train"),
    data: Optional[Path] = typer.Option(None, help="dataset dir (default: the run's manifest)"),
    sid: Optional[Path] = typer.Option(None, help="SID table dir (default: the run's manifest)"),
    split: str = typer.Option("test", help="valid | test"),
    beam: int = typer.Option(20, min=1, help="beam size (>= 20, the largest K)"),
    exclude_seen: bool = typer.Option(False, "--exclude-seen/--keep-seen",
                                      help="drop the user's history items from the ranking"),
    filter_seen: bool = typer.Option(False, "--filter-seen", hidden=True,
                                     help="deprecated alias of --exclude-seen"),
    record: Optional[str] = typer.Option(None, help="also evaluate valid and write "
                                         "bench/results/<record>.{json,md}"),
    quiet: bool = typer.Option(False, help=QUIET_HELP),
) -> None:
    """Full-ranking evaluation of the best checkpoint; per-user results saved for pairing."""
    if split not in ("valid", "test"):
        raise typer.BadParameter(f"split {split!r}: expected valid or test")
    _not_joint(run, "onefeed evaluate")
    results = {}
    for one in (["valid", "test"] if record else [split]):
        with quiet_output(quiet):
            res = _evaluate_split(run, one, beam, exclude_seen or filter_seen, data, sid)
        typer.echo(res.report())
        typer.echo(f"per-user results: {run / 'eval' / f'per_user_{one}.parquet'}\n")
        results[one] = res
    if record:
        path = _record(run, record, results, data, sid)
        typer.echo(f"recorded: {path}.json / .md")


def _check_pair(sid_dir: Path, data_dir: Path) -> None:
    """``sid.table.check_dataset`` as a clean CLI error (issue 19: a re-prepared dataset)."""
    from onefeed.artifacts import ArtifactError
    from onefeed.sid.table import check_dataset

    try:
        check_dataset(sid_dir, data_dir)
    except ArtifactError as exc:
        raise typer.BadParameter(str(exc)) from None


def _evaluate_split(run: Path, split: str, beam: int, filter_seen: bool,
                    data: Path | None = None, sid: Path | None = None):  # -> EvalResult
    import torch
    from rich.progress import Progress

    from onefeed.data.schemas import Dataset
    from onefeed.data.views import rec_cases
    from onefeed.decoding.trie import Trie
    from onefeed.evaluation.generative import RunProtocol, evaluate_cases
    from onefeed.sid.table import SidTable
    from onefeed.tasks.rec import sid_tensor
    from onefeed.train.rec import load_model

    _, data_dir, sid_dir = run_inputs(run, data, sid)
    ds, sid_table = Dataset.load(data_dir), SidTable.load(sid_dir)
    _check_pair(sid_dir, data_dir)
    model, run_cfg, vocab = load_model(run / "best")
    torch.set_num_threads(run_cfg.train.threads)
    protocol = RunProtocol(split, run_cfg.model.max_len, filter_seen=filter_seen, beam=beam)
    cases = rec_cases(ds, split, protocol.max_history)
    trie = Trie.from_table(sid_table.codes, sid_table.codebook_sizes)
    with Progress() as bar:
        task = bar.add_task(f"decode {split}", total=len(cases.users))
        res = evaluate_cases(model, cases.users, cases.history, cases.targets,
                             sid_tensor(sid_table), vocab, trie, protocol,
                             progress=lambda n: bar.advance(task, n))
    res.save(run / "eval")
    return res


def _record(run: Path, name: str, results: dict, data: Path | None = None,
            sid: Path | None = None) -> Path:
    """bench/results/<name>.{json,md}: seed, config, commit, metrics, train wall time."""
    from dataclasses import asdict

    from onefeed.artifacts import git_commit, machine_info, write_json
    from onefeed.paths import results_root

    manifest, data_dir, sid_dir = run_inputs(run, data, sid)
    state = json.loads((run / "last" / "state.json").read_text())
    train_cfg = manifest["config"]["train"]
    cmd_train = (f"onefeed train --data {data_dir} --sid {sid_dir}"
                 + (f" --config {manifest['config_file']}" if manifest.get("config_file") else "")
                 + "".join(f" --set {o}" for o in manifest.get("overrides", []))
                 + f" --out {run}")
    out = {
        "name": name, "run": str(run), "seed": train_cfg["seed"], "config": manifest["config"],
        "data": str(data_dir), "sid": str(sid_dir), "sid_sha256": manifest.get("sid_sha256"),
        "commit": git_commit(), "train_commit": manifest.get("commit"), "machine": machine_info(),
        "train_wall_seconds": state["train_seconds"], "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"], "selection": "best validation NDCG@10",
        "protocol": {s: asdict(r.protocol) for s, r in results.items()},
        "metrics": {s: r.metrics for s, r in results.items()},
        "n_cases": {s: r.per_user.height for s, r in results.items()},
        "commands": [cmd_train, f"onefeed evaluate --run {run} --record {name}"
                     + (f" --data {data} --sid {sid}" if data or sid else "")],
        "validation_history": state["history"],
    }
    path = results_root() / name
    write_json(path.with_suffix(".json"), out)
    keys = [f"{m}@{k}" for k in (5, 10, 20) for m in ("recall", "ndcg", "mrr")]
    lines = [f"# {name}: generative recommender", "",
             *(f"- {r.protocol.header()}" for r in results.values()),
             f"- seed {out['seed']}, best epoch {state['best_epoch']} of {state['epoch']} run, "
             f"train wall {state['train_seconds'] / 60:.1f} min, commit `{out['commit']}`",
             f"- CPU {out['machine'].get('cpu_model', '?')} ({out['machine'].get('cpu_count')} "
             "cores, shared with other jobs)", "",
             "| split | cases | " + " | ".join(keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for split, r in results.items():
        lines.append(f"| {split} | {r.per_user.height} | "
                     + " | ".join(f"{r.metrics[k]:.4f}" for k in keys) + " |")
    lines += ["", "Commands:", "", "```", *out["commands"], "```", "",
              f"Config: `{json.dumps(manifest['config'])}`", ""]
    path.with_suffix(".md").write_text("\n".join(lines))
    return path


def recommend_cmd(
    run: Path = typer.Option(..., help="run dir written by onefeed train, onefeed run (e.g. "
                             "runs/synthetic/model/tiger/seed0) or onefeed joint train"),
    user: str = typer.Option(..., help="user id as in the source data (or integer user index)"),
    k: int = typer.Option(10, "-k", "--k", min=1, help="how many items"),
    beam: int = typer.Option(20, min=1, help="beam size (widened to at least k)"),
    exclude_seen: bool = typer.Option(False, "--exclude-seen/--keep-seen",
                                      help="leave out items already in the user's history "
                                           "(the beam is widened by the history length)"),
    data: Optional[Path] = typer.Option(None, help="dataset dir (default: the run's manifest)"),
    sid: Optional[Path] = typer.Option(None, help="SID table dir (default: the run's manifest)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Recommend the next items for one user (history = all their events): a table of titles.

    A joint run (onefeed joint train) is served by its NRIP head, as onefeed joint recommend."""
    if read_manifest(run).get("kind") == JOINT_KIND:
        from onefeed.cli.joint import recommend_cmd as joint_recommend

        joint_recommend(run=run, user=user, k=k, split="test", beam=beam,
                        exclude_seen=exclude_seen, as_json=as_json)
        return
    result, caption = recommend_items(run, user, k, beam, exclude_seen, data, sid)
    print_result(result, as_json, caption)


def recommend_items(run: Path, user: str, k: int, beam: int, exclude_seen: bool,
                    data: Path | None = None, sid: Path | None = None) -> tuple[dict, str]:
    """The recommend result dict (cli.output shape) and a one-line history caption, from the
    :class:`onefeed.predict.Predictor` the bench and the service use."""
    from onefeed.artifacts import ArtifactError
    from onefeed.predict import PredictError, Predictor

    run_inputs(run, data, sid)  # clean errors for a missing run, manifest or input
    try:
        pred = Predictor.from_run(run, data=data, sid=sid)
    except (PredictError, ArtifactError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if user not in pred.user_index and user.isdigit() and int(user) < pred.ds.n_users:
        user = next(u for u, i in pred.user_index.items() if i == int(user))  # a user index
    if user not in pred.user_index:
        raise typer.BadParameter(f"user {user!r} not found in {pred.ds.name}'s users.parquet")
    hits = pred.recommend([user], k, beam, exclude_seen=exclude_seen)[0]
    rows = item_rows([pred.index[h.item] for h in hits], pred.item_ids, pred.titles,
                     [h.score for h in hits])
    u = pred.user_index[user]
    items = pred._rec_items[pred._rec_start[u]:pred._rec_start[u + 1]]
    last = pred.titles[int(items[-1])] if len(items) else "-"
    return ({"user": user, "items": rows},
            f"{len(items)} item events in the history; last: {last}")
