"""Every relative link in the README and in ``docs/`` leads somewhere: the file exists, and an
``#anchor`` names a heading of the page it points into (GitHub's slugs). ``docs/_incoming/`` is
where other work drops material before it is edited in; it is not checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text("utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)}


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text("utf-8"))
    found = [a or b for a, b in LINK.findall(text)]
    return [target for target in found if not re.match(r"[a-z]+:", target)]


def broken(page: Path) -> list[str]:
    wrong = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        into = (page.parent / path).resolve() if path else page
        if not into.exists():
            wrong.append(f"{target}: no such file")
        elif anchor and into.suffix == ".md" and anchor not in anchors(into):
            wrong.append(f"{target}: no heading #{anchor} in {into.name}")
    return wrong


def test_the_pages_are_found() -> None:
    assert {p.name for p in PAGES} >= {"README.md", "operating.md", "configuration.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken(page) == []


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Here it is\n", "utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#here-it-is) [gone](missing.md) [bad](there.md#nowhere)\n")
    assert [w.split(":")[0] for w in broken(page)] == ["missing.md", "there.md#nowhere"]


def test_the_readme_stays_the_first_hour() -> None:
    assert len((REPO / "README.md").read_text("utf-8").splitlines()) <= 300
