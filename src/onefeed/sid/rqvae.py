"""RQ-VAE tokenizer (TIGER §3.1, Rajput et al. 2023): MLP encoder -> residual quantiser -> MLP
decoder, trained on reconstruction + codebook/commitment losses with a straight-through estimator.

Defaults follow TIGER: encoder 512-256-128 -> 32-d latent, 3 levels x 256 codes, beta = 0.25.
Codebooks are initialised by residual k-means on the first latent pass (TIGER's k-means init)
and codes unused during an epoch are reset to random current residuals (dead-code reset).
Training is deterministic given the seed (CPU, fixed batch order from a seeded generator), and
runs under ``torchrun`` with DDP (``onefeed.distributed``): the same result within float error
for any world size (bench/results/ddp-worldsize.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onefeed.distributed import all_sum, dist_info, gather_rows, split_rows, wrap
from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig


@dataclass
class RQVAEConfig:
    RANGES: ClassVar[dict[str, str]] = {"levels": ">= 1", "codebook_size": ">= 2",
        "latent_dim": ">= 1", "hidden": ">= 1", "beta": ">= 0", "lr": "> 0", "epochs": ">= 1",
        "batch_size": ">= 1", "reset_every": ">= 0", "threads": ">= 1"}
    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [512, 256, 128])
    beta: float = 0.25  # commitment weight
    lr: float = 1e-3
    epochs: int = 200
    batch_size: int = 1024
    reset_every: int = 10  # epochs between dead-code resets (0 = never)
    seed: int = 0
    threads: int = 1  # torch threads while training (small MLPs thrash with more on 2 cores)


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers of widths ``dims`` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """encoder (d_in -> latent), ``levels`` codebooks (k, latent), decoder (latent -> d_in)."""

    def __init__(self, input_dim: int, cfg: RQVAEConfig):
        super().__init__()
        self.input_dim, self.cfg = input_dim, cfg
        self.encoder = mlp([input_dim, *cfg.hidden, cfg.latent_dim])
        self.decoder = mlp([cfg.latent_dim, *reversed(cfg.hidden), input_dim])
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.zeros(cfg.codebook_size, cfg.latent_dim)) for _ in
             range(cfg.levels)])

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 list[torch.Tensor]]:
        """z (B, latent) -> (codes (B, L), z_q (B, latent), rq loss, residuals per level)."""
        residual, z_q, loss = z, torch.zeros_like(z), z.new_zeros(())
        codes, residuals = [], []
        for book in self.codebooks:
            residuals.append(residual)
            code = torch.cdist(residual.detach(), book.detach()).argmin(1)
            e = book[code]
            # codebook term moves e to the residual; commitment term (beta) the residual to e
            loss = loss + ((residual.detach() - e) ** 2).sum(1).mean() + self.cfg.beta * (
                (residual - e.detach()) ** 2).sum(1).mean()
            z_q = z_q + e
            residual = residual - e.detach()
            codes.append(code)
        z_q = z + (z_q - z).detach()  # straight-through
        return torch.stack(codes, 1), z_q, loss, residuals

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 list[torch.Tensor]]:
        """x (B, d_in) -> (reconstruction, codes, rq loss, residuals)."""
        codes, z_q, rq_loss, residuals = self.quantise(self.encoder(x))
        return self.decoder(z_q), codes, rq_loss, residuals

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d_in) -> codes (n, levels) int64."""
        codes, _, _, _ = self.quantise(self.encoder(torch.as_tensor(x, dtype=torch.float32)))
        return codes.numpy().astype(np.int64)

    @torch.no_grad()
    def latent_errors(self, x: np.ndarray) -> list[float]:
        """Mean squared latent residual ||z - sum_{j<=l} e_j||^2 after each level l."""
        z = self.encoder(torch.as_tensor(x, dtype=torch.float32))
        codes, _, _, _ = self.quantise(z)
        errs, acc = [], torch.zeros_like(z)
        for level, book in enumerate(self.codebooks):
            acc = acc + book[codes[:, level]]
            errs.append(float(((z - acc) ** 2).sum(1).mean()))
        return errs

    @torch.no_grad()
    def reconstruction_error(self, x: np.ndarray) -> float:
        xt = torch.as_tensor(x, dtype=torch.float32)
        recon, _, _, _ = self(xt)
        return float(((recon - xt) ** 2).sum(1).mean())

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path),
                  metadata={"config": json.dumps(asdict(self.cfg)), "kind": "rqvae",
                            "input_dim": str(self.input_dim)})

    @classmethod
    def load(cls, path: str | Path) -> "RQVAE":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
        model = cls(int(meta["input_dim"]), RQVAEConfig(**json.loads(meta["config"])))
        model.load_state_dict(load_file(str(path)))
        return model.eval()


@torch.no_grad()
def _kmeans_init(model: RQVAE, x: torch.Tensor, seed: int) -> None:
    z = model.encoder(x).numpy()
    rq = RQKMeans.fit(z, RQKMeansConfig(model.cfg.levels, model.cfg.codebook_size, 10, seed))
    for book, c in zip(model.codebooks, rq.centroids):
        book.zero_()
        book[: c.shape[0]] = torch.as_tensor(c)
        if c.shape[0] < book.shape[0]:  # fewer distinct latents than codes: jitter copies
            extra = book.shape[0] - c.shape[0]
            g = torch.Generator().manual_seed(seed)
            pick = torch.randint(0, c.shape[0], (extra,), generator=g)
            book[c.shape[0]:] = torch.as_tensor(c)[pick] + 1e-3 * torch.randn(
                extra, c.shape[1], generator=g)


@torch.no_grad()
def _reset_dead(model: RQVAE, used: list[torch.Tensor], residuals: list[torch.Tensor],
                g: torch.Generator) -> int:
    """Unused codes take the value of random residuals from the last batch. Returns #reset."""
    total = 0
    for book, mask, res in zip(model.codebooks, used, residuals):
        dead = (~mask).nonzero().flatten()
        if dead.numel() == 0:
            continue
        pick = torch.randint(0, res.shape[0], (dead.numel(),), generator=g)
        book[dead] = res.detach()[pick]
        total += int(dead.numel())
    return total


def train_rqvae(x: np.ndarray, cfg: RQVAEConfig, progress: bool = True) -> tuple[RQVAE, dict]:
    """Fit an RQ-VAE on training vectors (n, d). Returns (model in eval mode, training log)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        return _train(x, cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _train(x: np.ndarray, cfg: RQVAEConfig, progress: bool) -> tuple[RQVAE, dict]:
    """One loop for one process and for torchrun: under DDP every rank draws the same batches
    (same generator), takes rows ``rank::world`` of each and scales its loss by its share, so
    the averaged gradient is the full batch's; dead-code resets use every rank's codes and
    residuals (gathered), so ranks stay identical and match one process within float error."""
    from rich.progress import Progress

    rank, world = dist_info()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    model = RQVAE(xt.shape[1], cfg)
    _kmeans_init(model, xt, cfg.seed)
    step = wrap(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, resets, log, epoch_losses = time.perf_counter(), 0, {}, []
    with Progress(disable=not progress or rank != 0, transient=True) as bar:
        task = bar.add_task("training RQ-VAE", total=cfg.epochs)
        for epoch in range(cfg.epochs):
            used = [torch.zeros(cfg.codebook_size, dtype=torch.bool) for _ in range(cfg.levels)]
            perm = torch.randperm(xt.shape[0], generator=g)
            total, batches = 0.0, 0
            for s in range(0, xt.shape[0], cfg.batch_size):
                rows = perm[s:s + cfg.batch_size]
                mine = rows[rank::world]
                share = mine.numel() * world / rows.numel()  # 1 in a single process
                batch = xt[mine if mine.numel() else rows[:1]]  # an empty share still syncs
                recon, codes, rq_loss, residuals = step(batch)
                recon_loss = ((recon - batch) ** 2).sum(1).mean()
                loss = (recon_loss + rq_loss) * share
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, batches = total + float(loss.detach()) * bool(mine.numel()), batches + 1
                if mine.numel():
                    for level in range(cfg.levels):
                        used[level][codes[:, level]] = True
            if cfg.reset_every and (epoch + 1) % cfg.reset_every == 0 and epoch + 1 < cfg.epochs:
                if world > 1:
                    used, residuals = _gather_last(used, residuals, rows.numel(), mine.numel(),
                                                   world)
                resets += _reset_dead(model, used, residuals, g)
            epoch_losses.append(float(all_sum(np.array([total]))[0]) / world / batches)
            bar.advance(task)
    model.eval()
    log.update(epoch_losses=epoch_losses, seconds=time.perf_counter() - start,
               dead_code_resets=resets,
               final_recon=float(recon_loss.detach()), final_rq=float(rq_loss.detach()),
               reconstruction_error=model.reconstruction_error(x), world_size=world)
    return model, log


def _gather_last(used: list[torch.Tensor], residuals: list[torch.Tensor], n: int, mine: int,
                 world: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Codes used on any rank, and the last batch's residuals of every rank in batch order
    (row i of the batch was on rank i % world), as one process would have them."""
    used_any = all_sum(torch.stack(used).double().numpy()) > 0
    rows = split_rows(n, world)
    full = []
    for res in residuals:
        parts = gather_rows(res[:mine], rows)
        merged = res.new_empty((n, res.shape[1]))
        for r, part in enumerate(parts):
            merged[r::world] = part
        full.append(merged)
    return [torch.as_tensor(u) for u in used_any], full
