"""How `make test` shares the suites between its pytest-xdist workers.

Each test file runs whole on one worker, so a module's stack or browser starts once; the infra files
share one worker, since they share one synthesized app (and its build cache under .kefu/build).
"""

from __future__ import annotations

from pathlib import Path

import pytest

INFRA = Path(__file__).parent / "infra"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        group = "infra" if INFRA in path.parents else str(path.relative_to(Path(__file__).parent.parent))
        item.add_marker(pytest.mark.xdist_group(group))
