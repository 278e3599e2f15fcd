"""Checkpoint directories: checksums, refusal of non-finite tensors, RNG state round trip."""

import json
import random

import numpy as np
import pytest
import torch

from onefeed import checkpoint
from onefeed.artifacts import ArtifactError


def _tiny(tmp_path, name="ck"):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    checkpoint.save_checkpoint(tmp_path / name, model, {"what": "toy"}, opt, {"step": 1},
                               with_rng=True)
    return model, opt, tmp_path / name


def _flip(path, at=None):
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2 if at is None else at] ^= 0x01
    path.write_bytes(bytes(blob))


def test_manifest_lists_every_file_and_loads_verify(tmp_path):
    model, opt, d = _tiny(tmp_path)
    files = json.loads((d / "manifest.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "config.json", "optimizer.safetensors",
                          "optimizer.json", "rng.safetensors", "rng.json", "state.json"}
    assert files["model.safetensors"]["bytes"] == (d / "model.safetensors").stat().st_size
    weights = checkpoint.load_weights(d)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    again = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    checkpoint.load_optimizer(d, again)
    assert torch.equal(again.state_dict()["state"][0]["exp_avg"],
                       opt.state_dict()["state"][0]["exp_avg"])


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "optimizer.json"])
def test_a_flipped_byte_is_refused_naming_the_file(tmp_path, name):
    model, opt, d = _tiny(tmp_path)
    _flip(d / name)
    with pytest.raises(ArtifactError, match=name):
        if name == "model.safetensors":
            checkpoint.load_weights(d)
        else:
            checkpoint.load_optimizer(d, opt)


def test_truncated_file_is_refused(tmp_path):
    _, opt, d = _tiny(tmp_path)
    (d / "optimizer.safetensors").write_bytes((d / "optimizer.safetensors").read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="bytes"):
        checkpoint.load_optimizer(d, opt)


def test_old_checkpoint_without_manifest_loads_with_a_warning(tmp_path):
    model, _, d = _tiny(tmp_path)
    (d / "manifest.json").unlink()
    with pytest.warns(UserWarning, match="without checksum verification"):
        weights = checkpoint.load_weights(d)
    assert torch.equal(weights["weight"], model.weight.detach())


def test_non_finite_weights_or_optimizer_state_are_never_saved(tmp_path):
    model, opt, d = _tiny(tmp_path)
    before = (d / "model.safetensors").read_bytes()
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(checkpoint.NonFiniteError, match="bias"):
        checkpoint.save_checkpoint(d, model, {}, opt)
    with pytest.raises(checkpoint.NonFiniteError):
        checkpoint.save_checkpoint(tmp_path / "new", model, {})
    assert (d / "model.safetensors").read_bytes() == before and not (tmp_path / "new").exists()
    with torch.no_grad():
        model.bias[1] = 0.0
    opt.state_dict()["state"][0]["exp_avg_sq"][0, 0] = float("inf")  # (a view of the state)
    with pytest.raises(checkpoint.NonFiniteError, match="optimizer state"):
        checkpoint.save_checkpoint(d, model, {}, opt)
    assert checkpoint.non_finite_tensors({"ok": torch.ones(2), "big": torch.full((2,), 3e38),
                                          "ids": torch.arange(3)}) == []


def test_rng_state_round_trips_through_safetensors_and_json(tmp_path):
    gen = np.random.default_rng(7)
    torch.manual_seed(1), np.random.seed(2), random.seed(3), gen.random()
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    checkpoint.save_checkpoint(tmp_path / "r", torch.nn.Linear(1, 1), {}, with_rng=True,
                               generators={"order": gen})
    draws = lambda: (torch.rand(3), np.random.randn(3), random.random(), gen.random(3))  # noqa
    first = draws()
    json.loads((tmp_path / "r" / "rng.json").read_text())  # plain JSON, no pickle
    other = np.random.default_rng(99)
    assert checkpoint.load_rng(tmp_path / "r", {"order": other})
    again = (torch.rand(3), np.random.randn(3), random.random(), other.random(3))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and np.array_equal(first[3], again[3])
