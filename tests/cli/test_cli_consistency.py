"""The CLI's surface (issue 19): help for every option, one flag name per concept, square
brackets survive in help and errors, ``data stats`` names users by their ids, result tables."""

import json

import typer
from typer.testing import CliRunner

from onefeed.cli import app

RUNNER = CliRunner(env={"COLUMNS": "200"})


def _is_option(param) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _commands(group, path: tuple[str, ...] = ()):
    """(path, click command) for every leaf command of the app (typer's vendored click)."""
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_option_has_help_and_no_double_negatives():
    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) > 15  # data/sid/joint/bench sub-apps and the top-level commands
    missing = [f"{' '.join(path)} {opt.opts[0]}" for path, cmd in commands
               for opt in cmd.params if _is_option(opt)
               and not opt.hidden and opt.name != "help" and not (opt.help or "").strip()]
    assert not missing, f"options without help: {missing}"
    for path, _ in commands:
        res = RUNNER.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "--no-no-" not in res.output, path


def test_one_seen_flag_name():
    commands = dict(_commands(typer.main.get_command(app)))
    for path in (("recommend",), ("evaluate",)):
        visible = {o for p in commands[path].params if _is_option(p)
                   and not p.hidden for o in p.opts + p.secondary_opts}
        assert "--exclude-seen" in visible and "--filter-seen" not in visible, path
    hidden = {o for p in commands[("evaluate",)].params if p.hidden for o in p.opts}
    assert hidden == {"--filter-seen"}  # kept as a deprecated alias


def test_help_keeps_square_brackets():
    res = RUNNER.invoke(app, ["joint", "train", "--help"])
    assert res.exit_code == 0 and "[tasks]" in res.output


def test_errors_keep_square_brackets(tmp_path):
    out, tmp_path = tmp_path / "out", tmp_path / "raw"  # an output inside the input is refused
    tmp_path.mkdir()
    (tmp_path / "events.csv").write_text("u,i,b\na,x,view\na,y,purchase\n")
    (tmp_path / "mapping.toml").write_text(
        'name = "bad"\n[events]\nfile = "events.csv"\nuser = "u"\nitem = "i"\n'
        'behaviour = "b"\n[events.behaviour_values]\nview = "rec_click"\n[items]\nfile = ""\n')
    (tmp_path / "prepare.toml").write_text(
        f'name = "bad"\ndataset = "generic"\npath = "{tmp_path}"\n'
        f'[options]\nconfig = "{tmp_path / "mapping.toml"}"\n')
    res = RUNNER.invoke(app, ["data", "prepare", "--config", str(tmp_path / "prepare.toml"),
                              "--out", str(out)])
    assert res.exit_code != 0
    assert "unknown behaviour 'purchase'" in res.output
    assert "map it in [events.behaviour_values] to one of" in res.output


def test_data_stats_names_the_sample_user_by_id(tmp_path):
    import dataclasses

    import polars as pl

    from onefeed.data.synthetic import tiny_dataset

    ds = tiny_dataset(12, 10)
    # ids that differ from the row indices, so an index cannot pass for an id
    ds = dataclasses.replace(ds, users=ds.users.with_columns(
        ("user-" + (pl.col("user") + 100).cast(pl.Utf8)).alias("user_id")))
    ds.save(tmp_path / "data")
    res = RUNNER.invoke(app, ["data", "stats", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "mixed history of user" in x)
    label = line.split("mixed history of user ")[1].split(" ")[0]
    assert label.startswith("user-1") and label in set(ds.users["user_id"])


def test_result_table_and_json_share_one_shape(capsys):
    from onefeed.cli.output import item_rows, print_result, query_rows

    rows = item_rows([2, -1, 0], ["a", "b", "c"], ["[bold]x[/bold] title", "B", "C"],
                     [-0.5, -0.7, -0.9])
    assert rows == [{"rank": 1, "item_id": "c", "title": "C", "score": -0.5},
                    {"rank": 2, "item_id": "a", "title": "[bold]x[/bold] title", "score": -0.9}]
    print_result({"user": "u1", "items": rows}, as_json=True)
    assert json.loads(capsys.readouterr().out)["items"] == rows
    print_result({"user": "u1", "items": rows}, as_json=False)
    table = capsys.readouterr().out
    assert "[bold]x[/bold] title" in table and "user u1" in table  # markup is not eaten
    print_result({"user": "u1", "queries": query_rows(["red [matte]", "blue"])}, False)
    assert "red [matte]" in capsys.readouterr().out


def test_k_ticks_are_whole_numbers():
    from onefeed.evaluation.report import k_ticks, recall_figure

    assert k_ticks([5, 10, 20], 50) == [1, 5, 10, 20, 50]
    assert k_ticks([5, 10, 100], 20) == [1, 5, 10, 20]
    doc = {"suite": "s", "protocol": {"ks": [5, 10]},
           "models": {"m": {"curves": {"rec": {"recall_at_k": [0.1 * i for i in range(12)]}}}}}
    ticks = recall_figure(doc).axes[0].get_xticks()
    assert list(ticks) == [1, 5, 10, 12] and all(float(t).is_integer() for t in ticks)


def test_bench_progress_line_is_text():
    import numpy as np

    from onefeed.bench.runner import RunOutput, progress_line

    r = RunOutput({"recall@10": 0.46051, "ndcg@10": 0.3462, "hr@10": 0.5, "recall@5": 0.3},
                  {}, np.zeros(0), 7.44, 0.42)
    assert progress_line("rec", r) == ("  recommendation: recall@10 0.4605 ndcg@10 0.3462 "
                                       "(train 7.4 s, inference 0.4 s)")


def test_quiet_silences_bars_and_logs_then_restores(capsys):
    import rich

    from onefeed.cli.output import quiet
    from onefeed.bench import runner as bench

    with quiet():
        rich.get_console().print("epoch 1: valid ndcg@10 0.1")  # the training loops' console
        bench.console.print("synthetic tiger seed 0 ...")
        rich.print("progress")
    with quiet(False):
        rich.get_console().print("shown")
    rich.get_console().print("shown again")
    captured = capsys.readouterr()
    assert captured.out.split() == ["shown", "shown", "again"] and captured.err == ""
    assert not rich.get_console().quiet and not bench.console.quiet
