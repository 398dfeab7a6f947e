"""assemble_tf.training.demo (tools.demo): its config and its report.

`make demo` runs the whole job; these check the parts it adds to
`train_lib.run_experiment` without training.
"""

import keras
import pytest

from assemble_tf.training import demo


def test_demo_config_is_the_small_assemble_recipe(tmp_path):
    (tmp_path / "digits").mkdir()
    options = demo.DemoOptions(output_dir=str(tmp_path / "out"), epochs=3)
    config = demo.demo_config(options, str(tmp_path / "digits"))
    assert config.model_dir == str(tmp_path / "out" / "run")
    assert config.model.preset == "assemble_resnet50"
    assert config.model.base_width == 16
    assert config.model.block_sizes == (2, 2, 2, 1)
    assert config.data.data_dir == str(tmp_path / "digits")
    assert config.data.num_classes == 10 and config.data.image_size == 32
    assert config.train.epochs == 3.0 and config.train.batch_size == 32
    assert config.train.kd_temperature == 0.0
    # The overrides are copied, not edited in place.
    assert "data_dir" not in demo.DEMO_OVERRIDES["data"]
    assert config.train.seed == 0
    seeded = demo.DemoOptions(output_dir=str(tmp_path / "out"), seed=3)
    assert demo.demo_config(seeded, str(tmp_path / "digits")).train.seed == 3
    assert demo.DEMO_OVERRIDES["train"]["seed"] == 0


def test_report_lists_setup_metrics_and_epochs(tmp_path):
    options = demo.DemoOptions(output_dir=str(tmp_path), epochs=2)
    (tmp_path / "digits").mkdir()
    config = demo.demo_config(options, str(tmp_path / "digits"))
    summary = {
        "data_dir": "/data/digits",
        "params": 123456,
        "top1": 0.9,
        "top5": 0.99,
        "ece": 0.05,
        "train_images_per_sec": 400.4,
        "seconds": 61.2,
    }
    history = [
        {"epoch": 1, "train_loss": 2.0},
        {"epoch": 2, "train_loss": 1.5, "val_top1": 0.9},
    ]
    path = tmp_path / "report.md"
    demo.write_report(str(path), config, summary, history)
    lines = path.read_text().split("\n")
    assert lines[:2] == ["# Assemble-TF demo report", ""]
    assert lines[2].startswith("Data: /data/digits (scikit-learn digits")
    # The backend and precision it trained in (before: a JAX run's report
    # read as a TensorFlow run's).
    backend = {"tensorflow": "TensorFlow", "jax": "JAX"}[
        keras.backend.backend()
    ]
    assert lines[3].endswith(
        f"(123,456 parameters), trained under {backend} in float32."
    )
    assert lines[4].startswith("Recipe: 2 epochs, batch 32, SGD momentum")
    assert "with 1 warm-up epoch, " in lines[4]
    assert demo._count(1.0, "epoch") == "1 epoch"
    assert demo._count(0.5, "warm-up epoch") == "0.5 warm-up epoch"
    assert "| top-1 | 0.9000 |" in lines
    assert "| train images/s (last epoch) | 400 |" in lines
    assert "| wall time (this invocation) | 61 s |" in lines
    assert lines[-6:] == [
        "| 1 | 2.0000 | - |",
        "| 2 | 1.5000 | 0.9000 |",
        "",
        "![training curves](training_curves.png)",
        "![reliability](reliability.png)",
        "",
    ]


def test_run_demo_names_a_bad_epoch_count(tmp_path):
    from official.utils.misc.validation import OptionError

    options = demo.DemoOptions(output_dir=str(tmp_path), epochs=0)
    with pytest.raises(OptionError) as e:
        demo.run_demo(options)
    assert e.value.as_flag() == "--epochs=0 must be at least 1."
    assert not list(tmp_path.iterdir())
    # A file in the way: one line (before: a NotADirectoryError traceback
    # from the dataset step).
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OptionError) as e:
        demo.run_demo(demo.DemoOptions(output_dir=str(tmp_path / "afile")))
    assert e.value.as_flag().startswith(f"--output_dir={tmp_path / 'afile'} ")
    assert (tmp_path / "afile").read_text() == "x"


def test_one_epoch_warms_up_for_half_of_it(tmp_path):
    """Before: --epochs=1 wrote the digits, then failed naming
    --warmup_epochs (1.0 must be < epochs), a flag the demo has not."""
    (tmp_path / "digits").mkdir()
    for epochs, warmup in ((1, 0.5), (2, 1.0), (40, 1.0)):
        options = demo.DemoOptions(output_dir=str(tmp_path), epochs=epochs)
        config = demo.demo_config(options, str(tmp_path / "digits"))
        assert config.train.warmup_epochs == warmup


def _demo_run_folder(tmp_path, monkeypatch, epochs):
    """A demo output folder of one-record digits (the demo's data step
    replaced) whose run has the config of `epochs` and an empty
    checkpoints/ folder; returns that folder."""
    import json

    from assemble_tf.data import schema
    from tests import testing_utils

    digits = tmp_path / "digits"
    digits.mkdir()
    summary = {"num_classes": 10, "label_offset": 0}
    (digits / "summary.json").write_text(json.dumps(summary))
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(64, 64))
    for split in ("train", "validation"):
        testing_utils.write_records(
            digits / f"{split}-00000-of-00001",
            [schema.make_example(jpeg, 3, 64, 64, filename="a.jpg")],
        )
    monkeypatch.setattr(demo, "prepare_data", lambda out, log: str(digits))
    first = demo.DemoOptions(output_dir=str(tmp_path), epochs=epochs)
    config = demo.demo_config(first, str(digits))
    config.to_json(config.model_dir + "/config.json")
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir()
    return checkpoints


def test_a_rerun_of_other_epochs_names_the_demos_flag(tmp_path, monkeypatch):
    """Before: "... or pick a new --model_dir", which the demo has not."""
    from official.utils.misc.validation import OptionError

    checkpoints = _demo_run_folder(tmp_path, monkeypatch, epochs=2)
    # A checkpoint to resume.
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"')
    (checkpoints / "ckpt-1.index").write_bytes(b"")
    again = demo.DemoOptions(output_dir=str(tmp_path), epochs=3)
    with pytest.raises(OptionError) as e:
        demo.run_demo(again)
    assert e.value.as_flag() == (
        f"--output_dir={tmp_path} holds a demo run with other settings "
        "(--epochs: 2 -> 3). Rerun with the same ones to resume it, or "
        "pick a new --output_dir."
    )
    # 1 -> 2 epochs changes the warm-up the demo derives (0.5 -> 1.0):
    # not listed, the demo has no flag for it (before: --warmup_epochs);
    # and the seed, which it has.
    (tmp_path / "one").mkdir()
    _demo_run_folder(tmp_path / "one", monkeypatch, epochs=1)
    again = demo.DemoOptions(output_dir=str(tmp_path / "one"), epochs=2, seed=7)
    with pytest.raises(OptionError) as e:
        demo.run_demo(again)
    assert "(--epochs: 1 -> 2; --seed: 0 -> 7)" in e.value.as_flag()


def test_a_demo_run_of_an_earlier_version_names_no_flag_it_lacks(
    tmp_path, monkeypatch
):
    """A demo folder written before `optimizer` (Keras' SGD): before,
    "add --optimizer=keras_sgd", a flag tools.demo does not have."""
    import json

    from official.utils.misc.validation import OptionError

    checkpoints = _demo_run_folder(tmp_path, monkeypatch, epochs=2)
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"')
    (checkpoints / "ckpt-1.index").write_bytes(b"")
    path = tmp_path / "run" / "config.json"
    written = json.loads(path.read_text())
    del written["train"]["optimizer"]
    path.write_text(json.dumps(written))
    options = demo.DemoOptions(output_dir=str(tmp_path), epochs=2)
    with pytest.raises(OptionError) as e:
        demo.run_demo(options)
    assert e.value.as_flag() == (
        f"--output_dir={tmp_path} holds a demo run of an earlier version "
        "(trained with Keras' SGD, which the demo no longer uses): pick a "
        "new --output_dir, or delete that one."
    )


def test_a_demo_run_of_the_other_backend_names_the_fix(tmp_path, monkeypatch):
    """Before: "... or use a new --output_dir and --warm_start from it",
    a flag tools.demo does not have."""
    from official.utils.misc.validation import OptionError

    checkpoints = _demo_run_folder(tmp_path, monkeypatch, epochs=2)
    for name in ("ckpt-1.weights.h5", "ckpt-1.state.npz"):  # a JAX run's
        (checkpoints / name).write_bytes(b"")
    options = demo.DemoOptions(output_dir=str(tmp_path), epochs=2)
    with pytest.raises(OptionError) as e:
        demo.run_demo(options)
    assert e.value.as_flag() == (
        f"--output_dir={tmp_path} holds a demo run trained under the jax "
        "backend; rerun with KERAS_BACKEND=jax to reuse it, or pick a new "
        "--output_dir."
    )


def test_a_moved_demo_folder_resumes(tmp_path, monkeypatch):
    """Before: a moved demo folder's rerun was refused as "a different
    configuration (data.data_dir: '<old>/digits' -> '<new>/digits')"."""
    import json
    import shutil

    from assemble_tf.training import train_lib

    made = tmp_path / "made"
    made.mkdir()
    checkpoints = _demo_run_folder(made, monkeypatch, epochs=2)
    (checkpoints / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"')
    (checkpoints / "ckpt-1.index").write_bytes(b"")
    moved = tmp_path / "moved"
    shutil.move(str(made), str(moved))
    options = demo.DemoOptions(output_dir=str(moved), epochs=2)
    config = demo.demo_config(options, str(moved / "digits"))
    logged = []
    demo.adopt_moved_run(config, logged.append)
    assert logged == [
        f"This demo folder was made as {made}: its run now reads "
        f"{moved / 'digits'}."
    ]
    stored = json.loads((moved / "run" / "config.json").read_text())
    assert stored["data"]["data_dir"] == str(moved / "digits")
    assert train_lib.check_resume(config) == []  # the same run: resumes
    demo.adopt_moved_run(config, logged.append)  # in place: nothing to do
    assert len(logged) == 1


def test_reliability_diagram_of_the_last_validation(tmp_path):
    bins = {
        "count": [0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        "confidence": [0.05 + 0.1 * i for i in range(10)],
        "accuracy": [0.1 * i for i in range(10)],
    }
    history = [{"epoch": 1}, {"epoch": 2, "val_reliability": bins}]
    path = tmp_path / "reliability.png"
    demo.plot_reliability(history, str(path))
    assert path.stat().st_size > 1000
