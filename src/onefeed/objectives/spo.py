"""Search Preference Optimisation (UniSearch §3.3, Eq. 7-8), GRPO-style.

For each query, G candidates ``S_i`` (code tuples of k tokens) are generated and rewarded;
the loss is

    L_SPO = -1/G sum_i 1/k sum_n ( pi(s_i^n) / pi_nograd(s_i^n) * A_i - beta * KL_n )

with group-normalised advantages ``A_i = (R_i - mean R) / std R`` (Eq. 7). The ratio's value
is 1 on-policy and its gradient is that of log pi (Eq. 8 uses ``pi_no_grad``); a PPO clip
(``clip``) is optional — the paper has none — and applies when ``old_logp`` comes from an
earlier policy. The per-token KL to the reference is GRPO's (DeepSeekMath Eq. 4) unbiased
estimator ``pi_ref/pi - log(pi_ref/pi) - 1`` on the sampled tokens (:func:`token_kl`).
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(Q, G) rewards -> (Q, G) ``(R - mean) / std`` within each query's group (UniSearch
    Eq. 7; population std). A group whose rewards are all equal gets advantage 0."""
    r = rewards.float()
    centred = r - r.mean(dim=-1, keepdim=True)
    std = r.std(dim=-1, unbiased=False, keepdim=True)
    return torch.where(std > eps, centred / std.clamp(min=eps), torch.zeros_like(centred))


def token_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate on sampled tokens (GRPO):
    ``exp(ref - logp) - (ref - logp) - 1`` >= 0, zero where the two agree."""
    diff = ref_logp - logp
    return torch.exp(diff) - diff - 1.0


def spo_loss(logp: torch.Tensor, advantages: torch.Tensor, ref_logp: torch.Tensor, beta: float,
             old_logp: torch.Tensor | None = None, clip: float | None = None,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """UniSearch Eq. 8, averaged over queries.

    logp (Q, G, k) per-token log-probs of the candidates under the policy (with grad);
    advantages (Q, G); ref_logp (Q, G, k) under the frozen reference; ``old_logp`` (Q, G, k)
    the policy that generated them (default ``logp.detach()``: on-policy, ratio = 1);
    ``clip``: PPO's ``min(r A, clip(r, 1 +- clip) A)`` (None = Eq. 8 as written); ``mask``
    (Q, G, k) bool, False for tokens that do not count (e.g. padding of missing candidates).
    """
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)
    adv = advantages.unsqueeze(-1).to(ratio.dtype)
    gain = ratio * adv
    if clip is not None:
        gain = torch.minimum(gain, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
    per_token = gain - beta * token_kl(logp, ref_logp)  # (Q, G, k)
    if mask is None:
        return -per_token.mean(dim=-1).mean(dim=-1).mean()
    m = mask.to(per_token.dtype)
    per_cand = (per_token * m).sum(-1) / m.sum(-1).clamp(min=1)  # 1/k sum_n
    n_cand = (m.sum(-1) > 0).to(per_token.dtype)
    return -((per_cand * n_cand).sum(-1) / n_cand.sum(-1).clamp(min=1)).mean()
