"""A wrong option on any command is one line on stderr and exit 2, with no usage block."""

import pytest

from bisenet_deploy.cli import bench_main, export_main, serve_main


@pytest.mark.parametrize("main, argv, words", [
    (export_main.main, ["onnx", "--target", "trt9"], ["invalid choice: 'trt9'", "onnx --help"]),
    (export_main.main, ["summary", "--network-size", "big"], ["--network-size", "summary --help"]),
    (export_main.main, ["checkpoint"], ["--checkpoint", "checkpoint --help"]),
    (export_main.main, ["no-such-command"], ["invalid choice"]),
    (bench_main.main, ["--backend", "foo"], ["unknown backend 'foo'", "--help"]),
    (export_main.main, ["triton", "--kind", "tpu"], ["invalid choice: 'tpu'", "triton --help"]),
    (serve_main.main, ["--http-port", "x"], ["--http-port", "bisenet-serve --help"]),
    # a precision the command knows but cannot take says why, not "unrecognized argument"
    (export_main.main, ["jetson", "--int8"], ["--int8: the Jetson TX2", "no fast INT8"]),
    (export_main.main, ["jetson", "--precision", "int8"], ["--precision: the Jetson TX2"]),
    (bench_main.main, ["--int8"], ["--int8: INT8 is not a setting of the run", "--engine"]),
    (bench_main.main, ["--precision", "int8"], ["onnxruntime:MODEL-int8.onnx"]),
])
def test_usage_error_is_one_line(main, argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert captured.out == ""


def test_help_still_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        export_main.main(["onnx", "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out
