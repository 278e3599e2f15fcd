from onefeed.cli.serve import _uvicorn_options
from onefeed.serve.settings import load_settings


def test_access_log_only_where_the_level_shows_it():
    assert _uvicorn_options("warning")["access_log"] is False
    assert _uvicorn_options("INFO")["access_log"] is True
    assert _uvicorn_options("debug")["loop"] == "uvloop"


def test_telemetry_is_off_unless_asked_for():
    assert load_settings(None, []).telemetry is False
    assert load_settings(None, ["telemetry=true"]).telemetry is True
