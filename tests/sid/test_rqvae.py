import numpy as np
import torch

from onefeed.sid.rqvae import RQVAE, RQVAEConfig, train_rqvae

CFG = RQVAEConfig(levels=3, codebook_size=16, latent_dim=8, hidden=[32], epochs=15,
                  batch_size=64, reset_every=5, seed=3)


def data(n=256, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, dim)) * 3
    return (centres[rng.integers(0, 6, n)] + rng.standard_normal((n, dim)) * 0.3).astype(
        np.float32)


def test_latent_error_falls_with_levels_and_training_reduces_loss():
    x = data()
    model, log = train_rqvae(x, CFG, progress=False)
    errs = model.latent_errors(x)
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    untrained = RQVAE(x.shape[1], CFG)
    torch.nn.init.normal_(untrained.codebooks[0])
    assert log["reconstruction_error"] < untrained.reconstruction_error(x)


def test_deterministic_and_round_trip(tmp_path):
    x = data()
    a, _ = train_rqvae(x, CFG, progress=False)
    b, _ = train_rqvae(x, CFG, progress=False)
    assert np.array_equal(a.encode(x), b.encode(x))
    a.save(tmp_path / "rqvae.safetensors")
    loaded = RQVAE.load(tmp_path / "rqvae.safetensors")
    cold = data(n=10, seed=9)
    assert np.array_equal(loaded.encode(x), a.encode(x))
    assert np.array_equal(loaded.encode(cold), a.encode(cold))
    assert loaded.cfg == CFG
