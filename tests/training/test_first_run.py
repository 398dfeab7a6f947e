"""tools.train / evaluate / export as a new user meets them (issue 12).

A TFRecord folder written by the builder (labels.txt, summary.json) of 3
colour classes; every command runs as from docs/training.md, through the
binary's own flags and error handling (`testing_utils.run_main`); the
real process's console (no TensorFlow start-up block) is checked by
tests/training/test_trainer.py's kill-and-resume test.
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest

from assemble_tf.data import builder
from tests import testing_utils
from tests.training.test_trainer import TINY_FLAGS

# test_trainer's tiny configuration; the class count comes from the data.
TINY = [
    flag
    for flag in TINY_FLAGS
    if flag.split("=")[0] not in ("--num_classes", "--batch_size")
] + ["--batch_size=8", "--shuffle_buffer=32"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """3 classes x (8 train, 3 validation) 32x32 JPEGs, built as TFRecords."""
    root = tmp_path_factory.mktemp("first_run")
    palette = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for c in range(3):
            folder = root / "images" / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = palette[c] + rng.integers(-30, 30, (32, 32, 3))
                (folder / f"{i}.jpg").write_bytes(
                    testing_utils.jpeg_bytes(np.clip(img, 0, 255))
                )
    out = str(root / "records")
    builder.build(
        builder.BuildConfig(
            output_dir=out,
            layout="folder",
            train_dir=str(root / "images" / "train"),
            validation_dir=str(root / "images" / "val"),
            train_shards=2,
            validation_shards=1,
            progress=False,
        )
    )
    return out


def train(*args):
    return testing_utils.run_main("tools.train", *TINY, *args)


def last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_kd_preset_without_teacher_logits_stops_at_once(data_dir, tmp_path):
    """Item 1: the Assemble recipe distils; these records have no logits.
    Before: the pipeline dropped every record and training hung (the
    timeout makes a hang fail this test)."""
    model_dir = tmp_path / "run"
    result = testing_utils.run_main(
        "tools.train",
        "--preset=assemble_resnet50",
        "--base_width=8",
        "--block_sizes=2,2,2,1",
        "--image_size=32",
        "--eval_preprocessing=imagenet_32",
        "--batch_size=8",
        "--epochs=2",
        "--warmup_epochs=0",
        f"--data_dir={data_dir}",
        f"--model_dir={model_dir}",
    )
    error = testing_utils.error_line(result)
    assert error.startswith("ERROR: --kd_temperature=1 ")
    assert "image/logit" in error and "--kd_temperature=0" in error
    assert "tools.extract_teacher_logits" in error
    assert "Traceback" not in result.stderr
    assert not model_dir.exists()  # nothing half-written


@pytest.mark.slow
def test_failed_start_leaves_nothing_and_the_fixed_rerun_trains(
    data_dir, tmp_path
):
    """Item 5: a bad start writes no config.json; the corrected rerun is
    accepted. Bad list flags name the flag."""
    model_dir = tmp_path / "run"
    common = [f"--data_dir={data_dir}", f"--model_dir={model_dir}"]
    bad = train(*common, "--block_sizes=2,2,x", "--epochs=1")
    assert bad.returncode == 2
    assert "--block_sizes='2,2,x' is invalid" in bad.stderr
    assert "invalid literal" not in bad.stderr
    missing = train(*common, "--epochs=1", f"--warm_start={tmp_path}/nope")
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert f"--warm_start={tmp_path}/nope does not exist" in missing.stderr
    assert not (model_dir / "config.json").exists()
    fixed = train(
        *common,
        "--epochs=1",
        "--max_steps=3",
        "--log_every=2",
        "--steps_per_loop=1",  # step scalars at step 2, not at a loop end
    )
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert last_json(fixed)["steps"] == 3
    assert (model_dir / "config.json").exists()
    # Item 9 (no TensorFlow start-up block, no absl INFO line per
    # checkpoint) needs a process of its own: test_trainer.py's
    # test_kill_and_resume_matches_an_uninterrupted_run checks it.
    # Item 10: --log_every writes step scalars (step 2 of 3; one-step
    # loops), besides the
    # per-epoch ones.
    steps = _scalars(model_dir / "logs" / "train")
    assert steps["step/train_loss"] == [2]
    assert steps["step/learning_rate"] == [2]
    assert steps["train_loss"] == [3]


def _scalars(log_dir):
    """{tag: [steps]} of the TensorBoard event files in `log_dir`."""
    import tensorflow as tf

    out = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault(value.tag, []).append(int(event.step))
    return out


@pytest.mark.slow
def test_num_classes_comes_from_the_data(data_dir, tmp_path):
    """Item 6: labels.txt / summary.json say 3 classes; the preset's 1001
    would be silently wrong, an explicit mismatch is refused."""
    model_dir = tmp_path / "run"
    wrong = train(
        f"--data_dir={data_dir}",
        f"--model_dir={model_dir}",
        "--num_classes=1001",
        "--epochs=1",
    )
    assert wrong.returncode == 2
    assert "--num_classes=1001 does not fit" in wrong.stderr
    assert "3 classes stored as 0..2" in wrong.stderr
    assert not model_dir.exists()
    ok = train(
        f"--data_dir={data_dir}",
        f"--model_dir={model_dir}",
        "--epochs=1",
        "--max_steps=1",
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["data"]["num_classes"] == 3


@pytest.mark.slow
def test_empty_shards_are_refused_naming_the_folder(data_dir, tmp_path):
    """Item 7: 0-byte shards (as an older builder left for a split without
    images) stop the run before it starts."""
    empty = tmp_path / "empty"
    shutil.copytree(data_dir, empty)
    # Without the states of this build (which refuse a shard of another
    # size than it wrote: tests/data_pipeline/test_checks.py).
    shutil.rmtree(empty / ".build_state")
    for name in os.listdir(empty):
        if name.startswith("train-"):
            (empty / name).write_bytes(b"")
    result = train(
        f"--data_dir={empty}", f"--model_dir={tmp_path}/run", "--epochs=1"
    )
    assert result.returncode == 2
    assert f"The train shards {empty}/train-* (2 files) hold no records" in (
        result.stderr
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_moved_run_evaluates_exports_and_resumes_in_place(data_dir, tmp_path):
    """Item 4: config.json and best.json hold no absolute paths; evaluate,
    export and resume read and write the folder the run is in now."""
    first = tmp_path / "first"
    result = train(
        f"--data_dir={data_dir}", f"--model_dir={first}", "--epochs=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.json", "best/best.json", "checkpoints/checkpoint"):
        assert str(tmp_path) not in (first / name).read_text(), name
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    for which in ("latest", "best"):
        ev = testing_utils.run_main(
            "tools.evaluate", f"--model_dir={moved}", f"--checkpoint={which}"
        )
        assert ev.returncode == 0, ev.stderr[-3000:]
        summary = last_json(ev)
        assert summary["checkpoint"].startswith(str(moved))
        assert summary["eval_json"] == str(moved / "eval.json")
        assert summary["count"] == 9
    assert (moved / "reliability.png").exists() and not first.exists()
    # Per class, by the names the run kept: 3 validation images each; the
    # worst classes are the CSV's rows of the lowest top-1.
    import csv

    with open(moved / "per_class.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["class"], r["name"], r["images"]) for r in rows] == [
        ("0", "class_0", "3"),
        ("1", "class_1", "3"),
        ("2", "class_2", "3"),
    ]
    hits = sum(float(r["top1"]) * 3 for r in rows)
    assert hits == pytest.approx(summary["top1"] * 9)
    worst = summary["worst_classes"]
    assert [w["name"] for w in worst] == [
        r["name"] for r in sorted(rows, key=lambda r: float(r["top1"]))
    ]
    assert json.loads((moved / "eval.json").read_text())["per_class"][0] == {
        "class": 0,
        "name": "class_0",
        "images": 3,
        "top1": float(rows[0]["top1"]),
    }
    export = testing_utils.run_main(
        "tools.export_saved_model",
        f"--model_dir={moved}",
        f"--export_dir={tmp_path}/serving/1",
    )
    assert export.returncode == 0, export.stderr[-3000:]
    assert max(last_json(export)["max_abs_diff"].values()) <= 1e-4
    # The run keeps its classes (the folder names) and the export serves
    # them: what TF Serving answers for a red image of class_0.
    assert (moved / "class_names.txt").read_text() == (
        "class_0\nclass_1\nclass_2\n"
    )
    assert last_json(export)["class_names"] == str(moved / "class_names.txt")
    import tensorflow as tf

    red = testing_utils.jpeg_bytes(np.full((32, 32, 3), [200, 40, 40]))
    served = tf.saved_model.load(f"{tmp_path}/serving/1").signatures[
        "serving_default"
    ](images=tf.constant([red]))
    names = ["class_0", "class_1", "class_2"]
    assert (
        served["class_names"].numpy()[0].decode()
        == (names[int(served["classes"][0])])
    )
    again = train(
        f"--data_dir={data_dir}", f"--model_dir={moved}", "--epochs=2"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resumed from {moved}/checkpoints/ckpt-2" in again.stderr
    assert last_json(again)["steps"] == last_json(result)["steps"]


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["train", "finetune", "evaluate"])
def test_preset_typos_suggest_close_matches(tool):
    """Item 12: tools.train listed all 37 names; one helper for all."""
    result = testing_utils.run_main(
        f"tools.{tool}", "--preset=asemble_resnet50", "--model_dir=/tmp/x"
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ERROR: ")
    assert (
        "--preset='asemble_resnet50' is not a preset. Did you mean "
        "assemble_resnet50, assemble_resnet152" in result.stderr
    )
    assert "table7_e12" not in result.stderr  # no dump of every name


@pytest.mark.slow
def test_records_behind_a_url_train_and_name_their_classes(data_dir, tmp_path):
    """A TFRecord --data_dir may be a URL (gs:// on a TPU VM): here
    TensorFlow's in-memory file system, ram://. Before, the run refused it
    ("no such directory"); its labels.txt now sets the head and the class
    names as a local folder's does. A URL run folder is refused."""
    import tensorflow as tf

    url = f"ram://{tmp_path.name}/records"
    tf.io.gfile.makedirs(url)
    for path in glob.glob(os.path.join(data_dir, "*")):  # files only
        tf.io.gfile.copy(path, f"{url}/{os.path.basename(path)}")
    model_dir = tmp_path / "run"
    result = train(
        f"--data_dir={url}", f"--model_dir={model_dir}", "--max_steps=1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["data"]["num_classes"] == 3  # from its labels.txt
    assert (model_dir / "class_names.txt").read_text().split() == [
        "class_0",
        "class_1",
        "class_2",
    ]
    assert last_json(result)["top5"] == 1.0  # 3 classes: every label
    # tools.evaluate reads the URL too, and compares its labels.txt with
    # the run's.
    ev = testing_utils.run_main(
        "tools.evaluate", f"--model_dir={model_dir}", f"--data_dir={url}"
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert last_json(ev)["count"] == 9
    refused = train(f"--data_dir={url}", f"--model_dir={url}/run")
    assert refused.returncode == 2
    assert f"--model_dir={url}/run: a URL" in refused.stderr
