"""The command line as an operator meets it: a bad setting is one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_service(**settings: str) -> subprocess.CompletedProcess[str]:
    """``sagebridge run`` with only ``settings`` as SAGEBRIDGE_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEBRIDGE_")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "service", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SAGEBRIDGE_BATCH_MAX", "lots"),
        ("SAGEBRIDGE_REPLY_TOPIC", "bad topic!"),
        ("SAGEBRIDGE_HTTP_TIMEOUT_S", "-1"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),  # not installed: traces could not go anywhere
        ("SAGEBRIDGE_CONNECTOR_CA_FILE", "/nonexistent/corporate-ca.pem"),
        ("SAGEBRIDGE_CONNECTOR_CA_FILE", __file__),  # there, but no certificate in it
        ("SAGEBRIDGE_CONNECTOR_CLIENT_CERT", __file__),
    ],
)
def test_run_with_a_bad_setting_exits_with_one_line_naming_it(variable: str, value: str) -> None:
    done = run_service(**{variable: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], done.stderr


def test_partial_default_tenant_is_refused_before_connecting() -> None:
    done = run_service(SAGEBRIDGE_CUSTOMER="1001")
    assert done.returncode == 2
    assert "SAGEBRIDGE_AUTH_TOKEN" in done.stderr and "Traceback" not in done.stderr
