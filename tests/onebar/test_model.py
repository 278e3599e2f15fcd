"""QuerySuggester: evidence/target encoding, the cached decoder against the plain one, beam and
sampling rules, sequence log-probs by hand, save/load round trip."""

import math

import pytest
import torch

from onefeed.decoding.text import prefix_parents
from onefeed.onebar.model import (EOS_LOCAL, IGNORE, REJECT, REJECT_LOCAL, QuerySuggester,
                                  Stepper, SuggesterConfig, constrain, normalise, target_logp)

TARGETS = ["red running shoes", "matte lipstick for dry lips", REJECT, "cfmoto 675nk"]
EVIDENCE = ["red shoe video [SEP] a video about running [SEP] ",
            "lipstick tutorial [SEP] matte look [SEP] lipstick",
            "family vlog [SEP]  [SEP] smoking",
            "cfmoto 675 [SEP] motorbike [SEP] 675nk exhaust"]
SMALL = SuggesterConfig(d_model=32, n_heads=2, d_ff=64, enc_layers=1, dec_layers=2, dropout=0.0,
                        max_evidence_len=24, max_query_len=6)


@pytest.fixture
def model() -> QuerySuggester:
    torch.manual_seed(0)
    return QuerySuggester.build(TARGETS, SMALL).eval()


def test_output_vocab_is_eos_reject_then_target_pieces(model):
    v = model.vocab
    assert model.out_tokens[:2].tolist() == [v.special("EOS"), v.special(REJECT)]
    pieces = {v.name(int(t)) for t in model.out_tokens[2:]}
    assert {"red", "running", "shoes", "cf", "##moto", "##nk"} <= pieces
    assert len(pieces) == model.cfg.n_out - 2 == len(model.out_tokens) - 2


def test_evidence_sep_becomes_the_sep_special_and_empty_fields_stay(model):
    ids, valid = model.encode_evidence(["a [SEP]  [SEP] b"])
    v = model.vocab
    assert ids[0].tolist() == v.words("a") + [v.special("SEP")] * 2 + v.words("b")
    assert valid.all()
    long_ids, _ = model.encode_evidence([" ".join(["shoe"] * 100), "x"])
    assert long_ids.shape == (2, SMALL.max_evidence_len)
    assert long_ids[1, 1:].eq(0).all()  # right-padded
    with pytest.raises(ValueError, match="empty evidence"):
        model.encode_evidence([""])


def test_targets_encode_decode_round_trip(model):
    tgt = model.encode_targets(TARGETS)
    assert tgt[2, :2].tolist() == [REJECT_LOCAL, EOS_LOCAL] and tgt[2, 2:].eq(IGNORE).all()
    assert model.decode_targets(tgt) == [normalise(t) for t in TARGETS]
    assert normalise("CFMOTO 675NK") == "cfmoto 675nk"
    with pytest.raises(ValueError, match="outside the model's output vocabulary"):
        model.encode_targets(["blue bananas"])
    cut = model.encode_targets(["red red red red red red red red"])  # 8 pieces > max_query_len
    assert cut.shape[1] == SMALL.max_query_len + 1 and cut[0, -1] == EOS_LOCAL


def test_target_logp_by_hand():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # p = [.25, .75], [.5, .5]
    got = target_logp(logits, torch.tensor([[1, IGNORE]]))
    assert got.item() == pytest.approx(math.log(0.75), abs=1e-6)
    got = target_logp(logits, torch.tensor([[0, 1]]))
    assert got.item() == pytest.approx(math.log(0.25) + math.log(0.5), abs=1e-6)


def test_constrain_rules():
    logits = torch.zeros(3, 4)
    out = constrain(logits.clone(), torch.zeros(3, 0, dtype=torch.long))
    assert torch.isinf(out[:, EOS_LOCAL]).all() and torch.isfinite(out[:, 1:]).all()
    out = constrain(logits.clone(), torch.tensor([[REJECT_LOCAL], [2], [3]]))
    assert out[0].tolist() == [0.0] + [float("-inf")] * 3  # after [REJECT]: only EOS
    assert torch.isinf(out[1:, REJECT_LOCAL]).all() and torch.isfinite(out[1:, 2:]).all()


def test_sequence_logp_is_the_sum_of_plain_step_log_probs(model):
    got = model.sequence_logp(EVIDENCE, TARGETS)
    tgt = model.encode_targets(TARGETS)
    memory = model.encode(*model.encode_evidence(EVIDENCE))
    for n in range(len(TARGETS)):
        row = [int(x) for x in tgt[n] if x != IGNORE]
        total = 0.0
        for t, tok in enumerate(row):
            prefix = torch.tensor([row[:t]], dtype=torch.long)
            y = model.decode(memory.select(torch.tensor([n])), prefix)[:, -1]
            logp = torch.log_softmax(y @ model.out_weight().t() + model.out_bias, -1)
            total += logp[0, tok].item()
        assert got[n].item() == pytest.approx(total, abs=1e-4)


def test_cached_stepper_equals_the_plain_pass(model):
    """Beam-like calls (growing prefixes, reordered parents, a dropped row) and a call
    pattern without parents (fallback) give the plain full-prefix logits."""
    memory = model.encode(*model.encode_evidence(EVIDENCE[:3]))
    step = Stepper(model, memory)
    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 0, 1, 1, 2, 2])
    prefix = torch.zeros(6, 0, dtype=torch.long)
    for t in range(4):
        assert (prefix_parents(step.rows, step.prefix, rows, prefix) is None) == (t == 0)  # cached after the first call
        with torch.no_grad():
            got, want = step(rows, prefix), model.next_logits(memory, rows, prefix)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        keep = torch.arange(len(rows)) if t != 2 else torch.arange(4)  # row 2 finishes
        parent = keep[torch.randperm(len(keep), generator=g)]
        new = torch.randint(2, model.cfg.n_out, (len(parent), 1), generator=g)
        rows, prefix = rows[parent], torch.cat([prefix[parent], new], 1)
    with torch.no_grad():  # a prefix two tokens longer: no parents, full pass
        longer = torch.cat([prefix, prefix[:, :1]], 1)
        assert prefix_parents(step.rows, step.prefix, rows, longer) is None
        torch.testing.assert_close(step(rows, longer), model.next_logits(memory, rows, longer),
                                   atol=1e-5, rtol=1e-5)


def test_beam_one_follows_the_greedy_path(model):
    """Beam 1 walks the greedy path and returns its best EOS-ended prefix (or the open path
    at the length limit): the hypothesis it keeps is enumerated by hand."""
    got = model.suggest(EVIDENCE, k=1, beam=1)
    memory = model.encode(*model.encode_evidence(EVIDENCE))
    for n in range(len(EVIDENCE)):
        prefix, score, best = torch.zeros(1, 0, dtype=torch.long), 0.0, ("", float("-inf"))
        for _ in range(model.cfg.max_query_len + 1):
            with torch.no_grad():
                logp = torch.log_softmax(model.next_logits(memory, torch.tensor([n]), prefix), -1)
            if prefix.shape[1] and score + logp[0, EOS_LOCAL].item() > best[1]:
                best = (model.decode_targets(prefix)[0], score + logp[0, EOS_LOCAL].item())
            logp[0, EOS_LOCAL] = float("-inf")
            tok = int(logp.argmax())
            score += logp[0, tok].item()
            prefix = torch.cat([prefix, torch.tensor([[tok]])], 1)
        if score > best[1]:
            best = (model.decode_targets(prefix)[0], score)
        assert got[n][0][0] == best[0]
        assert got[n][0][1] == pytest.approx(best[1], abs=1e-4)


def test_suggest_returns_k_distinct_sorted_and_reject_only_alone(model):
    out = model.suggest(EVIDENCE, k=5, beam=5)
    for row in out:
        texts, scores = [t for t, _ in row], [s for _, s in row]
        assert len(row) == 5 and len(set(texts)) == 5
        assert scores == sorted(scores, reverse=True)
        assert all(t == REJECT or "reject" not in t for t in texts)


def test_sample_rows_lengths_and_seed(model):
    g = torch.Generator().manual_seed(3)
    roll = model.sample(EVIDENCE, n=3, generator=g)
    assert roll.rows.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert roll.tokens.shape[1] <= model.cfg.max_query_len + 1
    for row in roll.tokens.tolist():
        body = [x for x in row if x != IGNORE]
        assert body[0] != EOS_LOCAL and REJECT_LOCAL not in body[1:]
        assert EOS_LOCAL not in body[:-1]  # EOS only last (or cut at the length limit)
        if body[0] == REJECT_LOCAL:
            assert body == [REJECT_LOCAL, EOS_LOCAL]
    again = model.sample(EVIDENCE, n=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(roll.tokens, again.tokens)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(EVIDENCE, temperature=0.0)


def test_save_load_round_trip(model, tmp_path):
    model.save(tmp_path / "m")
    back = QuerySuggester.load(tmp_path / "m")
    assert back.cfg == model.cfg and torch.equal(back.out_local, model.out_local)
    tgt = model.encode_targets(TARGETS)
    with torch.no_grad():
        torch.testing.assert_close(back.logits(EVIDENCE, tgt), model.logits(EVIDENCE, tgt),
                                   atol=0, rtol=0)
    assert back.suggest(EVIDENCE, k=3, beam=3) == model.suggest(EVIDENCE, k=3, beam=3)
    (tmp_path / "m" / "config.json").write_text('{"kind": "joint", "model": {}}')
    with pytest.raises(ValueError, match="not a onebar-query-suggester"):
        QuerySuggester.load(tmp_path / "m")


def test_config_checks():
    with pytest.raises(ValueError, match="build the model"):
        QuerySuggester(SuggesterConfig())
    with pytest.raises(ValueError, match="not divisible"):
        QuerySuggester.build(TARGETS, SuggesterConfig(d_model=30, n_heads=4))


def test_cached_output_rows_follow_weight_updates(model):
    with torch.no_grad():
        first = model.out_weight()
        assert model.out_weight() is first  # cached while the embedding is unchanged
        model.tok.weight.add_(1.0)
        torch.testing.assert_close(model.out_weight(), model.tok(model.out_tokens))
        assert model.out_weight() is not first
    assert model.out_weight().requires_grad  # with gradients: never the cache
