"""The docs' command lines exist: every `bisenet-*` command, sub-command and option the README and
docs/ show (code blocks and inline code) is a console script with that sub-command and option."""

import argparse
import configparser
import glob
import importlib
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def console_scripts():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("="))
        scripts[name] = target.split(":")[0]
    return scripts


def command_lines(path):
    """(line number, command line) of every `bisenet-*` line in a code block (fenced or indented,
    backslash continuations joined) and of every inline code span starting with one."""
    text = open(path, encoding="utf-8").read()
    lines = text.splitlines()
    found = []
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
            i += 1
            continue
        stripped = line.strip()
        start = i
        if (fenced or line.startswith("    ")) and stripped.startswith("bisenet-"):
            while stripped.endswith("\\") and i + 1 < len(lines):
                i += 1
                stripped = stripped[:-1] + " " + lines[i].strip()
            found.append((start + 1, stripped))
        elif not fenced:
            found += [(i + 1, span) for span in re.findall(r"`(bisenet-[^`]+)`", line)]
        i += 1
    # the project's own name and schema names ("bisenet-bench-served/1") are not commands
    return [(n, line) for n, line in found
            if re.match(r"^bisenet-[a-z-]+(\s|$)", line) and not line.startswith("bisenet-deploy")]


def parsers():
    """command name -> its argparse parser (from the console script's module)."""
    built = {}
    for name, module in console_scripts().items():
        built[name] = importlib.import_module(module).build_parser()
    return built


def subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def options_named(line):
    """(command, [sub-commands], [option strings]) of one documented command line."""
    line = line.split(" #", 1)[0].split(" > ", 1)[0].split(" | ", 1)[0]
    try:
        tokens = shlex.split(line, posix=True)
    except ValueError:  # an unbalanced quote in a prose example
        tokens = line.split()
    command, rest = tokens[0], tokens[1:]
    subs = []
    if rest and re.match(r"^[a-z][a-z|]*$", rest[0]):
        subs = rest[0].split("|")
    options = []
    for token in rest:
        token = token.strip("[]()`,;")
        for part in token.split("/"):
            part = part.split("=", 1)[0]
            if re.match(r"^--?[a-zA-Z][a-zA-Z0-9-]*$", part):
                options.append(part)
    return command, subs, options


CASES = [(os.path.relpath(path, ROOT), n, line) for path in DOCS for n, line in
         command_lines(path)]


def test_the_docs_name_commands_at_all():
    assert len(CASES) > 30
    assert any("bisenet-doctor" in line for _, _, line in CASES)


@pytest.fixture(scope="module")
def all_parsers():
    return parsers()


@pytest.mark.parametrize("doc, line_number, line", CASES,
                         ids=[f"{d}:{n}" for d, n, _ in CASES])
def test_every_documented_command_and_option_exists(all_parsers, doc, line_number, line):
    command, subs, options = options_named(line)
    assert command in all_parsers, f"{doc}:{line_number}: no console script {command!r}"
    parser = all_parsers[command]
    choices = subcommands(parser)
    targets = [parser]
    if choices:
        if not subs:  # `bisenet-export` alone, or a prose mention like `bisenet-export --help`
            assert not [o for o in options if o not in parser._option_string_actions], line
            return
        for sub in subs:
            assert sub in choices, f"{doc}:{line_number}: {command} has no sub-command {sub!r}"
        targets = [choices[sub] for sub in subs]
    for option in options:
        for target in targets:
            known = set(target._option_string_actions) | {"--version"}
            assert option in known, (f"{doc}:{line_number}: `{target.prog}` has no option "
                                     f"{option} ({line})")


def _exit_codes(text):
    """The codes listed after 'exit status (...):' in a paragraph: ['0', '2', ..., '130/143']."""
    paragraph = text[re.search(r"exit\s+status\s+\(", text).start():].split("\n\n", 1)[0]
    return re.findall(r"(?:: |; )(\d+(?:/\d+)?) ", " ".join(paragraph.split()))


def test_bisenet_serve_exit_codes_in_the_readme_are_those_of_its_help():
    from bisenet_deploy.cli.serve_main import build_parser

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme[readme.index("## Serving at scale"):]
    documented = _exit_codes(section)
    assert documented == _exit_codes(build_parser().format_help())
    assert set(documented) >= {"0", "1", "2", "4", "5", "130/143"}


def _help_of(parser, option):
    return " ".join(parser._option_string_actions[option].help.split())


def test_help_texts_say_what_the_option_takes_in_that_command():
    from bisenet_deploy.cli import bench_main, export_main

    assert "mmsegmentation" in _help_of(bench_main.build_parser(), "--checkpoint")
    convert = subcommands(export_main.build_parser())["checkpoint"]
    classes = _help_of(convert, "--num-classes")  # a checkpoint is required there
    assert "random" not in classes and "head" in classes
    onnx = subcommands(export_main.build_parser())["onnx"]
    assert "random weights" in _help_of(onnx, "--num-classes")
