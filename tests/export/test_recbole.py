import polars as pl

from onefeed.export.recbole import export_recbole


def test_export_round_trips_events_and_order(tiny_dataset, tmp_path):
    out = export_recbole(tiny_dataset, tmp_path, "tiny", max_history=5)
    inter = pl.read_csv(out / "tiny.inter", separator="\t")
    assert inter.columns == ["user_id:token", "item_id:token", "timestamp:float"]
    assert inter.height == tiny_dataset.events.height
    # user 0's sequence in time order is 0,1,2,3,4: RecBole's TO leave-one-out gives test 4
    u0 = inter.filter(pl.col("user_id:token") == 0).sort("timestamp:float")
    assert u0["item_id:token"].to_list() == [0, 1, 2, 3, 4]
    item = pl.read_csv(out / "tiny.item", separator="\t")
    assert item.height == 8 and item["title:token_seq"][1] == "item 1 red shoe"
    yaml = (out / "recbole.yaml").read_text()
    assert "MAX_ITEM_LIST_LENGTH: 5" in yaml and "mode: full" in yaml


def test_export_refuses_recboles_reserved_name(tiny_dataset, tmp_path):
    import pytest
    with pytest.raises(ValueError, match="ml-100k"):
        export_recbole(tiny_dataset, tmp_path, "ml-100k")
