import numpy as np
import pytest
import torch
from unisearch_toy import PAIRS, TEXTS, trained

from onefeed.decoding.reference import DictTrie, reference_beam_search
from onefeed.sid.table import SidTable
from onefeed.tasks.unisearch import (LearnedIndex, add_item, build_index, dataset_search_data,
                                     freeze, load_frozen, recall_mrr, search, word_ids)


@pytest.fixture(scope="module")
def model_task():
    return trained()


def test_word_ids_are_wordpiece_plus_one_and_padded():
    from onefeed.tokens import wordpiece_tokenizer

    ids = word_ids(["red lipstick", ""], 4)
    raw = wordpiece_tokenizer().encode("red lipstick", add_special_tokens=False).ids
    assert ids[0, :len(raw)].tolist() == [i + 1 for i in raw]
    assert (ids[0, len(raw):] == 0).all() and (ids[1] == 0).all()


def test_batches_cover_each_pair_once_with_hard_negatives(model_task):
    model, task = model_task
    rows = [b for b in task.batches(0, np.random.default_rng(1), 0, 1)]
    assert sum(len(b.items) for b in rows) == len(PAIRS) == task.steps_per_epoch(1) * 16
    assert sorted(torch.cat([b.items for b in rows]).tolist()) == sorted(i for _, i in PAIRS)
    b = rows[0]
    assert b.hard_words.shape == (16, 1, 2, 6)  # (B, L - 1, H, Wi)
    assert b.catalogue_words is None
    task.cfg.catalogue_items = 5
    try:
        cat = next(task.batches(0, np.random.default_rng(1), 0, 1)).catalogue_words
    finally:
        task.cfg.catalogue_items = 0
    ids = {tuple(w) for w in task.data.item_words.tolist()}
    assert cat.shape == (5, 6) and all(tuple(w) in ids for w in cat.tolist())
    assert all(tuple(w) in ids for w in b.hard_words.reshape(-1, 6).tolist())
    pos = [tuple(w) for w in b.item_words.tolist()]
    assert all(tuple(w) != p for p, negs in zip(pos, b.hard_words[:, 0].tolist()) for w in negs)


def test_trained_model_finds_the_clicked_item_far_above_chance(model_task):
    model, task = model_task
    index = build_index(model, task.data.item_words, spare=2)
    queries = [q for q, _ in PAIRS]
    targets = np.array([i for _, i in PAIRS])
    res = search(model, index, queries, k=5, beam=8)
    r1, mrr = recall_mrr(res.items.numpy(), targets, 1)
    assert r1 >= 0.75 > 1 / 16  # chance is 1/16 (seeds 0-2 give 1.0, 0.78, 0.81)
    assert (res.items >= 0).all() and set(res.items.flatten().tolist()) <= set(range(16))
    assert task.validate(model, 0, 1)["score"] >= 0.75


def test_beam_over_learned_codes_matches_the_reference_search(model_task):
    model, task = model_task
    index = build_index(model, task.data.item_words, spare=2)
    words = torch.as_tensor(word_ids(["red cream", "polish black"], model.cfg.max_query_words))
    state = model.search_state(words)
    ref = reference_beam_search(index.step_fn(model), state, DictTrie.from_codes(
        index.table.codes), 2, 4)
    fast = search(model, index, ["red cream", "polish black"], k=4, beam=4)
    assert fast.items.tolist() == ref.items.tolist()


def test_freeze_load_round_trip_reproduces_codes_and_search(model_task, tmp_path):
    model, task = model_task
    index = freeze(model, task.data.item_words, tmp_path, spare=2)
    table = SidTable.load(tmp_path)  # a plain SidTable artifact
    assert table.is_unique() and np.array_equal(table.codes, index.table.codes)
    assert table.codebook_sizes == (8, 8, int(index.table.codes[:, -1].max()) + 1 + 2)
    again, loaded = load_frozen(tmp_path)
    assert np.array_equal(again.assign_codes(torch.as_tensor(task.data.item_words)),
                          table.codes[:, :2])
    a = search(model, index, ["green shampoo"], k=3, beam=4)
    b = search(again, loaded, ["green shampoo"], k=3, beam=4)
    assert a.items.tolist() == b.items.tolist()
    assert torch.allclose(a.scores, b.scores)


def test_a_new_item_gets_codes_from_the_encoder_and_joins_the_trie(model_task):
    model, task = model_task
    index = build_index(model, task.data.item_words, spare=2)
    new = len(TEXTS)
    sharing = int((index.table.codes[:, :2] == index.table.codes[0, :2]).all(1).sum())
    codes = add_item(model, index, new, "red lipstick acme")  # the text of item 0
    assert codes[:2] == tuple(index.table.codes[0, :2])  # same encoder codes as item 0
    assert codes[2] == sharing  # the next free disambiguation slot under that prefix
    assert new in index.trie and index.trie.codes_of(new) == codes
    found = search(model, index, ["red lipstick"], k=len(TEXTS) + 1, beam=len(TEXTS) + 1)
    assert new in found.items[0].tolist()


def test_index_refuses_a_cold_start_item_past_its_spare_slots():
    codes = np.array([[0, 0], [0, 1]])
    index = LearnedIndex.build(codes, spare=1)
    assert index.table.codebook_sizes == (1, 2, 2)
    assert index.add(5, [0, 0]) == (0, 0, 1)
    with pytest.raises(ValueError, match="refreeze"):
        index.add(6, [0, 0])
    with pytest.raises(ValueError, match="unseen code"):
        index.add(7, [1, 0])
    roomy = LearnedIndex.build(codes, spare=1, sizes=(4, 4))  # the model's codebook sizes
    assert roomy.table.codebook_sizes == (4, 4, 2) and roomy.add(7, [3, 0]) == (3, 0, 0)


def test_colliding_codes_get_distinct_rows():
    index = LearnedIndex.build(np.array([[1, 2], [1, 2], [0, 2]]), spare=0)
    assert index.table.codes.tolist() == [[1, 2, 0], [1, 2, 1], [0, 2, 0]]
    assert index.table.codebook_sizes == (2, 3, 2)


def test_recall_mrr_by_hand():
    items = np.array([[3, 1, 2], [0, 5, 4], [7, 8, 9]])
    r, m = recall_mrr(items, np.array([1, 0, 2]), 2)
    assert r == pytest.approx(2 / 3) and m == pytest.approx((1 / 2 + 1) / 3)


def test_dataset_search_data_reads_train_clicks_and_valid_queries():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from joint_toy import make_world
    from unisearch_toy import CFG

    ds = make_world(n_users=5)
    data = dataset_search_data(ds, CFG, item_queries=False)
    assert len(data.items) == 15 and data.n_items == 12  # 3 search clicks per user
    both = dataset_search_data(ds, CFG)  # + one weak title query per item
    assert len(both.items) == 15 + 12 and both.queries[15:] == ds.queries["query"].to_list()
    assert len(data.valid_items) == 5
    assert data.queries[0] in {"red lipstick", "red polish", "red cream", "blue lipstick",
                               "blue polish", "blue cream"}


def test_items_sharing_learned_codes_are_ranked_by_query_similarity():
    from onefeed.decoding.beam import beam_search

    class Flat:  # a stand-in model: uniform over learned codes, L2 match scores
        def step(self, state, prefix, level):
            return torch.zeros(len(state[0]), 2), state

        def match_scores(self, q, vectors):
            return 1.0 - (q.unsqueeze(1) - vectors).pow(2).sum(-1)

    codes = np.array([[0, 1], [0, 1], [1, 0], [0, 1]])  # items 0, 1, 3 collide
    vectors = torch.tensor([[0.0], [2.0], [5.0], [1.0]])
    index = LearnedIndex.build(codes, spare=1, vectors=vectors)
    q = torch.tensor([[1.9]])
    state = (torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), q)
    res = beam_search(index.step_fn(Flat()), state, index.trie, 1, beam=4)
    # item 2 owns its codes (log 1 at the extra level); the group of three splits its mass,
    # nearest to 1.9 first: p(item | q) = p(codes | q) p(item | codes, q)
    assert res.items[0].tolist() == [2, 1, 3, 0]
    sims = torch.tensor([1 - 0.01, 1 - 0.81, 1 - 3.61])
    assert res.scores[0, 0].item() == 0.0
    assert res.scores[0, 1:].tolist() == pytest.approx(torch.log_softmax(sims, 0).tolist())
    # a cold-start item joins the group and is ranked with it
    index.add(4, [0, 1], torch.tensor([1.9]))
    res = beam_search(index.step_fn(Flat()), state, index.trie, 1, beam=5)
    assert res.items[0, :3].tolist() == [2, 4, 1]
    with pytest.raises(ValueError, match="pass its vector"):
        index.add(5, [1, 0])


def test_unconstrained_search_reports_invalid_generations(model_task):
    from onefeed.tasks.unisearch import unconstrained_search

    model, task = model_task
    index = build_index(model, task.data.item_words, spare=2)
    queries = [q for q, _ in PAIRS]
    items, valid = unconstrained_search(model, index, queries, k=4, beam=8)
    assert items.shape == (len(queries), 4) and 0 < valid <= 1
    assert valid == pytest.approx((items >= 0).mean())
    assert set(items[items >= 0].tolist()) <= set(range(len(TEXTS)))
    constrained = search(model, index, queries, k=4, beam=8).items
    assert (constrained >= 0).all()  # the trie never generates an invalid path
    # drop every item but one from the index: most unconstrained tuples become invalid
    sparse = LearnedIndex.build(index.table.codes[:1, :2], spare=0, sizes=(8, 8))
    _, valid_sparse = unconstrained_search(model, sparse, queries, k=4, beam=8)
    assert valid_sparse < valid


def test_item_neighbours_are_nearest_first_by_item_vector(model_task):
    from onefeed.tasks.unisearch import item_neighbours

    model, task = model_task
    nn_ids = item_neighbours(model, task.data.item_words, 3)
    vec = model.item_vectors(torch.as_tensor(task.data.item_words))
    dist = torch.cdist(vec, vec)
    assert nn_ids.shape == (len(TEXTS), 4)
    assert (nn_ids[:, 0] == np.arange(len(TEXTS))).all()  # itself first (texts are distinct)
    want = dist.argsort(1)[:, :4].numpy()
    assert (np.sort(nn_ids, 1) == np.sort(want, 1)).all()


def test_score_items_equals_the_beam_scores_of_the_same_items(model_task):
    from onefeed.tasks.unisearch import score_items

    model, task = model_task
    index = build_index(model, task.data.item_words, spare=2)
    index.add(len(TEXTS), model.assign_codes(torch.as_tensor(task.data.item_words[:1]))[0],
              model.item_vectors(torch.as_tensor(task.data.item_words[:1]))[0])
    queries = ["red cream", "shampoo blue"]
    res = search(model, index, queries, k=5, beam=8)
    got = score_items(model, index, queries, res.items.numpy())
    assert np.allclose(got, res.scores.numpy(), atol=1e-4)
    pad = score_items(model, index, queries[:1], np.array([[len(TEXTS), -1]]))
    assert np.isfinite(pad[0, 0]) and pad[0, 1] == -np.inf


def test_index_remove_frees_the_slot_and_a_replay_takes_a_given_one():
    index = LearnedIndex.build(np.array([[0, 0], [0, 0]]), spare=2)
    assert index.add(2, [0, 0]) == (0, 0, 2)
    index.remove(0)
    assert 0 not in index.trie and index.members[(0, 0)] == [-1, 1, 2]
    assert index.free_slot([0, 0]) == 0 and index.add(3, [0, 0]) == (0, 0, 0)
    index.remove(1)
    with pytest.raises(ValueError, match="already belong to item 3"):
        index.add(4, [0, 0], slot=0)
    assert index.add(4, [0, 0], slot=1) == (0, 0, 1) and index.trie.codes_of(4) == (0, 0, 1)
    assert index.add(5, [0, 0], slot=3) == (0, 0, 3) and index.members[(0, 0)] == [3, 4, 2, 5]
    with pytest.raises(ValueError, match="refreeze"):
        index.add(6, [0, 0])
