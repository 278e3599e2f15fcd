"""Export a prepared ``Dataset`` as RecBole atomic files, so an outside evaluator can be run on
exactly our split (issue 5, item 7).

Files (tab-separated, RecBole's ``name:type`` headers):

* ``<name>.inter`` — ``user_id:token item_id:token timestamp:float``: every item event, with
  ``timestamp`` = our chronological ``position`` so RecBole's time-ordered leave-one-out
  (``eval_args.order = TO``, ``split = {LS: valid_and_test}``) reproduces our split.
* ``<name>.item`` — ``item_id:token title:token_seq categories:token_seq brand:token``.
* ``recbole.yaml`` — the config matching our protocol (full ranking, history length, no
  k-core re-filtering since ours is already applied).

RecBole masks a user's history items in full-sort evaluation only for general (non-sequential)
models; its sequential models (SASRec, GRU4Rec, BERT4Rec) rank every item, like our default
protocol (``filter_seen = false``), so their numbers compare with ours directly. The dataset name
must not be ``ml-100k``: RecBole then reads its bundled copy instead of ``data_path``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from onefeed.data.schemas import Dataset
from onefeed.data.views import item_events


def _tokens(text: object) -> str:
    return " ".join(str(text or "").replace("\t", " ").split())


def export_recbole(ds: Dataset, out_dir: str | Path, name: str | None = None,
                   max_history: int = 20) -> Path:
    """Write ``<out_dir>/<name>/{<name>.inter, <name>.item, recbole.yaml}``; returns the dir."""
    name = name or ds.name
    if name == "ml-100k":
        raise ValueError("RecBole replaces a dataset named 'ml-100k' by its bundled copy; "
                         "pass another name (e.g. onefeed_ml100k)")
    out = Path(out_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    ev = item_events(ds)
    inter = ev.select(pl.col("user").cast(pl.Utf8).alias("user_id:token"),
                      pl.col("item").cast(pl.Utf8).alias("item_id:token"),
                      pl.col("position").cast(pl.Float64).alias("timestamp:float"))
    inter.write_csv(out / f"{name}.inter", separator="\t")
    items = ds.items.sort("item")
    cats = (items["categories"].to_list() if "categories" in items.columns
            else [None] * items.height)
    item = pl.DataFrame({
        "item_id:token": [str(i) for i in items["item"].to_list()],
        "title:token_seq": [_tokens(t) for t in items["title"].to_list()],
        "categories:token_seq": [_tokens(" ".join(c or [])) for c in cats],
        "brand:token": [_tokens(b).replace(" ", "_") for b in items["brand"].to_list()],
    })
    item.write_csv(out / f"{name}.item", separator="\t")
    (out / "recbole.yaml").write_text(recbole_config(name, max_history), encoding="utf-8")
    return out


def recbole_config(name: str, max_history: int) -> str:
    return f"""# RecBole config reproducing onefeed's leave-one-out split of `{name}` (full ranking).
dataset: {name}
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
TIME_FIELD: timestamp
load_col:
  inter: [user_id, item_id, timestamp]
MAX_ITEM_LIST_LENGTH: {max_history}
user_inter_num_interval: "[0,inf)"
item_inter_num_interval: "[0,inf)"
eval_args:
  split: {{LS: valid_and_test}}
  order: TO
  group_by: user
  mode: full
metrics: [Recall, NDCG, Hit, MRR]
topk: [5, 10, 20]
valid_metric: NDCG@10
train_neg_sample_args: ~
loss_type: CE
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m onefeed.export.recbole")
    parser.add_argument("--data", required=True, help="prepared Dataset dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name")
    parser.add_argument("--max-history", type=int, default=20)
    args = parser.parse_args(argv)
    print(export_recbole(Dataset.load(args.data), args.out, args.name, args.max_history))


if __name__ == "__main__":
    main()
