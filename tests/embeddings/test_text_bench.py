"""``onefeed bench sid --embedding-only`` on a handful of texts: rows, fidelity, merged report."""

import json

from onefeed.cli.bench_sid import _keep_quantizers, _markdown, run_embedding

TEXTS = ["Title: Red lipstick", "Title: Garden hose 50 ft; Brand: Flexzilla",
         "Title: Vitamin C serum; Categories: Beauty > Skin Care > Face > Serums", "Title: Soap"]


def test_embedding_bench_rows_and_merged_markdown(tmp_path):
    content, emb = run_embedding(TEXTS)
    assert emb.shape == (4, 384)
    runs = content["runs"]
    assert {r["threads"] for r in runs.values()} == {1, 2}
    for name in ("fast_default", "fast_default_ops", "fast_default_1thread", "fast_fp32"):
        assert runs[name]["cosine_to_plain_fp32"]["min"] >= 0.999
    speeds = runs["fast_default"]["items_per_s_runs"]  # the headline row: median of 3 runs
    assert len(speeds) == 3 and runs["fast_default"]["items_per_s"] == sorted(speeds)[1]
    assert "items_per_s_runs" not in runs["fast_fp32"]
    assert content["truncate_128_cosine_to_256"]["n_truncated"] == 0  # all texts are short
    previous = {"command": "onefeed bench sid", "commit": "abc", "load_average_before": [1, 1, 1],
                "load_average_after": [1, 1, 1],
                "rq_kmeans_plain": {"fit_encode_s": 3.0, "collision_rate": 15.0},
                "rq_kmeans_balanced": {"fit_encode_s": 6.0, "collision_rate": 11.0},
                "rqvae": {"train_encode_s": 130.0, "collision_rate": 4.0,
                          "reconstruction_error": 0.3, "config": {"epochs": 200}}}
    (tmp_path / "sid.json").write_text(json.dumps(previous))
    result = {"input": {"source": "test", "n_items": 4}, "content_embedding": content, "seed": 0,
              "load_average_before": [0, 0, 0], "load_average_after": [0, 0, 0],
              "command": "onefeed bench sid --embedding-only", "commit": "def",
              "machine": {"cpu_count": 2, "processor": "x"}}
    merged = _keep_quantizers(result, tmp_path / "sid.json")
    assert merged["rqvae"] == previous["rqvae"] and merged["quantizers_from"]["commit"] == "abc"
    text = _markdown(merged)
    precision = content["default"]["resolved_precision"]
    assert f"MiniLM default: {precision} autocast" in text and "RQ-VAE train (200 epochs)" in text
    assert "at commit `abc`" in text
    assert "median of 3 runs: " in text
    assert len(runs["fast_default_ops"]["items_per_s_runs"]) == 3  # measured side by side
    ratio = runs["fast_default"]["items_per_s"] / runs["fast_default_ops"]["items_per_s"]
    assert f"| {ratio:.2f}x items/s |" in text
