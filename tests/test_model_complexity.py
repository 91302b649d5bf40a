"""MAC counts per stage against the paper's Table 1 (and Tables 2, 5, 6 for whole networks).

The counting runs on the meta device (shapes only), so 1024x512 costs no arithmetic here.
"""

import pytest
import torch

from bisenet_deploy.errors import InputError
from bisenet_deploy.model import build_model, paper
from bisenet_deploy.model.complexity import STAGES, count_macs
from bisenet_deploy.model.summary import check_model_size, summarize

TABLE1 = {  # Table 1, MACs at a 1024x512 input
    "detail.S1": 5.1e9, "detail.S2": 3.6e9, "detail.S3": 3.0e9,
    "semantic.S3": 1.0e9, "semantic.S4": 1.0e9, "semantic.S5": 2.1e9,
}


def meta_model(**kwargs):
    with torch.device("meta"):
        return paper.build(19, aux=False, **kwargs)


@pytest.fixture(scope="module")
def paper_counts():
    return count_macs(build_model("bisenetv2", 19, aux=False), 1024, 512)


@pytest.mark.parametrize("stage", sorted(TABLE1))
def test_table1_stage_within_10_percent(paper_counts, stage):
    ours = paper_counts["stages"][stage]["macs"]
    assert abs(ours - TABLE1[stage]) <= 0.10 * TABLE1[stage], (stage, ours)


def test_hand_counts(paper_counts):
    stages = paper_counts["stages"]
    half, quarter, eighth = 512 * 256, 256 * 128, 128 * 64
    assert stages["detail.S1"]["macs"] == 9 * 3 * 64 * half + 9 * 64 * 64 * half
    assert stages["detail.S2"]["macs"] == 3 * 9 * 64 * 64 * quarter
    # Fig. 4a stem: 3x3/2 3->16, 1x1 16->8, 3x3/2 8->16, 3x3 fuse 32->16 (Table 1 says 145.2M;
    # the figure's layers add up to 262.1M - see docs/architecture.md)
    assert stages["semantic.S1S2"]["macs"] == (9 * 3 * 16 * half + 16 * 8 * half
                                               + 9 * 8 * 16 * quarter + 9 * 32 * 16 * quarter)
    # S3 = GE s2 16->32 (gather 16->96 at 1/4, two depthwise at 1/8, 1x1 96->32, separable
    # shortcut) + GE s1 32 (gather 32->192, depthwise, 1x1 192->32)
    ge_s2 = (9 * 16 * 96 * quarter + 2 * 9 * 96 * eighth + 96 * 32 * eighth
             + 9 * 16 * eighth + 16 * 32 * eighth)
    ge_s1 = 9 * 32 * 192 * eighth + 9 * 192 * eighth + 192 * 32 * eighth
    assert stages["semantic.S3"]["macs"] == ge_s2 + ge_s1


def test_output_shapes(paper_counts):
    shapes = {k: v["output_shape"] for k, v in paper_counts["stages"].items()}
    assert shapes["detail.S1"] == [1, 64, 256, 512]
    assert shapes["detail.S3"] == [1, 128, 64, 128]
    assert shapes["semantic.S1S2"] == [1, 16, 128, 256]
    assert shapes["semantic.S5"] == [1, 128, 16, 32]
    assert shapes["aggregation"] == [1, 128, 64, 128]
    assert shapes["head"] == [1, 19, 512, 1024]


def test_total_close_to_paper(paper_counts):
    # Table 2/6: 21.15 GFLOPs (2048x1024 resized to 1024x512); the head's C_t is chosen for this
    assert abs(paper_counts["total_macs"] - 21.15e9) <= 0.05 * 21.15e9
    assert paper_counts["other_macs"] == 0
    assert sum(s["macs"] for s in paper_counts["stages"].values()) == paper_counts["total_macs"]


@pytest.mark.parametrize("alpha,depth,paper_gmacs", [
    (2.0, 1.0, 85.94), (1.0, 3.0, 29.38), (2.0, 3.0, 118.51),
    (1.0, 2.0, 25.26), (1.5, 1.0, 49.46),
])
def test_large_variants_close_to_tables_5_and_6(alpha, depth, paper_gmacs):
    total = count_macs(meta_model(alpha=alpha, depth=depth), 1024, 512)["total_macs"]
    assert abs(total - paper_gmacs * 1e9) <= 0.05 * paper_gmacs * 1e9, total / 1e9


def test_depth_multiplier_repeats_ge_rows():
    model = meta_model(depth=3.0)
    assert [len(model.segment.S3), len(model.segment.S4), len(model.segment.S5_4)] == [6, 6, 12]
    assert len(model.detail.S2) == 3  # the detail branch is not deepened


def test_large_arch_is_alpha2_depth3():
    with torch.device("meta"):
        model = build_model("bisenetv2-large", 19, aux=False)
    assert (model.alpha, model.depth) == (2.0, 3.0)
    assert model.detail.S1[0].conv.out_channels == 128


def test_macs_scale_with_pixels_and_ignore_aux():
    model = build_model("bisenetv2-coincheung", 19)  # with aux heads, in training mode
    small = count_macs(model, 512, 256)
    big = count_macs(model, 1024, 512)
    gap_conv = 128 * 128  # the context block's 1x1 conv runs on one pooled pixel at any size
    assert big["total_macs"] - gap_conv == 4 * (small["total_macs"] - gap_conv)
    no_aux = count_macs(build_model("bisenetv2-coincheung", 19, aux=False), 512, 256)
    assert no_aux["total_macs"] == small["total_macs"]
    assert model.training  # the caller's model is left as it was
    assert next(model.parameters()).device.type == "cpu"


def test_summarize_structure():
    result = summarize(build_model("bisenetv2", 19), 1024, 512)
    assert list(result["stages"]) == list(STAGES) == [
        "detail.S1", "detail.S2", "detail.S3", "semantic.S1S2", "semantic.S3", "semantic.S4",
        "semantic.S5", "aggregation", "head"]
    for info in result["stages"].values():
        assert {"macs", "output_shape", "params", "paper_macs"} <= set(info)
    assert result["stages"]["detail.S1"]["paper_macs"] == pytest.approx(5.1e9)
    assert result["stages"]["aggregation"]["paper_macs"] is None
    assert result["params"] < result["params_with_aux"]  # booster heads are not inference params
    assert result["total_macs"] == sum(s["macs"] for s in result["stages"].values())


def test_summarize_coincheung_params_and_scaled_paper_figures():
    result = summarize(build_model("bisenetv2-coincheung", 19), 2048, 1024)
    assert result["params"] == 3_358_627
    assert result["stages"]["detail.S1"]["paper_macs"] == pytest.approx(4 * 5.1e9)
    assert result["stages"]["head"]["output_shape"] == [1, 19, 1024, 2048]


def test_summarize_large_has_no_table1_figures():
    with torch.device("meta"):
        model = build_model("bisenetv2-large", 19, aux=False)
    result = summarize(model, 1024, 512)
    assert all(s["paper_macs"] is None for s in result["stages"].values())
    assert result["paper_total_macs"] == pytest.approx(118.51e9)


@pytest.mark.parametrize("size", [(1000, 512), (1024, 500), (0, 512)])
def test_model_size_must_be_multiple_of_32(size):
    with pytest.raises(InputError, match="multiples of 32"):
        check_model_size(*size)
