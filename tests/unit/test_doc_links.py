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


SOURCES = ("service", "contracts", "helm", "bench")
SOURCE_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".tpl", ".txt"}
DOC_POINTER = re.compile(r'docs/([\w-]+\.md)(?:[,\s(]+"([^"\\]+)")?')
README_POINTER = re.compile(r"([\w./-]*/)?README(\.md|'s [\w ]+? section)?")


def heading_texts(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text("utf-8"))
    found = re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)
    return {m.group(1).replace("`", "").lower() for m in found}


def stale_pointers(path: Path) -> list[str]:
    """Pointers from code and data into the documentation that lead nowhere: a docs/ page that
    does not exist or a quoted heading it does not have, or the README for what moved to docs/
    (only an existing README.md file, or a section the README still has, may be named)."""
    text = path.read_text("utf-8")
    wrong = []
    for m in DOC_POINTER.finditer(text):
        page = REPO / "docs" / m.group(1)
        # A heading quoted across lines: joined again, comment markers dropped.
        heading = " ".join(re.sub(r"\n\s*#*", " ", m.group(2) or "").split()).lower()
        if not page.exists() or (heading and heading not in heading_texts(page)):
            wrong.append(m.group(0))
    readme = heading_texts(REPO / "README.md")
    for m in README_POINTER.finditer(text):
        folder, rest = m.group(1), m.group(2) or ""
        if rest == ".md" and folder is not None and (REPO / folder / "README.md").exists():
            continue
        section = rest.removeprefix("'s ").removesuffix(" section")
        if rest.startswith("'s") and folder is None and section.lower() in readme:
            continue
        wrong.append(m.group(0))
    return wrong


def test_code_and_data_point_at_pages_and_headings_that_exist() -> None:
    files = [
        p
        for top in SOURCES
        for p in sorted((REPO / top).rglob("*"))
        if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts
    ]
    assert any(p.name == "sagebridge.json" for p in files), "the dashboard is checked"
    wrong = {str(p.relative_to(REPO)): w for p in files if (w := stale_pointers(p))}
    assert wrong == {}
