"""assemble_tf.models.preset_report: tools.model_summary and
tools.preset_table in-process."""

import csv
import dataclasses
import json
import os

import pytest

from assemble_tf.models import preset_report


def test_summarize_matches_torchvision_resnet50():
    """The numbers `tests/tools/test_binaries.py` checks on the binary."""
    summary = preset_report.summarize(
        "resnet50", {"image_size": 224, "num_classes": 1000}
    )
    assert summary["trainable_params"] == 25_557_032
    assert summary["total_params"] == 25_610_152
    assert summary["gmacs"] == pytest.approx(4.09, rel=0.01)
    lines = preset_report.format_summary(summary).splitlines()
    assert lines[0] == "preset                resnet50"
    assert lines[2] == "total_params          25,610,152"
    assert len(lines) == 6
    # A tiny model's multiply-adds keep 4 significant digits (0.0007).
    from assemble_tf.models import build_model_to_count, count_macs

    tiny = {"base_width": 8, "block_sizes": (1, 1, 1, 1), "image_size": 32}
    macs = count_macs(build_model_to_count("resnet50", **tiny)) / 1e9
    assert preset_report.summarize("resnet50", tiny)["gmacs"] == (
        pytest.approx(macs, rel=5e-4)
    )
    assert macs < 0.001
    # 1 px was counted (0.0255 GMACs of maps below 1 x 1).
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError) as error:
        preset_report.summarize("resnet50", {"image_size": 1})
    assert error.value.as_flag() == (
        "--image_size=1 must be at least 32 (the network's output stride; "
        "the benchmarks' lowest size too)."
    )
    # 32 px is too small for BlurPool's 5-tap filters at stride 32: named
    # as the option to change (before: the layer's message alone).
    with pytest.raises(OptionError) as error:
        preset_report.summarize("table3_a1", {"image_size": 32})
    assert error.value.as_flag().startswith(
        "--image_size=32 does not fit table3_a1: BlurPool2D "
    )
    assert error.value.as_flag().endswith(
        "Use a larger image size or a smaller filter_size (anti_alias_size)."
    )


def test_preset_table_writes_the_table_files(tmp_path):
    shown = []
    options = preset_report.PresetTableOptions(
        presets=("resnet50", "table7_e4"),
        output_dir=str(tmp_path),
        progress=False,
    )
    report = preset_report.preset_table(options, shown.append)
    assert shown == [report["table"]]
    assert report["files"] == [
        "presets.json",
        "presets.md",
        "presets.csv",
        "presets_gmacs_vs_top1.png",
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(report["files"])
    rows = report["rows"]
    assert [r["preset"] for r in rows] == ["resnet50", "table7_e4"]
    assert rows[0]["total_params"] == 25_612_201  # 1001 classes
    assert rows[0]["paper_top1"] == 76.3 and rows[1]["gmacs"] == 4.33
    lines = report["table"].splitlines()
    assert lines[2] == (
        "| resnet50 | 224 | 25.61 | 4.09 | 76.3 | 76.0 | 536 | Table 1 |"
    )
    assert json.loads((tmp_path / "presets.json").read_text()) == rows
    # Without the plot, the earlier table's is removed (before: left beside
    # a table of other presets).
    again = preset_report.preset_table(
        dataclasses.replace(options, presets=("resnet50",), plot=False)
    )
    assert sorted(os.listdir(tmp_path)) == sorted(again["files"])
    assert "presets_gmacs_vs_top1.png" not in again["files"]
    assert len(json.loads((tmp_path / "presets.json").read_text())) == 1
    preset_report.write_outputs(rows, report["table"], str(tmp_path))
    assert (tmp_path / "presets.md").read_text() == report["table"] + "\n"
    with open(tmp_path / "presets.csv", newline="") as f:
        assert [r["preset"] for r in csv.DictReader(f)] == [
            "resnet50",
            "table7_e4",
        ]


def test_preset_table_refuses_an_unknown_preset_before_building(tmp_path):
    options = preset_report.PresetTableOptions(
        presets=("resnet50", "resnet5"), output_dir=str(tmp_path / "out")
    )
    with pytest.raises(ValueError) as e:
        preset_report.preset_table(options)
    # Its own flag (before: "--preset", which tools.preset_table lacks).
    assert e.value.as_flag().startswith(
        "--presets='resnet5' is not a preset. Did you mean resnet50"
    )
    assert not (tmp_path / "out").exists()


def test_a_preset_that_cannot_be_built_at_the_size_is_named():
    """Before: the builder's message alone, naming no preset of the list."""
    with pytest.raises(ValueError) as e:
        preset_report.collect(["resnet50", "table6_m3"], 240, progress=False)
    assert e.value.as_flag() == (
        "Preset table6_m3: --image_size must be a multiple of 32 for "
        "BigLittleNet (the big branch is upsampled 2x and added to the "
        "little one). Received: --image_size=240"
    )


def test_preset_table_refuses_repeats_and_a_file_before_building(
    tmp_path, monkeypatch
):
    """Before: a repeated preset gave two rows, and an output_dir that is a
    file failed only after every preset was built."""
    built = []
    monkeypatch.setattr(preset_report, "collect", lambda *a: built.append(a))
    options = preset_report.PresetTableOptions
    with pytest.raises(ValueError) as error:
        preset_report.preset_table(options(presets=("resnet50", "resnet50")))
    assert error.value.as_flag() == (
        "--presets=resnet50,resnet50 names resnet50 more than once."
    )
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError) as error:
        preset_report.preset_table(
            options(presets=("resnet50",), output_dir=str(tmp_path / "afile"))
        )
    assert error.value.as_flag() == (
        f"--output_dir={tmp_path / 'afile'} is a file; pass a folder (made if "
        "missing)."
    )
    with pytest.raises(ValueError) as error:  # 0 meant "each preset's"
        preset_report.preset_table(options(presets=("resnet50",), image_size=0))
    assert error.value.as_flag() == "--image_size=0 must be at least 64."
    # Before: resnet50 built, then table6_m3 refused.
    with pytest.raises(ValueError) as error:
        preset_report.preset_table(
            options(presets=("resnet50", "table6_m3"), image_size=65)
        )
    assert error.value.as_flag() == (
        "--image_size=65 does not fit table6_m3: BigLittleNet takes sides "
        "that are multiples of 32, e.g. --image_size=64."
    )
    assert built == []
