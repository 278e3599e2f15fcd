"""The seeded fuzz (onefeed.fuzzing) in CI size: a few hundred cases, 0 tracebacks, 0 accepted
invalid inputs; cases are reproducible from (target, seed, index) alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from onefeed import fuzzing

LOADER_CASES = 50  # x 7 loaders
COMMAND_CASES = 4  # x 14 commands


def _failures(tallies: dict[str, fuzzing.Tally]) -> dict[str, dict]:
    return {name: t.examples for name, t in tallies.items()
            if t.counts["traceback"] or t.counts["accepted_invalid"]}


def test_loaders_fail_cleanly_on_every_malformed_input():
    tallies = fuzzing.fuzz_loaders(LOADER_CASES, seed=0)
    assert set(tallies) == {"generic_csv", "generic_jsonl", "generic_parquet", "amazon_raw",
                            "movielens", "kuairec", "lcrec"}
    assert _failures(tallies) == {}
    assert all(t.cases == LOADER_CASES == t.counts["clean"] for t in tallies.values())


def test_prepare_never_fails_a_leakage_check_or_accepts_invalid_input():
    tally = fuzzing.fuzz_prepare(30, seed=0)
    assert tally.cases == 30 and tally.counts["clean"] == 30, tally.examples


def test_commands_fail_with_one_error_line():
    tallies = fuzzing.fuzz_commands(COMMAND_CASES, seed=1)
    assert set(tallies) == set(fuzzing.COMMANDS)
    assert _failures(tallies) == {}


def test_cases_are_reproducible_and_cover_valid_and_invalid_inputs():
    a = [fuzzing.generic_case("jsonl", 3, i) for i in range(60)]
    assert a == [fuzzing.generic_case("jsonl", 3, i) for i in range(60)]
    assert a != [fuzzing.generic_case("jsonl", 4, i) for i in range(60)]
    assert {c.invalid for c in a} == {True, False}
    assert fuzzing.command_case("train", 0, 5) == fuzzing.command_case("train", 0, 5)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_valid_generic_inputs_load(tmp_path, fmt):
    valid = next(c for i in range(500) if (c := fuzzing.generic_case(fmt, 0, i)).mutation
                 == "valid" and b"search_text" in c.files.get(f"events.{fmt}", b"x"))
    result = fuzzing.run_loader_case(valid, tmp_path)
    assert (result.outcome, result.detail) == ("clean", "loaded")


def test_planted_invalid_value_that_loads_is_counted_as_accepted_invalid(tmp_path):
    """The classifier itself: a case claiming to be invalid but loading fine is flagged."""
    valid = next(c for i in range(500) if (c := fuzzing.movielens_case(0, i)).mutation
                 == "valid")
    lying = fuzzing.Case(valid.target, "planted", True, valid.files, valid.args)
    assert fuzzing.run_loader_case(lying, tmp_path).outcome == "accepted_invalid"


def test_report_and_markdown_shape(tmp_path: Path):
    tally = fuzzing.Tally()
    tally.add(fuzzing.Result(fuzzing.Case("x", "m", True), "traceback", "KeyError: 'a'"))
    result = fuzzing.report({"generic_csv": tally}, {"train": fuzzing.Tally()}, seed=0)
    row = result["loaders"]["generic_csv"]
    assert (row["cases"], row["clean"], row["traceback"], row["accepted_invalid"]) == (1, 0, 1, 0)
    assert row["examples"] == {"traceback": ["m: KeyError: 'a'"]}
    assert {"seed", "commit", "machine", "commands"} <= set(result)
    assert "| generic_csv | 1 | 0 | 1 | 0 |" in fuzzing.markdown(result)
