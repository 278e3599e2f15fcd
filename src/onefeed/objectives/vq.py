"""Vector-quantisation losses (VQ-VAE, van den Oord et al. 2017; UniSearch §3.2, Eq. 3)."""

from __future__ import annotations

import torch


def codebook_losses(latents: torch.Tensor, quantised: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """UniSearch Eq. 3's two terms, summed over levels and averaged over rows.

    latents d, quantised e: (N, L, D) -> (codebook ``||sg[d] - e||^2``, commitment
    ``||d - sg[e]||^2``); the caller weighs them (alpha_1, alpha_2). With an EMA codebook the
    first term has no parameter to move and is only reported."""
    codebook = (latents.detach() - quantised).pow(2).sum(-1).sum(-1).mean()
    commit = (latents - quantised.detach()).pow(2).sum(-1).sum(-1).mean()
    return codebook, commit


def straight_through(latents: torch.Tensor, quantised: torch.Tensor) -> torch.Tensor:
    """Value of ``quantised``, gradient of ``latents`` (the straight-through estimator)."""
    return latents + (quantised - latents).detach()
