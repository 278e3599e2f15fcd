"""The fast text-encoding path (token-length batches, bf16 autocast) against plain fp32 encode."""

import numpy as np
import pytest
import torch

from onefeed.embeddings.content import content_embeddings, load_encoder
from onefeed.embeddings.text import (TextEncoderConfig, encode_fast, encode_plain, encoder_tag,
                                     length_batches, resolve_precision, token_lengths)

# Deliberately not in length order, with distinct meanings, so a lost permutation shows.
TEXTS = [
    "Title: Garden hose 50 ft heavy duty; Brand: Flexzilla; Categories: Patio > Watering",
    "Title: Red lipstick",
    "Title: Vitamin C serum for face with hyaluronic acid and vitamin E, anti aging, 1 fl oz; "
    "Brand: TruSkin; Categories: Beauty > Skin Care > Face > Serums; Description: brightens",
    "Title: Shampoo",
    "Title: Nail polish remover pads; Categories: Beauty > Nails",
    "Title: Electric toothbrush with 4 heads and travel case; Brand: Oral-B",
    "Title: Sunscreen SPF 50",
]


@pytest.fixture(scope="module")
def model():
    return load_encoder()


def test_length_batches_cover_every_index_once_longest_first():
    lengths = np.array([3, 9, 1, 9, 5, 2, 7])
    batches = length_batches(lengths, 3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(7))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert (np.diff(lengths[flat]) <= 0).all()
    with pytest.raises(ValueError, match="batch_size"):
        length_batches(lengths, 0)


def test_precision_names_are_checked():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") in ("fp32", "bf16")
    assert encoder_tag("bf16", 128) == "bf16-len128"
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16")


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_fast_path_matches_plain_and_keeps_row_order(model, precision):
    lengths = token_lengths(model, TEXTS)
    assert len(set(lengths.tolist())) > 3 and (np.diff(lengths) != 0).any()
    plain = np.stack([encode_plain(model, [t])[0] for t in TEXTS])  # one text at a time
    cfg = TextEncoderConfig(precision=precision, batch_size=2)  # several batches, re-ordered
    fast = encode_fast(model, TEXTS, cfg, progress=False)
    assert fast.shape == plain.shape and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    cos = (fast * plain).sum(1)
    assert cos.min() >= (0.999 if precision == "bf16" else 0.99999), cos
    assert ((fast @ plain.T).argmax(1) == np.arange(len(TEXTS))).all()  # row i is text i
    assert model.max_seq_length == 256  # the temporary setting is restored


def test_threads_and_truncation_settings_are_scoped(model):
    before = torch.get_num_threads()
    short = encode_fast(model, TEXTS[2:3], TextEncoderConfig("fp32", 4, 8, threads=1), False)
    assert torch.get_num_threads() == before and model.max_seq_length == 256
    full = encode_fast(model, TEXTS[2:3], TextEncoderConfig("fp32", 4), False)
    assert (short * full).sum() < 0.99  # 8 word pieces really truncated the long text
    assert encode_fast(model, [], TextEncoderConfig(), False).shape == (0, 384)


def test_cache_key_includes_encoder_settings(tmp_path):
    texts = TEXTS[:3]
    fp32, info32 = content_embeddings(texts, tmp_path, progress=False, precision="fp32")
    bf16, info16 = content_embeddings(texts, tmp_path, progress=False, precision="bf16")
    assert info32["encoder"] == "fp32-len256" and info16["encoder"] == "bf16-len256"
    assert not info16["cache_hit"]  # an fp32 cache is never served for bf16 settings
    assert len(list(tmp_path.glob("*.npy"))) == 2
    assert ((fp32 * bf16).sum(1) >= 0.999).all()
    again, info = content_embeddings(texts, tmp_path, progress=False, precision="bf16")
    assert info["cache_hit"] and np.array_equal(again, bf16)


def test_batch_parallel_workers_give_the_single_thread_vectors(model):
    one = encode_fast(model, TEXTS, TextEncoderConfig("fp32", 2, threads=1), False)
    two = encode_fast(model, TEXTS, TextEncoderConfig("fp32", 2, threads=2), False)
    assert np.array_equal(one, two)  # each batch is encoded whole by one thread
    ops = encode_fast(model, TEXTS, TextEncoderConfig("fp32", 2, threads=2, parallel="ops"),
                      False)
    assert ((ops * two).sum(1) >= 0.99999).all()
    bf16 = encode_fast(model, TEXTS, TextEncoderConfig("bf16", 2, threads=2), False)
    assert ((bf16 * one).sum(1) >= 0.999).all()
    assert not np.array_equal(bf16, one)  # autocast is entered in every worker thread
    with pytest.raises(ValueError, match="parallel 'cores'"):
        encode_fast(model, TEXTS, TextEncoderConfig(parallel="cores"), False)


def test_a_failing_worker_raises_and_restores_settings(model, monkeypatch):
    before = torch.get_num_threads()

    def broken(_texts):
        raise RuntimeError("tokeniser broke")

    monkeypatch.setattr(model, "preprocess", broken)
    with pytest.raises(RuntimeError, match="tokeniser broke"):
        encode_fast(model, TEXTS, TextEncoderConfig("fp32", 2, threads=2), False)
    assert torch.get_num_threads() == before and model.max_seq_length == 256
