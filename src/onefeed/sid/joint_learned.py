"""GenSAR joint identifier with the learned objective (GenSAR §3.2.1-3.2.3, Eq. 2-10).

``joint.method = "learned"``. Two MLP encoders map the (L2-normalised) semantic and
collaborative embeddings to ``d``-dim latents (Eq. 2); ``L_m`` shared residual codebooks of
``2d``-dim codes quantise ``[z_s; z_c]`` (Eq. 3); the two halves of the shared residual go
through ``L_n`` semantic- and ``L_n`` collaborative-specific ``d``-dim codebooks (Eq. 4),
giving ``I_{m+s}`` and ``I_{m+c}`` (Eq. 5). ``ẑ_s``/``ẑ_c`` (Eq. 6) are decoded by two MLPs
(Eq. 7) and the model is trained on reconstruction (Eq. 8) + codebook/commitment terms with
weight ``alpha`` (Eq. 9), summed (Eq. 10), with straight-through gradients to the encoders.

Codebooks start from residual k-means over the first latent pass (as TIGER's RQ-VAE) and codes
unused during ``reset_every`` epochs are reset to random current residuals. CPU, one thread,
seeded batch order: the same inputs and seed give the same codes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn

from onefeed.embeddings.fusion import l2_normalise
from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig
from onefeed.sid.rqvae import mlp

if TYPE_CHECKING:
    from onefeed.sid.joint import JointConfig


@dataclass
class LearnedJointConfig:
    RANGES: ClassVar[dict[str, str]] = {"hidden": ">= 1", "alpha": ">= 0", "lr": "> 0",
        "epochs": ">= 1", "batch_size": ">= 1", "reset_every": ">= 0", "threads": ">= 1"}
    hidden: list[int] = field(default_factory=lambda: [256, 128])  # encoder MLP widths
    alpha: float = 0.25  # commitment weight (Eq. 9)
    lr: float = 1e-3
    epochs: int = 100
    batch_size: int = 1024
    reset_every: int = 10  # epochs between dead-code resets (0 = never)
    threads: int = 1


def _books(levels: int, size: int, dim: int) -> nn.ParameterList:
    return nn.ParameterList([nn.Parameter(torch.zeros(size, dim)) for _ in range(levels)])


def residual_quantise(r: torch.Tensor, books: nn.ParameterList, alpha: float):
    """Eq. 3/4 + one part of Eq. 9 over ``books``. r: (B, D).

    Returns (codes (B, L), quantised sum (B, D), loss, residual entering each level, final
    residual (B, D)). Nearest code by squared L2, ties to the lowest index.
    """
    codes, inputs = [], []
    q = torch.zeros_like(r)
    loss = r.new_zeros(())
    for book in books:
        inputs.append(r)
        code = torch.cdist(r.detach(), book.detach()).argmin(1)
        e = book[code]
        loss = loss + ((r.detach() - e) ** 2).sum(1).mean() + alpha * (
            (r - e.detach()) ** 2).sum(1).mean()
        q = q + e
        r = r - e.detach()
        codes.append(code)
    empty = torch.zeros(r.shape[0], 0, dtype=torch.long)
    return (torch.stack(codes, 1) if codes else empty), q, loss, inputs, r


class LearnedJoint(nn.Module):
    """Encoders, shared + specific codebooks and decoders of GenSAR's joint identifier."""

    def __init__(self, d_s: int, d_c: int, cfg: "JointConfig"):
        super().__init__()
        self.d_s, self.d_c, self.cfg = d_s, d_c, cfg
        d, k, h = cfg.dim, cfg.codebook_size, list(cfg.learned.hidden)
        self.enc_s, self.enc_c = mlp([d_s, *h, d]), mlp([d_c, *h, d])
        self.dec_s, self.dec_c = mlp([d, *reversed(h), d_s]), mlp([d, *reversed(h), d_c])
        self.shared = _books(cfg.shared_levels, k, 2 * d)
        self.semantic = _books(cfg.specific_levels, k, d)
        self.collab = _books(cfg.specific_levels, k, d)

    @property
    def dim(self) -> int:
        return int(self.cfg.dim)

    def latents(self, v_s: torch.Tensor, v_c: torch.Tensor) -> torch.Tensor:
        """r^m_0 = [Encoder_s(v_s); Encoder_c(v_c)] -> (B, 2d)  (Eq. 2)."""
        return torch.cat([self.enc_s(v_s), self.enc_c(v_c)], 1)

    def quantise(self, r0: torch.Tensor):
        """(I_m (B, L_m), I_s, I_c, ẑ_s (B, d), ẑ_c (B, d), L_RQ, inputs per codebook)."""
        a, d = self.cfg.learned.alpha, self.dim
        m, q_m, loss_m, in_m, rest = residual_quantise(r0, self.shared, a)
        s, q_s, loss_s, in_s, _ = residual_quantise(rest[:, :d], self.semantic, a)
        c, q_c, loss_c, in_c, _ = residual_quantise(rest[:, d:], self.collab, a)
        z_s_hat = q_m[:, :d] + q_s  # Eq. 6
        z_c_hat = q_m[:, d:] + q_c
        return m, s, c, z_s_hat, z_c_hat, loss_m + loss_s + loss_c, (in_m, in_s, in_c)

    def forward(self, v_s: torch.Tensor, v_c: torch.Tensor):
        """-> (loss (Eq. 10), recon loss (Eq. 8), rq loss (Eq. 9), codes (m, s, c), inputs)."""
        r0 = self.latents(v_s, v_c)
        m, s, c, zs_hat, zc_hat, rq_loss, inputs = self.quantise(r0)
        d = self.dim
        zs_hat = r0[:, :d] + (zs_hat - r0[:, :d]).detach()  # straight-through
        zc_hat = r0[:, d:] + (zc_hat - r0[:, d:]).detach()
        recon = ((v_s - self.dec_s(zs_hat)) ** 2).sum(1).mean() + (
            (v_c - self.dec_c(zc_hat)) ** 2).sum(1).mean()
        return recon + rq_loss, recon, rq_loss, (m, s, c), inputs

    @torch.no_grad()
    def encode(self, v_s: np.ndarray, v_c: np.ndarray, train: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(I_{m+s}, I_{m+c}) each (n, L_m + L_n) int64 — Eq. 5. Every row (train or cold)
        gets its nearest codes; ``train`` is accepted for the k-means quantiser's interface."""
        vs, vc = _inputs(v_s), _inputs(v_c)
        m, s, c, *_ = self.quantise(self.latents(vs, vc))
        return (torch.cat([m, s], 1).numpy().astype(np.int64),
                torch.cat([m, c], 1).numpy().astype(np.int64))

    @torch.no_grad()
    def reconstruction_error(self, v_s: np.ndarray, v_c: np.ndarray) -> float:
        _, recon, _, _, _ = self(_inputs(v_s), _inputs(v_c))
        return float(recon)

    def codebook_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        k = self.cfg.codebook_size
        n = self.cfg.shared_levels + self.cfg.specific_levels
        return (k,) * n, (k,) * n

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()},
                  str(directory / "joint.safetensors"),
                  metadata={"config": json.dumps(asdict(self.cfg)), "kind": "joint_learned",
                            "d_s": str(self.d_s), "d_c": str(self.d_c)})

    @classmethod
    def load(cls, directory: str | Path) -> "LearnedJoint":
        from safetensors import safe_open
        from safetensors.torch import load_file

        from onefeed.sid.joint import joint_config

        path = Path(directory) / "joint.safetensors"
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
        model = cls(int(meta["d_s"]), int(meta["d_c"]), joint_config(json.loads(meta["config"])))
        model.load_state_dict(load_file(str(path)))
        return model.eval()


def _inputs(v: np.ndarray) -> torch.Tensor:
    """Inputs are L2-normalised so neither side's scale dominates the reconstruction loss."""
    return torch.as_tensor(l2_normalise(np.asarray(v, dtype=np.float32)))


@torch.no_grad()
def _set_book(book: torch.Tensor, centroids: np.ndarray, seed: int) -> None:
    k = centroids.shape[0]
    book[:k] = torch.as_tensor(centroids)
    if k < book.shape[0]:  # fewer distinct residuals than codes: jittered copies
        g = torch.Generator().manual_seed(seed)
        pick = torch.randint(0, k, (book.shape[0] - k,), generator=g)
        book[k:] = book[:k][pick] + 1e-3 * torch.randn(book.shape[0] - k, book.shape[1],
                                                       generator=g)


@torch.no_grad()
def kmeans_init(model: LearnedJoint, vs: torch.Tensor, vc: torch.Tensor, seed: int) -> None:
    """Every codebook from residual k-means over the untrained encoders' latents."""
    d = model.dim
    r0 = model.latents(vs, vc).numpy()

    def fit(x: np.ndarray, books: nn.ParameterList, s: int) -> np.ndarray:
        if not len(books):
            return x
        rq = RQKMeans.fit(x, RQKMeansConfig(len(books), model.cfg.codebook_size, 10, s))
        for level, (book, c) in enumerate(zip(books, rq.centroids)):
            _set_book(book.data, c, s + level)
        return x - rq.decode(rq.encode(x))

    rest = fit(r0, model.shared, seed)
    fit(rest[:, :d], model.semantic, seed + 100)
    fit(rest[:, d:], model.collab, seed + 200)


@torch.no_grad()
def reset_dead(books: list[torch.Tensor], used: list[torch.Tensor], inputs: list[torch.Tensor],
               g: torch.Generator) -> int:
    """Codes unused since the last reset take random residuals of the last batch. -> #reset."""
    total = 0
    for book, mask, res in zip(books, used, inputs):
        dead = (~mask).nonzero().flatten()
        if dead.numel():
            book[dead] = res.detach()[torch.randint(0, res.shape[0], (dead.numel(),),
                                                    generator=g)]
            total += int(dead.numel())
    return total


def train_joint(v_s: np.ndarray, v_c: np.ndarray, cfg: "JointConfig") -> tuple[LearnedJoint,
                                                                                 dict]:
    """Fit the learned joint identifier on training rows. -> (model in eval mode, log)."""
    if v_s.shape[0] != v_c.shape[0] or v_s.shape[0] == 0:
        raise ValueError(f"train_joint: {v_s.shape[0]} semantic vs {v_c.shape[0]} collab rows")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.learned.threads))
    try:
        return _train(v_s, v_c, cfg)
    finally:
        torch.set_num_threads(threads)


def _train(v_s: np.ndarray, v_c: np.ndarray, cfg: "JointConfig") -> tuple[LearnedJoint, dict]:
    lc = cfg.learned
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    vs, vc = _inputs(v_s), _inputs(v_c)
    model = LearnedJoint(vs.shape[1], vc.shape[1], cfg)
    kmeans_init(model, vs, vc, cfg.seed)
    books = [*model.shared, *model.semantic, *model.collab]
    opt = torch.optim.Adam(model.parameters(), lr=lc.lr)
    start, resets, losses, parts = time.perf_counter(), 0, [], []
    used = [torch.zeros(b.shape[0], dtype=torch.bool) for b in books]
    for epoch in range(lc.epochs):
        perm = torch.randperm(vs.shape[0], generator=g)
        total, recon_sum, rq_sum, n_batches = 0.0, 0.0, 0.0, 0
        for s in range(0, vs.shape[0], lc.batch_size):
            idx = perm[s:s + lc.batch_size]
            loss, recon, rq, (m, sc, cc), inputs = model(vs[idx], vc[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            codes = torch.cat([m, sc, cc], 1)
            for level, mask in enumerate(used):
                mask[codes[:, level]] = True
            total, n_batches = total + float(loss.detach()), n_batches + 1
            recon_sum, rq_sum = recon_sum + float(recon.detach()), rq_sum + float(rq.detach())
        losses.append(total / n_batches)
        parts.append((recon_sum / n_batches, rq_sum / n_batches))
        if lc.reset_every and (epoch + 1) % lc.reset_every == 0 and epoch + 1 < lc.epochs:
            flat = [*inputs[0], *inputs[1], *inputs[2]]
            resets += reset_dead([b.data for b in books], used, flat, g)
            used = [torch.zeros(b.shape[0], dtype=torch.bool) for b in books]
    model.eval()
    log = {"method": "learned", "seconds": time.perf_counter() - start,
           "dead_code_resets": resets, "loss_first_epoch": losses[0] if losses else None,
           "loss_last_epoch": losses[-1] if losses else None,
           "loss_by_epoch": [round(x, 5) for x in losses],
           # Eq. 8 and Eq. 9 terms apart: on Beauty the reconstruction keeps falling while the
           # RQ term rises with the latent norm (nothing in Eq. 10 fixes the latent scale)
           "recon_by_epoch": [round(r, 5) for r, _ in parts],
           "rq_by_epoch": [round(q, 5) for _, q in parts],
           "reconstruction_error": model.reconstruction_error(v_s, v_c)}
    return model, log
