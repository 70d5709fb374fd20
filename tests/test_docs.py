"""The README and docs/ stay short, runnable and linked.

* README.md fits in 15,000 bytes and shows the two commands; CI runs the test one.
* Every ``synco <command>`` the docs name (in a code block or inline code) is a
  command of the real CLI, and every ``--flag`` written after it is listed by
  that command's ``--help``.
* Every relative link points at a file that exists (and, with ``#anchor``, at a
  heading of that file).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from pathlib import Path

import pytest

from synco.cli import main as synco_main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_LIMIT = 15_000
DEMO_COMMAND = "bash bootstrap.sh demo"
TEST_COMMAND = "bash bootstrap.sh test"


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


# --- the real CLI's help -----------------------------------------------------

@functools.lru_cache(maxsize=None)
def cli_help(words: tuple[str, ...]) -> str:
    """The text ``synco WORDS --help`` prints, from the real parser."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            synco_main([*words, "--help"])
        except SystemExit:
            pass
    return out.getvalue()


def subcommands(help_text: str) -> set[str]:
    """Names listed under "positional arguments" as subcommands (indented four spaces)."""
    names: set[str] = set()
    section = ""
    for line in help_text.splitlines():
        if line and not line.startswith(" "):
            section = line.strip().rstrip(":")
            continue
        m = re.match(r"^ {4}([a-z][\w-]*)(?: {2,}|$)", line)
        if section == "positional arguments" and m:
            names.add(m.group(1))
    return names


def has_flag(help_text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


# --- what the docs say ---------------------------------------------------------

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")
# `synco`, `-m synco` or `.venv/bin/synco`, then a word: the command.
COMMAND = re.compile(r"(?<![^\s(])(?:\S*/bin/)?synco[ \t]+([a-z][\w-]*)")
FLAG = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*")


def code_segments(text: str) -> list[str]:
    """Shell-like segments of the code in a Markdown text: fenced blocks (one
    segment per logical line, comments and pipes cut off) and inline code."""
    segments: list[str] = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0]
            segments.extend(re.split(r"\|\||&&|[|;>]", line))
    prose = FENCE.sub("", text)
    segments.extend(span.replace("\n", " ") for span in INLINE.findall(prose))
    return segments


def named_commands(text: str) -> list[tuple[str, list[str]]]:
    """(``synco`` words after ``synco``, flags written after them) for each command named."""
    found = []
    for segment in code_segments(text):
        matches = list(COMMAND.finditer(segment))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(segment)
            rest = segment[m.end():end]
            words = [m.group(1)]
            nxt = re.match(r"[ \t]+([a-z][\w-]*)", rest)
            if nxt:
                words.append(nxt.group(1))
            found.append((words, FLAG.findall(rest)))
    return found


def command_errors(text: str) -> list[str]:
    """Each ``synco`` command or flag in TEXT that the real CLI does not have."""
    errors = []
    top = subcommands(cli_help(()))
    assert {"pretrain", "convert", "transfer", "tabulate", "bench", "demo"} <= top, top
    for words, flags in named_commands(text):
        command = words[0]
        if command not in top:
            errors.append(f"`synco {command}` is not a command (synco --help lists {sorted(top)})")
            continue
        path = (command,)
        nested = subcommands(cli_help(path))
        if nested and len(words) > 1 and words[1] in nested:
            path = (command, words[1])
        elif nested and len(words) > 1:
            errors.append(f"`synco {command} {words[1]}`: synco {command} has {sorted(nested)}")
            continue
        help_text = cli_help(path)
        for flag in flags:
            if not has_flag(help_text, flag):
                errors.append(f"`synco {' '.join(path)} {flag}`: not in synco {' '.join(path)} --help")
    return errors


# --- links ------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def link_errors(path: Path, text: str) -> list[str]:
    errors = []
    prose = INLINE.sub("", FENCE.sub("", text))
    for m in LINK.finditer(prose):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            errors.append(f"{path.name}: link to {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            errors.append(f"{path.name}: link to {target}: no heading #{anchor} in {dest.name}")
    return errors


# --- the tests ------------------------------------------------------------------------

def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_LIMIT, (
        f"README.md is {size:,} bytes, over {README_LIMIT:,}: move detail to docs/ and link it")


def test_readme_shows_the_two_commands_and_ci_runs_the_test_one():
    readme = README.read_text(encoding="utf-8")
    assert DEMO_COMMAND in readme
    assert TEST_COMMAND in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    run_lines = [line for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any("bootstrap.sh test" in line for line in run_lines), ".ci/run must run bootstrap.sh test"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_named_commands_and_flags_exist(path):
    errors = command_errors(path.read_text(encoding="utf-8"))
    assert not errors, f"{path.name}:\n" + "\n".join(errors)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    errors = link_errors(path, path.read_text(encoding="utf-8"))
    assert not errors, "\n".join(errors)


def test_the_checks_catch_planted_mistakes():
    text = (
        "Run `synco frobnicate --all` or `synco convert in.pth out.pkl --no-such-flag`.\n\n"
        "```bash\nsynco data toy --out w --no-such-option   # a comment --ignored\n"
        "torchrun --nproc_per_node 2 -m synco pretrian --config x\n```\n"
        "See [the guide](docs/no_such_page.md) and [a heading](README.md#no-such-heading).\n")
    errors = command_errors(text)
    assert any("synco frobnicate" in e for e in errors), errors
    assert any("--no-such-flag" in e for e in errors), errors
    assert any("--no-such-option" in e for e in errors), errors
    assert any("synco pretrian" in e for e in errors), errors
    assert not any("--ignored" in e or "--all" in e for e in errors), errors
    links = link_errors(README, text)
    assert any("no_such_page.md" in e for e in links), links
    assert any("#no-such-heading" in e for e in links), links
    good = "`synco data toy --out w`, `synco transfer --task voc --weights msra`, [me](README.md)"
    assert command_errors(good) == [] and link_errors(README, good) == []
