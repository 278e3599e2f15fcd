"""``OneBarConfig``: the evidence, label and evaluation settings of content-grounded query
suggestion (OneBar §3.2-3.3, §5.1). Loaded from TOML like every config (``onefeed.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from onefeed import config as config_mod

ANCHOR_SOURCES: tuple[str, ...] = ("after", "click")  # see ``anchor_sources`` below


@dataclass
class OneBarConfig:
    RANGES: ClassVar[dict[str, str]] = {
        "anchor_k": ">= 1", "anchor_threshold": "[-1, 1]", "max_anchors": ">= 0",
        "max_rag": ">= 0", "max_history": ">= 0", "history_window": ">= 0",
        "history_threshold": "[-1, 1]", "plant_share": "[0, 1]", "min_evidence": ">= 0",
        "k": ">= 1", "ks": ">= 1", "max_distance": ">= 0"}
    # collaborative anchors (OneBar §3.2): training queries of the trigger's nearest items
    anchor_k: int = 20  # neighbours retrieved per trigger (faiss inner product, unit vectors)
    anchor_threshold: float = 0.5  # keep neighbours with cosine >= this (OneBar: low-sim misleads)
    max_anchors: int = 8  # anchors kept per trigger, by frequency x similarity
    # a neighbour's queries: "after" = issued right after watching it (OneBar's post-video
    # relation); "click" = led to a search click on it (the search-click relation). "click"
    # leaks a training example's own query into its anchors when the clicked item is a
    # neighbour of the trigger (semi-synthetic sessions click right after the query).
    anchor_sources: list[str] = field(default_factory=lambda: ["after"])
    max_rag: int = 8  # RAG history: most frequent queries issued after this trigger (train)
    # personalised evidence: the user's recent queries similar to the trigger
    max_history: int = 4  # kept after filtering, most recent first
    history_window: int = 20  # recent queries an example carries before filtering
    history_threshold: float = 0.3  # cosine of a history query's item centroid to the trigger
    # abstention (OneBar §3.3): items matching the block list, or with too little evidence
    block_list: list[str] = field(default_factory=lambda: [
        "weapon", "firearm", "gambling", "narcotics", "explicit"])
    plant_share: float = 0.0  # share of items given a blocked term in their title (planted set)
    min_evidence: int = 1  # fewer anchors + RAG queries than this -> [REJECT]
    # suggestion and metrics (OneBar §5.1)
    k: int = 8  # suggestions per trigger (OneBar: beam 8)
    ks: list[int] = field(default_factory=lambda: [1, 4, 8])
    max_distance: int = 2  # ED-HR@K: Levenshtein distance counted as a hit (OneBar: 2)
    format: Literal["schema", "verbose"] = "schema"  # [SEP] schema or instruction prompt (Table 4)
    decontaminate: bool = False  # OneBar §5.1: drop eval evidence containing the target query
    seed: int = 0

    def check(self) -> None:
        unknown = sorted(set(self.anchor_sources) - set(ANCHOR_SOURCES))
        if unknown:
            raise ValueError(f"anchor_sources {unknown} unknown; known: {list(ANCHOR_SOURCES)}")
        if self.k < max(self.ks, default=1):
            raise ValueError(f"k = {self.k} < max(ks) = {max(self.ks)}: HR@K needs K suggestions")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None
                ) -> OneBarConfig:
    """Defaults, updated by the TOML at ``path`` and then ``key=value`` overrides."""
    return config_mod.load(OneBarConfig, path, overrides)
