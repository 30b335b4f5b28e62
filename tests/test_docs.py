"""The README and docs/ stay true: links, length, the generated spec reference, and commands.

- every link in README.md and docs/*.md is relative, stays inside the repository and resolves
  to a file (and a `#heading` to a heading of that file), so a user's clone has no dead link;
- every page under docs/ is reachable from the README (no orphaned copies of old sections);
- the README stays a README (at most 260 lines: the rest belongs in docs/);
- docs/spec.md is what docs/make_spec_reference.py renders from `regcli schema` now;
- every `regcli ...` command the README (and the docs pages written for users) shows uses a
  real subcommand and options that `regcli COMMAND --help` lists.

No training here: the costliest step runs `regcli ... --help` once per subcommand (~0.5 s each).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# Pages whose commands are checked: the README and the user pages this repository writes by hand
# (benchmarks.md is written by `make bench`, reliability.md records faults as they were run).
COMMAND_PAGES = [README, *(DOCS / f for f in ("sweeps.md", "report.md", "tracking.md", "init.md", "spec.md"))]
MAX_README_LINES = 270  # about 250: the README is for users; material for contributors lives in docs/

FENCE = re.compile(r"^(`{3,}|~{3,})([^\n`]*)\n(.*?)^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*:|www\.)[^>\s]*)>", re.I)
BARE_URL = re.compile(r"(?<![\w/])(?:https?://|www\.)[^\s)>\]]+", re.I)
SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def prose(text: str) -> str:
    """The page without fenced code blocks and code spans (their contents are no links)."""
    text = FENCE.sub(lambda m: "\n" * m[0].count("\n"), text)
    return CODE_SPAN.sub(" ", text)


def links(text: str) -> list[str]:
    """Every link target of a markdown page: inline, reference-style, HTML, autolinks, bare URLs."""
    body = prose(text)
    found = [m[1] for pattern in (INLINE_LINK, REF_LINK, HTML_LINK, AUTOLINK) for m in pattern.finditer(body)]
    return found + BARE_URL.findall(AUTOLINK.sub(" ", INLINE_LINK.sub(" ", body)))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen."""
    text = CODE_SPAN.sub(lambda m: m[2], heading.strip().lower())
    text = INLINE_LINK.sub(lambda m: m[0][m[0].index("[") + 1 : m[0].index("]")], text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of a markdown page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose(page.read_text(encoding="utf-8")), re.M):
        base = slug(m[1])
        out.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return frozenset(out)


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each link of `page`, one line each; [] when every link is fine."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if not target or SCHEME.match(target) or target.lower().startswith("www."):
            problems.append(f"{target!r} leaves the repository: link a file of the repository instead")
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(root):
            problems.append(f"{target!r} points outside the repository ({file})")
        elif not file.exists():
            problems.append(f"{target!r} does not exist ({file.relative_to(root)})")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target!r}: {file.relative_to(root)} has no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_is_relative_and_resolves_inside_the_repository(page):
    assert link_problems(page) == []


def test_the_link_checker_catches_what_it_should(tmp_path):
    root = tmp_path / "repo"
    (root / "docs" / "gallery").mkdir(parents=True)
    (root / "docs" / "gallery" / "curve.png").write_bytes(b"")
    (root / "docs" / "sweeps.md").write_text("# Sweeps\n\n## Packing\n", encoding="utf-8")
    page = root / "docs" / "page.md"
    page.write_text("[a](../../shared/SPEC.md) [b](https://example.com) <http://x.org> see https://y.org "
                    "[c](sweeps.md#no-such-heading) [d](sweeps.md#packing) `[e](nowhere.md)` "
                    "![f](gallery/curve.png) [g](missing.md)\n```\n[h](nowhere.md)\n```\n", encoding="utf-8")
    assert link_problems(page, root) == [
        f"'../../shared/SPEC.md' points outside the repository ({tmp_path / 'shared' / 'SPEC.md'})",
        "'https://example.com' leaves the repository: link a file of the repository instead",
        "'sweeps.md#no-such-heading': docs/sweeps.md has no heading with anchor #no-such-heading",
        "'missing.md' does not exist (docs/missing.md)",
        "'http://x.org' leaves the repository: link a file of the repository instead",
        "'https://y.org' leaves the repository: link a file of the repository instead",
    ]
    assert slug("The guided tour: diagnose → one knob → validate → final test") == \
        "the-guided-tour-diagnose--one-knob--validate--final-test"
    assert slug("`regcli report`: one page") == "regcli-report-one-page"


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [README]
    while todo:
        page = todo.pop()
        if page in reached or page.suffix != ".md" or not page.is_file():
            continue
        reached.add(page)
        todo += [(page.parent / t.partition("#")[0]).resolve() for t in links(page.read_text(encoding="utf-8"))
                 if t.partition("#")[0] and not SCHEME.match(t)]
    orphans = [str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if p.resolve() not in reached]
    assert orphans == [], "link these pages from README.md or docs/, or delete them"


def test_readme_is_short_enough_to_read():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move material to docs/"


def test_spec_reference_is_generated_from_the_current_schema():
    loader = importlib.util.spec_from_file_location("make_spec_reference", DOCS / "make_spec_reference.py")
    generator = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(generator)
    expected = generator.render_now()
    assert (DOCS / "spec.md").read_text(encoding="utf-8") == expected, (
        "docs/spec.md is stale: run `.venv/bin/python docs/make_spec_reference.py`")


# --- the commands the docs show --------------------------------------------------------------

SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
SEPARATORS = {"&&", "||", ";", "|"}
OPTION = re.compile(r"-{1,2}[A-Za-z0-9][\w-]*")
# A help line that starts an entry: "│ --set  <list[str]>  ..." (rich) or "  --set TEXT  ..." (click);
# continuation lines are indented further.
ENTRY = re.compile(r"^(?:│ | {2})(\S.*?)\s*│?$")


@functools.cache
def help_text(*command: str) -> str:
    """`regcli COMMAND --help`, wide enough that no option name wraps."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run([sys.executable, "-m", "regcli", *command, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"regcli {' '.join(command)} --help failed:\n{proc.stderr}"
    return proc.stdout


def help_entries(text: str, section: str) -> list[str]:
    """The first column of each entry of a help section ("Options" or "Commands")."""
    out, inside = [], False
    for line in text.splitlines():
        if re.match(rf"^\s*(?:╭─ )?{section}\b", line):
            inside = True
            continue
        if inside and (line.startswith("╰") or not line.strip()):
            inside = False
            continue
        m = ENTRY.match(line) if inside else None
        if m:
            out.append(re.split(r"\s{2,}", m[1])[0] if section == "Commands" else m[1])
    return out


@functools.cache
def subcommands() -> frozenset[str]:
    """The subcommands `regcli --help` lists."""
    return frozenset(help_entries(help_text(), "Commands"))


@functools.cache
def options(*command: str) -> frozenset[str]:
    """Every option name `regcli [COMMAND] --help` lists, short and long, `--x/--no-x` included."""
    names = set()
    for entry in help_entries(help_text(*command), "Options"):
        for field in re.split(r"\s{2,}", entry):  # rich: "--verbose  -v  <bool>"; click: "--set TEXT"
            lead = re.match(rf"(?:{OPTION.pattern}(?:[ ,/]+|$))+", field)
            if lead is None:
                break
            names.update(OPTION.findall(lead[0]))
            if lead[0] != field:
                break
    return frozenset(names)


def shell_lines(text: str) -> list[str]:
    """The command lines of a page's shell code blocks (console blocks: the `$ ` lines only)."""
    lines = []
    for m in FENCE.finditer(text):
        lang = m[2].strip().split()[0].lower() if m[2].strip() else ""
        if lang not in SHELL_LANGS:
            continue
        body = m[3].replace("\\\n", " ")
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            lines.append(line)
    return lines


def regcli_invocations(line: str) -> list[list[str]]:
    """The argument lists of every `regcli ...` (or `.venv/bin/regcli`, `python -m regcli`) in a line."""
    tokens = shlex.split(line, comments=True)
    calls, current = [], []
    for token in [*tokens, ";"]:
        if token in SEPARATORS:
            if current:
                calls.append(current)
            current = []
        else:
            current.append(token)
    out = []
    for call in calls:
        if Path(call[0]).name == "regcli":
            out.append(call[1:])
        elif call[:3] in (["python", "-m", "regcli"], ["python3", "-m", "regcli"]):
            out.append(call[3:])
    return out


def inline_invocations(text: str) -> list[list[str]]:
    """`regcli CMD [--opt ...]` in code spans outside code blocks (the command table): command and options."""
    body = FENCE.sub("", text)
    out = []
    for m in CODE_SPAN.finditer(body):
        span = m[2].replace("\\|", "|")
        if span.startswith("regcli "):
            words = span.split()
            command = [w for w in words[1:2] if not w.startswith("-")]
            out.append(command + OPTION.findall(" ".join(w for w in words[1:] if w.lstrip("[").startswith("-"))))
    return out


def invocation_problems(args: list[str]) -> list[str]:
    """What `regcli ARGS` uses that regcli does not have: a subcommand or an option."""
    before = []
    while args and args[0].startswith("-"):
        before.append(args.pop(0))
    problems = [f"regcli has no option {o}" for o in before if o.split("=")[0] not in options()]
    if not args:
        return problems
    command, rest = args[0], args[1:]
    if command not in subcommands():
        return [*problems, f"regcli has no command {command!r} (it has {sorted(subcommands())})"]
    known = options(command)
    for arg in rest:
        name = arg.split("=", 1)[0]
        if OPTION.fullmatch(name) and not re.fullmatch(r"-\d.*", name) and name not in known:
            problems.append(f"`regcli {command} --help` lists no option {name}")
    return problems


def test_help_parsing_finds_the_commands_and_options():
    assert {"train", "sweep", "diagnose", "test", "validate"} <= subcommands()
    assert {"--set", "--out", "--resume", "--help"} <= options("train")
    assert "--install-completion" in options()
    assert regcli_invocations('regcli validate a.yaml && .venv/bin/regcli train a.yaml --set x=1  # ok | no') == [
        ["validate", "a.yaml"], ["train", "a.yaml", "--set", "x=1"]]
    assert invocation_problems(["train", "a.yaml", "--sett", "x=1"]) == ["`regcli train --help` lists no option --sett"]
    assert invocation_problems(["trian"])[0].startswith("regcli has no command 'trian'")


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_commands_use_real_subcommands_and_options(page):
    text = page.read_text(encoding="utf-8")
    calls = [args for line in shell_lines(text) for args in regcli_invocations(line)]
    calls += inline_invocations(text) if page == README else []
    if page == README:
        assert len(calls) >= 10, "the README shows regcli commands; the parser found too few"
    problems = {" ".join(["regcli", *args]): p for args in calls if (p := invocation_problems(list(args)))}
    assert problems == {}
