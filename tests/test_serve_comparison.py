"""`bisenet-serve` says how it runs the model (backend, instances, threads) in the model's
configuration, and `bisenet-bench --server` says when its direct runner is not set up the same
way: on a small CPU the thread count decided more than the serving path (docs/serving.md)."""

import pytest

from bisenet_deploy.bench.served import comparison_notes
from bisenet_deploy.serve.model_io import serving_from_parameters, serving_parameters


def _as_triton(params):
    return {k: {"string_value": v} for k, v in params.items()}


def test_how_the_model_is_served_travels_in_the_configuration():
    params = serving_parameters("onnxruntime", 2, 1)
    assert serving_from_parameters(_as_triton(params)) == {
        "backend": "onnxruntime", "instances": 2, "threads": 1}
    # one instance with the library's default threads
    assert serving_from_parameters(serving_parameters("torch", 1, None))["threads"] == 0


@pytest.mark.parametrize("parameters", [
    {},  # a repository from bisenet-export triton, another server
    {"serving_backend": {"string_value": "onnxruntime"}},
    _as_triton({"serving_backend": "onnxruntime", "serving_instances": "two",
                "serving_threads": "1"}),
    None,
])
def test_a_server_that_does_not_say_gives_no_description(parameters):
    assert serving_from_parameters(parameters) is None


def test_a_like_for_like_comparison_has_no_note():
    serving = {"backend": "onnxruntime", "instances": 2, "threads": 1}
    assert comparison_notes(serving, 1, "onnxruntime", 1, [1, 2]) == []
    # a model the server batches: more clients than instances are gathered into batches
    assert comparison_notes(serving, 8, "onnxruntime", 1, [1, 8]) == []
    assert comparison_notes(None, 1, "onnxruntime", None, [8]) == []  # the server did not say
    assert comparison_notes(serving, 1, None, None, [8]) == []  # no direct runner timed


def test_different_threads_instances_or_backends_are_pointed_out():
    serving = {"backend": "onnxruntime", "instances": 1, "threads": 1}
    notes = comparison_notes(serving, 1, "onnxruntime", None, [1])
    assert len(notes) == 1 and "pass --threads 1" in notes[0] and "default" in notes[0]
    notes = comparison_notes(dict(serving, threads=0), 1, "onnxruntime", 2, [1])
    assert len(notes) == 1 and "default threads per instance" in notes[0] \
        and "leave out --threads" in notes[0]
    notes = comparison_notes(serving, 1, "onnxruntime", 1, [1, 4])
    assert len(notes) == 1 and "one request at a time" in notes[0] and "--instances" in notes[0]
    # two instances: two requests at a time, as many as the direct runner's cores here
    assert comparison_notes(dict(serving, instances=2), 1, "onnxruntime", 1, [1, 8]) == []
    notes = comparison_notes(serving, 1, "torch", 1, [1])
    assert notes == ["the server runs onnxruntime, the direct runner torch"]
