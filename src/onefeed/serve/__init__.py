"""``onefeed serve``: the HTTP service over one trained run (docs/SERVING.md).

``create_app(run_dir, settings)`` builds the FastAPI app (``app``), ``ServeSettings`` is its
typed config (``settings``), ``batching`` the micro-batcher, ``loadgen`` the load generator of
``onefeed bench serve``.
"""

from onefeed.serve.settings import ServeSettings, load_settings


def create_app(run_dir, settings=None, predictor=None):  # noqa: ANN001 - see app.create_app
    from onefeed.serve.app import create_app as _create

    return _create(run_dir, settings, predictor)


__all__ = ["ServeSettings", "create_app", "load_settings"]
