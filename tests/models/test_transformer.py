import dataclasses

import numpy as np
import pytest
import torch

from onefeed.models import GenerativeRecommender, ModelConfig, build_config
from onefeed.objectives.generation import sid_nll
from onefeed.tasks.rec import history_events, rec_batch, training_windows
from onefeed.tokens import Vocab

SIZES = (4, 3, 2)
CODES = torch.tensor([[i % 4, (i // 4) % 3, i // 12] for i in range(20)])


def make(**kw):
    vocab = Vocab.build(SIZES, words=False)
    cfg = build_config(ModelConfig(d_model=16, n_heads=2, d_ff=32, max_len=6, dropout=0.0, **kw),
                       vocab, n_items=20)
    torch.manual_seed(0)
    return GenerativeRecommender(cfg).eval(), vocab


def test_forward_shapes_and_loss_decreases():
    model, vocab = make()
    windows = training_windows([np.arange(i, i + 2 + i % 5) % 20 for i in range(12)], 6)
    batch = rec_batch(windows, CODES, vocab)
    logits = model(batch.events, batch.target_codes)
    n = int((batch.target_codes[..., 0] >= 0).sum())
    assert [tuple(lg.shape) for lg in logits] == [(n, 4), (n, 3), (n, 2)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    targets = batch.target_codes[batch.target_codes[..., 0] >= 0]
    first = None
    for _ in range(30):
        loss = sid_nll(model(batch.events, batch.target_codes), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first * 0.7


def test_left_padding_does_not_change_the_last_state():
    model, vocab = make()
    hist = np.array([[-1, -1, -1, 3, 7, 9]])
    short = history_events(hist[:, 3:], CODES, vocab)
    full = history_events(hist, CODES, vocab)
    assert torch.allclose(model.last_state(short), model.last_state(full), atol=1e-5)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_last_only_encoding_equals_the_full_encodings_last_state(n_layers):
    model, vocab = make(n_layers=n_layers)
    hist = np.array([[-1, -1, 4, 3, 7, 9], [1, 2, 3, 4, 5, 6], [-1, -1, -1, -1, -1, 8]])
    ev = history_events(hist, CODES, vocab)
    full = model.encode(ev)
    last = model.encode(ev, last_only=True)
    assert last.shape == (3, 1, 16)
    assert torch.allclose(last[:, 0], full[:, -1], atol=1e-6)
    assert torch.allclose(model.last_state(ev), full[:, -1], atol=1e-6)


@pytest.mark.parametrize("n_layers", [1, 2])
@torch.no_grad()
def test_a_cached_history_plus_one_event_equals_encoding_it_whole(n_layers):
    from onefeed.models.transformer import Events, event_mask, trim_left

    model, vocab = make(n_layers=n_layers)
    hist = np.array([[-1, -1, 4, 3, 7, 9], [1, 2, 3, 4, 5, 6], [-1, -1, -1, -1, -1, 8]])
    ev = history_events(hist, CODES, vocab)
    head = Events(*(t[:, :-1] if t is not None else None for t in ev))
    last = Events(*(t[:, -1:] if t is not None else None for t in ev))
    history = trim_left(head)  # row 2 has no history at all: only the new event counts
    kv = model.history_kv(history)
    assert len(kv) == n_layers and kv[0][0].shape == (3, 2, history.items.shape[1], 8)
    got = model.extend_state(kv, event_mask(history), last)
    assert torch.allclose(got, model.last_state(ev), atol=1e-5)
    # the history's keys / values do not depend on what follows: another last event reuses them
    other = history_events(np.array([[-1, -1, 4, 3, 7, 11], [1, 2, 3, 4, 5, 0],
                                     [-1, -1, -1, -1, -1, 2]]), CODES, vocab)
    other_last = Events(*(t[:, -1:] if t is not None else None for t in other))
    assert torch.allclose(model.extend_state(kv, event_mask(history), other_last),
                          model.last_state(other), atol=1e-5)


def test_causal_states_ignore_the_future():
    model, vocab = make()
    a = model.encode(history_events(np.array([[1, 2, 3, 4, 5, 6]]), CODES, vocab))
    b = model.encode(history_events(np.array([[1, 2, 3, 4, 5, 11]]), CODES, vocab))
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-5)
    assert not torch.allclose(a[:, 5], b[:, 5])


@torch.no_grad()
def test_step_is_normalised_and_teacher_forcing_matches_steps():
    model, vocab = make()
    ev = history_events(np.array([[1, 2, 3, 4, 5, 6]]), CODES, vocab)
    h = model.last_state(ev)
    target = CODES[13].unsqueeze(0)
    total = 0.0
    for level in range(3):
        logp, _ = model.step(h, target[:, :level], level)
        assert torch.allclose(logp.exp().sum(-1), torch.ones(1))
        total += float(logp[0, target[0, level]])
    tc = torch.full((1, 6, 3), -1)
    tc[0, 5] = target[0]
    logits = model(ev, tc)
    teacher = sum(float(torch.log_softmax(lg, -1)[0, target[0, j]]) for j, lg in enumerate(logits))
    assert total == pytest.approx(teacher, abs=1e-5)


@pytest.mark.parametrize("kw", [dict(code_combine="concat"), dict(item_embedding=False),
                                dict(tie_code_embeddings=False)])
def test_variants_run(kw):
    model, vocab = make(**kw)
    ev = history_events(np.array([[-1, 2, 3]]), CODES, vocab)
    assert model.last_state(ev).shape == (1, 16)


def test_config_needs_data_fields():
    with pytest.raises(ValueError, match="build_config"):
        GenerativeRecommender(ModelConfig())
    assert dataclasses.asdict(make()[0].cfg)["codebook_sizes"] == SIZES


@torch.no_grad()
def test_encoder_decoder_teacher_forcing_matches_steps():
    from onefeed.models import build_model
    from onefeed.models.encoder_decoder import EncoderDecoderRecommender, expand_histories

    vocab = Vocab.build(SIZES, words=False)
    cfg = build_config(ModelConfig(arch="encoder_decoder", d_model=16, n_heads=2, d_ff=32,
                                   max_len=6, dropout=0.0), vocab, n_items=20)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert isinstance(model, EncoderDecoderRecommender)
    ev = history_events(np.array([[-1, 1, 2, 3, 4, 5]]), CODES, vocab)
    tc = torch.full((1, 6, 3), -1)
    tc[0, 3] = CODES[13]  # target after event 3 (history = items 1, 2, 3)
    expanded = expand_histories(ev, tc[..., 0] >= 0)
    assert expanded.items.tolist() == [[1, 2, 3]]
    logits = model(ev, tc)
    teacher = sum(float(torch.log_softmax(lg, -1)[0, CODES[13, j]]) for j, lg in enumerate(logits))
    state = model.last_state(history_events(np.array([[1, 2, 3]]), CODES, vocab))
    total = 0.0
    for level in range(3):
        logp, state = model.step(state, CODES[13][None, :level], level)
        total += float(logp[0, CODES[13, level]])
    assert total == pytest.approx(teacher, abs=1e-5)
