"""`tools.benchmark_training` and `assemble_tf.training.benchmark`."""

import json
import os
import sys

import pytest

from assemble_tf.training import benchmark
from official.utils.misc.validation import OptionError
from tests import testing_utils

ROW_KEYS = {
    "preset",
    "precision",
    "image_size",
    "recipe",
    "images_per_sec",
    "images_per_sec_per_repeat",
    "keras_images_per_sec",
    "keras_images_per_sec_per_repeat",
    "ratio_vs_keras",
    "ratio_quartiles",
    "gmacs",
    "gflops",
    "keras_gflops",
    "peak_fraction",
}
REPORT_KEYS = {
    "device",
    "backend",
    "settings",
    "matmul_peak_gflops",
    "rows",
    "keras",
}


def _table_rows(markdown):
    """(preset, precision) of the markdown table's body rows."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2])
        for line in lines[2:]
    ]


def _check_report(report, presets, precisions):
    assert set(report) == REPORT_KEYS
    assert [(r["preset"], r["precision"]) for r in report["rows"]] == [
        (p, q) for q in precisions for p in presets
    ]
    for r in report["rows"]:
        assert set(r) == ROW_KEYS, sorted(set(r) ^ ROW_KEYS)
        assert r["images_per_sec"] > 0 and r["keras_images_per_sec"] > 0
        low, high = r["ratio_quartiles"]
        assert 0 < low <= r["ratio_vs_keras"] <= high
        assert r["gflops"] > 0 and r["peak_fraction"] > 0
    assert [k["precision"] for k in report["keras"]] == list(precisions)
    assert all(v > 0 for v in report["matmul_peak_gflops"].values())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"precisions": ("float32", "fp8")}, "`precisions`=float32,fp8"),
        ({"presets": ("resnet51",)}, "`presets`='resnet51' is not a preset"),
        ({"presets": ()}, "`presets` is empty"),
        ({"repeats": 0}, "`repeats`=0"),
        ({"image_size": 8}, "`image_size`=8"),
        # Timed the first (tracing) step; timed a repeat twice, paired with
        # one Keras run.
        ({"warmup_steps": 0}, "`warmup_steps`=0"),
        ({"presets": ("resnet50", "resnet50")}, "`presets`=resnet50,resnet50"),
    ],
)
def test_bad_options_name_the_flag(changes, message):
    with pytest.raises(OptionError, match=message) as e:
        benchmark.Options(**changes).validate()
    field = message.split("`")[1]
    assert e.value.field == field
    assert message.replace(f"`{field}`", f"--{field}") in e.value.as_flag()


def test_markdown_has_a_row_per_preset_and_precision(tmp_path):
    rows = [
        {
            "preset": p,
            "precision": q,
            "image_size": 224,
            "recipe": "plain",
            "images_per_sec": 10.0,
            "keras_images_per_sec": 20.0,
            "ratio_vs_keras": 0.5,
            "ratio_quartiles": [0.45, 0.55],
            "gmacs": 4.1,
            "gflops": 246.0,
            "keras_gflops": 463.2,
            "peak_fraction": 0.3,
        }
        for q in ("float32", "mixed_bfloat16")
        for p in ("resnet50", "assemble_resnet50")
    ]
    report = {
        "device": "CPU (2 cores)",
        "backend": "tensorflow",
        "settings": {
            "batch_size": 32,
            "image_size": 224,
            "repeats": 3,
            "steps_per_repeat": 1,
            "warmup_steps": 1,
            "jit_compile": False,
        },
        "matmul_peak_gflops": {"float32": 800.0, "bfloat16": 1600.0},
        "rows": rows,
        "keras": [],
    }
    table = benchmark.markdown_table(report)
    assert _table_rows(table) == [(r["preset"], r["precision"]) for r in rows]
    assert "| 0.5 | 0.45-0.55 |" in table
    assert table.splitlines()[2].endswith("| 30.0% |")  # as the console
    assert "CPU (2 cores), batch 32, 224 px, no XLA; " in table
    report["settings"]["image_size"] = None  # --image_size=0
    # Before: "batch 32, train size px".
    assert "batch 32, each preset's train size, no XLA; " in (
        benchmark.markdown_table(report)
    )
    report["settings"]["image_size"] = 224
    paths = benchmark.write_outputs(report, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [
        "benchmark_training.json",
        "benchmark_training.md",
        "benchmark_training.png",
    ]
    assert json.load(open(paths["json"])) == report


@pytest.mark.slow  # compiles two train steps
def test_smoke_run_in_process(tmp_path, monkeypatch):
    options = benchmark.smoke_options(presets=("resnet50",))
    # A peak every row beats: each row is named in a warning (before: a
    # fraction above 1 in the table, without a word).
    monkeypatch.setattr(
        benchmark, "matmul_peaks", lambda precisions, size: {"float32": 1e-3}
    )
    lines = []
    report = benchmark.run(options, log=lines.append)
    _check_report(report, ["resnet50"], ["float32"])
    warnings = [line for line in lines if line.startswith("WARNING: ")]
    assert [w.split(":")[1].strip() for w in warnings] == [
        "resnet50 (float32)",
        "keras_resnet50 (float32)",
    ]
    assert all("x the matmul peak measured in this run" in w for w in warnings)
    assert report["settings"]["batch_size"] == 2
    assert report["rows"][0]["image_size"] == 32
    assert report["rows"][0]["recipe"] == "wd 0.0001"


@pytest.mark.slow  # compiles three train steps
def test_binary_smoke_writes_json_markdown_and_png(tmp_path):
    # bfloat16 here, float32 in process above; a table's order is checked
    # on fixed rows. The recipe of Assemble-R50 (Mixup, LS, KD, DropBlock)
    # on Table 7's E8 (R50-D + SK): 10 s where the tiny Assemble-R50 took
    # 14 s; its JAX step is timed in the test below.
    presets = ["table7_e8"]
    precisions = ["mixed_bfloat16"]
    result = testing_utils.run_main(
        "tools.benchmark_training",
        "--smoke",
        f"--presets={','.join(presets)}",
        f"--precisions={','.join(precisions)}",
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / "benchmark_training.json"))
    _check_report(report, presets, precisions)
    recipes = {r["preset"]: r["recipe"] for r in report["rows"]}
    assert recipes["table7_e8"] == (
        "mixup type 1, LS 0.1, KD T=1, DropBlock, wd 0.0001"
    )
    table = open(tmp_path / "benchmark_training.md").read()
    assert sorted(_table_rows(table)) == sorted(
        (p, q) for p in presets for q in precisions
    )
    assert os.path.getsize(tmp_path / "benchmark_training.png") > 1000
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["preset"], p["precision"]) for p in printed] == [
        ("table7_e8", "mixed_bfloat16")
    ]
    assert "ours / Keras = " in result.stderr
    # A rerun into the folder: refused before any timing (before: the
    # earlier figures were replaced without a word), then --overwrite.
    again = testing_utils.run_main(
        "tools.benchmark_training",
        "--smoke",
        "--presets=resnet50",
        f"--output_dir={tmp_path}",
    )
    assert again.returncode == 2, again.stderr[-2000:]
    assert testing_utils.error_line(again) == (
        f"ERROR: --output_dir={tmp_path} holds benchmark_training.json, "
        "benchmark_training.md, benchmark_training.png of an earlier run; "
        "pass --overwrite to replace them, or name another folder."
    )
    assert json.load(open(tmp_path / "benchmark_training.json")) == report


NO_TENSORFLOW = """
import importlib.abc, runpy, sys


class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in (
            "tensorflow", "tensorflow_probability", "tensorflow_datasets"
        ):
            raise ImportError("no TensorFlow on this machine: " + name)


sys.meta_path.insert(0, NoTensorFlow())
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow  # compiles three train steps
def test_jax_benchmark_runs_on_a_machine_without_tensorflow(tmp_path):
    """The GPU benchmark machine has JAX and no TensorFlow: under
    KERAS_BACKEND=jax the training benchmark (our whole recipe, DropBlock
    included, beside Keras' own JAX step) imports none."""
    runner = tmp_path / "no_tensorflow.py"
    runner.write_text(NO_TENSORFLOW)
    result = testing_utils.run_command(
        [
            sys.executable,
            runner,
            "tools.benchmark_training",
            "--smoke",
            "--presets=assemble_resnet50",
            f"--output_dir={tmp_path}",
        ],
        env=testing_utils.JAX_ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / "benchmark_training.json"))
    assert report["backend"] == "jax"
    _check_report(report, ["assemble_resnet50"], ["float32"])
    assert report["rows"][0]["recipe"] == (
        "mixup type 1, LS 0.1, KD T=1, DropBlock, wd 0.0001"
    )
    # Both steps are jax.jit-compiled (the table said "no XLA").
    markdown = (tmp_path / "benchmark_training.md").read_text()
    assert "XLA (jax.jit, both steps); " in markdown
    assert "no XLA" not in markdown


def test_repeats_alternate_their_order():
    import numpy as np

    from assemble_tf.export import throughput

    calls = []

    def entry(i):
        def fn(images):
            calls.append(i)
            return np.zeros([1], np.float32)

        return {"fn": fn, "images": None}

    rates = throughput.time_interleaved_runs(
        [entry(i) for i in range(3)], warmup=1, runs=3, steps=2, batch_size=4
    )
    # Warm-up in order, then forward, backward, forward (2 steps each).
    assert calls == [0, 1, 2] + [0, 0, 1, 1, 2, 2] + [2, 2, 1, 1, 0, 0] + [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert [len(r) for r in rates] == [3, 3, 3]
    assert all(v > 0 for r in rates for v in r)


def test_ratio_is_the_median_of_per_repeat_ratios(monkeypatch):
    def fake_entry(label, precision):
        return {
            "label": label,
            "precision": precision,
            "image_size": 224,
            "recipe": "plain",
            "macs": 4e9,
        }

    entries = [
        fake_entry("resnet50", "float32"),
        fake_entry(benchmark.KERAS_LABEL, "float32"),
    ]
    monkeypatch.setattr(benchmark, "build_entries", lambda o, d: entries)
    monkeypatch.setattr(
        benchmark, "matmul_peaks", lambda p, s: {"float32": 1000.0}
    )
    # The machine halves its speed in repeat 2: both sides slow down, the
    # paired ratios are 1.3, 1.3, 1.2 (the medians' ratio would say 1.2).
    monkeypatch.setattr(
        benchmark.throughput,
        "time_interleaved_runs",
        lambda *a: [[13.0, 6.5, 12.0], [10.0, 5.0, 10.0]],
    )
    report = benchmark.run(
        benchmark.Options(presets=("resnet50",), precisions=("float32",))
    )
    (row,) = report["rows"]
    assert row["ratio_vs_keras"] == pytest.approx(1.3)
    assert row["ratio_quartiles"] == pytest.approx([1.25, 1.3])
    assert row["images_per_sec"] == 12.0
    assert row["keras_images_per_sec"] == 10.0
    # The repeats' rates are kept: the ratio follows from the file.
    assert row["images_per_sec_per_repeat"] == [13.0, 6.5, 12.0]
    assert row["keras_images_per_sec_per_repeat"] == [10.0, 5.0, 10.0]
    assert report["keras"][0]["images_per_sec_per_repeat"] == [10.0, 5.0, 10.0]


def test_smoke_keeps_the_flags_given():
    """--smoke set its tiny settings over explicit --batch_size,
    --image_size ... without a word (benchmark_throughput keeps them)."""
    from absl import flags

    from flags import benchmark_training_flags
    from tools import benchmark_training

    values = flags.FlagValues()
    for kind, name, default, text, *options in benchmark_training_flags.TABLE:
        getattr(flags, f"DEFINE_{kind}")(
            name, default, help=text, flag_values=values, **(options or [{}])[0]
        )
    values(["b", "--smoke", "--batch_size=4", "--image_size=64"])
    options = benchmark_training.options_from_flags(values)
    assert (options.batch_size, options.image_size) == (4, 64)
    assert (options.repeats, options.num_classes) == (1, 10)  # smoke's
    assert options.keras_blocks == benchmark.smoke_options().keras_blocks
