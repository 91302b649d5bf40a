"""The one comparison core: the definitions of relative error and identical labels, the named
tolerance profiles, and export parity judged by its profile through that core."""

import math

import numpy as np
import pytest

from bisenet_deploy.comparison import measures, profiles
from bisenet_deploy.errors import InputError
from bisenet_deploy.export import parity


def test_relative_error_is_one_definition():
    assert measures.relative_error(0.5, 2.0) == 0.25
    assert measures.relative_error(0.0, 0.0) == 0.0        # nothing wrong against all zeros
    assert measures.relative_error(1e-9, 0.0) == math.inf  # anything wrong against all zeros
    assert measures.relative_error(None, 1.0) is None      # nothing measured


def test_logits_agreement_in_chunks_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2, 5, 8, 16)).astype(np.float32)
    out = ref + rng.normal(0, 1e-3, ref.shape).astype(np.float32)
    out[1, 2, 3, 4] = np.nan
    whole = measures.LogitsAgreement()
    whole.update(ref, out)
    monkeypatch.setattr(measures, "_CHUNK", 37)
    chunked = measures.LogitsAgreement()
    chunked.update(ref, out)
    a, b = whole.result(), chunked.result()
    assert a["max_abs"] == b["max_abs"] and a["max_rel"] == b["max_rel"]
    assert a["nonfinite"] == b["nonfinite"] == 1 and a["elements"] == ref.size - 1
    assert b["mean_rel"] == pytest.approx(a["mean_rel"], rel=1e-12)
    expected = np.abs(out.astype(np.float64) - ref)[np.isfinite(out)].max()
    assert a["max_rel"] == expected / np.abs(ref[np.isfinite(out)]).astype(np.float64).max()


def test_label_agreement_counts_identical_and_invalid():
    ref = np.array([[0, 1, 2, 3]])
    labels = measures.LabelAgreement(4)
    labels.update(ref, np.array([[0, 1, 7, 3]]))
    stats = labels.result()
    assert stats["identical"] == 0.75 and stats["invalid"] == 1
    assert stats["min_class_iou"] is None  # no confusion matrix given: no IoU


def test_profiles_are_named_and_export_is_the_strictest():
    export, compare = profiles.resolve("fp32", profile="export"), profiles.resolve("fp32")
    assert export["logits"]["max_rel"] == 1e-4 < compare["logits"]["max_rel"]
    assert export["labels"]["min_identical"] == compare["labels"]["min_identical"] == 0.9999
    assert profiles.resolve("fp16", profile="export")["labels"]["min_identical"] == 0.99
    assert profiles.resolve("fp16", profile="export")["logits"]["max_rel"] == 2e-2
    assert parity.TOLERANCES is profiles.PROFILES["export"]
    with pytest.raises(InputError, match="unknown tolerance profile"):
        profiles.resolve("fp32", profile="eval")
    with pytest.raises(InputError, match="no tolerances for precision 'int8' in the export"):
        profiles.resolve("int8", profile="export")
    assert "fp32.logits: max_abs=off" in profiles.describe_defaults("export")


def test_the_device_profile_is_the_portable_floors_table():
    from bisenet_deploy.portable.shared.parity_limits import DEVICE_MIN_IDENTICAL

    assert DEVICE_MIN_IDENTICAL == {"fp32": 0.999, "fp16": 0.98}
    for precision, share in DEVICE_MIN_IDENTICAL.items():
        table = profiles.resolve(precision, profile="device")
        assert table["labels"]["min_identical"] == share
        checks = profiles.judge("labels", {"identical": share - 1e-4, "invalid": 5}, table["labels"])
        assert [c["check"] for c in checks] == ["labels.min_identical"] and not checks[0]["passed"]
    with pytest.raises(InputError, match="no tolerances for precision 'int8' in the device"):
        profiles.resolve("int8", profile="device")


def graph_outputs(seed=0, classes=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, classes, 8, 16)).astype(np.float32)
    return logits.argmax(1).astype(np.int32), logits


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_parity_judges_through_the_core(precision):
    limits = profiles.resolve(precision, profile="export")
    labels, logits = graph_outputs()
    outputs, failures = parity.compare_outputs({"labels": labels, "logits": logits.copy()},
                                               labels, logits, 5, limits)
    assert failures == [] and outputs["labels"]["stats"]["identical"] == 1.0
    # a logits-only graph: its labels are the argmax of its logits
    _, failures = parity.compare_outputs({"logits": logits}, labels, logits, 5, limits)
    assert failures == []
    # NaN logits fail however few, labels outside the classes fail, missing logits fail
    bad = logits.copy()
    bad[0, 0, 0, 0] = np.nan
    _, failures = parity.compare_outputs({"labels": labels, "logits": bad}, labels, logits, 5,
                                         limits)
    assert [f.split(":")[0] for f in failures] == ["logits.max_nonfinite"]
    wrong = labels.copy()
    wrong[0, 0, 0] = 9
    _, failures = parity.compare_outputs({"labels": wrong, "logits": logits}, labels, logits, 5,
                                         limits)
    assert "labels.max_invalid" in [f.split(":")[0] for f in failures]
    _, failures = parity.compare_outputs({"labels": labels}, labels, logits, 5, limits)
    assert failures == ["logits.max_rel: nan > limit " + f"{limits['logits']['max_rel']:g}"]


def test_parity_thresholds_sit_where_the_export_profile_puts_them():
    labels, logits = graph_outputs(classes=3)
    limits = profiles.resolve("fp32", profile="export")
    scale = float(np.abs(logits).max())
    for rel, passes in ((0.9e-4, True), (1.1e-4, False)):
        moved = logits.copy()
        moved[0, 0, 0, 0] += rel * scale * np.sign(moved[0, 0, 0, 0])  # the max error alone
        got = {"labels": labels, "logits": moved}
        _, failures = parity.compare_outputs(got, labels, logits, 3, limits)
        assert (failures == []) is passes, failures
    flipped = labels.copy().reshape(-1)
    flipped[:2] = (flipped[:2] + 1) % 3  # 2 of 256 pixels: 99.2 % identical
    _, failures = parity.compare_outputs({"labels": flipped.reshape(labels.shape),
                                          "logits": logits}, labels, logits, 3, limits)
    assert [f.split(":")[0] for f in failures] == ["labels.min_identical"]
    fp16 = profiles.resolve("fp16", profile="export")
    assert parity.compare_outputs({"labels": flipped.reshape(labels.shape), "logits": logits},
                                  labels, logits, 3, fp16)[1] == []
