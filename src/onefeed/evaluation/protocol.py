"""The named evaluation protocol every bench run states at the top of its report.

The default is TIGER's (Rajput et al. 2023 §4): leave-one-out, history = the last 20 items
before the target, full ranking over the whole catalogue (no sampled negatives) and no
seen-item filtering (the target may be an item already in the history).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass
class Protocol:
    RANGES: ClassVar[dict[str, str]] = {"max_history": ">= 1", "ks": ">= 1", "curve_k": ">= 1",
        "search_ks": ">= 1", "query_ks": ">= 1", "edit_distance": ">= 0",
        "query_max_cases": ">= 0", "tail_head_frac": "(0, 1)"}
    name: str = "tiger-loo"
    split: str = "test"  # cases: each user's first item event in this split
    max_history: int = 20  # items of history given to every model at evaluation time
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])  # table cut-offs
    curve_k: int = 50  # Recall@1..curve_k is plotted
    filter_seen: bool = False  # remove history items from every ranking before scoring
    search_split: str = "test"  # ds.eval_queries split used for search / query generation
    search_ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    query_ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    edit_distance: int = 2  # ED-HR tolerance (OneBar §5.1)
    query_max_cases: int = 0  # score query generation on a fixed random subset (0 = all)
    tail_head_frac: float = 0.2  # tail = items outside the top 20% by train popularity
    popularity_split: bool = False  # also head_/tail_recall@K of rec and search (Spotify Table 2)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, dataset: dict[str, Any]) -> str:
        """Markdown block: what was measured, on which cases, with which rules."""
        seen = ("history items **removed** from rankings" if self.filter_seen else
                "history items **not** filtered (TIGER protocol: repeats may be recommended)")
        lines = [
            f"- Protocol `{self.name}`: split `{dataset.get('protocol', '?')}`, cases = each "
            f"user's first item event in `{self.split}`; history = up to {self.max_history} "
            "preceding items (valid target included for test cases).",
            f"- Dataset `{dataset.get('name', '?')}`: {dataset.get('n_users', '?')} users, "
            f"{dataset.get('n_items', '?')} items, {dataset.get('n_cases', '?')} "
            f"{self.split} cases.",
            "- **Full ranking** over all items (no sampled negatives); one target per case, so "
            "Recall@K = HR@K; NDCG with IDCG = 1.",
            f"- Seen items: {seen}.",
            "- Trained models early-stop on valid NDCG@10 (full ranking) and are tested once "
            "with the kept weights.",
            f"- Search: held-out weak queries (`eval_queries`, split `{self.search_split}`), full "
            "ranking of the whole item corpus. Query generation: exact HR/MRR@K, ED-HR@K "
            f"(Levenshtein <= {self.edit_distance}, OneBar §5.1), BLEU@K (best of top K), "
            "ROUGE-L, Distinct-2, retrievability (top-1 query matches >= 1 item under BM25)"
            + (f", on a fixed random subset of {self.query_max_cases} cases."
               if self.query_max_cases else "."),
            f"- Long tail: items outside the top {self.tail_head_frac:.0%} by train popularity"
            + (" (`head_` / `tail_` columns: Recall@K over the cases whose target is a head / "
               "tail item, for recommendation and search)." if self.popularity_split else "."),
        ]
        return "\n".join(lines)
