"""assemble_tf.training.input_benchmark (tools.benchmark_input) in-process."""

import dataclasses

import pytest

from assemble_tf.training import input_benchmark
from official.utils.misc.validation import OptionError


@pytest.fixture
def data_dir(benchmark_shards):
    return benchmark_shards


def _options(data_dir, **kwargs):
    return input_benchmark.InputBenchmarkOptions(
        data_dir=data_dir,
        batch_size=4,
        image_size=32,
        rounds=1,
        min_seconds=0.0,
        settle_seconds=0.0,
        warmup_steps=1,
        num_classes=4,
        progress=False,
        **kwargs,
    )


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_run_benchmark_reports_ratios_and_settings(data_dir):
    options = _options(data_dir, mixup_type=1, autoaugment="v0")
    report = input_benchmark.run_benchmark(options)
    assert list(report)[:3] == [
        "full_pipeline_examples_per_sec",
        "full_pipeline_images_per_sec",
        "decode_and_crop_images_per_sec",
    ]
    # Mixup type 1 reads two images per example.
    assert report["full_pipeline_images_per_sec"] == pytest.approx(
        2 * report["full_pipeline_examples_per_sec"], rel=0.01
    )
    assert len(report["ratio_per_round"]) == 1 and report["ratio"] > 0
    settings = dict(batch_size=4, image_size=32, autoaugment="v0")
    settings.update(mixup_type=1, dtype="uint8")
    assert {k: report[k] for k in settings} == settings
    assert report["cpu_count"] >= 1 and "devices" not in report
    lines = input_benchmark.format_text(report).splitlines()
    assert len(lines) == len(report)
    assert lines[0].startswith("full_pipeline_examples_per_sec     ")


def test_input_config_is_the_training_pipeline(data_dir):
    config = input_benchmark.input_config(_options(data_dir, dtype="float32"))
    assert config.file_pattern == f"{data_dir}/train-*"
    assert config.is_training and config.batch_size == 4
    assert config.dtype == "float32" and config.augmenter is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mixup_type": 3}, "--mixup_type=3: use one of 0, 1, 2."),
        ({"dtype": "int8"}, "--dtype='int8': use one of uint8, float32, "),
        ({"rounds": 0}, "--rounds=0 must be at least 1."),
        # Before: passed, and the timing of NaN seconds never ended.
        (
            {"min_seconds": float("nan")},
            "--min_seconds=nan must be a finite number of at least 0",
        ),
        ({"data_dir": ""}, "--data_dir is required."),
        # Before: RandAugment dropped silently; a bad label smoothing
        # failed as "label_smoothing must ..." once the timing had begun.
        (
            {"autoaugment": "imagenet", "randaugment_layers": 2},
            "--randaugment_layers=2 is invalid: RandAugment replaces "
            "AutoAugment",
        ),
        ({"label_smoothing": 3.0}, "--label_smoothing=3.0 is invalid"),
        # Before: batches of 0 images, timed at 900 images/s.
        (
            {"mixup_type": 2, "batch_size": 1},
            "--batch_size=1 (per replica: 1) with --mixup_type=2, which "
            "mixes the two halves of each batch: make it even.",
        ),
    ],
)
def test_option_errors_name_the_flag(data_dir, kwargs, message):
    options = dataclasses.replace(_options(data_dir), **kwargs)
    with pytest.raises(OptionError) as e:
        input_benchmark.run_benchmark(options)
    assert e.value.as_flag().startswith(message)


def test_float_mixing_under_another_backend_is_refused(data_dir, monkeypatch):
    """Under JAX a float pipeline with Mixup failed with a traceback (its
    random draws on tf.data tensors); uint8 (mixed on the device) runs."""
    import keras

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    options = _options(data_dir, mixup_type=1, dtype="float32")
    with pytest.raises(OptionError) as error:
        input_benchmark.validate(options)
    assert error.value.as_flag().startswith(
        "--dtype=float32 with --mixup_type mixes inside tf.data, which needs "
        "KERAS_BACKEND=tensorflow; under jax time --dtype=uint8"
    )
    input_benchmark.validate(dataclasses.replace(options, dtype="uint8"))


def test_a_class_count_below_the_datas_labels_is_refused(tmp_path, data_dir):
    """Before: the full pipeline dropped the records of the other labels
    and the baselines read them all: the ratio fell without a word."""
    from assemble_tf.data import metadata

    assert data_dir == str(tmp_path)  # the shards, and now labels.txt
    metadata.write_labels(
        str(tmp_path / "labels.txt"),
        [(c, f"n0{c}", f"c{c}") for c in range(10)],
    )
    with pytest.raises(OptionError) as e:
        input_benchmark.run_benchmark(_options(str(tmp_path)))
    assert e.value.as_flag() == (
        f"--num_classes=4 does not cover the labels of --data_dir={tmp_path} "
        "(10 classes stored as 0..9): the pipeline would drop the other "
        "records and time less work than the baselines; pass "
        "--num_classes=10 or more."
    )


def test_without_metadata_the_records_labels_bound_the_class_count(data_dir):
    """A folder of shards without summary.json / labels.txt: the first
    records' labels are read (before: a count below them timed a pipeline
    that dropped records, and 0 ended in a traceback)."""
    with pytest.raises(OptionError) as e:
        input_benchmark.run_benchmark(
            dataclasses.replace(_options(data_dir), num_classes=3)
        )
    assert e.value.as_flag() == (
        f"--num_classes=3 does not cover the labels of --data_dir={data_dir}: "
        "its first 12 records hold labels up to 3, and the pipeline would "
        "drop the records beyond --num_classes and time less work than the "
        "baselines; pass --num_classes=4 or more."
    )
    with pytest.raises(OptionError) as e:
        input_benchmark.validate(
            dataclasses.replace(_options(data_dir), num_classes=0)
        )
    assert e.value.as_flag().startswith("--num_classes=0")


def _write(path, images):
    from assemble_tf.data import schema
    from tests import testing_utils

    testing_utils.write_records(
        path,
        [
            schema.make_example(data, i % 4, 40, 40, filename=f"{i}.jpg")
            for i, data in enumerate(images)
        ],
    )


def test_records_that_are_no_jpeg_are_left_out_of_the_references(tmp_path):
    """Before: the first PNG or cut-off JPEG record stopped the benchmark
    in the decode-and-crop reference with a traceback (`jpeg::Uncompress
    failed`); the training pipeline reads the PNG and skips the other."""
    import io

    from PIL import Image

    from tests import testing_utils

    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 40))
    png = io.BytesIO()
    Image.fromarray(testing_utils.smooth_image(40, 40)).save(png, "PNG")
    _write(
        tmp_path / "train-00000-of-00001",
        [jpeg] * 6 + [png.getvalue(), jpeg[:100], b"not an image"],
    )
    report = input_benchmark.run_benchmark(_options(str(tmp_path)))
    assert report["decode_and_crop_images_per_sec"] > 0
    assert report["ratio"] > 0


def test_records_without_images_are_one_error(tmp_path):
    """Before: a traceback wrapping the pipeline guard's assertion."""
    from assemble_tf.data.input_pipeline import DataError

    _write(tmp_path / "train-00000-of-00001", [b"not an image"] * 20)
    with pytest.raises(DataError) as e:
        input_benchmark.run_benchmark(_options(str(tmp_path)))
    assert str(e.value) == (
        f"None of the first 20 records of {tmp_path}/train-* holds a whole "
        "JPEG, or a PNG, GIF or BMP image (image/encoded). Rebuild them with "
        "`python -m tools.build_imagenet_tfrecords`."
    )


def test_a_pattern_that_matches_nothing_names_file_pattern(tmp_path):
    """Before: "Check --data_dir / --train_pattern / --validation_pattern",
    flags of tools.train that tools.benchmark_input does not have."""
    with pytest.raises(OptionError) as e:
        input_benchmark.run_benchmark(_options(str(tmp_path)))
    message = e.value.as_flag()
    assert message.endswith("check --data_dir / --file_pattern."), message
    assert "train_pattern" not in message
