import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from unisearch_toy import CFG, PAIRS, TASK, TEXTS, toy_data, trained  # noqa: E402, I001

from onefeed.tasks.unisearch import build_index, load_frozen, search, word_ids  # noqa: E402
from onefeed.train.unisearch import (SPOConfig, UniSearchRunConfig, candidate_log_probs,  # noqa: E402
                                     reference_copy, spo_step)
from onefeed.train.config import TrainConfig  # noqa: E402


def test_train_unisearch_through_the_loop_freezes_best_codes(tmp_path):
    from onefeed.train.unisearch import train_unisearch

    cfg = UniSearchRunConfig(model=CFG, task=TASK, train=TrainConfig(
        lr=3e-3, epochs=40, batch_size=16, warmup_steps=5, eval_every=20, patience=5))
    model, index = train_unisearch(toy_data(), cfg, tmp_path)
    assert (tmp_path / "best" / "model.safetensors").is_file()
    again, loaded = load_frozen(tmp_path / "codes")
    assert np.array_equal(loaded.table.codes, index.table.codes)
    res = search(again, loaded, [q for q, _ in PAIRS], k=1, beam=8)
    hits = (res.items[:, 0].numpy() == np.array([i for _, i in PAIRS])).mean()
    assert hits >= 0.75  # chance 1/16 (seeds 0, 1 give 0.94, 0.88)


def test_spo_raises_the_log_prob_of_the_rewarded_item():
    model, task = trained(epochs=15)
    index = build_index(model, task.data.item_words, spare=2)
    ref = reference_copy(model)
    favourite = 5  # "blue polish acme"
    queries = ["red lipstick", "green cream", "black shampoo", "blue polish"]
    words = torch.as_tensor(word_ids(queries, CFG.max_query_words))
    codes = torch.as_tensor(index.table.codes[favourite]).expand(len(queries), 1, -1)

    def logp_of_favourite() -> float:
        with torch.no_grad():
            return float(candidate_log_probs(model, words, codes).sum(-1).mean())

    def reward(qs, items):
        return (items == favourite).astype(np.float32)

    cfg = SPOConfig(group=len(TEXTS), beta=0.01)  # G = catalogue: the favourite is sampled
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = logp_of_favourite()
    stats = [spo_step(model, ref, index, queries, reward, cfg, opt) for _ in range(5)]
    after = logp_of_favourite()
    assert after > before + 0.5
    assert stats[0]["kl"] == pytest.approx(0.0, abs=1e-6) and stats[-1]["kl"] > 0
    assert stats[0]["reward"] == pytest.approx(1 / len(TEXTS))
    # the reference did not move
    assert all(not p.requires_grad for p in ref.parameters())


def test_spo_with_a_flat_reward_changes_nothing_but_the_kl_is_zero():
    model, task = trained(epochs=3)
    index = build_index(model, task.data.item_words, spare=2)
    ref = reference_copy(model)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = spo_step(model, ref, index, ["red lipstick"],
                   lambda qs, items: np.ones(items.shape), SPOConfig(group=4, beta=0.1), opt)
    assert out["loss"] == pytest.approx(0.0, abs=1e-7)
    assert all(torch.allclose(a, b) for a, b in zip(before, model.parameters()))


def test_click_reward_and_post_train_spo_raise_the_clicked_items():
    from onefeed.train.unisearch import click_reward, post_train_spo

    reward = click_reward([("a", 1), ("a", 2), ("b", 0)], miss=-1.0)
    assert reward(["a", "b", "c"], np.array([[2, 0], [0, 1], [5, 6]])).tolist() == \
        [[1.0, -1.0], [1.0, -1.0], [-1.0, -1.0]]
    model, task = trained(epochs=10)
    index = build_index(model, task.data.item_words, spare=2)
    queries = [q for q, _ in PAIRS]
    targets = torch.as_tensor(index.table.codes[[i for _, i in PAIRS]]).unsqueeze(1)
    words = torch.as_tensor(word_ids(queries, CFG.max_query_words))

    def mean_logp() -> float:
        with torch.no_grad():
            return float(candidate_log_probs(model, words, targets).sum(-1).mean())

    before = mean_logp()
    hist = post_train_spo(model, index, queries, click_reward(PAIRS),
                          SPOConfig(group=8, beta=0.01, lr=1e-4, steps=20, batch_queries=8))
    assert len(hist) == 20 and mean_logp() > before + 0.05


def test_run_config_overrides_and_ranges():
    from onefeed import config
    from onefeed.config import ConfigError

    cfg = config.load(UniSearchRunConfig, None, ["model.codebook_size=16", "task.hard_negatives=3"])
    assert (cfg.model.codebook_size, cfg.task.hard_negatives) == (16, 3)
    assert config.from_dict(UniSearchRunConfig, config.to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="shrink"):
        config.load(UniSearchRunConfig, None, ["task.shrink=0"])
    with pytest.raises(ConfigError, match="not one of"):
        config.load(UniSearchRunConfig, None, ["model.codebook_update=kmeans"])
    config.load(SPOConfig)


def test_a_resumed_run_repeats_the_uninterrupted_one(tmp_path, commit_crash):
    import dataclasses

    from onefeed.train.unisearch import train_unisearch

    train = TrainConfig(lr=3e-3, epochs=4, batch_size=16, warmup_steps=2, patience=5,
                        eval_every=1)
    cfg = UniSearchRunConfig(model=dataclasses.replace(CFG, dropout=0.1), task=TASK,
                             train=train)
    train_unisearch(toy_data(), cfg, tmp_path / "straight")
    commit_crash.arm(2)
    with pytest.raises(KeyboardInterrupt):
        train_unisearch(toy_data(), cfg, tmp_path / "cut")
    commit_crash.disarm()
    train_unisearch(toy_data(), cfg, tmp_path / "cut")  # resumes from last/ at epoch 2
    for name in ("last", "best"):
        assert (tmp_path / "straight" / name / "model.safetensors").read_bytes() == \
            (tmp_path / "cut" / name / "model.safetensors").read_bytes(), name
