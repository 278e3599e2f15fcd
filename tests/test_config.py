"""Config validation at load: ranges declared beside the fields, finite floats, cross-field
rules, unknown keys and unreadable files -> ConfigError naming the key, value and range."""

from __future__ import annotations

import math
from pathlib import Path

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onefeed import config
from onefeed.config import ConfigError, check_range, in_range
from onefeed.data.datasets.generic import GenericMapping
from onefeed.data.prepare import PrepareConfig, load_config
from onefeed.bench.runner import SuiteConfig, load_suite
from onefeed.bench.auto import load_config as load_auto_config
from onefeed.bench.closed_loop import load_config as load_closed_loop_config
from onefeed.bench.onebar import load_config as load_onebar_suite
from onefeed.bench.unisearch import load_config as load_unisearch_suite
from onefeed.onebar.config import OneBarConfig, load_config as load_onebar_config
from onefeed.paths import REPO
from onefeed.sid.build import SidConfig
from onefeed.train.joint import JointRunConfig
from onefeed.train.rec import RunConfig
from onefeed.train.unisearch import UniSearchRunConfig


@pytest.mark.parametrize("value,spec,ok", [
    (0, ">= 0", True), (-1, ">= 0", False), (0, "> 0", False), (1e-9, "> 0", True),
    (0.0, "[0, 1)", True), (1.0, "[0, 1)", False), (1.0, "[0, 1]", True),
    (0.0, "(0, 1)", False), (0.5, "(0, 1)", True), (3, "<= 2", False), (2, "< 3", True)])
def test_in_range_reads_intervals_and_bounds(value, spec, ok):
    assert in_range(value, spec) is ok


def test_check_range_names_key_value_and_range_and_walks_lists():
    with pytest.raises(ConfigError, match=r"^train\.epochs = 0: must be >= 1$"):
        check_range(0, ">= 1", "train.epochs")
    with pytest.raises(ConfigError, match=r"hidden\[1\] = 0: must be >= 1"):
        check_range([4, 0], ">= 1", "hidden")
    check_range(None, ">= 1", "boundaries")  # an unset optional passes


@pytest.mark.parametrize("cls,override,message", [
    (PrepareConfig, "k_core=-3", "k_core = -3: must be >= 0"),
    (PrepareConfig, "valid_frac=-0.5", "valid_frac = -0.5: must be in (0, 1)"),
    (PrepareConfig, "test_frac=2.0", "test_frac = 2.0: must be in (0, 1)"),
    (PrepareConfig, "search_share=7.5", "search_share = 7.5: must be in [0, 1]"),
    (PrepareConfig, "max_history=0", "max_history = 0: must be >= 1"),
    (PrepareConfig, "queries.holdout_frac=2.0", "queries.holdout_frac = 2.0: must be in [0, 1)"),
    (PrepareConfig, "boundaries=[5, 3]", "valid_start < test_start"),
    (PrepareConfig, "boundaries=[-1, 3]", "boundaries[0] = -1: must be >= 0"),
    (SidConfig, "codebook_size=0", "codebook_size = 0: must be >= 2"),
    (SidConfig, "levels=0", "levels = 0: must be >= 1"),
    (SidConfig, "batch_size=0", "batch_size = 0: must be >= 1"),
    (SidConfig, "rqvae.epochs=-1", "rqvae.epochs = -1: must be >= 1"),
    (SidConfig, "joint.codebook_size=1", "joint.codebook_size = 1: must be >= 2"),
    (RunConfig, "train.epochs=-1", "train.epochs = -1: must be >= 1"),
    (RunConfig, "train.batch_size=0", "train.batch_size = 0: must be >= 1"),
    (RunConfig, "train.lr=0", "train.lr = 0.0: must be > 0"),
    (RunConfig, "train.lr=NaN", "train.lr: nan is not a finite number"),
    (RunConfig, "train.grad_clip=Infinity", "train.grad_clip: inf is not a finite number"),
    (RunConfig, "model.dropout=1.0", "model.dropout = 1.0: must be in [0, 1)"),
    (RunConfig, "train.betas=[0.9, 1.0]", r"train.betas[1] = 1.0: must be in [0, 1)"),
    (JointRunConfig, "tasks.nsqp=-1", "tasks.nsqp = -1.0: must be >= 0"),
    (SuiteConfig, "threads=0", "threads = 0: must be >= 1"),
    (SuiteConfig, "protocol.ks=[0, 10]", "protocol.ks[0] = 0: must be >= 1"),
])
def test_out_of_range_values_fail_at_load_naming_the_key(cls, override, message):
    with pytest.raises(ConfigError) as err:
        config.load(cls, None, [override])
    assert message in str(err.value)


def test_cross_field_rules_and_post_init_errors_become_config_errors():
    with pytest.raises(ConfigError, match=r"valid_frac \+ test_frac = 1.1: must be < 1"):
        config.load(PrepareConfig, None, ["valid_frac=0.6", "test_frac=0.5"])
    with pytest.raises(ConfigError, match="queries: min_tokens = 5 > max_tokens = 2"):
        config.load(PrepareConfig, None, ["queries.min_tokens=5", "queries.max_tokens=2"])
    with pytest.raises(ConfigError, match="queries: weak query sources"):
        config.load(PrepareConfig, None, ['queries.sources=["title", "bogus"]'])


def test_unknown_keys_and_wrong_types_name_the_path():
    with pytest.raises(ConfigError, match=r"^train: unknown key\(s\) \['bogus'\]"):
        config.load(RunConfig, None, ["train.bogus=1"])
    with pytest.raises(ConfigError, match="train.epochs: expected int, got 1.5"):
        config.load(RunConfig, None, ["train.epochs=1.5"])


def test_generic_mapping_checks_separator_and_encoding():
    for sep in ("", "||", "\u00a7", "\n", '"'):
        with pytest.raises(ConfigError, match="separator"):
            config.from_dict(GenericMapping, {"events": {"separator": sep}})
    with pytest.raises(ConfigError, match="encoding = 'utf-9': unknown"):
        config.from_dict(GenericMapping, {"items": {"encoding": "utf-9"}})
    assert config.from_dict(GenericMapping, {"events": {"separator": ";",
                                                        "encoding": "latin-1"}})


def test_unreadable_config_files_say_what_and_where(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file not found \\(looked at {missing}\\)"):
        config.load(RunConfig, missing)
    bad = tmp_path / "bad.toml"
    bad.write_text("a = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(RunConfig, bad)
    bad.write_bytes(b"\xff\xfe = 1")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(RunConfig, bad)
    bad.write_text("x = " + "[" * 100_000)
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(RunConfig, bad)


def test_defaults_and_every_shipped_config_pass_validation():
    for cls in (PrepareConfig, SidConfig, RunConfig, JointRunConfig, SuiteConfig, OneBarConfig):
        config.load(cls)
    for path in (REPO / "configs" / "prepare").glob("*.toml"):
        load_config(path)
    for path in (REPO / "configs" / "sid").glob("*.toml"):
        config.load(SidConfig, path)
    for path in (REPO / "configs" / "model").glob("*.toml"):
        joint = tomllib.loads(path.read_text()).get("model", {}).get("arch") == "joint"
        config.load(JointRunConfig if joint else RunConfig, path)
    for path in (REPO / "configs" / "onebar").glob("*.toml"):
        load_onebar_config(path)
    for path in (REPO / "configs" / "unisearch").glob("*.toml"):  # onefeed unisearch train
        config.load(UniSearchRunConfig, path)
    onebar = REPO / "configs" / "bench" / "onebar"
    auto = REPO / "configs" / "bench" / "auto"  # `onefeed bench auto`: its own config + templates
    for path in (REPO / "configs" / "bench").rglob("*.toml"):
        if path.name == "closed-loop.toml":  # `onefeed bench closed-loop`'s own config
            load_closed_loop_config(path)
        elif path.parent == onebar:  # `onefeed bench beauty-onebar [--dataset ...]`
            load_onebar_suite(path)
        elif path.name == "beauty-unisearch.toml":  # `onefeed bench beauty-unisearch`
            load_unisearch_suite(path)
        elif path.parent != auto:
            load_suite(path)
    auto_config = load_auto_config(auto / "default.toml")
    load_suite(auto / "suite.toml")
    for name in ("tiger", "joint"):
        model = tomllib.loads((auto / f"{name}.toml").read_text())
        config.load(JointRunConfig if model["model"].get("arch") == "joint" else RunConfig,
                    auto / f"{name}.toml")
    assert auto_config.template.endswith("suite.toml")


def test_relative_options_config_resolves_against_the_prepare_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    prep = tmp_path / "sub" / "prep.toml"
    prep.write_text('dataset = "generic"\n[options]\nconfig = "../maps/m.toml"\n')
    monkeypatch.chdir(Path("/"))
    cfg = load_config(prep)
    assert cfg.options["config"] == str(tmp_path / "sub" / "../maps/m.toml")
    # named on the command line instead: left as given (relative to the working directory)
    assert load_config(prep, ["options.config=m.toml"]).options["config"] == "m.toml"


@settings(max_examples=150, deadline=None)
@given(value=st.one_of(st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True)),
       key=st.sampled_from(["valid_frac", "search_share", "k_core", "max_history"]))
def test_property_a_prepare_value_loads_iff_it_is_finite_and_in_range(value, key):
    spec = PrepareConfig.RANGES[key]
    is_int_key = key in ("k_core", "max_history")
    expected = (isinstance(value, int) if is_int_key else math.isfinite(value)) and \
        in_range(value, spec) and not (key == "valid_frac" and value + 0.1 >= 1)
    try:
        cfg = config.from_dict(PrepareConfig, {key: value})
    except ConfigError:
        assert not expected
    else:
        assert expected and getattr(cfg, key) == value


def test_overrides_into_a_value_and_huge_ints_are_config_errors():
    with pytest.raises(ConfigError, match="k_core is a value, not a table"):
        config.load(PrepareConfig, None, ["k_core.x=1"])
    with pytest.raises(ConfigError, match="too large for a float"):
        config.load(RunConfig, None, [f"train.lr={10 ** 400}"])
