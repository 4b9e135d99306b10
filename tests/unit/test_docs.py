"""The README stays a first hour's reading, and what the documents point at exists: every relative link
(file and #heading), every repository path they name and every `make` target they tell a reader to run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").glob("*.md")])
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text without fenced code blocks: a `[x](y)` or a `# line` inside one is code, not a link or heading."""
    return FENCE.sub("", text)


def github_anchors(text: str) -> set[str]:
    """The #fragments GitHub gives a document's headings: lower case, punctuation dropped, spaces to
    hyphens; a repeated heading gets -1, -2, ..."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, title in HEADING.findall(_prose(text)):
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(text: str) -> list[str]:
    prose = _prose(text)
    targets = INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)
    return [t for t in targets if not SCHEME.match(t)]


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in relative_links(doc.read_text()):
        path_part, _, fragment = target.partition("#")
        linked = (doc.parent / path_part).resolve() if path_part else doc
        if not linked.is_relative_to(root) or not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in github_anchors(linked.read_text()):
            broken.append(f"{target}: {linked.relative_to(root)} has no heading #{fragment}")
    return broken


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z][\w-]*):(?!=)", (ROOT / "Makefile").read_text(), re.M))


def make_targets_mentioned(text: str) -> set[str]:
    """`make x` in inline code, and `make x` on the command part (before a # comment) of a code block's line."""
    found = set(re.findall(r"`make ([a-z][\w-]*)", _prose(text)))
    for block in FENCE.finditer(text):
        for line in block.group(0).splitlines()[1:-1]:
            command = re.split(r"\s#", line, maxsplit=1)[0]
            found |= set(re.findall(r"(?:^|[\s;&|(])make ([a-z][\w-]*)", command))
    return found


def test_the_readme_is_a_first_hours_reading():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; reference belongs in docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file_and_heading(doc):
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_a_document_mentions_exists(doc):
    assert make_targets_mentioned(doc.read_text()) - makefile_targets() == set()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_document_names_in_code_exists(doc):
    # `src/...`, `infra/...`: after a module moves, the documents that name it say where it went
    named = set(re.findall(r"`((?:src|infra|tests|docs)/[\w./-]+)`", doc.read_text()))
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_the_readme_links_every_document_in_docs():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README.read_text())}
    assert [p.name for p in DOCS if p != README and p.resolve() not in linked] == []


def test_the_checks_themselves_catch_what_they_are_for(tmp_path):
    # GIVEN a document with a good link, a missing file, a missing heading and links that are only code
    (tmp_path / "OTHER.md").write_text("# Other\n\n## Make targets: `make up`\n\n## Make targets: `make up`\n")
    doc = tmp_path / "DOC.md"
    doc.write_text("[a](OTHER.md#make-targets-make-up-1) [b](missing.md) [c](OTHER.md#nowhere) [d](#here)\n"
                   "[e](https://example.org/x.md)\n\n# Here\n\n```\n[f](also-missing.md)\nmake ps\n```\n"
                   "Run `make nothing-such`; make sure it works.\n")
    # THEN the good ones pass and each bad one is named; code is not read as links
    assert broken_links(doc, tmp_path) == ["missing.md: no such file", "OTHER.md#nowhere: OTHER.md has no heading #nowhere"]
    assert make_targets_mentioned(doc.read_text()) == {"ps", "nothing-such"}
