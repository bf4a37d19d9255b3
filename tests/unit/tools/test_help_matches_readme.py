"""The operators' commands offer exactly the options the README's command table documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.cli import main

README = Path(__file__).resolve().parents[3] / "README.md"


def documented(command: str) -> set[str]:
    [row] = [
        line for line in README.read_text("utf-8").splitlines() if line.startswith(f"| `{command} ")
    ]
    usage = re.split(r"(?<!\\)\|", row)[1]  # a table cell may hold an escaped \|
    return set(re.findall(r"--[a-z-]+", usage))


@pytest.mark.parametrize(
    "command",
    [
        "sagebridge dlt list",
        "sagebridge dlt replay",
        "sagebridge ledger show",
        "sagebridge ledger resolve",
        "sagebridge crm seed",
        "sagebridge validate",
    ],
)
def test_help_offers_the_documented_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command.split()[1:], "--help"])
    offered = set(re.findall(r"--[a-z-]+", capsys.readouterr().out)) - {"--help"}
    assert offered == documented(command)
