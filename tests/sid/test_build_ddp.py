"""``torchrun -m onefeed sid build`` (2 gloo processes): the RQ-VAE trains in DDP, rank 0 alone
writes the SID directory, and the codes equal a one-process build's. (Without dead-code resets:
a reset copies residuals into codes, which can make exact ties between codes that float error
breaks either way on a dataset this small; bench/results/ddp-worldsize.md measures the RQ-VAE
with resets.)"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import onefeed
from onefeed.sid.table import SidTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_tiny_dataset  # noqa: E402

SEQS = [[(u * 3 + i) % 12 for i in range(5 + u % 4)] for u in range(24)]
SETS = ["codebook_size=4", "levels=2", "rqvae.epochs=6", "rqvae.hidden=[16]",
        "rqvae.latent_dim=4", "rqvae.batch_size=5", "rqvae.reset_every=0", "collab.dim=4"]


def _build(tmp_path: Path, out: Path, world: int, port: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(Path(onefeed.__file__).parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
           "--master_port", str(port), "-m", "onefeed", "sid", "build", "--data",
           str(tmp_path / "data"), "--out", str(out), "--strategy", "collaborative",
           "--quantizer", "rqvae", "--quiet", *[a for s in SETS for a in ("--set", s)]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_sid_build_under_torchrun_matches_one_process(tmp_path, free_port):
    make_tiny_dataset(SEQS, 12).save(tmp_path / "data")
    one = _build(tmp_path, tmp_path / "sid1", 1, free_port)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _build(tmp_path, tmp_path / "sid2", 2, free_port)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = SidTable.load(tmp_path / "sid1"), SidTable.load(tmp_path / "sid2")
    assert np.array_equal(a.codes, b.codes) and a.codebook_sizes == b.codebook_sizes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sid1", "sid2"]
