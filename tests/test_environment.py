"""The locked environment: every declared dependency is pinned exactly, within its range."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line.strip())
        assert m, f"requirements.lock: not an exact pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"requirements.lock pins {name} twice"
        pins[name] = m.group(2)
    return pins


def test_every_dependency_is_pinned_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for ds in project["optional-dependencies"].values()
                                          for d in ds]
    pins = _lock()
    for spec in map(Requirement, declared):
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} is declared in pyproject.toml but not in the lock"
        assert spec.specifier.contains(pins[name], prereleases=True), \
            f"{spec.name}=={pins[name]} (lock) is outside pyproject's {spec.specifier}"
    assert pins["torch"] == "2.13.0"


def test_make_installs_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    assert "-r requirements.lock" in makefile and "--no-deps -e ." in makefile
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "make run RUN_ARGS=--quick" in ci
