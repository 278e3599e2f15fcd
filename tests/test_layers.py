"""The dependency rules of docs/ARCHITECTURE.md: no module imports from a layer above its own.

An import-linter "layers" contract without the dependency: every module under src/onefeed is
parsed with ``ast`` and every import in it (top level, inside functions, under
``TYPE_CHECKING``) is checked, so a package cycle such as evaluation -> baselines -> train
-> evaluation cannot come back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"

# lowest first; a module may import its own layer and those below it (docs/ARCHITECTURE.md)
LAYERS: list[tuple[str, ...]] = [
    ("onefeed", "onefeed.paths", "onefeed.artifacts", "onefeed.config", "onefeed.tokens",
     "onefeed.distributed"),
    ("onefeed.data",),
    ("onefeed.feedback",),  # the feedback log of onefeed serve; exports for data prepare
    ("onefeed.embeddings",),
    ("onefeed.sid",),
    ("onefeed.models", "onefeed.objectives", "onefeed.decoding"),
    ("onefeed.tasks",),
    ("onefeed.evaluation",),
    ("onefeed.search",),
    ("onefeed.train", "onefeed.checkpoint"),  # the loop, its tasks (train.rec, train.joint)
    ("onefeed.predict",),  # one predictor over any run: loads checkpoints
    ("onefeed.onebar",),  # content-grounded query suggestion (OneBar): evidence, labels, eval
    ("onefeed.baselines", "onefeed.export"),
    ("onefeed.bench",),
    ("onefeed.pipeline",),
    ("onefeed.serve",),  # the HTTP service over onefeed.predict
    ("onefeed.cli", "onefeed.fuzzing", "onefeed.__main__"),  # fuzz drives the commands;
    # python -m onefeed is the CLI
]

# (importer, imported): why it may go up a layer. Keep this empty if you can.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix naming ``module``'s home."""
    best, found = -1, None
    for i, homes in enumerate(LAYERS):
        for home in homes:
            if (module == home or module.startswith(home + ".")) and len(home) > best:
                best, found = len(home), i
    if found is None:
        raise KeyError(module)
    return found


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "onefeed").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(onefeed module imported, line) of every import statement in ``path``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..a import b
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:  # "from onefeed.train import rec" imports a module
                sub = f"{base}.{a.name}"
                found.append((sub if sub in known else base, node.lineno))
    return [(m, line) for m, line in found if m == "onefeed" or m.startswith("onefeed.")]


def upward(module: str, path: Path, known: set[str]) -> list[str]:
    """The imports of ``path`` (read as ``module``) that go up a layer, unless excepted."""
    return [f"{path.relative_to(SRC) if path.is_relative_to(SRC) else path}:{line}: {module} "
            f"(layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
            for target, line in imports(module, path, known)
            if layer_of(target) > layer_of(module) and (module, target) not in EXCEPTIONS]


def violations() -> list[str]:
    mods = modules()
    return [v for module, path in mods.items() for v in upward(module, path, set(mods))]


def test_every_module_has_a_layer():
    missing = []
    for module in modules():
        try:
            layer_of(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"add these to LAYERS (and docs/ARCHITECTURE.md): {missing}"


def test_no_import_goes_up_a_layer():
    bad = violations()
    assert not bad, "imports against the dependency rules:\n" + "\n".join(bad)


def test_listed_exceptions_are_still_needed():
    mods = modules()
    used = {(m, t) for m, p in mods.items() for t, _ in imports(m, p, set(mods))}
    assert not set(EXCEPTIONS) - used, "stale EXCEPTIONS entries"


@pytest.mark.parametrize("source, expected", [
    ("from onefeed.baselines import pop\n", ["onefeed.baselines.pop"]),
    ("def f():\n    from onefeed.train import rec\n", ["onefeed.train.rec"]),
    ("import onefeed.bench.runner as r\n", ["onefeed.bench.runner"]),
    ("from .. import train\n", ["onefeed.train"]),
    ("from ..train import joint as tj\n", ["onefeed.train.joint"]),
    ("from .metrics import ndcg_at_k\n", ["onefeed.evaluation.metrics"]),
    ("import numpy\nfrom typing import Any\n", []),
])
def test_imports_are_found_and_resolved(tmp_path, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    known = set(modules())
    assert [m for m, _ in imports("onefeed.evaluation.mod", path, known)] == expected


def test_the_old_cycle_would_be_caught():
    """The suite runner back in evaluation/ (where it was) imports baselines: refused."""
    runner = SRC / "onefeed" / "bench" / "runner.py"
    bad = upward("onefeed.evaluation.bench", runner, set(modules()))
    assert any("imports onefeed.baselines" in b for b in bad)
    assert layer_of("onefeed.train.loop") == layer_of("onefeed.train.rec") == layer_of(
        "onefeed.train.joint") < layer_of("onefeed.baselines.generative")


@pytest.mark.parametrize("source", [
    "from onefeed.train.joint import rec_targets\n",
    "def f():\n    from onefeed.train import rec\n",
    "from onefeed.baselines import joint\n",
])
def test_evaluation_importing_train_or_baselines_is_refused(tmp_path, source):
    """evaluation sits below train and baselines: importing either (the old cycle) is caught."""
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert upward("onefeed.evaluation.mod", path, set(modules()))
