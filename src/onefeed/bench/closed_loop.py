"""The closed loop of OneFeed §3.10 on the built-in synthetic world (``onefeed bench closed-loop``).

Per seed:

1. **World.** ``SyntheticWorld`` with ``n_phases`` phases of interest drift; the logged data
   (prepared with ``onefeed.data.prepare``) is simulated from the first ``n_phases - 1``
   phases only, so the users' *live* interests (the last phase) are partly unseen by the
   initial model. Identifiers are the ground-truth category path ``(topic, leaf, index)``
   (no embedding or quantiser is trained: the loop, not the SID build, is under test).
2. **Initial model**: the joint model (``train.joint.train_joint``) on that log.
3. **Rounds** ``r = 0 .. rounds``, for two arms started from the same initial checkpoint:

   * serve every user a top-``k`` list: RRF (``search.fusion.rrf``) of the model's
     recommendations (NRIP, items already in the user's log excluded) and BM25's results for
     each of the model's ``n_queries`` suggested queries (NSQP), weight ``query_weight``;
   * the ``SimulatedUser`` (position-based clicks from the live ground truth) responds;
     metrics of the round are computed on those lists (below);
   * ``feedback`` arm: impressions, clicks, dwells and skips go to a durable feedback log
     (``onefeed.feedback``); the round's rows are read back and split by the export's rules
     (``feedback.export.split_log``); clicks become ``rec_click`` train events appended to
     each user's history, skipped items explicit negatives of the consistency loss (CONSIST,
     OneFeed Eq. 10, joined to its BM25 candidates); then the model is fine-tuned
     ``finetune_steps`` steps from its last checkpoint (``train.joint.fine_tune``);
   * ``control`` arm: nothing is logged; the model is fine-tuned the same number of steps
     on the original log only (same seeds, same schedule);
   * diagnostics: ``clicks-only`` (the feedback arm without the skip negatives) and
     ``frozen`` (the initial model, never fine-tuned: what the no-repeat feed alone does).

   Every arm's feed never repeats: a user's logged items and everything served to them in
   earlier rounds are left out of their list.

   Round ``r``'s lists come from the model fine-tuned ``r`` times; both arms meet the same
   random numbers in the user simulation (common random numbers, ``rng([seed, r])``).

Metrics per round (all users, the live ground truth, never logged before the loop):
``hit_rate`` (share of lists with >= 1 click), ``ctr`` (clicks / shown items),
``precision`` (share of shown items in one of the user's live interests), ``new_interest``
(share of shown items in a live interest the user did not have in the logged phases),
``coverage`` (catalogue coverage of all lists), ``long_tail`` (share of shown items outside
the top 20% by logged popularity) and ``search_share`` (share of the list brought in by the
suggested queries, ``evaluation.coverage.search_supplement``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from onefeed import config as config_lib
from onefeed.bench.simulated_user import Response, SimulatedUser, UserConfig
from onefeed.data.schemas import EVENT_SCHEMA, Dataset, RawData
from onefeed.data.synthetic import SyntheticConfig, SyntheticWorld, make_world, simulate
from onefeed.evaluation.coverage import catalogue_coverage, search_supplement, tail_mask
from onefeed.feedback.events import FeedbackEvent
from onefeed.feedback.export import log_frame, split_log
from onefeed.feedback.log import open_log
from onefeed.search.bm25 import BM25Config, BM25Retriever
from onefeed.search.fusion import rrf
from onefeed.tasks.cross_task import Pool, pool_from_lists

# clicks-only: no skip negatives; frozen: the initial model, never fine-tuned (diagnostics)
ARMS = ("feedback", "clicks-only", "control", "frozen")
METRICS = ("hit_rate", "ctr", "precision", "new_interest", "coverage", "long_tail",
           "search_share")
DAY = 86_400


# the joint model of the loop: tiny (seconds per fit on one core), CONSIST on
MODEL = ["model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.n_layers=2",
         "model.dropout=0.0", "model.max_len=20", "train.epochs=8", "train.eval_every=8",
         "train.batch_size=32", "train.warmup_steps=20", "train.lr=3e-3", "train.eval_beam=10",
         "tasks.desc_batch=32", "tasks.id2desc_batch=8", "tasks.valid_search_users=50",
         "tasks.consistency=0.1"]


def _world_default() -> SyntheticConfig:
    return SyntheticConfig(n_users=200, n_items=240, events_per_user=20.0, n_phases=3,
                           drift=0.5)


@dataclass
class ServeConfig:
    RANGES: ClassVar[dict[str, str]] = {"k": ">= 1", "beam": ">= 1", "n_queries": ">= 0",
                                        "query_beam": ">= 1", "query_weight": ">= 0",
                                        "query_depth": ">= 1"}
    k: int = 10  # items per served list
    beam: int = 20  # NRIP beam
    n_queries: int = 2  # suggested queries per user whose BM25 results join the list
    query_beam: int = 4
    query_weight: float = 0.9  # RRF weight of each query's BM25 list (NRIP's is 1)
    query_depth: int = 10  # BM25 results per query


@dataclass
class ClosedLoopConfig:
    RANGES: ClassVar[dict[str, str]] = {"rounds": ">= 1", "finetune_steps": ">= 1",
                                        "finetune_lr": "> 0"}
    rounds: int = 4  # fine-tunes; lists are served and measured at rounds 0..rounds
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    world: SyntheticConfig = field(default_factory=_world_default)
    user: UserConfig = field(default_factory=UserConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    model: list[str] = field(default_factory=lambda: list(MODEL))  # JointRunConfig overrides
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    finetune_steps: int = 40
    finetune_lr: float = 1e-3

    def check(self) -> None:
        if self.world.n_phases < 2:
            raise ValueError("world.n_phases must be >= 2 (the last phase is the live one)")
        if not self.seeds:
            raise ValueError("seeds is empty")
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown or "control" not in self.arms or "feedback" not in self.arms:
            raise ValueError(f"arms {self.arms}: must hold feedback and control, from {ARMS}")


# --quick: a smoke run in well under a minute (CI, tests)
QUICK = ["rounds=2", "seeds=[0]", "world.n_users=40", "world.n_items=72",
         "world.events_per_user=12.0", "finetune_steps=4", "serve.beam=10",
         "serve.query_beam=2"]
QUICK_MODEL = ["train.epochs=2", "train.eval_every=2", "tasks.valid_search_users=10",
               "train.eval_beam=5"]


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                quick: bool = False) -> ClosedLoopConfig:
    cfg = config_lib.load(ClosedLoopConfig, path, (QUICK if quick else []) + list(overrides or []))
    if quick:
        cfg.model = list(cfg.model) + QUICK_MODEL
    return cfg


# ---- the world ----------------------------------------------------------------------------------
@dataclass
class LoopWorld:
    world: SyntheticWorld
    ds: Dataset  # the prepared log of the first n_phases - 1 phases
    world_item: np.ndarray  # (ds.n_items,) world item index of each dataset item
    world_user: np.ndarray  # (ds.n_users,) world user index of each dataset user
    sid_dir: Path
    tail: np.ndarray  # (ds.n_items,) bool, tail by logged popularity


def build_world(cfg: SyntheticConfig, seed: int, work: Path) -> LoopWorld:
    """The world, its logged past (prepared) and a ground-truth category SID table."""
    from onefeed.data.prepare import PrepareConfig, prepare
    from onefeed.sid.table import SidTable

    cfg = dataclasses.replace(cfg, seed=seed)
    world = make_world(cfg)
    past = dataclasses.replace(world, user_interests=world.user_interests[:, :-1],
                               config=dataclasses.replace(cfg, n_phases=cfg.n_phases - 1))
    raw = RawData(simulate(past), world.items,
                  {"name": "synthetic", "files": {}, "has_timestamps": True,
                   "config": dataclasses.asdict(cfg)})
    ds = prepare(PrepareConfig(name=f"closed-loop-seed{seed}", dataset="synthetic", k_core=0,
                               seed=seed), raw=raw)
    items = ds.items.sort("item")
    world_item = np.array([int(s[1:]) for s in items["item_id"].to_list()], dtype=np.int64)
    users = ds.users.sort("user")
    world_user = np.array([int(s[1:]) for s in users["user_id"].to_list()], dtype=np.int64)
    leaf = world.item_leaf[world_item]
    index = np.zeros(len(leaf), dtype=np.int64)
    for value in np.unique(leaf):
        at = np.flatnonzero(leaf == value)
        index[at] = np.arange(len(at))
    codes = np.stack([leaf // cfg.n_subtopics, leaf % cfg.n_subtopics, index], axis=1)
    sid_dir = work / "sid"
    SidTable(codes, (cfg.n_topics, cfg.n_subtopics, int(index.max()) + 1),
             {"strategy": "ground-truth-categories"}).save(sid_dir)
    pop = np.bincount(ds.events.filter(pl.col("item").is_not_null())["item"].to_numpy(),
                      minlength=ds.n_items)
    return LoopWorld(world, ds, world_item, world_user, sid_dir, tail_mask(pop))


# ---- one round ----------------------------------------------------------------------------------
def predictor(run_dir: Path, ds: Dataset, sid_dir: Path):
    """A ``Predictor`` over the weights in ``run_dir/last`` and the in-memory ``ds``."""
    from onefeed.train import joint as tj
    from onefeed.predict import Predictor

    model, run_cfg, vocab = tj.load_joint(run_dir / "last")
    return Predictor("joint", run_dir, ds, model.eval(), vocab, run_cfg.model.max_len,
                     sid_dir, joint=tj.predictor(model, run_cfg, ds, sid_dir),
                     max_items=run_cfg.tasks.max_history_items)


def user_items(ds: Dataset) -> list[np.ndarray]:
    """Per user, the items of their logged events (any split)."""
    ev = ds.events.filter(pl.col("item").is_not_null())
    per = {u: np.asarray(v, dtype=np.int64) for u, v in
           ev.group_by("user").agg("item").iter_rows()}
    return [per.get(u, np.zeros(0, dtype=np.int64)) for u in range(ds.n_users)]


def serve(pred, ds: Dataset, bm25: BM25Retriever, cfg: ServeConfig,
          exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fused (n_users, k), NRIP list (n_users, k)) dataset item ids, -1 padded: RRF of the
    recommendations and the BM25 results of the suggested queries. Items of the user's log
    and ``exclude[u]`` (e.g. everything served before: a feed never repeats) are left out."""
    users = ds.users.sort("user")["user_id"].to_list()
    n, k = len(users), cfg.k
    seen = user_items(ds)
    if exclude is not None:
        seen = [np.union1d(a, b) for a, b in zip(seen, exclude)]
    # beam wide enough that k unseen items survive the exclusions
    width = min(ds.n_items, max(cfg.beam, k + max(len(x) for x in seen)))
    rec = np.full((n, k), -1, dtype=np.int64)
    for r, hits in enumerate(pred.recommend(users, width, beam=width, exclude_seen=True)):
        row = np.array([pred.index[h.item] for h in hits], dtype=np.int64)
        row = row[~np.isin(row, seen[r])][:k]
        rec[r, :len(row)] = row
    lists, weights = [rec], [1.0]
    if cfg.n_queries:
        suggested = pred.suggest(users, cfg.n_queries, beam=max(cfg.query_beam, cfg.n_queries))
        deep = cfg.query_depth + max(len(x) for x in seen)
        for j in range(cfg.n_queries):
            texts = [qs[j] if j < len(qs) else "" for qs in suggested]
            got = bm25.retrieve([t or "-" for t in texts], deep)
            out = np.full((n, cfg.query_depth), -1, dtype=np.int64)
            for r in range(n):
                row = got[r][(got[r] >= 0) & ~np.isin(got[r], seen[r])] if texts[r] else []
                out[r, :min(len(row), cfg.query_depth)] = row[:cfg.query_depth]
            lists.append(out)
            weights.append(cfg.query_weight)
    return rrf(lists, weights, k), rec


def round_metrics(lw: LoopWorld, sim: SimulatedUser, served: np.ndarray, rec: np.ndarray,
                  resp: Response) -> dict[str, float]:
    real = served >= 0
    users = lw.world_user
    witems = np.where(real, lw.world_item[np.maximum(served, 0)], -1)
    rel = sim.relevance(users, witems)
    leaf = np.where(real, lw.world.item_leaf[np.maximum(witems, 0)], -1)
    old = lw.world.user_interests[users, :-1].reshape(len(users), -1)
    new = (rel > 0) & ~(leaf[:, :, None] == old[:, None, :]).any(-1)
    shown = max(int(real.sum()), 1)
    k = served.shape[1]
    return {"hit_rate": float(resp.clicked.any(1).mean()),
            "ctr": float(resp.clicked.sum() / shown),
            "precision": float(((rel > 0) & real).sum(1).mean() / k),
            "new_interest": float((new & real).sum() / shown),
            "coverage": catalogue_coverage(served, lw.ds.n_items),
            "long_tail": float((lw.tail[np.maximum(served, 0)] & real).sum() / shown),
            "search_share": float(search_supplement(served, rec, k).mean())}


def log_round(log, ds: Dataset, served: np.ndarray, resp: Response, round_: int,
              item_ids: list[str]) -> int:
    """Append the round's impressions, clicks, dwells and skips; -> the last id written."""
    users = ds.users.sort("user")["user_id"].to_list()
    start = float(ds.events["timestamp"].max() or 1_700_000_000) + (round_ + 1) * DAY
    events = []
    for r, user in enumerate(users):
        rid = f"round{round_}-{user}"
        for p in np.flatnonzero(served[r] >= 0).tolist():
            item, ts = item_ids[served[r, p]], start + r + p / 100.0
            common = {"user": user, "item": item, "position": p, "request_id": rid}
            events.append(FeedbackEvent(kind="impression", timestamp=ts, **common))
            if resp.clicked[r, p]:
                events.append(FeedbackEvent(kind="click", timestamp=ts + 0.001, **common))
                events.append(FeedbackEvent(kind="dwell", timestamp=ts + 0.002,
                                            dwell_ms=int(resp.dwell_ms[r, p]), **common))
            elif resp.skipped[r, p]:
                events.append(FeedbackEvent(kind="skip", timestamp=ts + 0.001, **common))
    ids = log.append(events)
    return ids[-1] if ids else 0


def feedback_to_training(log, after_id: int, ds: Dataset) -> tuple[Dataset, dict[int, list]]:
    """The log's rows after ``after_id`` -> (``ds`` with the clicks appended to each user's
    history as train ``rec_click`` events, strength = dwell ms; {user: skipped items})."""
    events, negatives, _ = split_log(log_frame(log.read(after_id)))
    user_of = dict(zip(ds.users["user_id"].to_list(), ds.users["user"].to_list()))
    item_of = dict(zip(ds.items["item_id"].to_list(), ds.items["item"].to_list()))
    clicks = events.filter(pl.col("behaviour") == "rec_click")
    skips = negatives.filter((pl.col("kind") == "skip") & ~pl.col("clicked"))
    skipped: dict[int, list] = {}
    for u, i in zip(skips["user_id"].to_list(), skips["item_id"].to_list()):
        skipped.setdefault(user_of[u], []).append(item_of[i])
    if clicks.height == 0:
        return ds, skipped
    last = ds.events.group_by("user").agg(pl.col("position").max().alias("last"))
    new = (clicks.select(pl.col("user_id").replace_strict(user_of, return_dtype=pl.Int32)
                         .alias("user"),
                         pl.col("item_id").replace_strict(item_of, return_dtype=pl.Int32)
                         .alias("item"),
                         pl.col("timestamp").cast(pl.Int64), pl.col("strength").cast(pl.Float32))
           .join(last, on="user", how="left", maintain_order="left")
           .with_columns((pl.col("last") + 1 + pl.int_range(pl.len()).over("user"))
                         .cast(pl.Int32).alias("position"),
                         pl.lit("rec_click").alias("behaviour"), pl.lit(None, pl.Utf8)
                         .alias("query"), pl.lit("train").alias("split"))
           .select(list(EVENT_SCHEMA)))
    grown = pl.concat([ds.events, new]).sort(["user", "position"])
    return dataclasses.replace(ds, events=grown), skipped


def negatives_pool(skipped: dict[int, list], n_users: int) -> Pool:
    return pool_from_lists({u: np.asarray(v, dtype=np.int64) for u, v in skipped.items()},
                           n_users)


# ---- the loop -----------------------------------------------------------------------------------
def _finetune(run_cfg, cfg: ClosedLoopConfig, seed: int, round_: int):
    train = dataclasses.replace(run_cfg.train, max_steps=cfg.finetune_steps, epochs=10_000,
                                eval_every=10_000, warmup_steps=0, lr=cfg.finetune_lr,
                                seed=seed * 1000 + round_ + 1)
    return dataclasses.replace(run_cfg, train=train)


def run_seed(cfg: ClosedLoopConfig, seed: int, work: Path,
             progress=lambda msg: None) -> dict[str, Any]:
    """Both arms of one seed -> {arm: [metrics of round 0..rounds]} plus counts."""
    from onefeed.train import joint as tj

    work.mkdir(parents=True, exist_ok=True)
    lw = build_world(cfg.world, seed, work)
    run_cfg = tj.load_run_config(None, list(cfg.model) + [f"train.seed={seed}",
                                                            "tasks.identifier=single"])
    if not run_cfg.tasks.consistency:
        raise config_lib.ConfigError("model: tasks.consistency must be > 0 (skips are "
                                     "consistency-loss negatives)")
    progress(f"seed {seed}: initial model")
    state = tj.train_joint(lw.ds, lw.sid_dir, run_cfg, work / "initial", resume=False)
    bm25 = BM25Retriever()
    bm25.fit(lw.ds, BM25Config())
    sim = SimulatedUser(lw.world, cfg.user)
    item_ids = lw.ds.items.sort("item")["item_id"].to_list()
    out: dict[str, Any] = {"initial_valid": state.get("best_valid"), "n_users": lw.ds.n_users,
                           "n_items": lw.ds.n_items, "arms": {}}
    for arm in cfg.arms:
        ds, run_dir, rows = lw.ds, work / "initial", []
        logs = arm in ("feedback", "clicks-only")
        log = open_log(work / f"{arm}.feedback.sqlite") if logs else None
        shown = [np.zeros(0, dtype=np.int64) for _ in range(lw.ds.n_users)]
        all_skipped: dict[int, list] = {}  # every round's skips so far (they stay negatives)
        added = negs = 0
        last_id = 0
        for r in range(cfg.rounds + 1):
            pred = predictor(run_dir, ds, lw.sid_dir)
            served, rec = serve(pred, ds, bm25, cfg.serve, shown)
            shown = [np.union1d(a, b[b >= 0]) for a, b in zip(shown, served)]
            witems = np.where(served >= 0, lw.world_item[np.maximum(served, 0)], -1)
            resp = sim.respond(lw.world_user, witems, np.random.default_rng([seed, r]))
            rows.append(round_metrics(lw, sim, served, rec, resp))
            progress(f"seed {seed} {arm} round {r}: " + " ".join(
                f"{m} {v:.3f}" for m, v in rows[-1].items()))
            if r == cfg.rounds:
                break
            if arm == "frozen":  # served and measured only
                continue
            negatives = None
            if log is not None:
                first = last_id
                last_id = log_round(log, ds, served, resp, r, item_ids)
                before = ds.events.height
                ds, skipped = feedback_to_training(log, first, ds)
                added += ds.events.height - before
                if arm == "feedback":
                    negs += sum(len(v) for v in skipped.values())
                    for u, items in skipped.items():
                        all_skipped.setdefault(u, []).extend(items)
                    negatives = negatives_pool(all_skipped, ds.n_users)
            model, _, _ = tj.load_joint(run_dir / "last")
            nxt = work / arm / f"round{r + 1}"
            tj.fine_tune(model, ds, lw.sid_dir, _finetune(run_cfg, cfg, seed, r), nxt,
                         negatives)
            run_dir = nxt
        out["arms"][arm] = {"rounds": rows, "events_added": added, "skip_negatives": negs,
                            "logged": log.count() if log is not None else 0}
        if log is not None:
            log.close()
    return out


def _stat(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def summarise(per_seed: dict[int, dict[str, Any]], rounds: int) -> dict[str, Any]:
    """{arm: {metric: [{"mean", "sd"} per round]}} over the seeds."""
    out: dict[str, Any] = {}
    arms = [a for a in ARMS if all(a in s["arms"] for s in per_seed.values())]
    for arm in arms:
        out[arm] = {m: [_stat([s["arms"][arm]["rounds"][r][m] for s in per_seed.values()])
                        for r in range(rounds + 1)] for m in METRICS}
    return out


def run(cfg: ClosedLoopConfig, work: Path, progress=lambda msg: None) -> dict[str, Any]:
    from onefeed.artifacts import git_commit, machine_info

    commit = git_commit()  # the code that runs (read before it does)
    per_seed = {s: run_seed(cfg, s, work / f"seed{s}", progress) for s in cfg.seeds}
    return {"kind": "bench-closed-loop", "commit": commit, "machine": machine_info(),
            "config": config_lib.to_dict(cfg), "seeds": list(cfg.seeds),
            "summary": summarise(per_seed, cfg.rounds),
            "per_seed": {str(s): v for s, v in per_seed.items()}}


# ---- reports ------------------------------------------------------------------------------------
def markdown(doc: dict[str, Any], plot_name: str | None = None) -> str:
    cfg, summary = doc["config"], doc["summary"]
    rounds = cfg["rounds"]
    lines = ["# Closed loop (OneFeed §3.10) on the synthetic world", "",
             f"commit `{doc['commit']}`, seeds {doc['seeds']}, {rounds} fine-tunes of "
             f"{cfg['finetune_steps']} steps, lists of k = {cfg['serve']['k']}, "
             f"{cfg['world']['n_users']} users x {cfg['world']['n_items']} items; "
             "mean ± sd over seeds. Round r = lists served by the model fine-tuned r times.",
             ""]
    if plot_name:
        lines += [f"![round -> metric]({plot_name})", ""]
    for metric in METRICS:
        lines += [f"**{metric}**", "", "| arm | " + " | ".join(f"r{r}" for r in
                                                            range(rounds + 1)) + " |",
                  "|---|" + "---:|" * (rounds + 1)]
        for arm in summary:
            cells = [f"{x['mean']:.3f} ± {x['sd']:.3f}" for x in summary[arm][metric]]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["| seed | arm | events added | skip negatives | log rows |", "|---|---|---:|---:|---:|"]
    for s, v in doc["per_seed"].items():
        for arm, a in v["arms"].items():
            lines.append(f"| {s} | {arm} | {a['events_added']} | {a['skip_negatives']} | "
                         f"{a['logged']} |")
    m = doc["machine"]
    lines += ["", f"machine: {m.get('cpu_model', m.get('processor', '?'))}, "
              f"{m.get('cpu_count', '?')} CPUs, torch {m.get('versions', {}).get('torch', '?')}",
              ""]
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("hit_rate", "precision", "new_interest", "coverage", "long_tail", "search_share")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    rounds = np.arange(doc["config"]["rounds"] + 1)
    for ax, metric in zip(axes.ravel(), shown):
        for arm, colour in zip(ARMS, ("tab:blue", "tab:orange", "tab:grey", "tab:green")):
            if arm not in doc["summary"]:
                continue
            stats = doc["summary"][arm][metric]
            mean = np.array([s["mean"] for s in stats])
            sd = np.array([s["sd"] for s in stats])
            ax.plot(rounds, mean, marker="o", color=colour, label=arm)
            ax.fill_between(rounds, mean - sd, mean + sd, color=colour, alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("round")
        ax.set_xticks(rounds)
    axes[0, 0].legend()
    n = len(doc["seeds"])
    fig.suptitle(f"Closed loop on the synthetic world: feedback vs no-feedback control "
                 f"(mean ± sd, {n} seed{'s' if n != 1 else ''})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

