"""Fail unless the virtualenv holds exactly the locked versions (`pip freeze` against the lock).

Run by `.ci/run` after installing, so a test run is known to have seen the versions an image or
a fresh clone gets. Every installed distribution (but the virtualenv's own pip and setuptools,
and sagebridge itself) must be pinned in constraints.txt at the installed version, and every pin
whose markers apply here must be installed (`.[dev]` pulls in every extra).
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

try:
    from packaging.markers import Marker
except ImportError:  # pragma: no cover - pip always vendors it
    from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]

# sagebridge itself, and what `python -m venv` puts into every virtualenv (pip is pinned by
# .ci/run; Python 3.11's venv also seeds setuptools, which nothing imports at run time).
UNLOCKED = {"pip", "setuptools", "sagebridge"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, str]:
    """The pins of a `uv export` file whose environment markers hold on this interpreter."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, _, marker = line.partition(";")
        name, _, version = requirement.strip().partition("==")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        pins[canonical(name)] = version.strip()
    return pins


def main(argv: list[str]) -> int:
    """`installed_matches_lock.py LOCK [--report]`: with --report, list the differences (what a
    `--latest` install resolved beyond the lock) and exit 0."""
    pins = locked(Path(argv[1]))
    report = "--report" in argv[2:]
    installed = {canonical(d.metadata["Name"]): d.version for d in distributions()}
    problems = [
        f"{name}=={version} is installed but the lock says {pins.get(name, 'nothing')}"
        for name, version in sorted(installed.items())
        if name not in UNLOCKED and pins.get(name) != version
    ]
    problems += [
        f"{name}=={version} is locked but not installed"
        for name, version in sorted(pins.items())
        if name not in installed
    ]
    if report:
        for problem in problems:
            print(f"   {problem}")
        print(f"   {len(problems)} differences from the lock")
        return 0
    for problem in problems:
        print(f"ci: {problem}", file=sys.stderr)
    if problems:
        print("ci: the virtualenv is not the lock: delete .venv, run .ci/run", file=sys.stderr)
        return 1
    print(f"   {len(installed) - len(UNLOCKED & installed.keys())} installed = the lock")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
