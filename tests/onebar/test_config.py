import pytest

from onefeed.config import ConfigError
from onefeed.onebar.config import OneBarConfig, load_config
from onefeed.paths import REPO


def test_shipped_default_loads_and_overrides_are_typed():
    cfg = load_config(REPO / "configs" / "onebar" / "default.toml", ["k=4", "ks=[1, 4]"])
    assert isinstance(cfg, OneBarConfig)
    assert (cfg.k, cfg.ks, cfg.format, cfg.anchor_sources) == (4, [1, 4], "schema", ["after"])
    assert cfg.plant_share == 0.02 and "weapon" in cfg.block_list


@pytest.mark.parametrize("override, message", [
    ("anchor_threshold=1.5", "anchor_threshold = 1.5: must be in [-1, 1]"),
    ("anchor_k=0", "anchor_k = 0: must be >= 1"),
    ("format=json", "'json' is not one of ('schema', 'verbose')"),
    ('anchor_sources=["after", "views"]', "anchor_sources ['views'] unknown"),
    ("k=4", "k = 4 < max(ks) = 8"),
    ("anchor_count=3", "unknown key(s) ['anchor_count']"),
])
def test_bad_values_fail_at_load_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)
