"""Docker-free bundling of the Lambda assets for CPython on arm64 (Amazon Linux 2023).

What goes where, and why:

- Function asset (``/var/task``): ``functions/<name>/handler.py`` as ``handler.py`` plus that function's
  third-party packages, installed from ``functions/<name>/requirements.txt`` (versions locked by
  ``infra/bundling/constraints.txt``). Dependencies are big and change rarely.
- Shared layer (``/opt/python``): the ``shared/`` package, once for all five functions. It is small and
  changes with almost every commit, so a change to it uploads a ~0.3 MB layer instead of five function
  zips of tens of MB each.

Dependencies are installed with ``pip --target`` for the Lambda platform (``--platform manylinux_2_x_aarch64
--implementation cp --python-version 3.12 --only-binary=:all:``), never for the build machine. Packages
that ship no wheel (jieba) are first built into a pure-Python wheel locally. The result is cached under
``.kefu/build/`` keyed by a hash of everything that decides it, so a repeated synth only hard-links a
cached tree into the asset directory.

boto3/botocore/s3transfer are removed from the bundles: the python3.12 runtime ships a matching set,
and bundling botocore alone would add ~25 MB per function (and a botocore newer than the runtime's
boto3 would be mixed with it at import). opensearch-py's unused gRPC transport is removed too
(``NEVER_IMPORTED``).

Bytecode: ``/var/task`` and ``/opt`` are read-only, so Python cannot cache ``.pyc`` files there and
would compile every module on every cold start. When a CPython of the target version is on this
machine, the bundles are compiled with it (``unchecked-hash`` pycs: deployment artifacts never change
under the interpreter); otherwise they ship sources only and a warning says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Bump whenever the build steps below change: every cached bundle and asset hash changes with it.
RECIPE_VERSION = "3"

# Provided by the Lambda python runtime; stripped from bundles (see module docstring).
RUNTIME_PROVIDED: tuple[str, ...] = ("boto3", "botocore", "s3transfer")

# Declared dependencies that the bundled code never imports: opensearch-py 3 requires its optional gRPC
# transport (grpcio + protobuf, ~25 MB) although its HTTP client, the one used here, never loads it.
# tests/infra checks that the bundled opensearchpy still imports neither.
NEVER_IMPORTED: tuple[str, ...] = ("grpcio", "protobuf", "opensearch-protobufs")

# Published as source distributions only: built into a local wheel once, then installed like any other.
SOURCE_ONLY: tuple[str, ...] = ("jieba",)

CONSTRAINTS = Path(__file__).with_name("constraints.txt")


class BundlingError(RuntimeError):
    """A bundle could not be built; the message says which step failed and its output."""


@dataclass(frozen=True)
class TargetPlatform:
    """The Lambda execution environment the packages must run on."""

    python_version: str = "3.12"
    architecture: str = "aarch64"
    # Amazon Linux 2023 (python3.12 runtime) has glibc 2.34: any manylinux wheel up to that works.
    glibc_minor: int = 34

    def pip_platform_args(self) -> list[str]:
        # pip does not widen an explicit --platform to older manylinux tags, so name each one.
        tags = [f"manylinux_2_{minor}_{self.architecture}" for minor in range(self.glibc_minor, 16, -1)]
        tags.append(f"manylinux2014_{self.architecture}")
        args: list[str] = []
        for tag in tags:
            args += ["--platform", tag]
        return args

    def describe(self) -> str:
        return f"cp{self.python_version}-{self.architecture}-glibc2.{self.glibc_minor}"

    @property
    def runtime(self) -> lambda_.Runtime:
        """The Lambda runtime these bundles are built for (CDK's own constant, e.g. PYTHON_3_12)."""
        runtime: lambda_.Runtime = getattr(lambda_.Runtime, "PYTHON_" + self.python_version.replace(".", "_"))
        return runtime


def find_interpreter(version: str) -> Path | None:
    """A CPython ``version`` (e.g. "3.12") on this machine, for byte-compiling; None when there is none.

    Looked for as ``$KEFU_BUNDLE_PYTHON``, then ``python3.12`` on PATH, then pyenv's versions directory.
    """
    candidates: list[Path] = []
    explicit = os.environ.get("KEFU_BUNDLE_PYTHON")
    if explicit:
        candidates.append(Path(explicit))
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted((pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        try:
            out = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


def _say(message: str) -> None:
    sys.stderr.write(f"[kefu bundling] {message}\n")
    sys.stderr.flush()


def _run(args: list[str], what: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise BundlingError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(tail))


def _sha256(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _tree_files(root: Path) -> list[Path]:
    """Source files under ``root`` in a stable order, without bytecode caches."""
    files = [
        path
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _link_tree(source: Path, destination: Path) -> None:
    """Hard-link (or copy, across file systems) ``source``'s files into ``destination``."""
    for directory, _subdirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        (destination / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dst = Path(directory) / name, destination / relative / name
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


@dataclass
class PythonBundler:
    """Builds and caches the per-function dependency trees and the shared layer."""

    repo_root: Path
    target: TargetPlatform = field(default_factory=TargetPlatform)
    cache_root: Path | None = None
    compile_with: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.cache_root is None:
            self.cache_root = self.repo_root / ".kefu" / "build"
        if self.compile_with is None:
            self.compile_with = find_interpreter(self.target.python_version)
        if self.compile_with is None:
            self.warnings.append(
                f"no CPython {self.target.python_version} found to byte-compile the bundles: they ship "
                "sources only and Lambda compiles every module at each cold start (set KEFU_BUNDLE_PYTHON)"
            )

    # --- cache keys -------------------------------------------------------------------------------

    @property
    def _cache(self) -> Path:
        assert self.cache_root is not None
        return self.cache_root

    def _recipe(self) -> list[bytes]:
        compiled = f"pyc:{self.target.python_version}" if self.compile_with else "pyc:none"
        return [
            RECIPE_VERSION.encode(),
            self.target.describe().encode(),
            compiled.encode(),
            ",".join(RUNTIME_PROVIDED + NEVER_IMPORTED).encode(),
        ]

    def dependencies_key(self, requirements: Path) -> str:
        return _sha256([*self._recipe(), requirements.read_bytes(), CONSTRAINTS.read_bytes()])[:20]

    def function_hash(self, function_dir: Path) -> str:
        return _sha256(
            [
                *self._recipe(),
                b"function",
                (function_dir / "handler.py").read_bytes(),
                self.dependencies_key(function_dir / "requirements.txt").encode(),
            ]
        )

    def shared_hash(self, package_dir: Path) -> str:
        parts = [*self._recipe(), b"shared-layer"]
        for path in _tree_files(package_dir):
            parts += [path.relative_to(package_dir).as_posix().encode(), path.read_bytes()]
        return _sha256(parts)

    # --- dependency trees -------------------------------------------------------------------------

    def dependencies(self, requirements: Path) -> Path:
        """The installed, stripped, compiled third-party tree for ``requirements`` (cached)."""
        name = requirements.parent.name
        final = self._cache / "deps" / f"{name}-{self.dependencies_key(requirements)}"
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        _say(f"installing {name} dependencies for {self.target.describe()} (cached afterwards) ...")
        wheels = self.local_wheels(requirements)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--target",
                str(partial),
                "--requirement",
                str(requirements),
                "--constraint",
                str(CONSTRAINTS),
                *self.target.pip_platform_args(),
                "--implementation",
                "cp",
                "--python-version",
                self.target.python_version,
                "--only-binary=:all:",
                "--find-links",
                str(wheels),
                "--cache-dir",
                str(self._cache / "pip-cache"),
                "--no-compile",
                "--disable-pip-version-check",
                "--quiet",
            ],
            f"pip install for {name}",
        )
        self._strip(partial)
        self._compile(partial, runtime_root="/var/task")
        try:
            partial.rename(final)
        except OSError:  # another synth finished the same tree first
            shutil.rmtree(partial, ignore_errors=True)
        self._prune(name, keep=final)
        return final

    def _prune(self, name: str, keep: Path, generations: int = 3) -> None:
        """Keeps the newest few trees per function (branches switch back and forth), drops older ones."""
        trees = [p for p in (self._cache / "deps").glob(f"{name}-*") if p.is_dir() and ".partial-" not in p.name]
        trees.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [t for t in trees if t != keep][generations - 1 :]:
            shutil.rmtree(old, ignore_errors=True)

    def local_wheels(self, requirements: Path) -> Path:
        """Builds wheels for the source-only packages this requirements file pins."""
        wheels = self._cache / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) not in SOURCE_ONLY:
                continue
            pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            if len(pins) != 1:
                raise BundlingError(f"{requirements}: pin {requirement.name} exactly (==) to build its wheel")
            if any(wheels.glob(f"{requirement.name}-{pins[0]}-*.whl")):
                continue
            _say(f"building a pure-Python wheel of {requirement.name}=={pins[0]} ...")
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    f"{requirement.name}=={pins[0]}",
                    "--no-deps",
                    "--wheel-dir",
                    str(wheels),
                    "--cache-dir",
                    str(self._cache / "pip-cache"),
                    "--disable-pip-version-check",
                    "--quiet",
                ],
                f"building the {requirement.name} wheel",
            )
        return wheels

    def _strip(self, site: Path) -> None:
        """Removes what Lambda provides or never runs: runtime-provided SDKs, tests, scripts, caches."""
        for dist_info in site.glob("*.dist-info"):
            dist_name = canonicalize_name(dist_info.name.split("-", 1)[0])
            if dist_name in RUNTIME_PROVIDED or dist_name in NEVER_IMPORTED:
                self._uninstall(site, dist_info)
        shutil.rmtree(site / "bin", ignore_errors=True)
        for path in sorted(site.rglob("*"), reverse=True):
            if path.is_dir() and (path.name == "__pycache__" or (path.name == "tests" and path.parent != site)):
                shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def _uninstall(site: Path, dist_info: Path) -> None:
        root = site.resolve()
        record = dist_info / "RECORD"
        directories: set[Path] = set()
        for row in record.read_text().splitlines() if record.exists() else []:
            path = (site / row.split(",", 1)[0]).resolve()
            if root not in path.parents:
                continue  # never delete outside the tree (e.g. ../../bin entries)
            path.unlink(missing_ok=True)
            directories.update(parent for parent in path.parents if root in parent.parents)
        for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        shutil.rmtree(dist_info, ignore_errors=True)

    def _compile(self, root: Path, runtime_root: str, *paths: Path) -> None:
        """Byte-compiles ``paths`` (default: all of ``root``) for the target interpreter."""
        if self.compile_with is None:
            return
        targets = [str(p) for p in paths] or [str(root)]
        result = subprocess.run(
            [
                str(self.compile_with),
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
                str(root),
                "-p",
                runtime_root,
                *targets,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            # Some wheels ship .py files that are data, not code (templates); their sources still work.
            _say(f"compileall reported files it could not compile under {root.name} (kept as sources)")

    # --- asset contents ---------------------------------------------------------------------------

    def bundle_function(self, function_dir: Path, output_dir: Path) -> None:
        handler = function_dir / "handler.py"
        if not handler.is_file():
            raise BundlingError(f"{handler} does not exist: every function needs a handler.py")
        site = self.dependencies(function_dir / "requirements.txt")
        _link_tree(site, output_dir)
        shutil.copy2(handler, output_dir / "handler.py")
        self._compile(output_dir, "/var/task", output_dir / "handler.py")

    def bundle_shared(self, package_dir: Path, output_dir: Path) -> None:
        python_dir = output_dir / "python"
        destination = python_dir / package_dir.name
        for path in _tree_files(package_dir):
            target = destination / path.relative_to(package_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        self._compile(python_dir, "/opt/python")

    # --- CDK code objects -------------------------------------------------------------------------

    def function_code(self, function_dir: Path) -> lambda_.Code:
        return lambda_.Code.from_asset(
            str(function_dir),
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=self.function_hash(function_dir),
            bundling=cdk.BundlingOptions(
                image=self.target.runtime.bundling_image,  # never pulled: local bundling always answers
                local=_LocalBundling(lambda out: self.bundle_function(function_dir, Path(out))),
            ),
        )

    def shared_layer_code(self, package_dir: Path) -> lambda_.Code:
        return lambda_.Code.from_asset(
            str(package_dir),
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=self.shared_hash(package_dir),
            bundling=cdk.BundlingOptions(
                image=self.target.runtime.bundling_image,
                local=_LocalBundling(lambda out: self.bundle_shared(package_dir, Path(out))),
            ),
        )


@jsii.implements(cdk.ILocalBundling)
class _LocalBundling:
    """CDK's local-bundling hook. Failures raise (with pip's output) instead of falling back to Docker."""

    def __init__(self, build: Any) -> None:
        self._build = build

    # jsii passes the BundlingOptions struct positionally; nothing in it is needed here.
    def try_bundle(self, output_dir: str, _options: Any = None, **_kwargs: Any) -> bool:
        self._build(output_dir)
        return True


def installed_packages(site: Path) -> dict[str, str]:
    """``{distribution: version}`` of a bundled tree, read from its dist-info metadata."""
    found: dict[str, str] = {}
    for dist_info in site.glob("*.dist-info"):
        name, _, version = dist_info.name.removesuffix(".dist-info").partition("-")
        found[canonicalize_name(name)] = version
    return found
