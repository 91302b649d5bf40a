"""One name with one meaning across every command's parser (cli/options.py VOCABULARY).

Every console script's parser is introspected: a shared concept must be spelled the same way
everywhere, a canonical spelling must never mean something else, an old spelling may only live on
as a hidden deprecated alias, and the README's option table lists each concept's option.
"""

import argparse
import configparser
import importlib
import os

import pytest

from bisenet_deploy.cli import options as O

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANONICAL = {s: c for c, spellings in O.VOCABULARY.items() for s in spellings}


def console_scripts():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((name.strip(), target.strip()) for name, target in
                (line.split("=", 1) for line in lines if line.strip()))


def all_parsers():
    """(command name, parser) for every console script and every sub-command."""
    found = []
    for name, target in sorted(console_scripts().items()):
        module = importlib.import_module(target.split(":")[0])
        assert hasattr(module, "build_parser"), (
            f"{name}: {target.split(':')[0]} declares no build_parser(), so its options cannot "
            f"be checked against the shared vocabulary")
        stack = [(name, module.build_parser())]
        while stack:
            prog, parser = stack.pop()
            found.append((prog, parser))
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack.extend((f"{prog} {sub}", p) for sub, p in action.choices.items())
    return found


def vocabulary_problems(parsers):
    """Every place where a concept has another spelling, or a spelling another concept."""
    problems = []
    for prog, parser in parsers:
        has = {getattr(a, "concept", None) for a in parser._actions
               if not getattr(a, "deprecated_for", None)}
        for action in parser._actions:
            concept = getattr(action, "concept", None)
            old_for = getattr(action, "deprecated_for", None)
            for spelling in action.option_strings:
                where = f"{prog} {spelling}"
                if spelling in CANONICAL and old_for and (
                        O.REUSED_OLD_SPELLINGS.get(spelling) != concept
                        or CANONICAL[spelling] in has or action.help != argparse.SUPPRESS):
                    problems.append(f"{where}: {spelling} is the option for "
                                    f"'{CANONICAL[spelling]}', here an old spelling of another")
                elif spelling in CANONICAL and not old_for and concept != CANONICAL[spelling]:
                    problems.append(f"{where}: {spelling} is the option for "
                                    f"'{CANONICAL[spelling]}', here it means something else")
                elif spelling in O.DEPRECATED and not (old_for and action.help == argparse.SUPPRESS
                                                       and concept == O.DEPRECATED[spelling]):
                    problems.append(f"{where}: an old spelling of '{O.DEPRECATED[spelling]}' "
                                    f"used as an option of its own")
                elif spelling in O.SHORTHANDS and concept != O.SHORTHANDS[spelling]:
                    problems.append(f"{where}: {spelling} is the shorthand of "
                                    f"--{O.SHORTHANDS[spelling]} {spelling[2:]}, not this")
            if concept and not old_for:
                strings = tuple(action.option_strings)
                if strings in [(s,) for s in O.SHORTHANDS]:
                    if action.const != strings[0][2:] or action.dest != "precision":
                        problems.append(f"{prog} {strings[0]}: not --precision {strings[0][2:]}")
                elif strings != tuple(O.VOCABULARY[concept]):
                    problems.append(f"{prog}: '{concept}' is spelled {'/'.join(strings)}, "
                                    f"elsewhere {'/'.join(O.VOCABULARY[concept])}")
                expected_dest = O.VOCABULARY[concept][-1].lstrip("-").replace("-", "_")
                if action.dest != expected_dest and strings not in [(s,) for s in O.SHORTHANDS]:
                    problems.append(f"{prog} {strings[-1]}: read as args.{action.dest}, "
                                    f"elsewhere args.{expected_dest}")
    return problems


def test_every_command_spells_each_concept_one_way():
    parsers = all_parsers()
    assert len(parsers) >= 12  # export onnx/check/summary/checkpoint/jetson/triton + 6 commands
    assert vocabulary_problems(parsers) == []


def test_the_check_catches_a_second_spelling():
    """The check above can fail: each kind of drift the vocabulary forbids is reported."""
    p = argparse.ArgumentParser(prog="bad")
    p.add_argument("--model-size")                                 # an old name as an option
    p.add_argument("--output", choices=("labels", "logits"))      # a canonical name, other meaning
    p.add_argument("--fp16", action="store_true")                  # a shorthand, other meaning
    O._tag(p.add_argument("-o", "--output-path"), "output")        # the concept, other spelling
    O.add_batch(p, "images per call")
    O.add_alias(p, O.add_batch_range(p, "range"), "--backend")     # an old name, other meaning
    problems = "\n".join(vocabulary_problems([("bad", p)]))
    for expected in ("bad --model-size: an old spelling of 'network-size' used as an option",
                     "bad --output: --output is the option for 'output', here it means",
                     "bad --fp16: --fp16 is the shorthand of --precision fp16",
                     "bad: 'output' is spelled -o/--output-path, elsewhere -o/--output",
                     "bad --output-path: read as args.output_path, elsewhere args.output",
                     "bad --backend: --backend is the option for 'backend', here an old"):
        assert expected in problems, problems
    assert "--batch" not in problems  # declared through the helper: fine


def _notices(err):
    return [line for line in err.splitlines() if "deprecated" in line]


SAMPLE = {"output": "x.out", "network-size": "512x256", "batch-range": "1:2:4", "images": "a.png",
          "trt-flavour": "tensorrt-rtx", "calib-count": "7"}
EXPECTED = {"output": "x.out", "network-size": (512, 256), "batch-range": (1, 2, 4),
            "images": ["a.png"], "trt-flavour": "tensorrt-rtx", "calib-count": 7}


def test_every_old_spelling_still_works_for_one_release_with_one_line(capsys):
    """Each hidden alias stores what the new option stores and says, in one stderr line, which
    option to use; the new spelling prints nothing."""
    checked = set()
    for prog, parser in all_parsers():
        for action in parser._actions:
            old_for = getattr(action, "deprecated_for", None)
            if not old_for or action.concept not in SAMPLE:
                continue
            old = action.option_strings[0]
            for other in parser._actions:  # the parsers are fresh: only the alias is under test
                other.required = False
            args, _ = parser.parse_known_args([old, SAMPLE[action.concept]])
            assert getattr(args, action.dest) == EXPECTED[action.concept], (prog, old)
            notices = _notices(capsys.readouterr().err)
            assert notices == [f"warning: {old} is deprecated and goes in the next release: use "
                               f"{old_for}"], (prog, old)
            args, _ = parser.parse_known_args([old_for, SAMPLE[action.concept]])
            assert getattr(args, action.dest) == EXPECTED[action.concept]
            assert _notices(capsys.readouterr().err) == []
            checked.add((prog.split()[0] + (" " + prog.split()[1] if " " in prog else ""), old))
    assert {("bisenet-export onnx", "--output-path"), ("bisenet-export onnx", "--model-size"),
            ("bisenet-export onnx", "--dynamic-batch"), ("bisenet-export jetson", "--output-dir"),
            ("bisenet-export triton", "--output-dir"), ("bisenet-export summary", "--model-size"),
            ("bisenet-export checkpoint", "--output-path"), ("bisenet-build-engine", "--batch"),
            ("bisenet-build-engine", "--backend"), ("bisenet-bench", "--image"),
            ("bisenet-build-engine", "--calib-max-images")} <= checked


def _parse(module_name, argv):
    module = importlib.import_module(f"bisenet_deploy.cli.{module_name}")
    return module.build_parser().parse_args(argv)


def test_users_scripts_keep_working_exactly(capsys):
    args = _parse("build_engine_main", ["m.onnx", "--fp16"])
    assert args.precision == "fp16"
    assert _parse("build_engine_main", ["m.onnx", "--precision", "fp16"]).precision == "fp16"
    assert _parse("bench_main", ["--iters", "5000"]).iters == 5000
    args = _parse("export_main", ["onnx"])
    assert args.func.__module__.endswith("export_onnx")
    assert _notices(capsys.readouterr().err) == []


@pytest.mark.parametrize("command, argv", [
    ("export_main", ["onnx", "--output", "labels"]),
    ("export_main", ["onnx", "--output", "both"]),
    ("export_main", ["jetson", "--output", "labels"]),
])
def test_an_old_spelling_that_now_means_a_path_is_refused(command, argv, capsys, tmp_path,
                                                          monkeypatch):
    """`--output labels` chose the graph outputs; it now names the file to write, and is refused
    instead of writing a file called 'labels'."""
    from bisenet_deploy.cli.common import run_cli

    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"bisenet_deploy.cli.{command}")
    with pytest.raises(SystemExit) as info:
        run_cli(module.build_parser(), argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--outputs {argv[-1]}" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_precision_shorthands_have_help_and_mean_precision():
    parser = importlib.import_module("bisenet_deploy.cli.build_engine_main").build_parser()
    for flag in ("--fp32", "--fp16", "--int8"):
        action = parser._option_string_actions[flag]
        assert action.help and f"--precision {flag[2:]}" in action.help


def test_plot_and_json_take_an_optional_path():
    for prog, parser in all_parsers():
        for spelling in ("--plot", "--json"):
            action = parser._option_string_actions.get(spelling)
            if action is None:
                continue
            assert action.nargs == "?", f"{prog} {spelling}"
            assert action.const == (O.PLOT_AUTO if spelling == "--plot" else O.JSON_STDOUT)


def test_readme_option_table_lists_every_concept():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("### Option table")
    table = text[start:text.index("\n#", start + 1)]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for concept, spellings in O.VOCABULARY.items():
        assert any(f"`{spellings[-1]}" in row for row in rows), concept
    for old in O.DEPRECATED:
        assert any(f"`{old}`" in row for row in rows), old
    for old in O.REUSED_OLD_SPELLINGS:
        assert any(f"`{old}" in row for row in rows), old


def test_json_without_a_path_is_the_record_alone_on_stdout(tiny_export, tmp_path, capsys,
                                                           monkeypatch):
    """`--json` alone: stdout holds exactly one JSON record, every other line goes to stderr, and
    no report file is written (here: bench, whose tables normally go to stdout)."""
    import json

    from bisenet_deploy.cli import bench_main

    monkeypatch.chdir(tmp_path)
    _, _, onnx = tiny_export()
    code = bench_main.main(["--onnx", onnx, "--backend", "onnxruntime", "--iters", "2",
                            "--warmup", "0", "--json", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    assert record["backends"][0]["backend"] == "onnxruntime" and "toolkit_version" in record
    assert "end-to-end" in err  # the human-readable table, on stderr
    assert not os.path.exists(tmp_path / "benchmarks")
    with pytest.raises(SystemExit):  # and the path form still takes a path
        bench_main.build_parser().parse_args(["--json", "r.json", "--bogus"])
    assert bench_main.build_parser().parse_args(["--json", "r.json"]).json == "r.json"


def test_missing_required_output_is_one_usage_line(capsys):
    from bisenet_deploy.cli.export_main import main

    with pytest.raises(SystemExit) as info:
        main(["triton", "--onnx", "m.onnx"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "required: -o/--output" in err[0], err


EXPORT_SUBCOMMANDS = ("onnx", "summary", "check", "checkpoint", "jetson", "triton")


def _table_commands(cell):
    """'export onnx, jetson; build-engine (notes)' -> {'export onnx', 'export jetson',
    'build-engine'}: notes in parentheses and `code` are not commands."""
    import re

    text = re.sub(r"`[^`]*`", "", cell)
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    names = set()
    for word in re.split(r"[,;]", text):
        word = word.strip()
        word = word[len("export "):] if word.startswith("export ") else word
        if word:
            names.add("export " + word if word in EXPORT_SUBCOMMANDS else word)
    return names


def test_readme_option_table_names_exactly_the_commands_that_have_each_option():
    """The table's 'commands' column is what the parsers declare, so it cannot drift (it had:
    --json, --plot and --no-progress listed fewer commands than had them)."""
    import re

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("### Option table")
    table = text[start:text.index("\n#", start + 1)]
    listed = {}
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 4:
            continue
        first = re.match(r"`([^` ]+)", cells[1])  # the option's first spelling
        if first and first.group(1) in CANONICAL:
            listed[CANONICAL[first.group(1)]] = _table_commands(cells[2])
    declared = {}
    for prog, parser in all_parsers():
        name = prog[len("bisenet-"):]
        for action in parser._actions:
            concept = getattr(action, "concept", None)
            if concept and not getattr(action, "deprecated_for", None):
                declared.setdefault(concept, set()).add(name)
    assert set(listed) == set(O.VOCABULARY)
    for concept in O.VOCABULARY:
        assert listed[concept] == declared[concept], concept
