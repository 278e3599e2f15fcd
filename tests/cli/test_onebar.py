"""onefeed onebar build, onefeed suggest and onefeed bench beauty-onebar, in-process."""

import importlib.util
import json
from pathlib import Path

import pytest

from onefeed.cli import main

_spec = importlib.util.spec_from_file_location(
    "_onebar_world", Path(__file__).parents[1] / "onebar" / "world.py")
world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(world)


def ok(capsys, argv):
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def fails(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, emb = world.save_world(root)
    return root, data, emb


@pytest.fixture(scope="module")
def artifact(built):
    root, data, emb = built
    main(["onebar", "build", "--data", str(data), "--embeddings", str(emb), "--out",
          str(root / "onebar"), "--set", "plant_share=0.05", "--quiet"])
    return root / "onebar"


def test_build_prints_a_summary_and_writes_the_artifact(built, capsys, tmp_path):
    root, data, emb = built
    out = json.loads(ok(capsys, ["onebar", "build", "--data", data, "--embeddings", emb,
                                 "--out", tmp_path / "ob", "--set", "plant_share=0.05",
                                 "--quiet"]))
    assert out["planted"] == 3 and out["examples"]["test"]["examples"] > 0
    assert json.loads((tmp_path / "ob" / "manifest.json").read_text())["kind"] == "onebar"


def test_build_errors(built, capsys, tmp_path):
    root, data, _ = built
    assert "not a prepared dataset" in fails(capsys, ["onebar", "build", "--data", tmp_path])
    assert "plant_share = 2.0" in fails(capsys, ["onebar", "build", "--data", data, "--out",
                                                 tmp_path / "x", "--set", "plant_share=2.0"])
    assert "overlaps the input" in fails(capsys, ["onebar", "build", "--data", data, "--out",
                                                  data / "onebar"])


def test_suggest_prints_json_for_an_item_and_a_user(artifact, capsys):
    from onefeed.onebar.pipeline import load

    run = load(artifact)
    items = run.dataset().items.sort("item")["item_id"].to_list()
    safe = next(i for i in range(len(items)) if i not in set(run.planted.tolist())
                and run.index.anchors[i])
    out = json.loads(ok(capsys, ["suggest", "--run", artifact, "--item", items[safe], "--user",
                                 "u3", "-k", "3"]))
    assert out == {"item": items[safe], "user": "u3", "queries": out["queries"],
                   "reject": False, "method": "anchor-cascade"}
    assert 1 <= len(out["queries"]) <= 3
    planted = items[int(run.planted[0])]
    out = json.loads(ok(capsys, ["suggest", "--run", artifact, "--item", planted, "--method",
                                 "query-prior"]))
    assert out["reject"] is True and out["queries"] == [] and out["user"] is None


def test_suggest_errors_name_the_bad_input(artifact, capsys, tmp_path):
    assert "item 'nope' not found" in fails(capsys, ["suggest", "--run", artifact, "--item",
                                                     "nope"])
    assert "user 'ghost' not found" in fails(capsys, ["suggest", "--run", artifact, "--item",
                                                      "0", "--user", "ghost"])
    assert "no model checkpoint" in fails(capsys, ["suggest", "--run", artifact, "--item", "0",
                                                   "--method", "model"])
    assert "not a OneBar artifact" in fails(capsys, ["suggest", "--run", tmp_path, "--item",
                                                     "0"])


def test_bench_command_runs_a_suite_config(built, artifact, capsys, tmp_path):
    cfg = tmp_path / "suite.toml"
    cfg.write_text(f'suite = "t-onebar"\nartifact = "{artifact}"\nlatency_triggers = 500\n')
    text = ok(capsys, ["bench", "beauty-onebar", "--config", cfg, "--out", tmp_path / "r"])
    assert "| `query-prior` | 1 |" in text
    assert json.loads((tmp_path / "r" / "results.json").read_text())["suite"] == "t-onebar"
    assert "not registered" in fails(capsys, ["bench", "beauty-onebar", "--config", cfg,
                                              "--rows", "gpt", "--out", tmp_path / "r"])


def test_suggest_with_a_model_checkpoint_dir(artifact, capsys, tmp_path):
    """--model DIR serves a QuerySuggester saved anywhere (the bench's trained rows live under
    RUN/models/<row>/seed<seed>); the answer is what the suggester itself gives."""
    from onefeed.onebar.model import QuerySuggester, SuggesterConfig
    from onefeed.onebar.pipeline import load
    from onefeed.onebar.serving import TriggerSuggester

    run = load(artifact)
    targets = [t for _, t in run.example_texts("train")]
    model = QuerySuggester.build(targets, SuggesterConfig(d_model=16, n_heads=2, d_ff=32,
                                                          enc_layers=1, dec_layers=1))
    model.save(tmp_path / "m")
    items = run.dataset().items.sort("item")["item_id"].to_list()
    out = json.loads(ok(capsys, ["suggest", "--run", artifact, "--item", items[0], "--method",
                                 "model", "--model", tmp_path / "m", "-k", "3"]))
    want = TriggerSuggester(run, "model", QuerySuggester.load(tmp_path / "m")).suggest(
        items[0], None, 3)
    assert out["method"] == "model" and out["queries"] == want.queries
    assert out["reject"] == want.reject
    assert "only with --method model" in fails(capsys, ["suggest", "--run", artifact, "--item",
                                                        items[0], "--model", tmp_path / "m"])
    assert "no QuerySuggester checkpoint" in fails(
        capsys, ["suggest", "--run", artifact, "--item", items[0], "--method", "model",
                 "--model", tmp_path])
