"""The per-operator inference profile (`assemble_tf.export.op_profile`,
`tools.profile_inference`)."""

import dataclasses
import json
import os

import pytest

from assemble_tf.export import op_profile
from tests import testing_utils

TINY = {"base_width": 8, "block_sizes": (2, 2, 2, 1)}


def test_families_of_fused_and_sk_ops_on_hand_made_names():
    families = {
        "stage1_block1_1_relu": "ReLU / add",
        "stage1_block1_sk": "SK unit",
        "stage1_block1_blur": "BlurPool",
        "stage1_merge": "BigLittle merge",
    }
    ops = [
        # conv + BN + ReLU fused by Grappler, named after the ReLU.
        ("m_1/stage1_block1_1_relu_1/Relu", "_MklNativeFusedConv2D", 6.0),
        ("m_1/stage1_block1_sk_1/conv_1/convolution/Cast", "Cast", 1.0),
        ("m_1/stage1_block1_sk_1/Relu", "_MklNativeFusedConv2D", 4.0),
        ("m_1/stage1_block1_sk_1/fc1_1/convolution", "Conv2D", 0.5),
        ("m_1/stage1_block1_sk_1/MatMul", "_MklBatchMatMulV2", 1.5),
        ("m_1/stage1_block1_blur_1/depthwise", "DepthwiseConv2dNative", 2.0),
        ("m_1/stage1_merge_1/Relu", "_MklNativeFusedConv2D", 3.0),
        ("m_1/stage1_merge_1/resize/Resize", "ResizeNearestNeighbor", 1.0),
        ("m_1/Cast", "Cast", 1.0),
    ]
    report = op_profile.summarize(ops, families, steps=2)
    assert report["op_ms_per_batch"] == pytest.approx(10.0)
    by_family = {r["name"]: r["ms"] for r in report["by_family"]}
    assert by_family == {
        "convolution": 4.5,  # the fused 1x1 and the merge's fused conv
        "SK path convolutions": 2.5,
        "SK attention and sum": 1.0,
        "BlurPool": 1.0,
        "BigLittle merge": 0.5,
        "other": 0.5,
    }
    assert [r["name"] for r in report["by_family"]][0] == "convolution"
    shares = [r["share"] for r in report["by_op_type"]]
    assert sum(shares) == pytest.approx(1.0)
    pair = {r["name"]: r["ms"] for r in report["by_family_and_op_type"]}
    assert pair["SK path convolutions / Cast"] == 0.5


@pytest.mark.slow  # over 2 s on 2 cores
def test_tiny_assemble_profile_attributes_every_family(tmp_path):
    """A traced fold_bn_bf16 forward pass of a tiny Assemble-R50: every
    family of the model shows up, the SK BNs are folded (no BatchNorm op),
    and the outputs are written."""
    report = op_profile.run_profile(
        op_profile.ProfileOptions(
            preset="assemble_resnet50",
            mode="fold_bn_bf16",
            image_size=64,
            batch_size=2,
            warmup=1,
            steps=1,
            model_overrides=TINY,
            output_dir=str(tmp_path),
        ),
        log=lambda s: None,
    )
    families = {r["name"] for r in report["by_family"]}
    assert {
        "convolution",
        "SK path convolutions",
        "SK attention and sum",
        "BlurPool",
        "BigLittle merge",
        "shortcut pool",
        "head",
    } <= families
    op_types = {r["name"] for r in report["by_op_type"]}
    assert not [t for t in op_types if "BatchNorm" in t], op_types
    assert any("Conv2D" in t for t in op_types)
    assert sum(r["share"] for r in report["by_family"]) == pytest.approx(1.0)
    assert report["images_per_sec"] > 0 and report["op_ms_per_batch"] > 0
    assert json.load(open(tmp_path / "profile.json"))["mode"] == "fold_bn_bf16"
    md = open(tmp_path / "profile.md").read()
    assert "| SK attention and sum |" in md
    assert os.path.getsize(tmp_path / "profile.png") > 1000
    # Another profile into the folder: refused unless --overwrite.
    again = op_profile.ProfileOptions(
        preset="resnet50", output_dir=str(tmp_path)
    )
    with pytest.raises(FileExistsError, match="profile.json, profile.md"):
        again.validate()
    dataclasses.replace(again, overwrite=True).validate()


@pytest.mark.slow  # over 2 s on 2 cores
def test_binary_prints_tables_and_names_bad_flags(tmp_path):
    bad = testing_utils.run_main(
        "tools.profile_inference", "--preset=assemble_resnet5"
    )
    assert bad.returncode != 0
    assert "--preset" in bad.stderr and "assemble_resnet50" in bad.stderr
    assert "Traceback" not in bad.stderr
    # XLA's one fused cluster: refused (before: an empty profile).
    xla = testing_utils.run_main(
        "tools.profile_inference", "--preset=resnet50", "--mode=xla"
    )
    assert xla.returncode == 2 and "--mode" in xla.stderr
    from assemble_tf.export import op_profile

    with pytest.raises(ValueError, match="runs as one fused cluster"):
        op_profile.ProfileOptions(preset="resnet50", mode="xla").validate()
    # Before: --warmup=0 timed the tracing as inference (490 ms a batch
    # against 43 ms of ops).
    cold = testing_utils.run_main(
        "tools.profile_inference", "--preset=resnet50", "--warmup=0"
    )
    assert cold.returncode == 2
    assert (
        cold.stderr == "ERROR: flag --warmup=0: 0 is not a positive integer\n"
    )
    with pytest.raises(ValueError, match="warmup"):
        op_profile.ProfileOptions(preset="resnet50", warmup=0).validate()
    small = testing_utils.run_main(
        "tools.profile_inference",
        "--preset=resnet50",
        "--mode=plain",
        "--image_size=32",
        "--batch_size=1",
        "--warmup=1",
        "--steps=1",
        f"--output_dir={tmp_path}",
    )
    assert small.returncode == 0, small.stderr[-2000:]
    assert "| layer family | ms per batch | share |" in small.stdout
    assert "| convolution |" in small.stdout
    assert os.path.isfile(tmp_path / "profile.png")
