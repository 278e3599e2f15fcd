"""Transformers over semantic IDs; ``build_config`` fills the data-dependent fields."""

from __future__ import annotations

import dataclasses

from onefeed.models.config import ModelConfig
from onefeed.models.encoder_decoder import EncoderDecoderRecommender
from onefeed.models.transformer import Events, GenerativeRecommender
from onefeed.tokens import Vocab

__all__ = ["ModelConfig", "Events", "GenerativeRecommender", "EncoderDecoderRecommender",
           "build_config", "build_model"]


def build_model(cfg: ModelConfig) -> GenerativeRecommender:
    """The model named by ``cfg.arch`` (decoder-only by default)."""
    if cfg.arch == "joint":
        from onefeed.models.joint import JointModel

        return JointModel(cfg)
    if cfg.arch == "encoder_decoder":
        return EncoderDecoderRecommender(cfg)
    return GenerativeRecommender(cfg)


def build_config(cfg: ModelConfig, vocab: Vocab, n_items: int) -> ModelConfig:
    """``cfg`` with codebook sizes, vocab size and offsets taken from ``vocab``.

    Without ``cfg.words`` the embedding table stops before the word-piece range.
    """
    return dataclasses.replace(cfg, codebook_sizes=tuple(vocab.codebook_sizes), n_items=n_items,
                               vocab_size=vocab.size if cfg.words else vocab.word_offset,
                               sid_offsets=tuple(vocab.sid_offsets),
                               behaviour_offset=vocab.behaviour_offset)
