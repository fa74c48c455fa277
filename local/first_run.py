"""What a new user's first `make run` costs, measured on a fresh clone of this checkout's HEAD.

    python3 local/first_run.py [--port 8765] [--keep DIR]      (or `make first-run`)

Clones HEAD into a temporary folder and times, there, `make runtime` (what `make run` installs first)
and then `make run` until its banner (its own .venv and .kefu/, KEFU_PORT as given), stops it with
Ctrl-C (SIGINT) and reports the installed packages, the size of .venv and the times; a second
`make run` (installed, state restored) is timed too. Standard library only: it runs before any
virtualenv exists. Figures depend on the pip cache and the package index (none is downloaded from
the internet here) and on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANNER = "kefu is running locally"


def timed_run(clone: Path, port: int, timeout: float) -> float:
    """Seconds from `make run` to its banner; the run is then stopped with SIGINT (Ctrl-C)."""
    environment = {**os.environ, "KEFU_PORT": str(port)}
    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "run"], cwd=clone, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if BANNER in line:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                break
        raise SystemExit(f"no banner within {timeout:.0f} s (exit {process.poll()})")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local/first_run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765, help="KEFU_PORT of the measured run (default 8765)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the banner")
    parser.add_argument("--keep", help="clone into this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kefu-first-run-"))
    clone = base / "kefu"
    try:
        branch = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run(["git", "clone", "-q", "--branch", branch, str(ROOT), str(clone)], check=True)
        started = time.monotonic()
        subprocess.run(["make", "-s", "runtime"], cwd=clone, check=True, stdout=subprocess.DEVNULL)
        install = time.monotonic() - started
        first = timed_run(clone, args.port, args.timeout)
        listed = subprocess.run(
            [str(clone / ".venv/bin/pip"), "list", "--format=freeze"], capture_output=True, text=True, check=True
        ).stdout.split()
        packages = len([line for line in listed if "kefu" not in line.lower() and not line.startswith("pip==")])
        venv = size_mb(clone / ".venv")
        second = timed_run(clone, args.port, args.timeout)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(
        f"first `make run` on a fresh clone: installs {packages} packages (.venv {venv:.0f} MB) in {install:.0f} s, "
        f"then the first start (tables, demo tenant and its knowledge) takes {first:.0f} s to the banner; "
        f"a second `make run` {second:.0f} s ({machine}; {when})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
