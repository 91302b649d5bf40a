"""The runner contract (portable/running/runner_base.py), checked the same way on every runner.

onnxruntime, torch and the TensorRT runner (on the fake driver, both API generations; on a real
TensorRT-RTX engine where a GPU can run one) are made cheaply, refuse to infer before
`activate()`, check their input (dtype, shape, batch size, type) with one clear line each, return
host arrays by output name in the specs' dtypes, return copies, deactivate idempotently, and
leave the runner after `deactivate()` as it was before `activate()`, so it can be activated again
with the same answer. Facts a runner reads from its model (metadata; the TensorRT runner's API
generation and I/O table, `model_facts`) may be filled in by the first activation.
"""

import numpy as np
import pytest

from bisenet_deploy.errors import InputError, UserError


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and \
            a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    try:
        return bool(a is b or a == b)
    except Exception:  # noqa: B902 - objects without a usable ==
        return a is b


def _state(runner):
    facts = set(getattr(type(runner), "model_facts", ()))
    return dict((k, v) for k, v in vars(runner).items() if k not in facts)


def test_construction_is_inactive_and_infer_before_activate_is_refused(runner_case):
    runner = runner_case.make()
    assert not runner.is_active
    with pytest.raises(UserError, match="not active"):
        runner.infer(np.zeros((1, 3, 8, 8), np.float32))


def test_activate_infer_deactivate(runner_case):
    runner = runner_case.make()
    with runner as active:
        assert active is runner and runner.is_active
        specs = runner.output_specs()
        batch = runner_case.batch(runner)
        out = runner.infer(batch)
        assert list(out) == [s.name for s in specs] == ["labels", "logits"]
        for spec in specs:
            got = out[spec.name]
            assert isinstance(got, np.ndarray) and got.dtype == spec.dtype, spec
            assert got.shape[0] == batch.shape[0] and len(got.shape) == len(spec.shape)
            assert all(w < 0 or w == g for w, g in zip(spec.shape[1:], got.shape[1:])), spec
        assert out["labels"].dtype == np.int32
        assert np.array_equal(out["labels"], out["logits"].argmax(axis=1))
        # results are the caller's: the next call does not change them
        keep = out["logits"].copy()
        runner.infer(runner_case.batch(runner, seed=1))
        assert np.array_equal(out["logits"], keep)
    assert not runner.is_active
    with pytest.raises(UserError, match="not active"):
        runner.infer(batch)
    runner.deactivate()  # idempotent
    assert not runner.is_active


def test_input_checks_name_what_is_wrong(runner_case):
    with runner_case.make() as runner:
        spec = runner.input_spec()
        good = runner_case.batch(runner)
        other = np.uint8 if spec.dtype != np.uint8 else np.float32
        with pytest.raises(InputError, match="must be %s, got %s" % (spec.dtype.name,
                                                                     np.dtype(other).name)):
            runner.infer(good.astype(other))
        with pytest.raises(InputError, match="must have shape"):
            runner.infer(good[0])  # no batch dimension
        with pytest.raises(InputError, match="must have shape"):
            runner.infer(np.zeros(good.shape[:2] + (good.shape[2] + 1,) + good.shape[3:],
                                  spec.dtype))
        with pytest.raises(InputError, match="numpy array"):
            runner.infer(good.tolist())
        if spec.shape[0] > 0:  # a static batch refuses another size
            with pytest.raises(InputError, match="got %d" % (spec.shape[0] + 1)):
                runner.infer(runner_case.batch(runner, n=spec.shape[0] + 1))
        runner.infer(good)  # refusals leave the runner usable


def test_state_after_deactivate_equals_state_before_activate(runner_case):
    runner = runner_case.make()
    runner.metadata  # the model's own facts, which a runner may read on first use
    before = _state(runner)
    with runner:
        first = runner.infer(runner_case.batch(runner, seed=5))
    after = _state(runner)
    assert before.keys() == after.keys()
    changed = sorted(k for k in before if not _same(before[k], after[k]))
    assert changed == [], "attributes that activation left behind: %s" % changed
    # ... so it activates again and answers the same
    with runner:
        again = runner.infer(runner_case.batch(runner, seed=5))
    assert all(np.array_equal(first[k], again[k]) for k in first)
