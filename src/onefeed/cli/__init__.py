"""The ``onefeed`` command. Each sub-app lives in its own module and only parses, calls, formats."""

from __future__ import annotations

import importlib
import os
import sys

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
    ("onefeed.cli.serve", None),
    ("onefeed.cli.feedback", "feedback"),
    ("onefeed.cli.onebar", None),  # onefeed onebar build, onefeed suggest
    ("onefeed.cli.unisearch", None),  # onefeed unisearch train, onefeed search
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


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception families that mean "bad input", shown as one line instead of a traceback."""
    import json

    from onefeed.artifacts import ArtifactError
    from onefeed.checkpoint import NonFiniteError
    from onefeed.config import ConfigError
    from onefeed.data.schemas import DataError

    return (DataError, ConfigError, ArtifactError, NonFiniteError, OSError, UnicodeError,
            json.JSONDecodeError)


def one_line(message: str, limit: int = 400) -> str:
    """``message`` on one line (newlines -> "; "), cut to ``limit`` characters."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """Run ``onefeed``; bad input prints ``error: <one line>`` on stderr and exits 1 (usage
    errors exit 2). ``ONEFEED_DEBUG=1`` re-raises for a full traceback.

    Plain ``sys.stderr`` writes, not rich: rich markup would swallow ``[...]`` in messages.
    """
    try:  # typer >= 0.2x vendors its own click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException, NoArgsIsHelpError

    debug = os.environ.get("ONEFEED_DEBUG", "") not in ("", "0")
    try:
        code = app(args=argv, prog_name="onefeed", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        code = 130
    except NoArgsIsHelpError as exc:
        sys.stderr.write(exc.format_message().rstrip() + "\n")
        code = exc.exit_code
    except ClickException as exc:
        sys.stderr.write(f"error: {one_line(exc.format_message())}\n")
        code = exc.exit_code
    except user_errors() as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {one_line(describe(exc))}\n")
        code = 1
    code = code if isinstance(code, int) else 0
    if code:
        sys.exit(code)
    return code


def describe(exc: BaseException) -> str:
    """The message of a user error; OS errors name the path and what went wrong."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        bad = exc.object[exc.start:exc.start + 1]
        return f"not valid {exc.encoding} text (byte {exc.start}: {bad!r})"
    return str(exc) or type(exc).__name__
