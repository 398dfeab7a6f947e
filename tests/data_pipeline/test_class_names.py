"""What each logit means: a run's class names from its data, a file's."""

import dataclasses

import numpy as np
import pytest

from assemble_tf import config as config_lib
from assemble_tf.runs import class_names
from official.utils.misc.validation import OptionError
from tests import testing_utils

DATA = config_lib.DataConfig(data_dir="unused")
IMAGE = np.zeros((8, 8, 3), np.uint8)


def _labels(folder, rows):
    path = folder / "labels.txt"
    path.write_text("".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows))
    return path


IMAGENET_ROWS = [
    (1, "n01440764", "tench, Tinca tinca"),
    (2, "n01443537", "goldfish, Carassius auratus"),
    (3, "n02012849", "crane"),
]


@pytest.mark.parametrize(
    "offset, width, expected",
    [
        # The original's 1001-way head: logit 0 is the background.
        (0, 4, ["background", "n01440764", "n01443537", "n02012849"]),
        # label_offset=1: 1..3 onto a 3-way head.
        (1, 3, ["n01440764", "n01443537", "n02012849"]),
        # A head wider than the data: the extra logit is named unused.
        (1, 4, ["n01440764", "n01443537", "n02012849", "unused_3"]),
        # Narrower: the labels past the head are not the model's.
        (1, 2, ["n01440764", "n01443537"]),
    ],
)
def test_a_builders_labels_name_the_logits(tmp_path, offset, width, expected):
    _labels(tmp_path, IMAGENET_ROWS)
    data = dataclasses.replace(
        DATA, data_dir=str(tmp_path), label_offset=offset, num_classes=width
    )
    assert class_names.from_data(data) == expected


def test_data_that_name_no_classes(tmp_path):
    assert class_names.from_data(dataclasses.replace(DATA, synthetic=True)) is (
        None
    )
    data = dataclasses.replace(DATA, data_dir=str(tmp_path))
    assert class_names.from_data(data) is None  # no labels.txt


def test_a_folder_source_with_a_class_range(tmp_path):
    """class_range=1,3 trains on classes 1 and 2 of the folder, as 0, 1."""
    for name in ("apple", "banana", "cherry", "date"):
        folder = tmp_path / "train" / name
        folder.mkdir(parents=True)
        (folder / "0.jpg").write_bytes(testing_utils.jpeg_bytes(IMAGE))
    data = dataclasses.replace(
        DATA, data_dir=None, source=str(tmp_path), num_classes=4
    )
    assert class_names.from_data(data) == ["apple", "banana", "cherry", "date"]
    ranged = dataclasses.replace(data, num_classes=2, class_range=(1, 3))
    assert class_names.from_data(ranged) == ["banana", "cherry"]
    # A range past the folder's 4 classes: named before training (before:
    # a 99-way head trained, classes 4-98 named unused_N and never seen).
    from assemble_tf.runs import inputs

    inputs.check_source_splits(
        dataclasses.replace(
            ranged, train_split="train", validation_split="train"
        )
    )
    past = dataclasses.replace(
        ranged,
        num_classes=97,
        class_range=(2, 99),
        train_split="train",
        validation_split="train",
    )
    with pytest.raises(ValueError) as error:
        inputs.check_source_splits(past)
    assert error.value.as_flag() == (
        f"--class_range=2,99 reaches past the 4 classes of --source="
        f"{tmp_path} (labels 0-3): keep HIGH <= 4."
    )


def test_a_run_keeps_its_names_and_older_runs_read_their_data(tmp_path):
    config = config_lib.ExperimentConfig(
        model_dir=None,
        data=dataclasses.replace(
            DATA, data_dir=str(tmp_path / "data"), num_classes=3
        ),
    )
    run = tmp_path / "run"
    run.mkdir()
    assert class_names.of_run(str(run), config) == (
        None,
        f"the run has no class_names.txt and its data_dir {tmp_path / 'data'} "
        "is gone",
    )
    (tmp_path / "data").mkdir()
    assert class_names.of_run(str(run), config) == (
        None,
        "neither the run nor its data name the classes",
    )
    _labels(tmp_path / "data", [(0, "cat", ""), (1, "dog", ""), (2, "eel", "")])
    assert class_names.of_run(str(run), config) == (
        ["cat", "dog", "eel"],
        f"the run's data ({tmp_path / 'data'})",
    )
    class_names.write(str(run), ["ant", "bee", "cow"])
    assert (run / "class_names.txt").read_text() == "ant\nbee\ncow\n"
    assert class_names.of_run(str(run), config) == (
        ["ant", "bee", "cow"],
        str(run / "class_names.txt"),
    )


def test_a_names_file(tmp_path):
    path = tmp_path / "names.txt"
    # A Windows editor's file: byte-order mark, CRLF, trailing blank lines.
    path.write_bytes(b"\xef\xbb\xbfcat\r\nhot dog\r\n\r\n")
    assert class_names.read(str(path), 2) == ["cat", "hot dog"]
    # ImageNet's labels.txt for the 1001-way head: background first; in
    # label order for a head of as many logits as rows.
    labels = _labels(tmp_path, IMAGENET_ROWS)
    assert class_names.read(str(labels), 4)[:2] == ["background", "n01440764"]
    assert class_names.read(str(labels), 3)[0] == "n01440764"


def test_a_bad_names_file_is_named(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("cat\n\ndog\n")
    with pytest.raises(OptionError) as e:
        class_names.read(str(path), 3)
    assert e.value.as_flag() == (
        f"--class_names={path}: line 2 is empty; each line names one logit, "
        "in order."
    )
    path.write_text("cat\ndog\n")
    with pytest.raises(OptionError, match="names 2 classes; the model has 3"):
        class_names.read(str(path), 3)
    with pytest.raises(OptionError) as e:  # before: "no such file"
        class_names.read(str(tmp_path), 3)
    assert e.value.as_flag() == (
        f"--class_names={tmp_path} is a folder; pass the class-name file "
        "(one name per line, or a builder's labels.txt)."
    )
    with pytest.raises(OptionError, match="no such file"):
        class_names.read(str(tmp_path / "missing.txt"), 3)
    # Lines with a TAB that are no labels.txt: the option and the rule
    # (before: the file's line alone, naming no option).
    path.write_text("n01\tApple\nn02\tPear\n")
    with pytest.raises(OptionError) as e:
        class_names.read(str(path), 2)
    assert e.value.as_flag() == (
        f"--class_names={path}: every line holds a TAB, so it was read as a "
        f"builder's labels.txt, and {path}:1 is not "
        "'label<TAB>wnid<TAB>text': 'n01\\tApple'. Write one name per line "
        "(no TAB) or a labels.txt."
    )


def test_names_given_to_two_logits_are_a_warning():
    """Not refused (ImageNet's readable names hold two "crane"s), said."""
    assert class_names.duplicates_warning(["a", "b"], "f.txt") is None
    assert class_names.duplicates_warning(None, "f.txt") is None
    warning = class_names.duplicates_warning(["a", "b", "a", "b", "c"], "f")
    assert warning.as_flag() == (
        "--class_names=f gives 2 names to more than one logit ('a' for "
        "logits 0, 2; 'b' for logits 1, 3): the served class_names cannot "
        "tell them apart. Make each line unique (e.g. add the class id) "
        "unless that is meant."
    )
