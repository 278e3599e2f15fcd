import numpy as np
import pytest

from onefeed.tasks.joint import (NRIP, NSIP, NSQP, S_Q, IdLayout, history_before, joint_batch,
                                 joint_data, path_code_tensors, query_index, training_windows,
                                 with_queries)
from onefeed.tokens import Vocab

from joint_toy import make_world, sid_dir


@pytest.fixture(scope="module")
def world():
    return make_world(n_users=4)


def test_layout_single_and_joint(tmp_path):
    single = IdLayout.load(sid_dir(tmp_path))
    assert single.kind == "single" and single.rec_cols == single.search_cols == (0, 1, 2)
    joint = IdLayout.load(sid_dir(tmp_path, joint=True))
    # [shared c0, semantic c1 c2, collaborative c1]
    assert joint.kind == "joint" and joint.codebook_sizes == (2, 3, 2, 6)
    assert joint.search_cols == (0, 1, 2) and joint.rec_cols == (0, 3)
    joint.check_unique()
    assert np.array_equal(joint.path_codes("rec")[:, 1], np.arange(12) % 6)
    sem_only = IdLayout.load(sid_dir(tmp_path, joint=True), use="semantic")
    assert sem_only.kind == "single" and sem_only.codebook_sizes == (2, 3, 2)
    with pytest.raises(ValueError, match="needs a joint SID build"):
        IdLayout.load(sid_dir(tmp_path), use="collab")


def test_from_halves_borrows_disambiguation_column():
    codes = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 2]])  # search half [c0] not unique alone
    lay = IdLayout.from_halves(codes, (2, 2, 3), (0,), (1,), "separate")
    assert lay.search_cols == (0, 2) and lay.rec_cols == (1, 2)
    lay.check_unique()


def test_batch_tasks_follow_the_next_event(world):
    vocab = Vocab.build((2, 3, 2))
    jd = joint_data(world, vocab)
    # user 0: R S_Q S_I R S_Q S_I R S_Q S_I (train) then valid, test
    assert jd.behaviour[:9].tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3]
    windows = training_windows(jd, max_len=20)
    assert len(windows) == 4  # one window per user (9 train events each)
    layout = IdLayout.single(np.stack([np.arange(12) // 6, np.arange(12) % 3,
                                       (np.arange(12) // 3) % 2], 1), (2, 3, 2))
    b = joint_batch(windows[:1], jd, path_code_tensors(layout), vocab)
    # inputs = events 0..7, targets = events 1..8
    assert b.task[0].tolist() == [NSQP, NSIP, NRIP, NSQP, NSIP, NRIP, NSQP, NSIP]
    items = jd.item[:9]
    assert b.target_item[0, 1] == items[2] and b.target_item[0, 2] == items[3]
    assert b.target_item[0, 0] == -1  # a query target has no item
    q = jd.query_text[jd.query[1]]
    assert vocab.decode_words(b.target_words[0, 0][b.target_words[0, 0] > 0].tolist()) == q
    ev = b.events
    assert ev.valid[0].all() and (ev.items[0, 1] == -1) and (ev.words[0, 1] > 0).any()
    assert (ev.codes[0, 1] == -1).all() and (ev.codes[0, 0] >= 0).all()
    assert ev.behaviours[0, :3].tolist() == [vocab.behaviour("rec_click"),
                                             vocab.behaviour("search_query"),
                                             vocab.behaviour("search_click")]


def test_nrip_all_also_targets_the_item_clicked_after_a_query(world):
    vocab = Vocab.build((2, 3, 2))
    jd = joint_data(world, vocab)
    windows = training_windows(jd, max_len=20)
    layout = IdLayout.single(np.stack([np.arange(12) // 6, np.arange(12) % 3,
                                       (np.arange(12) // 3) % 2], 1), (2, 3, 2))
    codes = path_code_tensors(layout)
    items = jd.item[:9]  # user 0: R S_Q S_I R S_Q S_I R S_Q S_I (train)
    feed = joint_batch(windows[:1], jd, codes, vocab)
    assert feed.rec_item[0].tolist() == [-1, -1, items[3], -1, -1, items[6], -1, -1]
    every = joint_batch(windows[:1], jd, codes, vocab, nrip="all")
    # before each query: the item its search click (two events on) went to; NSQP stays
    assert every.rec_item[0].tolist() == [items[2], -1, items[3], items[5], -1, items[6],
                                          items[8], -1]
    assert every.task[0].tolist() == feed.task[0].tolist()
    # a click outside the training split is never a target
    split = jd.split.copy()
    split[5] = 1
    jd.split = split
    held = joint_batch(windows[:1], jd, codes, vocab, nrip="all")
    assert held.rec_item[0, 3] == -1 and held.rec_item[0, 0] == items[2]
    with pytest.raises(ValueError, match="nrip targets 'some' unknown"):
        joint_batch(windows[:1], jd, codes, vocab, nrip="some")


def test_history_before_caps_items_and_appends_the_query(world):
    vocab = Vocab.build((2, 3, 2))
    jd = joint_data(world, vocab, extra_queries=["crimson gloss"])
    h = history_before(jd, np.array([0]), "test", max_len=20)
    assert h[0, -10:].tolist() == list(range(10))  # 9 train events + the valid click
    assert (h[0, :-10] == -1).all()
    h2 = history_before(jd, np.array([0]), "valid", max_len=5, max_items=2)
    # last 5 events before valid: 4..8 = S_Q S_I R S_Q S_I; items at or after each: 3 3 2 1 1
    assert h2[0].tolist() == [-1, -1, 6, 7, 8]
    row = query_index(jd, ["crimson gloss"])
    h3 = history_before(jd, np.array([0]), "test", max_len=4, query_rows=row)
    assert h3[0, :3].tolist() == [7, 8, 9] and h3[0, 3] == -(2 + row[0])
    jd2, idx = with_queries(jd, h3)
    assert jd2.behaviour[idx[0, 3]] == S_Q and jd2.query_text[jd2.query[idx[0, 3]]] == \
        "crimson gloss"
    with pytest.raises(KeyError, match="not in the query table"):
        query_index(jd, ["never seen"])


def test_unknown_behaviour_is_named(world):
    import polars as pl

    bad = world.events.with_columns(pl.lit("purchase").alias("behaviour"))
    ds = type(world)(bad, world.items, world.users, world.queries, world.eval_queries,
                     world.manifest)
    with pytest.raises(ValueError, match="unknown behaviours.*purchase"):
        joint_data(ds, Vocab.build((2, 3, 2)))


def test_from_halves_adds_its_own_disambiguation_when_borrowing_is_not_enough():
    # the table's last column separates full rows only: rec half [c1] + c2 still collides
    codes = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]])
    lay = IdLayout.from_halves(codes, (2, 2, 2), (0,), (1,), "separate")
    lay.check_unique()
    assert lay.codes.shape[1] == 5 and lay.codebook_sizes == (2, 2, 2, 2, 2)
    assert lay.search_cols == (0, 3) and lay.rec_cols == (1, 4)
    assert lay.codes[:, 3].tolist() == [0, 0, 1, 1]  # item-id order within each group
    assert lay.codes[:, 4].tolist() == [0, 1, 0, 1]
