"""The ``onefeed`` command. Each sub-app lives in its own module and only parses, calls, formats."""

from __future__ import annotations

import importlib
import os

# Idle OpenMP threads sleep instead of spinning. libgomp reads this once, when torch loads, so it
# is set before any sub-app imports torch; the environment still wins. On this shared 2-core box
# spinning threads made 2-thread text encoding ~3x slower under load (docs/SEMANTIC_IDS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

app = typer.Typer(help="onefeed: unified generative search and recommendation.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None)  # help and errors quote [config.keys] verbatim

# (module, sub-command name or None for top-level commands registered by the module itself)
_SUBAPPS = [
    ("onefeed.cli.data", "data"),
    ("onefeed.cli.sid", "sid"),
    ("onefeed.cli.model", None),
    ("onefeed.cli.joint", "joint"),
    ("onefeed.cli.bench", None),
    ("onefeed.cli.run", None),
]

for _module, _name in _SUBAPPS:
    try:
        mod = importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # a sub-app not written yet
        if exc.name != _module:
            raise
        continue
    if _name is None:
        mod.register(app)
    else:
        app.add_typer(mod.app, name=_name)


def main() -> None:
    app()
