"""``onefeed serve``: the HTTP service over one trained run (docs/SERVING.md).

    onefeed serve --run runs/synthetic/model/onefeed/seed0 --port 8000
    onefeed serve --run RUN --workers 2 --config serve.toml   # [serve] keys: ServeSettings
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

# uvloop's event loop and httptools' parser, not asyncio + h11: measured, the event loop's share
# of each request is what limits the batched server (docs/SERVING.md "Latency and throughput").
UVICORN = {"loop": "uvloop", "http": "httptools"}


def _uvicorn_options(log_level: str) -> dict[str, object]:
    """The access log is written at INFO: above that level its per-request call is skipped."""
    return {**UVICORN, "access_log": log_level.lower() in ("trace", "debug", "info")}


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


def serve_cmd(
    run: Path = typer.Option(..., help="run dir (onefeed train, onefeed joint train, or a row of "
                             "onefeed run, e.g. runs/synthetic/model/onefeed/seed0)"),
    host: str = typer.Option("127.0.0.1", help="address to bind"),
    port: int = typer.Option(8000, min=0, max=65535, help="port (0: any free port)"),
    workers: int = typer.Option(1, min=1, max=64, help="worker processes (each loads the model "
                                "once; they share the feedback log and the item journal)"),
    config: Optional[Path] = typer.Option(None, help="TOML with ServeSettings keys (top level "
                                          "or a [serve] table); ONEFEED_SERVE_<KEY> overrides"),
    set_: list[str] = typer.Option([], "--set", help="override a setting, e.g. batching=false"),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
) -> None:
    """Serve /recommend, /search, /suggest, /feed, /feedback, /items, /health, /metrics."""
    import uvicorn

    from onefeed.predict import PredictError
    from onefeed.serve.settings import load_settings

    settings = load_settings(config, list(set_))
    if workers == 1:
        from onefeed.serve.app import create_app

        try:
            app = create_app(run, settings)
        except PredictError as exc:
            raise typer.BadParameter(str(exc)) from None
        uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1,
                    **_uvicorn_options(log_level))
        return
    if set_:
        raise typer.BadParameter("--set with --workers > 1: put the settings in --config (or "
                                 "ONEFEED_SERVE_* variables), which every worker reads")
    os.environ["ONEFEED_SERVE_RUN"] = str(run.resolve())
    if config is not None:
        os.environ["ONEFEED_SERVE_CONFIG"] = str(config.resolve())
    uvicorn.run("onefeed.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, **_uvicorn_options(log_level))
