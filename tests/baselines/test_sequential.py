"""SASRec / GRU4Rec / BERT4Rec: masking invariants, padding invariance, and a learnable toy."""

import numpy as np
import pytest
import torch

from onefeed.baselines.bert4rec import BERT4Rec, BERT4RecConfig
from onefeed.baselines.gru4rec import GRU4Rec, GRU4RecConfig
from onefeed.baselines.sasrec import SASRec, SASRecConfig, SASRecNet, attention_mask
from onefeed.baselines.sequential import history_tokens, left_pad, length_batches, trim_left
from onefeed.data.views import rec_cases
from onefeed.data.synthetic import tiny_dataset
from onefeed.evaluation.metrics import hit_at_k, target_ranks


def test_left_pad_and_history_tokens():
    out = left_pad([np.array([3, 4, 5]), np.array([7])], 2)
    assert out.tolist() == [[5, 6], [0, 8]]
    tok = history_tokens(np.array([[-1, -1, 2], [0, 1, 2]]), 4)
    assert tok.tolist() == [[0, 0, 0, 3], [0, 1, 2, 3]]
    a, = trim_left(tok, pad_from=tok)
    assert a.tolist() == [[0, 0, 3], [1, 2, 3]]


def test_length_batches_cover_every_row_once():
    lengths = np.array([5, 1, 3, 3, 2, 8, 1])
    batches = length_batches(lengths, 2, np.random.default_rng(0), pool=2)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))


def test_attention_mask_is_causal_and_never_all_blocked():
    tokens = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    m = attention_mask(tokens, n_heads=1)
    assert not m.all(dim=-1).any()  # every query row may attend somewhere
    # real position 2 of row 0 sees itself only (keys 0, 1 are padding); no future keys
    assert m[0, 2].tolist() == [True, True, False, True]
    assert m[1, 1].tolist() == [False, False, True, True]


def test_sasrec_is_causal_and_padding_invariant():
    torch.manual_seed(0)
    net = SASRecNet(10, SASRecConfig(max_history=6, d_model=16, n_heads=2)).eval()
    a = torch.tensor([[0, 0, 1, 2, 3, 4]])
    b = torch.tensor([[0, 0, 1, 2, 3, 9]])
    with torch.no_grad():
        ha, hb = net(a), net(b)
        assert torch.allclose(ha[:, :5], hb[:, :5], atol=1e-6)  # future token changes nothing
        assert not torch.isnan(ha).any()
        trimmed = net(a[:, 2:])
        assert torch.allclose(ha[:, 2:], trimmed, atol=1e-5)  # extra left padding changes nothing


@pytest.mark.parametrize("cls,cfg", [
    (SASRec, SASRecConfig(max_history=8, d_model=32, n_heads=2, dropout=0.0, lr=1e-2,
                          max_epochs=10, patience=10, batch_size=32, progress=False)),
    (SASRec, SASRecConfig(loss="bce", max_history=8, d_model=32, n_heads=2, dropout=0.0, lr=1e-2,
                          max_epochs=10, patience=10, batch_size=32, progress=False)),
    (GRU4Rec, GRU4RecConfig(max_history=8, d_model=32, dropout=0.0, lr=1e-2, max_epochs=10,
                            patience=10, batch_size=32, progress=False)),
    (BERT4Rec, BERT4RecConfig(max_history=8, d_model=32, n_heads=2, dropout=0.0, lr=1e-2,
                              mask_prob=0.4, max_epochs=30, patience=30, batch_size=32,
                              progress=False)),
])
def test_learns_successor_pattern(cls, cfg):
    """Users walk items in order (i -> i+1): a trained model must beat MostPop by far."""
    ds = tiny_dataset(80, 20, seed=0)
    model = cls()
    log = model.fit(ds, cfg, seed=0)
    assert log.best_epoch >= 1 and len(log.loss) == len(log.valid_ndcg10)
    cases = rec_cases(ds, "test", 8)
    top = model.recommend(cases, 5)
    assert top.shape == (len(cases.users), 5)
    assert ((top >= 0) & (top < ds.n_items)).all()
    assert hit_at_k(target_ranks(top, cases.targets), 1).mean() > 0.5


def test_same_seed_same_result(tiny_dataset):
    cfg = SASRecConfig(max_history=4, d_model=8, n_heads=1, max_epochs=2, progress=False)
    cases = rec_cases(tiny_dataset, "test", 4)
    tops = []
    for _ in range(2):
        m = SASRec()
        m.fit(tiny_dataset, cfg, seed=3)
        tops.append(m.recommend(cases, 3))
    assert np.array_equal(tops[0], tops[1])


def test_recommend_before_fit_raises(tiny_dataset):
    with pytest.raises(RuntimeError, match="before fit"):
        SASRec().recommend(rec_cases(tiny_dataset, "test", 4), 3)


def test_seen_offsets_by_recency():
    """Query t adds bias[t - s] to the item at key s <= t; padding and future keys add 0."""
    from onefeed.baselines.sasrec import seen_offsets
    tokens = torch.tensor([[0, 5, 7]])  # items 4 and 6 (token = item + 1)
    index, offset = seen_offsets(tokens, torch.tensor([-1.0, -0.5, -0.25]))
    assert index[0, 2].tolist() == [0, 4, 6]
    assert offset[0, 2].tolist() == [0.0, -0.5, -1.0]  # pad, recency 1, recency 0
    assert offset[0, 1].tolist() == [0.0, -1.0, 0.0]  # key 2 is in the future of query 1
    _, short = seen_offsets(tokens, torch.tensor([-1.0]))  # recency >= len(bias) -> 0
    assert short[0, 2].tolist() == [0.0, 0.0, -1.0]


def test_seen_bias_shifts_only_history_items():
    torch.manual_seed(0)
    cfg = SASRecConfig(max_history=4, d_model=8, n_heads=1, embed_norm=True, seen_bias=True)
    model = SASRec()
    model.cfg, model.n_items, model.net = cfg, 10, SASRecNet(10, cfg).eval()
    history = np.array([[-1, 2, 5, 7]])
    with torch.no_grad():
        plain = model.scores(history).clone()
        model.net.seen.fill_(-1.0)
        shifted = model.scores(history)
    delta = (shifted - plain)[0]
    from onefeed.baselines.sasrec import SEEN_SCALE
    assert torch.allclose(delta[[2, 5, 7]], torch.full((3,), -SEEN_SCALE))
    others = [i for i in range(10) if i not in (2, 5, 7)]
    assert torch.allclose(delta[others], torch.zeros(len(others)))


def test_sasrec_variants_are_causal_and_padding_invariant():
    torch.manual_seed(0)
    cfg = SASRecConfig(max_history=6, d_model=16, n_heads=2, embed_norm=True, tie_output=False,
                       ffn_dim=32)
    net = SASRecNet(10, cfg).eval()
    a, b = torch.tensor([[0, 0, 1, 2, 3, 4]]), torch.tensor([[0, 0, 1, 2, 3, 9]])
    with torch.no_grad():
        assert torch.allclose(net(a)[:, :5], net(b)[:, :5], atol=1e-6)
        assert torch.allclose(net(a)[:, 2:], net(a[:, 2:]), atol=1e-5)
    assert net.item_weights().shape == (10, 16)


def test_seen_bias_learns_no_repeat_and_rejects_bce():
    """On the successor toy the next item is never a history item: the offsets go negative."""
    ds = tiny_dataset(80, 20, seed=0)
    cfg = SASRecConfig(max_history=8, d_model=32, n_heads=2, dropout=0.0, lr=1e-2, max_epochs=5,
                       patience=5, batch_size=32, progress=False, embed_norm=True, seen_bias=True)
    model = SASRec()
    model.fit(ds, cfg, seed=0)
    assert float(model.net.seen[0].detach()) < 0
    cases = rec_cases(ds, "test", 8)
    assert hit_at_k(target_ranks(model.recommend(cases, 5), cases.targets), 1).mean() > 0.5
    with pytest.raises(ValueError, match="seen_bias"):
        SASRec().fit(ds, SASRecConfig(loss="bce", seen_bias=True, progress=False), seed=0)


def test_time_limit_stops_after_the_epoch_that_passes_it():
    ds = tiny_dataset(30, 12)
    cfg = SASRecConfig(max_history=8, d_model=8, n_heads=1, n_layers=1, batch_size=16,
                       max_epochs=5, patience=5, progress=False, time_limit_min=1e-9)
    log = SASRec().fit(ds, cfg, seed=0)
    assert log.epochs == [1] and log.choices == {"stopped": "time_limit"}
    free = SASRec().fit(ds, SASRecConfig(**{**cfg.__dict__, "time_limit_min": 0.0}), seed=0)
    assert free.epochs == [1, 2, 3, 4, 5] and "stopped" not in free.choices
