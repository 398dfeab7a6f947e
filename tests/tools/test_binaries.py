"""The binaries end to end, as a user runs them (python -m tools.NAME)."""

import json
import os

import numpy as np
import pytest

from assemble_tf.models import build_model
from tests import testing_utils
from tests.conftest import DATA

GOLDEN = os.path.join(DATA, "golden")


@pytest.mark.slow
def test_model_summary_json_full_assemble_r50():
    result = testing_utils.run_main(
        "tools.model_summary", "--preset=assemble_resnet50", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["preset"] == "assemble_resnet50"
    assert summary["image_size"] == 256  # the preset's eval size
    assert summary["total_params"] == 41_925_801
    assert summary["trainable_params"] == 41_848_489
    assert summary["non_trainable_params"] == 77_312
    assert summary["gmacs"] == pytest.approx(7.48, rel=0.01)


@pytest.mark.slow
def test_model_summary_overrides_and_clean_errors():
    result = testing_utils.run_main(
        "tools.model_summary",
        "--preset=resnet50",
        "--image_size=224",
        "--num_classes=1000",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # torchvision's ResNet-50: 25,557,032 trainable (+53,120 BN statistics).
    assert summary["trainable_params"] == 25_557_032
    assert summary["total_params"] == 25_610_152
    assert summary["gmacs"] == pytest.approx(4.09, rel=0.01)
    bad = testing_utils.run_main(
        "tools.model_summary",
        "--preset=assemble_resnet50",
        "--image_size=240",
        "--json",
    )
    assert bad.returncode == 2
    assert "image_size=240" in bad.stderr and "Traceback" not in bad.stderr


def test_model_summary_suggests_close_presets():
    bad = testing_utils.run_main(
        "tools.model_summary", "--preset=asemble_resnet50"
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert lines[0].startswith("ERROR: --preset='asemble_resnet50' is not a")
    assert "Did you mean assemble_resnet50" in lines[0]
    assert "table7_e12" not in lines[0]  # not every preset
    assert bad.stdout == ""


@pytest.mark.slow
def test_convert_tool_writes_weights_that_load(tmp_path):
    folder = os.path.join(GOLDEN, "tiny_assemble_64")
    output = str(tmp_path / "tiny.weights.h5")
    args = [
        "tools.convert_original_checkpoint",
        f"--checkpoint={folder}/model.ckpt",
        "--preset=assemble_resnet50",
        "--base_width=16",
        "--block_sizes=2,2,2,1",
        "--image_size=64",
        f"--output={output}",
        f"--golden={folder}/golden.npz",
    ]
    result = testing_utils.run_main(*args)
    assert result.returncode == 0, result.stderr
    assert "Copied 307 variables" in result.stdout
    assert "Golden check passed" in result.stdout
    model = build_model(
        "assemble_resnet50",
        base_width=16,
        block_sizes=(2, 2, 2, 1),
        image_size=64,
    )
    model.load_weights(output)
    golden = np.load(os.path.join(folder, "golden.npz"))
    logits = model(golden["inputs"], training=False).numpy()
    assert (
        np.abs(logits - golden["logits"]).max()
        <= 1e-3 * np.abs(golden["logits"]).max()
    )
    again = testing_utils.run_main(*args)  # no silent overwrite
    assert again.returncode == 2 and "--overwrite" in again.stderr
    wrong = testing_utils.run_main(
        *args[:2],
        "--preset=resnet50",
        "--base_width=16",
        f"--output={tmp_path / 'x.weights.h5'}",
    )
    assert wrong.returncode == 2
    assert "in the checkpoint but not in the model" in wrong.stderr


@pytest.mark.slow  # starts the binary: the exit code is the point
def test_a_flag_that_does_not_parse_is_one_error_line_and_exit_2(tmp_path):
    """Issue 24 item 6: absl printed `FATAL Flags parsing error` and a
    usage hint and exited 1; every other expected error is one ERROR
    line and exit 2."""
    result = testing_utils.run_binary(
        "tools.make_imagenet_c", "--workers=0", f"--output_dir={tmp_path}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ERROR: flag --workers=0: 0 is not a positive integer"
    ]


@pytest.mark.parametrize(
    "binary, flag, other",
    [
        ("tools.train", "--model_dir", "--data_dir=gs://bucket/data"),
        ("tools.export_saved_model", "--export_dir", "--preset=resnet50"),
        ("tools.make_imagenet_c", "--output_dir", "--input_dir=."),
        ("tools.evaluate", "--weights", "--data_dir=gs://bucket/data"),
    ],
)
def test_a_url_where_a_local_path_goes_is_refused(
    tmp_path, monkeypatch, binary, flag, other
):
    """--model_dir=gs://bucket/run trained into a local folder ./gs:/bucket/
    run, lost with the machine; every binary now refuses a URL but in
    data_dir / tfds_data_dir (read through TensorFlow's file system)."""
    monkeypatch.chdir(tmp_path)
    result = testing_utils.run_main(binary, f"{flag}=gs://bucket/run", other)
    assert testing_utils.error_line(result) == (
        f"ERROR: {flag}=gs://bucket/run: a URL; this option takes a local "
        "path (files are read and written with local file APIs, and gs:// "
        "would become a local folder named 'gs:'). Give a local folder, or "
        "mount the bucket (e.g. gcsfuse) and give its mount point; only the "
        "TFRecord inputs (data_dir, tfrecord_pattern) and tfds_data_dir may "
        "be URLs."
    )
    assert os.listdir(tmp_path) == []


def test_a_tfrecord_pattern_may_be_a_url(tmp_path):
    """The generators read --tfrecord_pattern through tf.io.gfile: a URL
    is read there (here TensorFlow's in-memory ram://, with no shards)."""
    result = testing_utils.run_main(
        "tools.make_imagenet_c",
        "--tfrecord_pattern=ram://no_shards/validation-*",
        f"--output_dir={tmp_path / 'c'}",
    )
    assert result.returncode == 2
    assert "ram://no_shards/validation-* matches no files" in result.stderr


def test_the_library_refuses_a_url_as_a_run_folder():
    from assemble_tf import config as config_lib
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError, match=r"^`model_dir`=s3://b/r: a URL"):
        config_lib.make_config("s3://b/r", "resnet50")
