"""OneBar's three stages on a toy world of (evidence, query) pairs: SFT learns the mapping,
list-wise DPO raises the clicked candidate against the reference, PIOPD moves the student
towards the posterior-aware teacher; the teacher prompt by hand."""

import json

import numpy as np
import pytest
import torch

from onefeed.onebar.model import REJECT, QuerySuggester, SuggesterConfig
from onefeed.onebar.stages import (CandidateList, ListwiseConfig, Pair, PiopdConfig,
                                   ProgressiveConfig, divergence_loss, frozen_copy,
                                   insert_posterior, piopd_divergence, posteriors, teacher_pairs,
                                   train_listwise, train_piopd, train_progressive, train_sft)
from onefeed.train.config import TrainConfig

TINY = SuggesterConfig(d_model=32, n_heads=2, d_ff=64, enc_layers=1, dec_layers=1, dropout=0.0,
                       max_evidence_len=32, max_query_len=8)
WORLD = [Pair("red running shoe [SEP] a video about jogging [SEP] ", "red running shoes"),
         Pair("lipstick tutorial [SEP] matte look [SEP] lipstick dry",
              "matte lipstick for dry lips"),
         Pair("family vlog [SEP]  [SEP] smoking", REJECT),
         Pair("cfmoto 675 [SEP] motorbike [SEP] 675nk exhaust", "cfmoto 675nk"),
         Pair("garden tools [SEP] pruning roses [SEP] ", "rose pruning shears"),
         Pair("camping trip [SEP] tent setup [SEP] rain", "waterproof tent")]


def fresh(texts, seed: int = 0) -> QuerySuggester:
    torch.manual_seed(seed)
    return QuerySuggester.build(texts, TINY)


def quick(**kw) -> TrainConfig:
    base = dict(lr=1e-2, batch_size=2, epochs=30, warmup_steps=3, eval_every=10, patience=10,
                weight_decay=0.0)
    return TrainConfig(**{**base, **kw})


# ---- the teacher prompt --------------------------------------------------------------------------
def test_insert_posterior_keeps_the_schema_and_inserts_each_query_once():
    ev = "red shoe [SEP]  [SEP] running video "
    for seed in range(20):
        out = insert_posterior(ev, ["q1 x", "q2"], np.random.default_rng(seed))
        fields = out.split("[SEP]")
        assert len(fields) == 3 and fields[1] == "  "  # the empty field is never chosen
        assert out.count("q1 x") == 1 and out.count("q2") == 1
        assert out.replace("q1 x", "").replace("q2", "").split() == ev.split()
        assert fields[2].endswith(" ")  # field whitespace kept
    spots = {insert_posterior(ev, ["q"], np.random.default_rng(s)) for s in range(40)}
    assert len(spots) == 6  # the 3 + 3 word positions of the two non-empty fields
    assert insert_posterior(ev, [], np.random.default_rng(0)) == ev
    assert insert_posterior(" [SEP] ", ["q"], np.random.default_rng(0)).count("q") == 1


def test_insert_posterior_keeps_field_labels_first_and_skips_none_fields():
    ev = "title: red shoe [SEP] brand: <none> [SEP] anchors: running shoes"
    seen = set()
    for seed in range(40):
        out = insert_posterior(ev, ["q"], np.random.default_rng(seed))
        fields = [f.split() for f in out.split("[SEP]")]
        assert [f[0] for f in fields] == ["title:", "brand:", "anchors:"]
        assert fields[1] == ["brand:", "<none>"]  # an empty field is never chosen
        seen.add(out)
    assert len(seen) == 6  # 3 + 3 positions after the labels
    empty = "title: <none> [SEP] brand: <none>"
    out = insert_posterior(empty, ["q"], np.random.default_rng(0))
    got = [f.split()[1:] for f in out.split("[SEP]")]
    assert sorted(got) == [["<none>"], ["q"]]  # the chosen empty field's <none> is replaced


def test_posteriors_group_clicks_and_skip_reject():
    pairs = [Pair("e1", "a"), Pair("e1", "b"), Pair("e1", "a"), Pair("e2", REJECT)]
    assert posteriors(pairs) == {"e1": ("a", "b")}
    tp = teacher_pairs(pairs, np.random.default_rng(0))
    assert [p.target for p in tp] == ["a", "b", "a", REJECT]
    assert all("a" in p.evidence and "b" in p.evidence for p in tp[:3])
    assert tp[3].evidence == "e2"
    assert posteriors([tuple(p) for p in pairs]) == {"e1": ("a", "b")}  # plain tuples too


# ---- Stage I ---------------------------------------------------------------------------------
def test_sft_learns_the_mapping_and_best_is_loadable(tmp_path):
    model = fresh([p.target for p in WORLD])
    state = train_sft(model, WORLD, quick(lr=5e-3, epochs=60), tmp_path)
    losses = [h["loss"] for h in state["history"]]  # mean loss of epochs 10, 20, ..., 60
    assert len(losses) == 6 and losses[-1] < 0.1 * losses[0]
    top = [row[0][0] for row in model.suggest([p.evidence for p in WORLD], k=2, beam=4)]
    assert top == [p.target for p in WORLD]
    back = QuerySuggester.load(tmp_path / "best")
    assert back.suggest([WORLD[0].evidence], k=3) == model.suggest([WORLD[0].evidence], k=3)
    assert json.loads((tmp_path / "manifest.json").read_text())["kind"] == "onebar-sft"


def test_sft_early_stops_on_the_validator_and_keeps_the_best(tmp_path):
    scores = iter([0.2, 0.9, 0.1, 0.1, 0.1])
    model = fresh([p.target for p in WORLD])
    state = train_sft(model, WORLD, quick(epochs=50, eval_every=2, patience=2), tmp_path,
                      validate=lambda m: next(scores))
    assert state["best_epoch"] == 4 and state["epoch"] == 8  # 4 evaluations, then stop
    best = QuerySuggester.load(tmp_path / "best")
    last = QuerySuggester.load(tmp_path / "last")
    assert torch.equal(model.out_bias, best.out_bias)
    assert not torch.equal(model.out_bias, last.out_bias)


# ---- Stage II --------------------------------------------------------------------------------
LISTS = [CandidateList("red running shoe [SEP] jogging video",
                       ("red running shoes", "red shoes", "running socks"), 0),
         CandidateList("lipstick tutorial [SEP] matte look",
                       ("lipstick", "matte lipstick", "dry lips"), 1),
         CandidateList("camping trip [SEP] tent setup", ("tent", "waterproof tent", "chair"), 2)]


def test_listwise_dpo_raises_the_clicked_candidate_against_the_reference(tmp_path):
    model = fresh([c for cl in LISTS for c in cl.candidates])
    ref = frozen_copy(model)
    cfg = ListwiseConfig(beta=1.0, sft_weight=0.0,
                         train=quick(lr=3e-3, batch_size=3, epochs=15, eval_every=15))
    state = train_listwise(model, ref, LISTS, cfg, tmp_path)
    assert state["history"][-1]["task_loss"]["dpo"] < 0.1  # from log 3 ~ 1.1 at the start
    with torch.no_grad():
        for cl in LISTS:
            ev = [cl.evidence] * len(cl.candidates)
            r = model.sequence_logp(ev, list(cl.candidates)) - ref.sequence_logp(
                ev, list(cl.candidates))
            others = torch.cat([r[:cl.clicked], r[cl.clicked + 1:]])
            assert r[cl.clicked] > 0 and (r[cl.clicked] > others + 1.0).all()
    assert all(not p.requires_grad for p in ref.parameters())


def test_listwise_rejects_bad_lists_and_references(tmp_path):
    model = fresh(["a", "b"])
    with pytest.raises(ValueError, match="clicked index 2 outside"):
        train_listwise(model, frozen_copy(model), [CandidateList("e", ("a", "b"), 2)],
                       ListwiseConfig(), tmp_path)
    with pytest.raises(ValueError, match="repeats a query"):
        train_listwise(model, frozen_copy(model), [CandidateList("e", ("a", "b", "a"), 0)],
                       ListwiseConfig(), tmp_path)
    with pytest.raises(ValueError, match="share the model's output vocabulary"):
        train_listwise(model, frozen_copy(fresh(["a", "c"])), [CandidateList("e", ("a", "b"), 0)],
                       ListwiseConfig(), tmp_path)


# ---- Stage III -------------------------------------------------------------------------------
PIOPD = [Pair("red running shoe [SEP] jogging video [SEP] user a", "red running shoes"),
         Pair("red running shoe [SEP] jogging video [SEP] user b", "running socks"),
         Pair("lipstick tutorial [SEP] matte look [SEP] user a", "matte lipstick"),
         Pair("lipstick tutorial [SEP] matte look [SEP] user b", "dry lips"),
         Pair("family vlog [SEP]  [SEP] smoking", REJECT)]


def test_piopd_moves_the_student_towards_the_teacher(tmp_path):
    texts = [p.target for p in PIOPD]
    teacher, student = fresh(texts, seed=1), fresh(texts, seed=1)
    train_sft(teacher, teacher_pairs(PIOPD, np.random.default_rng(0)), quick(eval_every=30),
              tmp_path / "teacher")
    teacher = frozen_copy(teacher)
    cfg = PiopdConfig(sft_weight=0.0, train=quick(lr=3e-3, batch_size=5, eval_every=30))
    before = piopd_divergence(student, teacher, PIOPD, cfg, seed=5)
    state = train_piopd(student, teacher, PIOPD, cfg, tmp_path / "piopd")
    after = piopd_divergence(student, teacher, PIOPD, cfg, seed=5)
    assert after < 0.6 * before
    assert set(state["history"][-1]["task_loss"]) == {"fkl", "rkl"}
    manifest = json.loads((tmp_path / "piopd" / "manifest.json").read_text())
    assert manifest["divergence"] == "fkl+rkl"


def test_piopd_divergence_override_sft_and_entropy_terms(tmp_path):
    texts = [p.target for p in PIOPD]
    student = fresh(texts)
    teacher = frozen_copy(fresh(texts, seed=2))
    cfg = PiopdConfig(sft_weight=0.5, entropy_weight=0.1,
                      train=quick(lr=1e-3, batch_size=5, epochs=1, eval_every=1))
    state = train_piopd(student, teacher, PIOPD, cfg, tmp_path, divergence="jsd")
    assert set(state["history"][-1]["task_loss"]) == {"jsd", "sft", "neg_entropy"}


def test_piopd_refuses_teachers_with_another_vocabulary(tmp_path):
    with pytest.raises(ValueError, match="share one output vocabulary"):
        train_piopd(fresh(["a b"]), frozen_copy(fresh(["a c d"])), [Pair("e", "a b")],
                    PiopdConfig(), tmp_path)


def test_divergence_loss_terms_and_weights():
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    mask = torch.ones(2, 3, dtype=torch.bool)
    both = divergence_loss(s, t, mask, PiopdConfig(fkl_weight=0.5, rkl_weight=0.7))
    fkl = divergence_loss(s, t, mask, PiopdConfig(divergence="fkl"))["fkl"]
    rkl = divergence_loss(s, t, mask, PiopdConfig(divergence="rkl"))["rkl"]
    torch.testing.assert_close(both["fkl"], 0.5 * fkl)
    torch.testing.assert_close(both["rkl"], 0.7 * rkl)
    assert set(divergence_loss(s, t, mask, PiopdConfig(divergence="jsd"))) == {"jsd"}


def test_piopd_divergence_is_zero_for_a_teacher_equal_to_the_student():
    """[REJECT] pairs have no posterior, so the teacher reads the student's own prompt."""
    model = fresh(["red shoes"])
    pairs = [Pair(f"video {i} [SEP] tag", REJECT) for i in range(5)]
    for batch_size in (2, 64):
        got = piopd_divergence(model, frozen_copy(model), pairs, PiopdConfig(), seed=1,
                               batch_size=batch_size)
        assert got == pytest.approx(0.0, abs=1e-6)
    other = frozen_copy(fresh(["red shoes"], seed=3))
    assert piopd_divergence(model, other, pairs, PiopdConfig(), seed=1, batch_size=2) > 1e-4


def test_stage_configs_load_with_checked_overrides():
    from onefeed import config as config_lib
    from onefeed.config import ConfigError

    cfg = config_lib.load(PiopdConfig, None, ["divergence=jsd", "train.lr=0.01"])
    assert cfg.divergence == "jsd" and cfg.train.lr == 0.01
    with pytest.raises(ConfigError, match="divergence"):
        config_lib.load(PiopdConfig, None, ["divergence=ckd"])
    with pytest.raises(ConfigError, match=r"jsd_beta = 1.0: must be in \(0, 1\)"):
        config_lib.load(PiopdConfig, None, ["jsd_beta=1.0"])
    with pytest.raises(ConfigError, match="beta = 0.0: must be > 0"):
        config_lib.load(ListwiseConfig, None, ["beta=0.0"])
    full = config_lib.load(ProgressiveConfig, None, ["piopd.divergence=fkl", "model.d_model=64"])
    assert full.piopd.divergence == "fkl" and full.model.d_model == 64
    with pytest.raises(ConfigError, match="model.dropout"):
        config_lib.load(ProgressiveConfig, None, ["model.dropout=1.5"])


def test_train_progressive_runs_every_stage_into_its_own_directory(tmp_path):
    lists = [CandidateList(WORLD[0].evidence, ("red running shoes", "red shoes"), 0)]
    short = quick(epochs=4, eval_every=2, lr=5e-3)
    cfg = ProgressiveConfig(model=TINY, sft=short, teacher=short,
                            listwise=ListwiseConfig(train=short), piopd=PiopdConfig(train=short))
    torch.manual_seed(0)
    model = train_progressive(WORLD, lists, cfg, tmp_path)
    for stage in ("sft", "listwise", "teacher", "piopd"):
        assert (tmp_path / stage / "best" / "model.safetensors").is_file()
    back = QuerySuggester.load(tmp_path / "piopd" / "best")
    assert back.suggest([WORLD[0].evidence], k=2) == model.suggest([WORLD[0].evidence], k=2)
    assert "red shoes" in model.decode_targets(model.encode_targets(["red shoes"]))
    skip = ProgressiveConfig(model=TINY, sft=short, listwise_stage=False, piopd_stage=False)
    train_progressive([tuple(p) for p in WORLD], lists, skip, tmp_path / "sft-only")
    assert sorted(p.name for p in (tmp_path / "sft-only").iterdir()) == ["sft"]
