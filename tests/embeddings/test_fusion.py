import numpy as np
import pytest

from onefeed.embeddings.content import fill_missing
from onefeed.embeddings.fusion import fused_concat, fused_svd, l2_normalise, svd_reduce


def test_fused_concat_shape_and_norms():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 6)) * 3, rng.standard_normal((5, 4))
    out = fused_concat(a, b)
    assert out.shape == (5, 10)
    assert np.allclose(np.linalg.norm(out[:, :6], axis=1), 1)
    assert np.allclose(np.linalg.norm(out, axis=1), np.sqrt(2))


def test_fused_svd_shape_and_equal_weight():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((30, 12)), rng.standard_normal((30, 5))
    out = fused_svd(a, b)
    assert out.shape == (30, 5)
    parts = l2_normalise(svd_reduce(a, 5)), l2_normalise(svd_reduce(b, 5))
    assert np.allclose(out, parts[0] + parts[1])
    with pytest.raises(ValueError):
        fused_svd(a, b, dim=8)


def test_svd_reduce_keeps_the_top_subspace():
    rng = np.random.default_rng(2)
    low = rng.standard_normal((50, 2)) @ rng.standard_normal((2, 8))  # rank 2
    red = svd_reduce(low, 2)
    assert np.allclose(red @ red.T, low @ low.T, atol=1e-4)  # Gram matrix preserved


def test_fill_missing_maps_collab_into_text_space():
    rng = np.random.default_rng(3)
    collab = rng.standard_normal((40, 3))
    content = l2_normalise(collab @ rng.standard_normal((3, 6)))
    has_text = np.ones(40, dtype=bool)
    has_text[:5] = False
    filled = fill_missing(np.where(has_text[:, None], content, 0), has_text, collab)
    cos = (filled[:5] * content[:5]).sum(1)
    assert np.allclose(np.linalg.norm(filled[:5], axis=1), 1, atol=1e-5)
    assert (cos > 0.9).all(), cos  # the (nearly linear) truth is recovered
    assert np.array_equal(fill_missing(content, np.zeros(40, bool), collab), collab.astype(
        np.float32))
