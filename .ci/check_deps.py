"""Imports and declared dependencies agree, both ways (run by .ci/run).

* every third-party module imported by ``ace_assets``, its tests or the benches comes
  from a distribution declared in pyproject.toml (main or an extra);
* a module-level import in ``ace_assets`` comes from a main dependency (an extra is
  only enough for an import done lazily inside a function, like dagster_celery);
* every declared distribution is imported somewhere, or listed in TOOLS with why not.

Usage: ``python .ci/check_deps.py`` from the repository root, in the project's venv.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOTS = ("ace_assets", "ace_assets_tests", "bench")
#: our own modules: the packages, and the bench scripts that import each other
OWN = set(ROOTS) | {p.stem for p in Path("bench").glob("*.py")}
#: declared but never imported, and why that is right
TOOLS = {
    "dagster-webserver": "the UI, started as a command",
    "pytest-timeout": "pytest plugin (timeout in [tool.pytest.ini_options])",
    "ruff": "linter and formatter, run by .ci/run",
    "minian": "run by bench/bench_vs_minian.py in its own interpreter (bench-minian extra)",
    "redis": "Celery's redis:// broker transport, loaded by kombu",
    "pyarrow": "pandas' Parquet engine (cohort_table.parquet), loaded by pandas",
}

#: extras installed into another interpreter (minian's pinned stack): nothing here imports them
OTHER_INTERPRETER = {"bench-minian"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return norm(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0])


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(module-level, all) top-level module names imported by ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top_level: set[str] = set()
    every: set[str] = set()
    lazy = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        for n in ast.walk(f)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        roots = {n.split(".")[0] for n in names} - OWN - set(sys.stdlib_module_names)
        every |= roots
        if id(node) not in lazy:
            top_level |= roots
    return top_level, every


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    main_deps = {requirement_name(s) for s in project["dependencies"]}
    extras = {
        requirement_name(s)
        for extra, specs in project["optional-dependencies"].items()
        if extra not in OTHER_INTERPRETER
        for s in specs
    }
    dists = {mod: {norm(d) for d in ds} for mod, ds in packages_distributions().items()}
    problems: list[str] = []
    used: set[str] = set()
    for root in ROOTS:
        for path in sorted(Path(root).rglob("*.py")):
            top_level, every = imports(path)
            for mod in sorted(every):
                owners = dists.get(mod)
                if not owners:
                    problems.append(
                        f"{path}: imports {mod}, which no installed distribution provides"
                    )
                    continue
                used |= owners
                if not owners & (main_deps | extras):
                    problems.append(
                        f"{path}: imports {mod} but pyproject declares none of {owners}"
                    )
                elif root == "ace_assets" and mod in top_level and not owners & main_deps:
                    problems.append(
                        f"{path}: imports {mod} at module level; {owners} is only an extra"
                    )
    for dep in sorted((main_deps | extras) - used - set(TOOLS)):
        problems.append(f"pyproject.toml declares {dep}, which nothing imports")
    for problem in problems:
        print(f"check_deps: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
