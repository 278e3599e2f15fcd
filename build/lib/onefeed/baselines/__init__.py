"""Baselines with one shape (see ``base``): recommenders ``fit(ds, cfg, seed)`` +
``recommend(cases, k)``, retrievers ``fit(ds, cfg)`` + ``retrieve(queries, k)``, query
generators ``fit(ds, cfg)`` + ``generate(cases, k)``. Look-up by lowercase ``kind``."""

from __future__ import annotations

import importlib
from typing import Any

# kind -> "module:Class"; imported lazily so `import onefeed.baselines` stays cheap.
RECOMMENDERS = {
    "pop": "onefeed.baselines.pop:MostPop",
    "itemknn": "onefeed.baselines.itemknn:ItemKNN",
    "sasrec": "onefeed.baselines.sasrec:SASRec",
    "gru4rec": "onefeed.baselines.gru4rec:GRU4Rec",
    "bert4rec": "onefeed.baselines.bert4rec:BERT4Rec",
}
RETRIEVERS = {
    "bm25": "onefeed.search.bm25:BM25Retriever",
    "dense": "onefeed.search.dense:DenseRetriever",
    "hybrid": "onefeed.search.hybrid:HybridRetriever",
}
QUERY_GENERATORS = {
    "keyword": "onefeed.baselines.query_baselines:KeywordQueries",
    "query-prior": "onefeed.baselines.query_baselines:PopularQueryPrior",
}
TASKS = {"rec": RECOMMENDERS, "search": RETRIEVERS, "query": QUERY_GENERATORS}


def load_entry(entry: str) -> Any:
    """``"package.module:Name"`` -> the object."""
    module, _, name = entry.partition(":")
    if not name:
        raise ValueError(f"entry {entry!r} must look like 'package.module:Name'")
    return getattr(importlib.import_module(module), name)


def task_of(kind: str) -> str:
    for task, table in TASKS.items():
        if kind in table:
            return task
    known = sorted(k for t in TASKS.values() for k in t)
    raise ValueError(f"unknown model kind {kind!r}; known: {known} (or 'external')")


def resolve(kind: str) -> type:
    """The class registered for ``kind``."""
    return load_entry(TASKS[task_of(kind)][kind])
