"""GenSAR joint search-and-recommendation identifier (GenSAR §3.2, Eq. 2-5).

Each item gets two identifiers that share an ``L_m``-level prefix:

    I_{m+s} = [c^m_1..c^m_{L_m}, c^s_1..c^s_{L_n}]   (semantic; used for search clicks)
    I_{m+c} = [c^m_1..c^m_{L_m}, c^c_1..c^c_{L_n}]   (collaborative; used for rec clicks)

Eq. 2's encoders are replaced by a fitted linear map: each side is projected to ``d`` dims by an
uncentred truncated SVD (fitted on training items) and L2-normalised, so the two halves weigh
the same. Eq. 3 (shared codebooks over ``[z_s; z_c]``) and Eq. 4 (specific codebooks over the
two halves of the shared residual) are then fitted by residual k-means (``RQKMeans``) instead of
the RQ-VAE losses of Eq. 6-10: k-means minimises the same codebook term (the squared distance of
residuals to their code vectors) without the learned encoder/decoder. ``joint.method =
"learned"`` selects the learned version with GenSAR's losses (``onefeed.sid.joint_learned``);
``fit_joint`` / ``load_joint`` dispatch between the two.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from onefeed.embeddings.fusion import l2_normalise
from onefeed.sid.joint_learned import LearnedJointConfig
from onefeed.sid.rq_kmeans import RQKMeans, RQKMeansConfig


@dataclass
class JointConfig:
    RANGES: ClassVar[dict[str, str]] = {"shared_levels": ">= 1", "specific_levels": ">= 0",
        "codebook_size": ">= 2", "dim": ">= 1", "niter": ">= 1"}
    method: Literal["kmeans", "learned"] = "kmeans"  # kmeans: this module; learned: joint_learned
    shared_levels: int = 2  # L_m
    specific_levels: int = 1  # L_n
    codebook_size: int = 256
    dim: int = 64  # d: width of each half (capped at the narrower input)
    niter: int = 25
    seed: int = 0
    balanced: bool = True  # balanced RQ-KMeans at every level (see rq_kmeans)
    learned: LearnedJointConfig = field(default_factory=LearnedJointConfig)  # method "learned"


def joint_config(data: dict) -> JointConfig:
    """A JointConfig from saved plain data; keys added since (method, learned) take defaults."""
    from onefeed import config

    return config.from_dict(JointConfig, config._merge(asdict(JointConfig()), data))


def fit_projection(x: np.ndarray, dim: int) -> np.ndarray:
    """(d_in, min(dim, d_in)) top right-singular vectors of x (uncentred), signs fixed."""
    dim = min(dim, x.shape[1])
    _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    v = vt[:dim].T
    idx = np.abs(v).argmax(axis=0)
    v = v * np.where(v[idx, np.arange(v.shape[1])] < 0, -1.0, 1.0)
    if v.shape[1] < dim:
        v = np.pad(v, ((0, 0), (0, dim - v.shape[1])))
    return np.ascontiguousarray(v, dtype=np.float32)


class JointQuantiser:
    """Projections P_s, P_c, shared codebooks (2d-dim) and specific codebooks (d-dim)."""

    def __init__(self, proj_s: np.ndarray, proj_c: np.ndarray, shared: RQKMeans,
                 semantic: RQKMeans, collab: RQKMeans, config: JointConfig):
        self.proj_s, self.proj_c = proj_s, proj_c
        self.shared, self.semantic, self.collab, self.config = shared, semantic, collab, config

    @property
    def dim(self) -> int:
        return int(self.proj_s.shape[1])

    def latents(self, v_s: np.ndarray, v_c: np.ndarray) -> np.ndarray:
        """r^m_0 = [z_s; z_c] -> (n, 2d)."""
        return np.concatenate([l2_normalise(v_s @ self.proj_s), l2_normalise(v_c @ self.proj_c)],
                              axis=1)

    @classmethod
    def fit(cls, v_s: np.ndarray, v_c: np.ndarray, cfg: JointConfig) -> "JointQuantiser":
        dim = min(cfg.dim, v_s.shape[1], v_c.shape[1])
        proj_s, proj_c = fit_projection(v_s, dim), fit_projection(v_c, dim)
        r0 = np.concatenate([l2_normalise(v_s @ proj_s), l2_normalise(v_c @ proj_c)], axis=1)
        def rq(levels: int, seed: int) -> RQKMeansConfig:
            return RQKMeansConfig(levels, cfg.codebook_size, cfg.niter, seed, cfg.balanced)

        shared = RQKMeans.fit(r0, rq(cfg.shared_levels, cfg.seed))
        everything = np.ones(r0.shape[0], dtype=bool)
        rest = r0 - shared.decode(shared.encode_split(r0, everything))  # r^m_{L_m}
        semantic = RQKMeans.fit(rest[:, :dim], rq(cfg.specific_levels, cfg.seed + 100))
        collab = RQKMeans.fit(rest[:, dim:], rq(cfg.specific_levels, cfg.seed + 200))
        return cls(proj_s, proj_c, shared, semantic, collab, cfg)

    def encode(self, v_s: np.ndarray, v_c: np.ndarray, train: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(semantic ID (n, L_m+L_n), collaborative ID (n, L_m+L_n)) — Eq. 5.

        ``train`` marks the rows ``fit`` saw (given in the same order): they get the balanced
        codes ``fit`` assigned; other rows (default: all) get nearest-centroid codes.
        """
        train = np.zeros(v_s.shape[0], dtype=bool) if train is None else train
        r0 = self.latents(v_s, v_c)
        shared = self.shared.encode_split(r0, train)
        rest = r0 - self.shared.decode(shared)
        sem = self.semantic.encode_split(rest[:, :self.dim], train)
        col = self.collab.encode_split(rest[:, self.dim:], train)
        return np.concatenate([shared, sem], 1), np.concatenate([shared, col], 1)

    def codebook_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Codebook sizes of (I_{m+s}, I_{m+c})."""
        return (self.shared.codebook_sizes + self.semantic.codebook_sizes,
                self.shared.codebook_sizes + self.collab.codebook_sizes)

    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"proj_s": np.ascontiguousarray(self.proj_s),
                   "proj_c": np.ascontiguousarray(self.proj_c)},
                  str(directory / "joint.safetensors"),
                  metadata={"config": json.dumps(asdict(self.config)), "kind": "joint"})
        self.shared.save(directory / "joint_shared.safetensors")
        self.semantic.save(directory / "joint_semantic.safetensors")
        self.collab.save(directory / "joint_collab.safetensors")

    @classmethod
    def load(cls, directory: str | Path) -> "JointQuantiser":
        from safetensors import safe_open

        directory = Path(directory)
        with safe_open(str(directory / "joint.safetensors"), framework="numpy") as fh:
            cfg = joint_config(json.loads(fh.metadata()["config"]))
            proj_s, proj_c = fh.get_tensor("proj_s"), fh.get_tensor("proj_c")
        return cls(proj_s, proj_c, RQKMeans.load(directory / "joint_shared.safetensors"),
                   RQKMeans.load(directory / "joint_semantic.safetensors"),
                   RQKMeans.load(directory / "joint_collab.safetensors"), cfg)


def fit_joint(v_s: np.ndarray, v_c: np.ndarray, cfg: JointConfig):
    """Fit the joint quantiser ``cfg.method`` names on training rows. Returns (quantiser, log);
    both kinds expose ``encode(v_s, v_c, train)``, ``codebook_sizes()`` and ``save(dir)``."""
    if cfg.method == "learned":
        from onefeed.sid.joint_learned import train_joint

        return train_joint(v_s, v_c, cfg)
    return JointQuantiser.fit(v_s, v_c, cfg), {"method": "kmeans"}


def load_joint(directory: str | Path):
    """Load whichever joint quantiser ``save`` wrote into ``directory``."""
    from safetensors import safe_open

    with safe_open(str(Path(directory) / "joint.safetensors"), framework="numpy") as fh:
        kind = (fh.metadata() or {}).get("kind")
    if kind == "joint_learned":
        from onefeed.sid.joint_learned import LearnedJoint

        return LearnedJoint.load(directory)
    return JointQuantiser.load(directory)
