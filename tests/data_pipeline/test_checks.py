"""`data.checks.check_training_data`: records that cannot feed the run are
refused before training, naming the option to change (the field for a
library user, the flag through `as_flag()` for a binary's)."""

import numpy as np
import pytest

from assemble_tf import config as config_lib
from assemble_tf.data import checks, schema
from assemble_tf.data.input_pipeline import DataError
from tests import testing_utils


def _write(folder, labels, logits=None):
    """One train and one validation shard of 8x8 JPEGs with `labels` (and
    `logits` per train record)."""
    for split in ("train", "validation"):
        examples = [
            schema.make_example(
                testing_utils.jpeg_bytes(np.full((8, 8, 3), 9 * label)),
                label,
                8,
                8,
                logits=None if logits is None or split != "train" else logits,
            )
            for label in labels
        ]
        testing_utils.write_records(
            folder / f"{split}-00000-of-00001", examples
        )


def _config(tmp_path, num_classes, kd_temperature=0.0, label_offset=0):
    return config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {
            "data": {
                "data_dir": str(tmp_path),
                "num_classes": num_classes,
                "label_offset": label_offset,
            },
            "train": {"kd_temperature": kd_temperature},
        },
    )


def test_records_that_fit_pass_and_report_what_was_read(tmp_path):
    _write(tmp_path, [0, 1, 2, 3], logits=[0.5] * 4)
    samples = checks.check_training_data(_config(tmp_path, 4, 1.0))
    assert samples["train"].records == samples["validation"].records == 4
    assert samples["train"].logit_sizes == {4: 4}
    assert (samples["train"].min_label, samples["train"].max_label) == (0, 3)


def test_labels_outside_the_head_name_num_classes_and_the_offset(tmp_path):
    _write(tmp_path, [1, 2, 5])
    with pytest.raises(DataError) as e:
        checks.check_training_data(_config(tmp_path, 5))
    assert e.value.field == "num_classes"
    assert str(e.value).startswith(f"{tmp_path}/train-* holds labels 1..5")
    assert e.value.as_flag().endswith(
        "with --label_offset=0 do not fit --num_classes=5 (model labels "
        "1..5 must lie in 0..4). Fix --num_classes / --label_offset "
        "(ImageNet records are 1..1000: 1001 classes with offset 0, or "
        "1000 with offset 1)."
    )
    # The same labels with offset 1 fit 5 classes.
    checks.check_training_data(_config(tmp_path, 5, label_offset=1))


def test_teacher_logits_of_another_width_name_kd_temperature(tmp_path):
    _write(tmp_path, [0, 1, 2], logits=[0.1] * 1001)
    with pytest.raises(DataError) as e:
        checks.check_training_data(_config(tmp_path, 3, kd_temperature=1.0))
    assert e.value.field == "kd_temperature"
    assert e.value.as_flag() == (
        f"The teacher logits (image/logit) in {tmp_path}/train-* hold "
        "[1001] values, but --num_classes=3 with --label_offset=0 needs 3. "
        "Extract them for this head (tools.extract_teacher_logits, whose "
        "prepend_zero option adds the background logit of 1001-way heads; "
        "docs/training.md) or set --kd_temperature=0."
    )


def test_empty_shards_are_refused_naming_the_split(tmp_path):
    for split in ("train", "validation"):
        testing_utils.write_records(tmp_path / f"{split}-00000-of-00001", [])
    with pytest.raises(DataError, match="The train shards .* hold no records"):
        checks.check_training_data(_config(tmp_path, 3))


def test_records_that_are_not_examples_and_cut_off_shards(tmp_path):
    """The check reads the first records with tf.io.parse_example: a
    record that is not an Example (the pipeline skips and counts it) and a
    cut-off shard were tracebacks before any training."""
    import tensorflow as tf

    _write(tmp_path, [0, 1, 2, 1])
    train = tmp_path / "train-00000-of-00001"
    good = [r.numpy() for r in tf.data.TFRecordDataset(str(train))]
    with tf.io.TFRecordWriter(str(train)) as writer:
        for record in good[:2] + [b"not an Example"] + good[2:]:
            writer.write(record)
    sample = checks.sample_records(str(train))
    assert (sample.records, sample.images) == (5, 4)
    assert (sample.min_label, sample.max_label) == (0, 2)
    checks.check_training_data(_config(tmp_path, 3))
    data = train.read_bytes()
    train.write_bytes(data[:-10])
    with pytest.raises(ValueError) as error:
        checks.check_training_data(_config(tmp_path, 3))
    assert str(error.value).startswith(
        f"{train} is cut off or corrupt (after 0 readable records)."
    )
