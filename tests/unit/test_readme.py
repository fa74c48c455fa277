"""The README's commands work as written on a fresh clone: the CLI as `./kefu`, no fixed port."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from shared import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def shell_lines() -> list[str]:
    return [line.strip() for block in SHELL_BLOCKS for line in block.splitlines() if line.strip()]


def test_shell_examples_do_not_hard_code_the_port() -> None:
    assert SHELL_BLOCKS
    fixed = [line for line in shell_lines() if re.search(r"(127\.0\.0\.1|localhost):87\d\d", line)]
    assert fixed == []  # KEFU_PORT may move it: read .kefu/local.json


def test_the_cli_is_run_as_the_checkouts_wrapper_with_commands_it_has() -> None:
    bare = [line for line in shell_lines() if re.match(r"kefu\s", line)]
    assert bare == [], "a fresh clone has no `kefu` on PATH: write ./kefu"
    commands = {m.group(1) for m in re.finditer(r"\./kefu ([a-z][a-z-]*)", README)}
    parser = cli.build_parser()
    known = set(next(a for a in parser._actions if a.dest == "command").choices)  # type: ignore[union-attr]
    assert commands and commands <= known, commands - known


def test_the_wrapper_runs_the_cli_from_any_directory(tmp_path: Path) -> None:
    wrapper = ROOT / "kefu"
    assert os.access(wrapper, os.X_OK)
    result = subprocess.run(
        [str(wrapper), "documents", "--tenant", "t_x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},
    )
    # It found the CLI and looked for `make run`'s file in the checkout, not in the current directory.
    if (ROOT / ".kefu" / "local.json").exists():
        assert "usage" not in result.stderr
    else:
        assert result.returncode == 2 and "make run" in result.stderr, result.stderr
