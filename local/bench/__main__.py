"""`python -m local.bench [PART ...]`: run benchmark parts (default: all) and update docs/performance.md."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import local.bench as bench


def parts() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.bench", description=__doc__)
    parser.add_argument("parts", nargs="*", help=f"some of: {', '.join(parts())}")
    args = parser.parse_args(argv)
    chosen = args.parts or parts()
    unknown = set(chosen) - set(parts())
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    for name in chosen:
        module = importlib.import_module(f"local.bench.{name}")
        print(f"== bench: {name}", flush=True)
        markdown = module.run()
        bench.update_section(name, markdown)
        print(markdown, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
