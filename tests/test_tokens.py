import numpy as np
import pytest

from onefeed.tokens import BEHAVIOUR_TOKENS, SPECIALS, TASKS, Vocab


@pytest.fixture(scope="module")
def vocab():
    return Vocab.build((4, 3, 5))


def test_ranges_are_disjoint_and_cover_everything(vocab):
    names = [vocab.name(t) for t in range(vocab.word_offset)]
    assert names[:len(SPECIALS)] == list(SPECIALS)
    assert names[vocab.behaviour_offset:vocab.task_offset] == list(BEHAVIOUR_TOKENS.values())
    assert names[vocab.task_offset:vocab.sid_offsets[0]] == list(TASKS)
    assert len(set(names)) == len(names) == vocab.word_offset
    assert vocab.size == vocab.word_offset + vocab.n_words and vocab.n_words > 30000


def test_sid_round_trip(vocab):
    codes = np.array([[0, 0, 0], [3, 2, 4], [1, 1, 2]])
    tokens = vocab.sid(codes)
    assert len(np.unique(tokens)) == tokens.size
    back = [[vocab.sid_level_code(int(t)) for t in row] for row in tokens]
    assert [[c for _, c in row] for row in back] == codes.tolist()
    assert [[lv for lv, _ in row] for row in back] == [[0, 1, 2]] * 3
    assert vocab.name(int(tokens[1, 1])) == "<l1_2>"
    with pytest.raises(ValueError):
        vocab.sid([[0, 3, 0]])


def test_behaviour_and_task_lookup(vocab):
    assert vocab.behaviour("rec_click") == vocab.behaviour("R_I")
    assert vocab.name(vocab.behaviour("search_query")) == "S_Q"
    assert vocab.kind(vocab.task("DESC2ID")) == "task"
    assert vocab.name(vocab.special("[REJECT]")) == "[REJECT]"
    with pytest.raises(KeyError):
        vocab.behaviour("purchase")


def test_word_round_trip(vocab):
    text = "red running shoes for women"
    tokens = vocab.words(text)
    assert all(vocab.kind(t) == "word" for t in tokens)
    assert vocab.decode_words(tokens) == text
    mixed = [vocab.behaviour("S_Q"), *tokens, vocab.special("SEP")]
    assert vocab.decode_words(mixed) == text


def test_dict_round_trip(vocab):
    assert Vocab.from_dict(vocab.to_dict()) == vocab
    assert Vocab.build((2, 2), words=False).size == Vocab.build((2, 2)).word_offset


def test_words_carry_no_padding(vocab):
    # the packaged tokenizer.json pads every text to 128 with [PAD]; [PAD] must never become a
    # word token (it entered the joint model's text vocabulary and its generated queries)
    from onefeed.tasks.joint import encode_texts

    assert vocab.words("red lipstick") == [vocab.word_offset + 2417, vocab.word_offset + 22359]
    rows = encode_texts(["red lipstick", "blue"], vocab, max_words=4)
    assert rows.tolist() == [[vocab.word_offset + 2417, vocab.word_offset + 22359, 0, 0],
                             [vocab.word_offset + 2630, 0, 0, 0]]
