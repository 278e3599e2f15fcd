"""Cross-task ID layouts from the Spotify paper (§3.2) built from already-quantised codes.

* ``separate``: <SEARCH: ID_search, REC: ID_rec> — the two task-specific IDs concatenated; the
  generative model's vocabulary keeps the two halves apart (each level is its own codebook).
* ``prefix_share``: shared codes followed by both task-specific parts,
  [shared…, search-specific…, rec-specific…], from the GenSAR joint quantiser's outputs.
"""

from __future__ import annotations

import numpy as np


def separate(search_codes: np.ndarray, search_sizes: tuple[int, ...], rec_codes: np.ndarray,
             rec_sizes: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """(n, L_s) + (n, L_r) -> ((n, L_s + L_r), sizes)."""
    if search_codes.shape[0] != rec_codes.shape[0]:
        raise ValueError(f"separate: {search_codes.shape[0]} vs {rec_codes.shape[0]} items")
    return (np.concatenate([search_codes, rec_codes], axis=1).astype(np.int64),
            tuple(search_sizes) + tuple(rec_sizes))


def prefix_share(semantic_id: np.ndarray, collab_id: np.ndarray, shared_levels: int,
                 semantic_sizes: tuple[int, ...], collab_sizes: tuple[int, ...]
                 ) -> tuple[np.ndarray, tuple[int, ...]]:
    """[shared, semantic-specific, collaborative-specific] from two IDs sharing a prefix."""
    if not np.array_equal(semantic_id[:, :shared_levels], collab_id[:, :shared_levels]):
        raise ValueError("prefix_share: the two IDs do not share their first "
                         f"{shared_levels} levels")
    codes = np.concatenate([semantic_id, collab_id[:, shared_levels:]], axis=1)
    return codes.astype(np.int64), tuple(semantic_sizes) + tuple(collab_sizes[shared_levels:])
