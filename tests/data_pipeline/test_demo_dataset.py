"""The scikit-learn digits demo dataset, built as a user runs it."""

import collections
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.data import demo_dataset as demo
from assemble_tf.data import schema
from tests import testing_utils

TRAIN_PER_DIGIT = [142, 146, 142, 146, 145, 146, 145, 143, 139, 144]
VALIDATION_PER_DIGIT = [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]


def parse(path):
    examples = []
    for raw in tf.data.TFRecordDataset(path):
        features = tf.train.Example.FromString(raw.numpy()).features.feature
        examples.append(features)
    return examples


def test_split_is_fixed_and_stratified():
    from sklearn.datasets import load_digits

    targets = load_digits().target
    train, validation = demo.split_indices(targets)
    assert (len(train), len(validation)) == (1438, 359)
    assert np.bincount(targets[train]).tolist() == TRAIN_PER_DIGIT
    assert np.bincount(targets[validation]).tolist() == VALIDATION_PER_DIGIT
    assert not set(train) & set(validation)
    assert validation[:5].tolist() == [3, 7, 13, 19, 36]


@pytest.mark.slow
def test_demo_binary_writes_the_digits_records(tmp_path):
    out = tmp_path / "digits"
    result = testing_utils.run_main(
        "tools.make_demo_dataset",
        f"--output_dir={out}",
        "--noprogress",
    )
    assert result.returncode == 0, result.stderr
    assert "train: 1438 images in 2/2 shards" in result.stdout
    shards = sorted(os.path.basename(p) for p in glob.glob(str(out / "*-0*")))
    assert shards == [
        "train-00000-of-00002",
        "train-00001-of-00002",
        "validation-00000-of-00001",
    ]
    names = {}
    for split, per_digit in (
        ("train", TRAIN_PER_DIGIT),
        ("validation", VALIDATION_PER_DIGIT),
    ):
        examples = []
        for path in sorted(glob.glob(str(out / f"{split}-*"))):
            examples += parse(path)
        assert len(examples) == sum(per_digit)
        counts = collections.Counter()
        for features in examples:
            label = features[schema.LABEL].int64_list.value[0]
            counts[label] += 1
            synset = features[schema.SYNSET].bytes_list.value[0]
            assert synset == f"digit_{label}".encode()
            assert features[schema.TEXT].bytes_list.value[0] == (
                str(label).encode()
            )
            assert features[schema.HEIGHT].int64_list.value[0] == 64
            assert features[schema.WIDTH].int64_list.value[0] == 64
        assert [counts[k] for k in range(10)] == per_digit
        names[split] = {
            f[schema.FILENAME].bytes_list.value[0] for f in examples
        }
        assert len(names[split]) == len(examples)
        # Every image decodes to 64x64x3, dark digit on a light page.
        for features in examples[:50]:
            encoded = features[schema.IMAGE].bytes_list.value[0]
            image = tf.io.decode_jpeg(encoded).numpy()
            assert image.shape == (64, 64, 3)
            assert image[0, 0].min() >= 240 and image.min() <= 60
    assert not names["train"] & names["validation"]
    assert b"digits_0003.png" in names["validation"]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_classes"] == 10 and summary["label_offset"] == 0
    assert summary["splits"]["train"]["images"] == 1438
    assert summary["splits"]["validation"]["images"] == 359
    assert summary["splits"]["train"]["per_class"]["digit_8"] == 139
    assert summary["skipped"] == []
    # About 10 s on 2 idle cores (most of it importing TensorFlow); the
    # bound leaves room for a loaded parallel test run.
    assert summary["elapsed_s"] < 60
    lines = (out / "labels.txt").read_text().splitlines()
    assert lines[0] == "0\tdigit_0\t0" and lines[9] == "9\tdigit_9\t9"
    assert len(lines) == 10

    # A rerun finds the build complete and leaves the shards as they are.
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(out / "*-0*"))}
    again = demo.make_demo_dataset(str(out), progress=False)
    assert again["splits"]["train"]["shards_resumed"] == 2
    assert again["splits"]["validation"]["shards_resumed"] == 1
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
