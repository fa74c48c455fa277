"""`make run` installs only what running needs (issue 13, "The first hour"): its target installs the
package with the `local` extra, and everything `make run` and `./kefu` import at start comes from
that install, never from the test and tooling extra (`dev`: CDK, mypy, Playwright, pytest…)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
# What starts when a new user types `make run` or `./kefu …`.
ENTRY_MODULES = (
    "local.run",
    "local.emulator.emulator",
    "shared.admin.app",
    "shared.cli",
    *(f"functions.{name}.handler" for name in ("connect", "message", "generate", "retrieve", "admin")),
)


def _prerequisites(target: str) -> list[str]:
    match = re.search(rf"^{target}:([^\n]*)$", MAKEFILE, flags=re.M)
    assert match, f"the Makefile has no {target} target"
    return match.group(1).split()


def _closure(distribution: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Distributions installing ``distribution[extras]`` brings, by their normalised names."""
    seen: set[str] = set()
    todo = [(distribution, extras)]
    while todo:
        name, wanted = todo.pop()
        key = _normalised(name)
        if key in seen and not wanted:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    return seen


def test_make_run_and_reset_install_the_runtime_not_the_dev_tools() -> None:
    assert _prerequisites("run") == ["runtime"] and _prerequisites("reset") == ["runtime"]
    runtime_recipe = MAKEFILE.split("$(VENV)/.runtime:", 1)[1].split("\n\n", 1)[0]
    assert '-e ".[local]"' in runtime_recipe and "dev" not in runtime_recipe


# Run in a fresh interpreter where the modules of dev-only distributions cannot be imported, as in a
# `.venv` that `make run` made (a library that imports them optionally, as httpx does click and rich,
# then takes its fallback).
_WITHOUT = """
import importlib, importlib.abc, json, sys
blocked = set(json.loads(sys.argv[1]))

class DevOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (dev-only)", name=name)
        return None

sys.meta_path.insert(0, DevOnly())
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
"""


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_make_run_and_the_cli_start_without_the_dev_tools() -> None:
    allowed = _closure("kefu", frozenset({"local"}))
    dev_only = _closure("kefu", frozenset({"dev"})) - allowed
    assert {"playwright", "mypy", "aws-cdk-lib", "pytest"} <= dev_only  # the check can tell them apart
    blocked = sorted(
        module
        for module, distributions in metadata.packages_distributions().items()
        if not any(_normalised(d) in allowed for d in distributions) and module != "_distutils_hack"
    )
    assert {"playwright", "mypy", "aws_cdk", "pytest"} <= set(blocked)
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT, json.dumps(blocked), json.dumps(list(ENTRY_MODULES))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"needs a package `make run` does not install: {result.stderr[-2000:]}"
