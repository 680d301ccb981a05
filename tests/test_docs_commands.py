"""Every shell command in README.md, CONTRIBUTING.md and docs/ is checked, so a renamed flag fails.

The ``bash`` and ``console`` blocks of the pages are split into commands (``\\`` continuations
joined, comments dropped, split at ``&&``, ``;``, ``&`` and new lines; in a console block only
the ``$`` lines). Each command is one of three kinds:

- **parsed**: ``msrnet ...`` (also ``python -m msrnet`` and under ``torchrun``) and the
  repository's scripts (``python benchmarks/x.py``, ``examples/``, ``scripts/``): its arguments
  go through the command's own argparse parser, which stops right after parsing (nothing runs),
  all in one interpreter. A renamed or removed flag, a wrong choice or a value its type refuses
  fails the test. This covers the commands that need data, a GPU, the network or hours.
- **run**: the commands of `RUN` also run for real, offline, in a temporary folder (``$DATA``
  is the shared data sets; those that need them skip without them).
- **skipped**: commands that are not msrnet's (`SKIPPED`: pip, git, mkdocs, ...), each with the
  reason. A command of no kind fails the test: a new page's command must be classified.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^([ \t]*)```(bash|console)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_SEPARATORS = {"&&", "||", ";", "&", "|"}
# Variables the pages use for the reader's folders; the test sets them (DATA, COMFY) itself.
_GIVEN = {"DATA", "COMFY"}

# Commands that are not msrnet's, by their first words, and why they are not run here.
SKIPPED: dict[str, str] = {
    "pip": "installs packages (network)",
    "python -m pip": "installs packages (network)",
    "python -m venv": "creates an environment (the README's install, which CI runs)",
    "git clone": "network, and a placeholder address",
    "cd": "enters the clone of the command before",
    "cp": "copies into the reader's ComfyUI folder (a placeholder path)",
    "mkdocs": "serves or builds the site: tests/test_docs.py builds it strictly",
    "python -m pytest": "the test suite itself (.ci/run runs the README's command)",
    "python -m mypy": "the type check (.ci/run runs it)",
    "python -m timeit": "a timing measurement, not a check",
}

# Commands that also run for real (offline, seconds), as the pages write them.
RUN = {
    "msrnet --version",
    "msrnet weights",
    "msrnet weights --copy-to $COMFY/models/upscale_models",
    "msrnet upscale --demo",
    "python -c import msrnet; print(msrnet.list_models('*x4'))",
    "msrnet benchmark --model bicubic --dataset $DATA/Set5 --scale 4",
    "msrnet benchmark --model bicubic --dataset $DATA/Set5 --dataset $DATA/Set14 --scale 2 --scale 4 --scale 8",
}


class Command(NamedTuple):
    page: str
    text: str  # the command as written, variables unexpanded (RUN's keys)
    argv: tuple[str, ...]  # with the page's own variables expanded ($common), $DATA and $COMFY kept
    env: tuple[tuple[str, str], ...]


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    return list(lexer)


def _lines(body: str, kind: str) -> list[str]:
    """The block's command lines, continuations joined; a console block's ``$`` lines only."""
    lines = body.replace("\\\n", " ").splitlines()
    if kind == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    return lines


def page_commands() -> list[Command]:
    """Every command of the pages' bash and console blocks (see the module docstring)."""
    commands = []
    for page in PAGES:
        name = str(page.relative_to(REPO_ROOT))
        variables: dict[str, str] = {}
        for indent, kind, body in _BLOCK.findall(page.read_text(encoding="utf-8")):
            body = "\n".join(line.removeprefix(indent) for line in body.splitlines()) + "\n"
            for line in _lines(body, kind):
                words, current = _words(line), []
                for word in [*words, ";"]:
                    if word not in _SEPARATORS:
                        current.append(word)
                        continue
                    env = []
                    while current and re.fullmatch(r"\w+=.*", current[0]):
                        key, _, value = current.pop(0).partition("=")
                        env.append((key, value))
                    if not current:  # assignments alone: the page's variables
                        variables.update((k, v) for k, v in env if k not in _GIVEN)
                    else:
                        argv: list[str] = []
                        for w in current:
                            if w == "...":  # "msrnet train ... --resume": the flags before
                                continue
                            name_ = w[1:] if re.fullmatch(r"\$\w+", w) else None
                            argv += _words(variables[name_]) if name_ in variables else [w]
                        commands.append(Command(name, " ".join(current), tuple(argv), tuple(env)))
                    current = []
    return commands


def _normalized(argv: tuple[str, ...]) -> list[str]:
    """``.venv/bin/msrnet`` is msrnet, ``python3`` is python; torchrun's options dropped."""
    first = argv[0].removeprefix(".venv/bin/")
    rest = list(argv[1:])
    if first == "python3":
        first = "python"
    if first == "torchrun":  # torchrun [options] (-m module | script.py) args
        i = next(i for i, w in enumerate(rest) if w == "-m" or w.endswith(".py"))
        first, rest = "python", rest[i:]
    return [first, *rest]


def classify(command: Command) -> tuple[str, str | None, list[str]]:
    """(kind, what, args): ("parsed", "msrnet" or a script path, its arguments), ("skipped",
    reason, []), ("run", None, argv) for a command of `RUN` that no parser covers, or
    ("unknown", None, argv)."""
    argv = _normalized(command.argv)
    if argv[0] == "msrnet":
        return "parsed", "msrnet", argv[1:]
    if argv[:3] == ["python", "-m", "msrnet"]:
        return "parsed", "msrnet", argv[3:]
    if argv[0] == "python" and len(argv) > 1 and argv[1].endswith(".py"):
        if (REPO_ROOT / argv[1]).is_file() and argv[1].split("/")[0] in ("benchmarks", "examples", "scripts"):
            return "parsed", argv[1], argv[2:]
    for prefix, reason in SKIPPED.items():
        if argv[: len(prefix.split())] == prefix.split():
            return "skipped", reason, []
    if command.text in RUN:
        return "run", None, argv
    return "unknown", None, argv


# Parses each (what, args) with the command's own argparse parser, stopping right after it: one
# line per command, "RESULT " and its error as JSON (null: parsed; --version exits 0 as it parses).
PARSE_ONLY = r"""
import argparse, json, runpy, sys

class Parsed(Exception):
    pass

class Refused(Exception):
    pass

def parse_args(self, args=None, namespace=None):
    _, extra = self.parse_known_args(args, namespace)
    if extra:
        self.error("unrecognized arguments: " + " ".join(extra))
    raise Parsed

def error(self, message):
    raise Refused(f"{self.prog}: {message}")

argparse.ArgumentParser.parse_args = parse_args
argparse.ArgumentParser.error = error
path = list(sys.path)
for what, args in json.loads(sys.stdin.read()):
    sys.argv = [what, *args]
    try:
        if what == "msrnet":
            runpy.run_module("msrnet", run_name="__main__", alter_sys=True)
        else:
            sys.path[:] = [what.rsplit("/", 1)[0], *path]
            runpy.run_path(what, run_name="__main__")
        result = "ran without parsing arguments"
    except Parsed:
        result = None
    except SystemExit as e:
        result = None if e.code in (0, None) else f"exit {e.code}"
    except Refused as e:
        result = str(e)
    except BaseException as e:
        result = f"{type(e).__name__}: {e}"
    print("RESULT", json.dumps(result), flush=True)
"""


def test_every_command_is_classified_and_the_lists_are_used() -> None:
    commands = page_commands()
    assert len(commands) > 80, "the block pattern no longer finds the pages' commands"
    kinds = [(c, classify(c)) for c in commands]
    unknown = [f"{c.page}: {c.text}" for c, (kind, _, _) in kinds if kind == "unknown"]
    assert not unknown, f"commands of no kind (add them to RUN or SKIPPED, with a reason): {unknown}"
    texts = {c.text for c in commands}
    assert RUN <= texts, f"RUN names commands no page has: {sorted(RUN - texts)}"
    used = {reason for _, (kind, reason, _) in kinds if kind == "skipped"}
    assert set(SKIPPED.values()) <= used, f"SKIPPED reasons no command needs: {set(SKIPPED.values()) - used}"


def test_every_msrnet_and_script_command_parses(tmp_path: Path) -> None:
    checked = []
    for command in page_commands():
        kind, what, args = classify(command)
        if kind == "parsed":
            checked.append((command, [what, args]))
    assert len(checked) > 60 and {w for _, (w, _) in checked} >= {"msrnet", "examples/train_291.py"}
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_ONLY],
        input=json.dumps([item for _, item in checked]), capture_output=True, text=True,
        cwd=REPO_ROOT, timeout=900, env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    results = [json.loads(line.removeprefix("RESULT ")) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and len(results) == len(checked), proc.stderr[-4000:]
    failed = [f"{c.page}: {c.text}\n    {error}" for (c, _), error in zip(checked, results) if error]
    assert not failed, "commands that their parser refuses:\n" + "\n".join(failed)


def _run_commands() -> list[Command]:
    seen: dict[str, Command] = {}
    for command in page_commands():
        if command.text in RUN:
            seen.setdefault(command.text, command)
    return sorted(seen.values(), key=lambda c: c.text)


@pytest.mark.slow
@pytest.mark.parametrize("command", _run_commands(), ids=lambda c: c.text[:60])
def test_offline_command_runs(command: Command, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    values = {"COMFY": str(tmp_path / "ComfyUI")}
    if "$DATA" in command.text:
        values["DATA"] = str(request.getfixturevalue("shared_data"))
    argv = _normalized(command.argv)
    argv = [sys.executable, "-m", "msrnet", *argv[1:]] if argv[0] == "msrnet" else [sys.executable, *argv[1:]]
    argv = [re.sub(r"\$(\w+)", lambda m: values.get(m[1], m[0]), w) for w in argv]
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=tmp_path, timeout=900,
        env={**os.environ, **dict(command.env), "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    assert proc.returncode == 0, f"{command.page}: {command.text}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
