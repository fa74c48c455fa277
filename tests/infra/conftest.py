"""One real synth of the dev stack per test session (bundles included), plus cheap variants.

The dev synth builds every asset (first run on a machine: pip downloads the arm64 wheels, ~1 min;
afterwards the cached trees under .kefu/build are only hard-linked, a few seconds). The other
profiles (tests/infra/profiles.py: prod, an existing OpenSearch domain, hybrid, ...) only check the
template and skip bundling; each is synthesized once, by the first test that asks for it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import REPO_ROOT  # noqa: E402
from infra.constants import FUNCTIONS  # noqa: E402
from tests.infra.profiles import TEMPLATE_PROFILES  # noqa: E402
from tests.infra.synthesis import Synth, synthesize  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    missing = [name for name in FUNCTIONS if not (REPO_ROOT / "functions" / name / "handler.py").is_file()]
    if missing:
        pytest.fail(f"functions without handler.py: {missing}")
    return synthesize({"env": "dev"}, tmp_path_factory.mktemp("cdk-dev"))


def _template_only(name: str, context: dict[str, Any]) -> Any:
    """A session fixture synthesizing one profile without bundling (cdk-nag runs inside the synth: an
    unacknowledged finding fails it)."""

    @pytest.fixture(scope="session", name=name)
    def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
        return synthesize(context, tmp_path_factory.mktemp(f"cdk-{name}"))

    return synth


for _name, _context in TEMPLATE_PROFILES.items():
    globals()[_name] = _template_only(_name, _context)
