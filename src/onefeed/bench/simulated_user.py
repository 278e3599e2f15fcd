"""A simulated user of the synthetic world: responds to a served list from ground truth.

Position-based click model (Craswell et al. 2008; Joachims et al. 2017): the item at 0-based
position ``p`` is *examined* with probability ``exam(p) = 1 / log2(p + 2)`` (1 at the top),
and an examined item is *clicked* with its attractiveness

    attract(u, i) = min(1, click_on + click_gain * rel(u, i))   if rel(u, i) > 0
                    click_off                                    otherwise

where ``rel(u, i)`` is the summed Dirichlet weight of the user's current ground-truth interests
(``SyntheticWorld.user_interests[u, phase]``) equal to the item's leaf. So
``P(click) = exam(p) * attract``; an examined item that is not clicked is a *skip* (scrolled
past); an unexamined one is only an impression. A click dwells ``dwell_ms`` milliseconds,
log-normal with median ``dwell_median_ms * (1 + rel)``.

Pure: the response is a function of the world, the lists and the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from onefeed.data.synthetic import SyntheticWorld


@dataclass
class UserConfig:
    RANGES: ClassVar[dict[str, str]] = {"click_on": "[0, 1]", "click_gain": ">= 0",
                                        "click_off": "[0, 1]", "dwell_median_ms": "> 0",
                                        "dwell_sigma": ">= 0"}
    click_on: float = 0.3  # attractiveness of an on-interest item, plus ...
    click_gain: float = 0.6  # ... this times the interest's weight
    click_off: float = 0.02  # attractiveness of an off-interest item
    dwell_median_ms: float = 8000.0
    dwell_sigma: float = 0.5  # of log dwell


class Response(NamedTuple):
    examined: np.ndarray  # (n, K) bool
    clicked: np.ndarray  # (n, K) bool (implies examined)
    dwell_ms: np.ndarray  # (n, K) int, 0 where not clicked

    @property
    def skipped(self) -> np.ndarray:
        return self.examined & ~self.clicked


def examination(k: int) -> np.ndarray:
    """(k,) examination probability of positions 0..k-1: 1 / log2(p + 2)."""
    return 1.0 / np.log2(np.arange(k) + 2.0)


class SimulatedUser:
    """``respond(users, lists, rng)``: the click model above for world ``world`` at ``phase``
    (default: the last phase, the users' current interests)."""

    def __init__(self, world: SyntheticWorld, cfg: UserConfig | None = None,
                 phase: int | None = None) -> None:
        self.world, self.cfg = world, cfg or UserConfig()
        n_phases = world.user_interests.shape[1]
        self.phase = n_phases - 1 if phase is None else phase
        if not 0 <= self.phase < n_phases:
            raise ValueError(f"phase {phase}: the world has phases 0..{n_phases - 1}")

    def relevance(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, K) summed interest weight of each item's leaf for its row's user (0 = off
        interest); ``items`` -1 (empty slot) -> 0."""
        users, items = np.asarray(users), np.asarray(items)
        interests = self.world.user_interests[users, self.phase]  # (n, I)
        weights = self.world.user_weights[users]  # (n, I)
        leaf = np.where(items >= 0, self.world.item_leaf[np.maximum(items, 0)], -1)
        match = leaf[:, :, None] == interests[:, None, :]  # (n, K, I)
        return (match * weights[:, None, :]).sum(-1) * (items >= 0)

    def attractiveness(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        rel = self.relevance(users, items)
        c = self.cfg
        a = np.where(rel > 0, np.minimum(1.0, c.click_on + c.click_gain * rel), c.click_off)
        return np.where(np.asarray(items) >= 0, a, 0.0)

    def click_probability(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, K) P(click) = exam(position) * attractiveness."""
        items = np.asarray(items)
        return examination(items.shape[1])[None, :] * self.attractiveness(users, items)

    def respond(self, users: np.ndarray, items: np.ndarray, rng: np.random.Generator
                ) -> Response:
        items = np.asarray(items)
        n, k = items.shape
        real = items >= 0
        examined = (rng.random((n, k)) < examination(k)[None, :]) & real
        clicked = examined & (rng.random((n, k)) < self.attractiveness(users, items))
        rel = self.relevance(users, items)
        median = self.cfg.dwell_median_ms * (1.0 + rel)
        dwell = np.exp(np.log(median) + self.cfg.dwell_sigma * rng.standard_normal((n, k)))
        dwell_ms = np.where(clicked, np.minimum(np.round(dwell), 86_400_000), 0).astype(np.int64)
        return Response(examined, clicked, dwell_ms)
