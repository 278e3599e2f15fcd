"""``onefeed bench beauty-unisearch``: UniSearch end-to-end generative search (issue 16) against
BM25 on held-out eval queries -> bench/results/<suite>/{results.json, report.md}.

Rows (``ROWS``; the suite refuses others):

* ``bm25`` - ``search.bm25.BM25Retriever`` over the item text (no training);
* ``unisearch-plain`` - UniSearch trained with in-batch RCL negatives only (``plain``
  overrides: no coarse-to-fine hard negatives);
* ``unisearch`` - UniSearch with coarse-to-fine RCL hard negatives (``rcl`` overrides);
* ``unisearch-minilm`` - ``unisearch-plain`` with word embeddings initialised from the packaged
  all-MiniLM-L6-v2 (``minilm`` overrides): how much a pretrained vocabulary buys at this budget;
* ``unisearch-spo`` - the ``spo_base`` model + ``train.unisearch.post_train_spo`` on the
  training queries, rewarded by ``click_reward`` over the training pairs (or ``bm25``: the BM25
  rank of the item among the query's top ``bm25_depth``; training data only either way);
* ``unisearch-bm25-fused`` - BM25's top ``bm25_depth`` re-scored by bm25/max + lam x the
  ``fused_base`` model's log p (``tasks.unisearch.score_items``, ``search.fusion.score_fusion``),
  lam picked on the valid queries (``tune_lambda``), never on test.

The generative rows decode with the trie (``tasks.unisearch.search``, beam ``beam``); every
row ranks ``max(ks)`` items per query; ``metrics_search`` holds recall@10, recall@100 and
mrr@10 on ``test_cases`` test eval queries (a fixed seed-0 subset; 0 = all). The trie study
(UniSearch §4.3) decodes the same test subset without the trie (``unconstrained_search``,
beam ``trie_beam``): the share of generated code tuples that name no item and Recall@10 with /
without the trie. Trained rows keep their checkpoints in ``<out>/scratch/<row>/seed<S>``
(resumed when present; a finished run is only re-frozen) under a wall-clock cap
(``train.time_limit_min``, checked at epoch ends) and record the epochs reached.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from onefeed import config as cfglib
from onefeed.artifacts import dir_lock, git_commit, machine_info, write_json
from onefeed.paths import REPO, results_root
from onefeed.train.unisearch import SPOConfig

METRICS: tuple[str, ...] = ("recall@10", "recall@100", "mrr@10")
HYBRID_MARKS: tuple[str, ...] = ("bm25", "hybrid", "fused", "dense")  # not in generative names
K = 100  # items ranked per query (recall@100)
TRAINED: dict[str, str] = {"unisearch-plain": "plain", "unisearch": "rcl",
                           "unisearch-minilm": "minilm"}  # row -> its overrides field


@dataclass
class UniSearchSuiteConfig:
    RANGES: ClassVar[dict[str, str]] = {"test_cases": ">= 0", "valid_cases": ">= 0",
                                        "beam": ">= 1", "trie_beam": ">= 1",
                                        "bm25_depth": ">= 1", "threads": ">= 1"}
    suite: str = "beauty-unisearch"
    description: str = ""
    data: str = "runs/beauty/data"  # prepared dataset (onefeed data prepare)
    prepare: str = "configs/prepare/beauty.toml"  # how to build ``data`` (hint only)
    model_config: str = "configs/unisearch/default.toml"  # UniSearchRunConfig of every model
    plain: list[str] = field(default_factory=lambda: ["task.hard_negatives=0"])
    rcl: list[str] = field(default_factory=lambda: ["task.hard_negatives=2"])
    minilm: list[str] = field(default_factory=lambda: ["task.hard_negatives=0",
                                                       "model.minilm_init=true"])
    rows: list[str] = field(default_factory=lambda: ["bm25", "unisearch-plain", "unisearch"])
    seeds: list[int] = field(default_factory=lambda: [0])
    test_cases: int = 2000  # test eval queries scored (fixed seed-0 subset; 0 = all)
    valid_cases: int = 1000  # valid eval queries the fusion weight is tuned on
    beam: int = 100  # generative rows' beam (>= max k)
    trie_beam: int = 20  # beam of the trie study (Recall@10 with / without the trie)
    bm25_depth: int = 100  # BM25 candidates re-scored by the fused row (and the SPO reward)
    spo_reward: str = "click"  # click (train pairs) | bm25 (BM25 rank among the top depth)
    spo_base: str = "unisearch"  # the trained row SPO starts from
    fused_base: str = "unisearch"  # the trained row whose log p is fused with BM25
    spo: SPOConfig = field(default_factory=SPOConfig)
    threads: int = 1
    scratch: str = ""  # trained rows' checkpoints ("" = <out>/scratch; share it across --out)

    def check(self) -> None:
        if self.spo_reward not in ("click", "bm25"):
            raise ValueError(f"spo_reward must be click or bm25, got {self.spo_reward!r}")
        check_rows(self.rows)
        for key in ("spo_base", "fused_base"):
            if getattr(self, key) not in TRAINED:
                raise ValueError(f"{key} must be one of {sorted(TRAINED)}, got "
                                 f"{getattr(self, key)!r}")


def load_config(path: str | Path | None, overrides: list[str] | None = None
                ) -> UniSearchSuiteConfig:
    return cfglib.load(UniSearchSuiteConfig, path, overrides)  # runs check()


# ---- context: data, eval cases, BM25, trained models -----------------------------------------

@dataclass
class Cases:
    queries: list[str]
    targets: np.ndarray  # (n,) item per query


@dataclass
class Context:
    cfg: UniSearchSuiteConfig
    ds: Any
    test: Cases
    valid: Cases
    out_dir: Path
    bm25: Any = None
    models: dict[str, Any] = field(default_factory=dict)  # (row, seed) key -> (model, index)
    train_info: dict[str, dict[str, Any]] = field(default_factory=dict)


def eval_cases(ds: Any, split: str, n: int) -> Cases:
    """The split's held-out eval queries (``ds.eval_queries``), a fixed seed-0 subset of ``n``."""
    import polars as pl

    eq = ds.eval_queries.filter(pl.col("split") == split).sort("user")
    if n and n < eq.height:
        eq = eq[np.sort(np.random.default_rng(0).choice(eq.height, n, replace=False)).tolist()]
    return Cases(eq["query"].to_list(), eq["item"].to_numpy().astype(np.int64))


def bm25_index(ctx: Context) -> Any:
    if ctx.bm25 is None:
        from onefeed.search.bm25 import BM25Config, BM25Retriever

        ctx.bm25 = BM25Retriever()
        ctx.bm25.fit(ctx.ds, BM25Config())
    return ctx.bm25


def run_config(ctx: Context, overrides: list[str], seed: int) -> Any:
    from onefeed.train.unisearch import UniSearchRunConfig

    path = Path(ctx.cfg.model_config)
    path = path if path.is_absolute() or path.exists() else REPO / path
    cfg = cfglib.load(UniSearchRunConfig, path, [*overrides, f"train.seed={seed}"])
    cfg.train.threads = ctx.cfg.threads
    return cfg


def trained(ctx: Context, name: str, overrides: list[str], seed: int) -> tuple[Any, Any]:
    """The model + learned index of ``name`` at ``seed``: trained (or resumed) in scratch."""
    from onefeed.data.schemas import dataset_fingerprint
    from onefeed.train.unisearch import run_state, train_unisearch

    key = f"{name}/seed{seed}"
    if key not in ctx.models:
        cfg = run_config(ctx, overrides, seed)
        out = Path(ctx.cfg.scratch or ctx.out_dir / "scratch") / name / f"seed{seed}"
        start = time.perf_counter()
        ctx.models[key] = train_unisearch(ctx.ds, cfg, out, resume=True, provenance={
            "data": str(Path(ctx.cfg.data).resolve()),
            "data_sha256": dataset_fingerprint(ctx.cfg.data)})
        state = run_state(out)
        ctx.train_info[key] = {
            "epochs_reached": state.get("epoch"), "epochs_config": cfg.train.epochs,
            "best_epoch": state.get("best_epoch"), "best_valid_recall10": state.get("best_score"),
            "train_minutes": round(state.get("train_seconds", 0.0) / 60, 2),
            "time_limit_min": cfg.train.time_limit_min, "steps": state.get("step"),
            "collision_rate": ctx.models[key][1].table.meta.get("collision_rate"),
            "this_call_seconds": round(time.perf_counter() - start, 1),
            "overrides": list(overrides), "history": state.get("history", [])}
    return ctx.models[key]


# ---- rows: (context, seed) -> (Q, K) ranked items + extra fields -----------------------------

RowFn = Callable[[Context, int], tuple[np.ndarray, dict[str, Any]]]


@dataclass
class Row:
    fn: RowFn
    kind: str  # baseline | generative | fused
    deterministic: bool = False


def row_bm25(ctx: Context, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """BM25 on the scored subset; ``full_test``: the same on every test eval query."""
    bm25 = bm25_index(ctx)
    every = eval_cases(ctx.ds, "test", 0)
    return bm25.retrieve(ctx.test.queries, K), {
        "full_test": {"n": len(every.queries),
                      **search_metrics(bm25.retrieve(every.queries, K), every.targets)}}


def generative(name: str, which: str) -> RowFn:
    def make(ctx: Context, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        from onefeed.tasks.unisearch import search

        model, index = trained(ctx, name, getattr(ctx.cfg, which), seed)
        items = search(model, index, ctx.test.queries, K, max(ctx.cfg.beam, K))
        extra = {"train": ctx.train_info[f"{name}/seed{seed}"],
                 "trie": trie_study(model, index, ctx.test, ctx.cfg.trie_beam),
                 "dense_rcl_recall@10": dense_recall10(model, index, ctx.test)}
        return items.items.numpy(), extra
    return make


def bm25_reward(bm25: Any, depth: int) -> Callable[[list[str], np.ndarray], np.ndarray]:
    """1 / (1 + BM25 rank) of each candidate among the query's top ``depth`` (0 outside)."""
    def reward(queries: list[str], items: np.ndarray) -> np.ndarray:
        top = bm25.retrieve(list(queries), depth)
        out = np.zeros(items.shape, dtype=np.float32)
        for r in range(len(items)):
            rank = {int(i): j for j, i in enumerate(top[r].tolist()) if i >= 0}
            out[r] = [1.0 / (1 + rank[int(i)]) if int(i) in rank else 0.0 for i in items[r]]
        return out
    return reward


def row_spo(ctx: Context, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    import polars as pl

    from onefeed.data.weak_queries import search_pairs
    from onefeed.tasks.unisearch import search
    from onefeed.train.unisearch import click_reward, post_train_spo

    name = ctx.cfg.spo_base
    base, index = trained(ctx, name, getattr(ctx.cfg, TRAINED[name]), seed)
    model = copy.deepcopy(base)
    pairs = search_pairs(ctx.ds.events, "train")
    weak = ctx.ds.queries.filter(pl.col("split") == "train")
    train_pairs = list(zip(pairs["query"].to_list() + weak["query"].to_list(),
                           pairs["item"].to_list() + weak["item"].to_list()))
    reward = click_reward(train_pairs) if ctx.cfg.spo_reward == "click" else \
        bm25_reward(bm25_index(ctx), ctx.cfg.bm25_depth)
    queries = sorted({q for q, _ in train_pairs})
    spo = dataclasses.replace(ctx.cfg.spo, seed=seed)
    start = time.perf_counter()
    before = valid_recall10(model, index, ctx)
    history = post_train_spo(model, index, queries, reward, spo)
    model.eval()
    items = search(model, index, ctx.test.queries, K, max(ctx.cfg.beam, K))
    steps = [h["reward"] for h in history]
    tenth = max(1, len(steps) // 10)
    return items.items.numpy(), {
        "spo": {"reward": ctx.cfg.spo_reward, "steps": len(history),
                "seconds": round(time.perf_counter() - start, 1),
                "reward_first_tenth": float(np.mean(steps[:tenth])) if steps else None,
                "reward_last_tenth": float(np.mean(steps[-tenth:])) if steps else None,
                "kl_last": history[-1]["kl"] if history else None,
                "valid_recall10_before": before,
                "valid_recall10_after": valid_recall10(model, index, ctx)},
        "base": name, "trie": trie_study(model, index, ctx.test, ctx.cfg.trie_beam)}


def valid_recall10(model: Any, index: Any, ctx: Context) -> float:
    """Recall@10 (beam ``trie_beam``) on the valid cases: SPO's before / after diagnostic."""
    from onefeed.tasks.unisearch import recall_mrr, search

    found = search(model, index, ctx.valid.queries, 10, ctx.cfg.trie_beam).items.numpy()
    return recall_mrr(found, ctx.valid.targets, 10)[0]


def fused_candidates(ctx: Context, model: Any, index: Any, cases: Cases
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BM25's top ``bm25_depth`` (ids, scores) and the model's log p of each candidate."""
    from onefeed.tasks.unisearch import score_items

    items, base = bm25_index(ctx).retrieve_scores(cases.queries, ctx.cfg.bm25_depth)
    other = np.concatenate([score_items(model, index, cases.queries[s:s + 256], items[s:s + 256])
                            for s in range(0, len(items), 256)]) if len(items) else \
        np.zeros(items.shape, np.float32)
    return items, base, other


def row_fused(ctx: Context, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    from onefeed.evaluation.metrics import ndcg_at_k
    from onefeed.search.fusion import score_fusion, tune_lambda

    name = ctx.cfg.fused_base
    model, index = trained(ctx, name, getattr(ctx.cfg, TRAINED[name]), seed)
    v_items, v_base, v_other = fused_candidates(ctx, model, index, ctx.valid)
    lam, table = tune_lambda(v_items, v_base, v_other, ctx.valid.targets,
                             metric=lambda r: ndcg_at_k(r, 10))
    items, base, other = fused_candidates(ctx, model, index, ctx.test)
    return score_fusion(items, base, other, lam, K), {
        "fusion": {"lam": lam, "tuned_on": f"valid ({len(ctx.valid.queries)} queries, "
                   "ndcg@10)", "valid_ndcg10_per_lam": table, "depth": ctx.cfg.bm25_depth,
                   "model": name}}


ROWS: dict[str, Row] = {
    "bm25": Row(row_bm25, "baseline", deterministic=True),
    **{name: Row(generative(name, which), "generative") for name, which in TRAINED.items()},
    "unisearch-spo": Row(row_spo, "generative"),
    "unisearch-bm25-fused": Row(row_fused, "fused"),
}


def check_rows(names: list[str]) -> None:
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise cfglib.ConfigError(f"rows {unknown} not registered; known: {sorted(ROWS)} "
                                 "(onefeed.bench.unisearch.ROWS)")
    for name, row in ROWS.items():  # purely generative rows never carry a hybrid's name
        if row.kind == "generative" and any(m in name for m in HYBRID_MARKS):
            raise cfglib.ConfigError(f"row {name}: generative rows must not be named like "
                                     f"hybrids ({', '.join(HYBRID_MARKS)})")


# ---- metrics --------------------------------------------------------------------------------

def search_metrics(items: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """recall@10, recall@100 and mrr@10 of ranked ``items`` (Q, >= 100, -1 padded)."""
    from onefeed.tasks.unisearch import recall_mrr

    if items.shape[1] < 100:
        items = np.concatenate([items, np.full((len(items), 100 - items.shape[1]), -1)], 1)
    r10, m10 = recall_mrr(items, targets, 10)
    r100, _ = recall_mrr(items, targets, 100)
    return {"recall@10": r10, "recall@100": r100, "mrr@10": m10}


def trie_study(model: Any, index: Any, cases: Cases, beam: int) -> dict[str, float]:
    """Recall@10 with / without the trie (beam ``beam``) and the share of the unconstrained
    top-10 code tuples that name no item (UniSearch §4.3)."""
    from onefeed.tasks.unisearch import recall_mrr, search, unconstrained_search

    free, valid_share = unconstrained_search(model, index, cases.queries, 10, beam)
    with_trie = search(model, index, cases.queries, 10, beam).items.numpy()
    return {"beam": beam, "invalid_share": round(1.0 - valid_share, 4),
            "recall@10_trie": recall_mrr(with_trie, cases.targets, 10)[0],
            "recall@10_no_trie": recall_mrr(free, cases.targets, 10)[0]}


def dense_recall10(model: Any, index: Any, cases: Cases) -> float:
    """Diagnostic, not a row: Recall@10 of ranking the whole catalogue by the same model's RCL
    similarity ``sim(q, sum_n d^(n))`` (what the generator would reach if the codes and the
    decoder lost nothing)."""
    import torch

    from onefeed.tasks.unisearch import recall_mrr, word_ids

    vec = index.vectors
    if vec is None or not len(cases.queries):
        return float("nan")
    top = []
    for s in range(0, len(cases.queries), 256):
        words = torch.as_tensor(word_ids(cases.queries[s:s + 256], model.cfg.max_query_words))
        with torch.no_grad():
            q = model.eval().search_state(words)[2]
        if model.cfg.similarity == "cosine":
            scores = torch.nn.functional.normalize(q, dim=-1) @ \
                torch.nn.functional.normalize(vec, dim=-1).T
        else:  # 1 - ||q - d||^2 ranks as 2 q.d - ||d||^2
            scores = 2 * q @ vec.T - (vec * vec).sum(1)
        top.append(scores.topk(min(10, len(vec)), dim=1).indices.numpy())
    return recall_mrr(np.concatenate(top), cases.targets, 10)[0]


def _stat(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "per_seed": [float(v) for v in arr]}


# ---- the suite ------------------------------------------------------------------------------

def open_context(cfg: UniSearchSuiteConfig, out_dir: Path) -> Context:
    from onefeed.data.schemas import DataError, Dataset

    data = Path(cfg.data)
    if not (data / "manifest.json").is_file():
        raise DataError(f"{data}: no prepared dataset (build it: onefeed data prepare --config "
                        f"{cfg.prepare})")
    ds = Dataset.load(data)
    return Context(cfg, ds, eval_cases(ds, "test", cfg.test_cases),
                   eval_cases(ds, "valid", cfg.valid_cases), out_dir)


def run_suite(cfg: UniSearchSuiteConfig, out_dir: str | Path | None = None,
              rows: list[str] | None = None, seeds: list[int] | None = None,
              config_path: str | None = None, progress: Callable[[str], None] = print) -> Path:
    """Score every (row, seed); write results.json + report.md. With ``rows`` a subset, the
    other rows of a previous results.json on the same data and cases are kept."""
    import torch

    from onefeed.data.schemas import dataset_fingerprint

    torch.set_num_threads(cfg.threads)
    names = rows or list(cfg.rows)
    check_rows(names)
    seeds = seeds or list(cfg.seeds)
    out_dir = Path(out_dir or results_root() / cfg.suite)
    ctx = open_context(cfg, out_dir)
    results: dict[str, Any] = {}
    for name in names:
        row = ROWS[name]
        per_seed: dict[int, dict[str, Any]] = {}
        for seed in (seeds[:1] if row.deterministic else seeds):
            progress(f"{cfg.suite} {name} seed {seed} ...")
            start = time.perf_counter()
            items, extra = row.fn(ctx, seed)
            seconds = time.perf_counter() - start
            m = search_metrics(items, ctx.test.targets)
            per_seed[seed] = {"metrics": m, "seconds": round(seconds, 1), **extra}
            progress(f"  recall@10 {m['recall@10']:.4f} recall@100 {m['recall@100']:.4f} "
                     f"mrr@10 {m['mrr@10']:.4f} ({seconds:.0f} s)")
        results[name] = {"kind": row.kind, "seeds": list(per_seed),
                         "metrics_search": {k: _stat([r["metrics"][k] for r in
                                                      per_seed.values()]) for k in METRICS},
                         "runs": {str(s): {k: v for k, v in r.items() if k != "metrics"}
                                  for s, r in per_seed.items()}}
    ds = ctx.ds
    doc = {"schema_version": 1, "suite": cfg.suite, "description": cfg.description,
           "config_path": config_path, "config": cfglib.to_dict(cfg),
           "model_config": json.loads(json.dumps(cfglib.to_dict(run_config(ctx, [], 0)))),
           "dataset": {"name": ds.name, "dir": str(cfg.data), "n_items": ds.n_items,
                       "n_users": ds.n_users, "data_sha256": dataset_fingerprint(cfg.data),
                       "test_cases": len(ctx.test.queries),
                       "valid_cases": len(ctx.valid.queries)},
           "commit": git_commit(), "machine": machine_info(), "seeds": seeds,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "models": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    with dir_lock(out_dir):
        if rows:
            _merge_previous(doc, out_dir)
        doc["seeds"] = sorted({s for r in doc["models"].values() for s in r["seeds"]})
        (out_dir / "report.md").write_text(markdown(doc))
        write_json(out_dir / "results.json", doc)
    return out_dir


def _merge_previous(doc: dict[str, Any], out_dir: Path) -> None:
    path = out_dir / "results.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    same = all(old.get("dataset", {}).get(k) == doc["dataset"][k]
               for k in ("data_sha256", "test_cases", "valid_cases"))
    if not same:
        return
    for name, row in old.get("models", {}).items():
        doc["models"].setdefault(name, row)
    doc["models"] = {n: doc["models"][n] for n in ROWS if n in doc["models"]}


# ---- report ---------------------------------------------------------------------------------

def markdown(doc: dict[str, Any]) -> str:
    ds, m, c = doc["dataset"], doc["machine"], doc["config"]
    lines = [f"# Bench `{doc['suite']}`", "", doc.get("description", ""), "", "## Protocol", "",
             f"- Dataset `{ds['name']}` ({ds['n_users']} users, {ds['n_items']} items): "
             f"{ds['test_cases']} test eval queries (`eval_queries`, fixed seed-0 subset; "
             f"tuning on {ds['valid_cases']} valid ones), one target item each.",
             f"- Generative rows: trie-constrained beam {c['beam']} over the learned codes; "
             "`bm25`: bm25s over item text; `unisearch-bm25-fused`: BM25 top "
             f"{c['bm25_depth']} re-scored by bm25/max + lam x UniSearch log p (lam on valid).",
             f"- Models: `{c['model_config']}` + plain {c['plain']} / rcl {c['rcl']} / "
             f"minilm {c['minilm']}; "
             f"{c['threads']} torch thread(s); wall-clock cap = train.time_limit_min, "
             "checked at epoch ends.", "",
             f"Commit `{doc['commit']}`, {doc['created']}, machine "
             f"{m.get('cpu_model', m.get('processor'))} ({m.get('cpu_count')} cores). "
             f"Seeds {doc['seeds']}.", "", "## Results (`metrics_search`)", "",
             "| row | kind | seeds | " + " | ".join(METRICS) + " | epochs | train min |",
             "|---" * (len(METRICS) + 5) + "|"]
    for name, row in doc["models"].items():
        cells = [f"{row['metrics_search'][k]['mean']:.4f}"
                 + (f" ± {row['metrics_search'][k]['std']:.4f}" if len(row["seeds"]) > 1
                    else "") for k in METRICS]
        run = next(iter(row["runs"].values()), {})
        tr = run.get("train", {})
        epochs = f"{tr['epochs_reached']}/{tr['epochs_config']}" if tr else "-"
        minutes = f"{tr['train_minutes']:.1f}" if tr else "-"
        lines.append(f"| `{name}` | {row['kind']} | {len(row['seeds'])} | "
                     + " | ".join(cells) + f" | {epochs} | {minutes} |")
    study = [(n, r) for n, r in doc["models"].items()
             if "trie" in next(iter(r["runs"].values()), {})]
    if study:
        lines += ["", "## Trie constraint (UniSearch §4.3)", "",
                  "| row | beam | invalid share without trie | Recall@10 trie | "
                  "Recall@10 no trie | dense RCL Recall@10 (diagnostic) |",
                  "|---|---|---|---|---|---|"]
        for name, row in study:
            run = next(iter(row["runs"].values()))
            t, dense = run["trie"], run.get("dense_rcl_recall@10")
            lines.append(f"| `{name}` | {t['beam']} | {t['invalid_share']:.4f} | "
                         f"{t['recall@10_trie']:.4f} | {t['recall@10_no_trie']:.4f} | "
                         + ("-" if dense is None else f"{dense:.4f}") + " |")
    notes = []
    for name, row in doc["models"].items():
        run = next(iter(row["runs"].values()), {})
        if "full_test" in run:
            f = run["full_test"]
            notes.append(f"- `{name}` on all {f['n']} test queries: recall@10 "
                         f"{f['recall@10']:.4f}, recall@100 {f['recall@100']:.4f}, mrr@10 "
                         f"{f['mrr@10']:.4f}.")
        if "fusion" in run:
            notes.append(f"- `{name}`: `{run['fusion']['model']}`'s log p, lam "
                         f"{run['fusion']['lam']} tuned on {run['fusion']['tuned_on']}.")
        if "spo" in run:
            s = run["spo"]
            notes.append(f"- `{name}`: `{run['base']}` + {s['steps']} SPO steps "
                         f"({s['reward']} reward, {s['seconds']} s): mean reward "
                         f"{s['reward_first_tenth']:.3f} -> {s['reward_last_tenth']:.3f}, final "
                         f"KL {s['kl_last']:.4f}"
                         + (f"; valid Recall@10 {s['valid_recall10_before']:.4f} -> "
                            f"{s['valid_recall10_after']:.4f}" if "valid_recall10_after" in s
                            else "") + ".")
        if "train" in run:
            t = run["train"]
            notes.append(f"- `{name}`: {t['steps']} steps, best epoch {t['best_epoch']} "
                         f"(valid Recall@10 {t['best_valid_recall10']:.4f} on 500 valid "
                         f"queries, beam 20), collision rate {t['collision_rate']:.1f}% "
                         f"before disambiguation, cap {t['time_limit_min']} min.")
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


__all__ = ["ROWS", "Row", "UniSearchSuiteConfig", "load_config", "run_suite"]
