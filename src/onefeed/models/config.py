"""Typed model config (like nanoGPT's ``GPTConfig``); the model is rebuilt from it alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass
class ModelConfig:
    RANGES: ClassVar[dict[str, str]] = {"d_model": ">= 1", "n_layers": ">= 1", "n_heads": ">= 1",
        "d_ff": ">= 1", "dropout": "[0, 1)", "max_len": ">= 1", "n_strength_buckets": ">= 1",
        "head_mult": ">= 1", "text_layers": ">= 0", "max_text_len": ">= 1",
        "adapter_dim": ">= 1"}
    # architecture
    arch: Literal["decoder_only", "encoder_decoder", "joint"] = "decoder_only"
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 512
    dropout: float = 0.2
    max_len: int = 20  # history events the model sees (TIGER protocol: 20)
    code_combine: Literal["sum", "concat"] = "sum"  # how an item's per-level code embeddings merge
    item_embedding: bool = True  # add a per-item id embedding to the event (inputs only)
    strength_embedding: bool = False  # OneFeed Eq. 5 e^reward: bucketed feedback strength
    n_strength_buckets: int = 6
    tie_code_embeddings: bool = True  # level-j output head reuses the level-j input code table
    words: bool = False  # embed word-piece tokens too (query text; the joint tasks need it)
    head_mult: int = 1  # hidden width of each per-level head MLP, in multiples of d_model
    # joint model (arch = "joint", onefeed.models.joint)
    task_tokens: bool = True  # add the task token's embedding to the state a head reads
    text_layers: int = 1  # causal blocks of the text head (NSQP, ID2DESC)
    max_text_len: int = 24  # longest word-piece sequence the text head reads or writes
    # per-task layers between the shared encoder and each task's heads (OneFeed §3.3
    # multi-head): "adapter" = LayerNorm + bottleneck MLP (adapter_dim), residual, starting as
    # the identity; "block" = one more transformer block per task over the shared states
    task_adapters: Literal["none", "adapter", "block"] = "none"
    adapter_dim: int = 32  # bottleneck width of "adapter"
    # filled from the data at build time (saved with every checkpoint)
    codebook_sizes: tuple[int, ...] = ()
    n_items: int = 0
    vocab_size: int = 0
    sid_offsets: tuple[int, ...] = ()
    behaviour_offset: int = 5
    n_text_vocab: int = 0  # joint: EOS + word pieces seen in training text
    rec_cols: tuple[int, ...] = ()  # joint: code columns of the rec identifier (() = all)
    search_cols: tuple[int, ...] = ()  # joint: code columns of the search identifier
