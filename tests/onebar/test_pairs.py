import pytest

from onefeed.onebar.pairs import UserQueries, eval_pairs, session_pairs


def test_session_pairs_take_the_last_item_before_each_query_normalised(world):
    pairs = session_pairs(world)
    assert pairs.rows() == [
        (0, 1, 0, 0, "red shoe", "train"), (0, 4, 2, 3, "blue boot", "train"),
        (1, 1, 0, 0, "red shoe", "train"), (1, 4, 1, 3, "red sneaker", "train"),
        (2, 1, 2, 0, "blue boot", "train"), (2, 4, 5, 3, "replica", "train")]
    everything = session_pairs(world, split=None)
    assert everything.filter(everything["split"] == "test").rows() == [
        (1, 7, 2, 6, "blue rain boot", "test")]


def test_eval_pairs_trigger_is_the_item_watched_before_the_split_target(world):
    assert eval_pairs(world, "valid").rows() == [(0, 6, 3, 5, "green hat", "valid"),
                                                 (2, 6, 5, 5, "hat", "valid")]
    # the test trigger is the valid target (history = train + valid, as views.rec_cases)
    assert eval_pairs(world, "test").rows() == [(0, 7, 4, 6, "red shoe classic", "test"),
                                                (1, 8, 2, 6, "blue boot rain", "test")]
    with pytest.raises(ValueError, match="'valid' or 'test'"):
        eval_pairs(world, "train")


def test_user_queries_before_a_position_most_recent_last(world):
    uq = UserQueries(world)
    assert uq.before(0, 7, 10) == ["red shoe", "blue boot"]
    assert uq.before(0, 4, 10) == ["red shoe"]  # strictly before
    assert uq.before(0, 7, 1) == ["blue boot"]
    assert uq.before(1, 1, 10) == [] and uq.before(99, 5, 3) == []
    assert uq.before(1, 8, 1) == ["blue rain boot"]  # a test-period search
