import numpy as np

from onefeed.data.views import rec_cases, train_sequences


def test_leave_one_out_cases(tiny_dataset):
    seqs = train_sequences(tiny_dataset)
    assert seqs[0].tolist() == [0, 1, 2]
    valid = rec_cases(tiny_dataset, "valid", max_history=2)
    assert valid.targets.tolist() == [3, 4, 5, 0, 6]
    assert valid.history[0].tolist() == [1, 2]
    test = rec_cases(tiny_dataset, "test", max_history=6)
    assert test.targets[0] == 4
    assert test.history[0].tolist() == [-1, -1, 0, 1, 2, 3]
    assert np.array_equal(test.users, np.arange(5))
