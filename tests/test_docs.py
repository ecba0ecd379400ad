"""The README and docs/ say what is true: every command in a code block parses, every file named exists, every link resolves."""

import re
import shlex
from pathlib import Path

import pytest

from advent_sweep.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md", ROOT / "cluster" / "README.md"]
REPO_PATH = re.compile(r"(?<![\w/~.-])((?:search_spaces|cluster|benchmarks|docs|advent_sweep|tests)/[\w./-]*[\w/])")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def code_block_commands(text: str) -> list[str]:
    """Every `advent-sweep ...` command line in the text's fenced code blocks, continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if "advent-sweep " in line:
                commands.append(line[line.index("advent-sweep "):])
    return commands


def readme_commands() -> list[str]:
    return code_block_commands((ROOT / "README.md").read_text())


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 12


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses(command):
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_file_a_doc_names_exists(doc):
    named = {match for match in REPO_PATH.findall(doc.read_text()) if "<" not in match and "*" not in match}
    missing = sorted(name for name in named if not (ROOT / name).exists() and not (doc.parent / name).exists())
    assert not missing


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"(?m)^#+ (.*)$", path.read_text())
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    broken = []
    for link in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+://|mailto:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists() or (anchor and anchor not in heading_anchors(path)):
            broken.append(link)
    assert not broken
