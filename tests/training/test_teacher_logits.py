"""Teacher logits in the records (`tools.extract_teacher_logits`,
`assemble_tf.training.teacher_logits`): our own export as the teacher,
foreign SavedModels, the output folder's labels.txt / summary.json, and
failures that leave no file (issue 24 item 1)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf import config as config_lib
from assemble_tf.data import metadata, schema
from assemble_tf.data.preprocessing import preprocess_eval
from assemble_tf.models import build_model
from assemble_tf.training import teacher_logits as tl
from assemble_tf.training import teacher_shards, teachers
from official.utils.misc.validation import OptionError
from tests import testing_utils

TINY = {"base_width": 8, "block_sizes": (1, 1, 1, 1)}
SHARDS = ("train-00000-of-00001", "validation-00000-of-00001")
CLASSES = 3


def _write_data(root, label_base=0, with_metadata=True):
    """9 train / 4 validation 40x48 JPEGs of 3 classes stored from
    `label_base`; labels.txt and summary.json as the builder writes them."""
    os.makedirs(root, exist_ok=True)
    counts = {}
    for shard, n in zip(SHARDS, (9, 4), strict=True):
        examples = []
        for i in range(n):
            c = i % CLASSES
            jpeg = testing_utils.jpeg_bytes(
                testing_utils.smooth_image(40, 48, seed=10 * i + len(shard))
            )
            examples.append(
                schema.make_example(
                    jpeg,
                    c + label_base,
                    40,
                    48,
                    filename=f"{shard[:5]}{i}.jpg",
                    synset=f"n0{c}",
                    text=f"class {c}",
                )
            )
        testing_utils.write_records(os.path.join(root, shard), examples)
        counts[shard.split("-")[0]] = {"images": n}
    if with_metadata:
        metadata.write_labels(
            os.path.join(root, metadata.LABELS),
            [(c + label_base, f"n0{c}", f"class {c}") for c in range(CLASSES)],
        )
        summary = {"num_classes": CLASSES, "label_offset": label_base}
        with open(os.path.join(root, metadata.SUMMARY), "w") as f:
            json.dump({**summary, "splits": counts}, f)
    return str(root)


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory):
    """A folder of ours: 0-based, with labels.txt and summary.json."""
    return _write_data(tmp_path_factory.mktemp("labelled"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, path): a tiny 3-class R50 exported by our exporter."""
    model = build_model("resnet50", num_classes=CLASSES, **TINY)
    testing_utils.randomize_bn(model)  # zero-gamma gives constant logits
    path = str(tmp_path_factory.mktemp("export") / "1")
    testing_utils.write_export(model, path, "imagenet_32")
    return model, path


def _options(input_dir, output_dir, **kwargs):
    kwargs.setdefault("teacher_preprocessing", "imagenet_32")
    kwargs.setdefault("batch_size", 4)
    return tl.TeacherLogitsOptions(
        input_dir=input_dir,
        output_dir=str(output_dir),
        progress=False,
        **kwargs,
    )


def _preset_teacher(tmp_path, data, out, **kwargs):
    """(teacher, options): a tiny resnet50 teacher (BN randomized) saved as
    weights, and the options that load it as a preset."""
    teacher = build_model("resnet50", num_classes=CLASSES, **TINY)
    testing_utils.randomize_bn(teacher)
    weights = str(tmp_path / "teacher.weights.h5")
    teacher.save_weights(weights)
    options = _options(
        data,
        out,
        teacher_preset="resnet50",
        teacher_weights=weights,
        teacher_num_classes=CLASSES,
        teacher_overrides=dict(TINY),
        **kwargs,
    )
    return teacher, options


def _examples(path):
    return [
        tf.train.Example.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(str(path))
    ]


def _crops(examples, kind="imagenet_32"):
    """The eval crops of the records' images, as the teacher gets them."""
    return tf.stack(
        [
            preprocess_eval(
                tf.constant(
                    e.features.feature[schema.IMAGE].bytes_list.value[0]
                ),
                kind,
            )
            for e in examples
        ]
    )


def _logits(examples):
    return np.array(
        [e.features.feature[schema.LOGIT].float_list.value for e in examples]
    )


def _head_width(data_dir, tmp_path, **data):
    """The class count training takes from `data_dir`."""
    config = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {"data": {"data_dir": data_dir, **data}},
    )
    return config.data.num_classes


def _foreign(path, dtype=tf.float32, outputs=("output_0",), size=32):
    """A SavedModel whose `serving_default` maps x: [N, size, size, 3] to
    `outputs` (3 logits each: the mean colour times a fixed matrix)."""
    weights = tf.constant(np.arange(9.0).reshape(3, 3) / 9 - 0.4, tf.float32)

    class Foreign(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([None, size, size, 3], dtype, "x")]
        )
        def serve(self, x):
            logits = tf.reduce_mean(tf.cast(x, tf.float32), [1, 2]) @ weights
            return {k: logits * (i + 1) for i, k in enumerate(outputs)}

    module = Foreign()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve}
    )
    return lambda x: module.serve(tf.cast(x, dtype))


def _saved(path, **kwargs):
    """The path of a `_foreign` SavedModel written there."""
    _foreign(path, **kwargs)
    return str(path)


def _bytes_only(path):
    """A SavedModel whose only signature takes encoded images (strings)."""

    class Bytes(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string, "images")]
        )
        def serve(self, images):
            return {"logits": tf.zeros([tf.shape(images)[0], CLASSES])}

    module = Bytes()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve}
    )
    return str(path)


@pytest.mark.slow  # exports (the fixture)
def test_our_export_is_a_teacher(exported, labelled_data, tmp_path):
    """Before: the bytes `serving_default` was fed float crops (a traceback
    of ~400 lines) and its first output taken as the logits. Now the
    `preprocessed` signature's `logits`, equal to the model's own; the
    folder carries labels.txt / summary.json that training reads."""
    model, path = exported
    out = tmp_path / "kd"
    # The export's own preprocessing, read from its assets (before:
    # "imagenet", 224-px crops, refused for the 32-px signature).
    summary = tl.extract_teacher_logits(
        _options(
            labelled_data,
            out,
            teacher_saved_model=path,
            teacher_preprocessing=None,
        )
    )
    assert summary["teacher"]["preprocessing"] == "imagenet_32"
    assert summary["teacher"]["signature"] == "preprocessed"
    assert summary["teacher"]["output"] == "logits"
    assert sorted(os.listdir(out)) == sorted(
        [*SHARDS, metadata.LABELS, metadata.SUMMARY]
    )
    for shard, count in zip(SHARDS, (9, 4), strict=True):
        src = _examples(os.path.join(labelled_data, shard))
        dst = _examples(out / shard)
        assert len(dst) == count
        for old, new in zip(src, dst, strict=True):
            del new.features.feature[schema.LOGIT]
            assert new == old  # record for record, only the logits added
        want = model(_crops(src), training=False).numpy()
        assert np.abs(want).max() > 0.1  # a real comparison
        np.testing.assert_allclose(
            _logits(_examples(out / shard)), want, atol=1e-4
        )
    with open(os.path.join(labelled_data, metadata.LABELS)) as f:
        assert (out / metadata.LABELS).read_text() == f.read()
    info = metadata.dataset_info(str(out))
    assert (info.num_classes, info.label_base) == (CLASSES, 0)
    assert metadata.split_images(str(out), "train") == 9
    assert _head_width(str(out), tmp_path) == CLASSES  # not the preset's 1001
    assert summary["splits"]["train"]["num_logits"] == CLASSES


@pytest.mark.slow  # over 2 s on 2 cores
def test_preset_teacher_on_a_folder_without_metadata(tmp_path):
    """A 1000-class-style teacher on records labelled from 1 (the original
    1001-way format): --prepend_zero's background logit; the class count
    and labels.txt come from the teacher and the records."""
    data = _write_data(tmp_path / "in", label_base=1, with_metadata=False)
    out = tmp_path / "kd"
    teacher, options = _preset_teacher(tmp_path, data, out, prepend_zero=True)
    summary = tl.extract_teacher_logits(options)
    src = _examples(os.path.join(data, SHARDS[0]))
    logits = _logits(_examples(out / SHARDS[0]))
    assert logits.shape == (9, CLASSES + 1) and not logits[:, 0].any()
    want = teacher(_crops(src), training=False).numpy()
    np.testing.assert_allclose(logits[:, 1:], want, rtol=1e-4, atol=1e-4)
    assert (summary["num_classes"], summary["label_offset"]) == (CLASSES, 1)
    rows = metadata.read_labels(str(out / metadata.LABELS))
    assert rows == [(c + 1, f"n0{c}", f"class {c}") for c in range(CLASSES)]
    assert _head_width(str(out), tmp_path) == CLASSES + 1
    assert _head_width(str(out), tmp_path, label_offset=1) == CLASSES
    # A rerun keeps the finished shards and writes the same summary.
    again = tl.extract_teacher_logits(options)
    assert all(s["kept"] for s in again["shards"].values())
    assert tl.console_line(summary)["kept_shards"] == 0
    line = tl.console_line(again)
    assert line["kept_shards"] == line["shards"] == len(again["shards"]) > 0
    assert again["splits"] == summary["splits"]
    assert (out / metadata.LABELS).read_text().count("\n") == CLASSES


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_foreign_serving_default_on_float_images(labelled_data, tmp_path):
    """Without `preprocessed`: a `serving_default` with one float input
    and one output (any name) is the teacher; its `logits` among several
    outputs is taken by name."""
    for outputs in (("output_0",), ("probs", "logits")):
        path = tmp_path / f"foreign{len(outputs)}"
        fn = _foreign(path, outputs=outputs)
        out = tmp_path / f"kd{len(outputs)}"
        tl.extract_teacher_logits(
            _options(labelled_data, out, teacher_saved_model=str(path))
        )
        src = _examples(os.path.join(labelled_data, SHARDS[1]))
        want = fn(_crops(src))[outputs[-1]].numpy()
        np.testing.assert_allclose(
            _logits(_examples(out / SHARDS[1])), want, atol=1e-5
        )


def _assert_no_files(out, error, field, *words):
    assert error.value.field == field
    text = error.value.as_flag()
    assert f"--{field}" in text, text
    for word in words:
        assert word in text, text
    assert not os.path.exists(out) or not os.listdir(out), os.listdir(out)


@pytest.mark.parametrize(
    "make, field, words",
    [
        (lambda p: str(p / "missing"), "teacher_saved_model", ["folder"]),
        (lambda p: str(p), "teacher_saved_model", ["not a readable"]),
        (
            lambda p: _bytes_only(p / "bytes"),
            "teacher_saved_model",
            ["serving_default(images: string [None] -> logits)", "float"],
        ),
        (
            lambda p: _saved(p / "two", outputs=("a", "b")),
            "teacher_saved_model",
            ["serving_default(x: float32 [None, 32, 32, 3] -> a, b)"],
        ),
        (
            lambda p: _saved(p / "64", size=64),
            "teacher_preprocessing",
            ["32-px crops", "imagenet_64"],
        ),
    ],
    ids=["missing", "unreadable", "bytes_only", "two_outputs", "crop_size"],
)
def test_an_unusable_teacher_fails_before_any_file(
    labelled_data, tmp_path, make, field, words
):
    """Before: a wrong teacher failed inside the first shard and left an
    empty hidden shard in the output folder."""
    teacher_dir = tmp_path / "teachers"
    teacher_dir.mkdir()
    out = tmp_path / "kd"
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(
            _options(labelled_data, out, teacher_saved_model=make(teacher_dir))
        )
    _assert_no_files(out, error, field, *words)
    assert not out.exists()


def test_logits_that_do_not_fit_the_classes_are_refused(
    labelled_data, tmp_path
):
    """The data's summary.json says 3 classes from 0: a 3-logit teacher
    with --prepend_zero (4 wide) is refused naming the flag, as is
    --prepend_zero on 0-based records that have no metadata."""
    path = tmp_path / "foreign"
    _foreign(path)
    out = tmp_path / "kd"
    options = _options(
        labelled_data, out, teacher_saved_model=str(path), prepend_zero=True
    )
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(options)
    _assert_no_files(out, error, "prepend_zero", "leave --prepend_zero out")
    plain = _write_data(tmp_path / "plain", with_metadata=False)
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(dataclasses.replace(options, input_dir=plain))
    _assert_no_files(out, error, "prepend_zero", "holds label 0")
    assert not out.exists()
    # Labels stored from 1 without metadata, a teacher of as many classes:
    # the fix is --prepend_zero (before: "use a teacher of this data's
    # classes").
    one_based = _write_data(tmp_path / "one", label_base=1, with_metadata=False)
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(
            dataclasses.replace(
                options, input_dir=one_based, prepend_zero=False
            )
        )
    assert error.value.field == "input_dir"
    assert error.value.as_flag().endswith(
        "holds label 3, but the stored logits cover labels 0..2: for labels "
        "stored from 1 with a teacher of as many classes, pass "
        "--prepend_zero (logit 0 becomes the background)."
    )


def test_a_record_label_outside_its_folders_classes_blames_the_record(
    tmp_path,
):
    """A record of label 42 in a folder of 3 classes: the record is wrong
    (before: "use a teacher of this data's classes")."""
    data = _write_data(tmp_path / "data")
    options = _options(data, tmp_path / "kd")
    error = teacher_shards.label_error(42, range(0, 3), "train-x", options)
    assert error.as_flag() == (
        "--input_dir: train-x holds label 42, outside the 3 classes of its "
        "folder's summary.json (0..2): the record is wrong. Rebuild the "
        "shard with `python -m tools.build_imagenet_tfrecords`."
    )
    # Without metadata, either may be wrong: both fixes (before: the
    # teacher alone was blamed for a record labelled 9 of 3 classes).
    bare = _write_data(tmp_path / "bare", with_metadata=False)
    error = teacher_shards.label_error(
        9, range(0, 3), "train-x", dataclasses.replace(options, input_dir=bare)
    )
    assert error.as_flag() == (
        "--input_dir: train-x holds label 9, but the stored logits cover "
        "labels 0..2; use a teacher of this data's classes, or, if the "
        "record's label is wrong (the folder has no labels.txt to tell), "
        "rebuild the shard with `python -m tools.build_imagenet_tfrecords`."
    )


@pytest.mark.parametrize(
    "width, teacher, field, fix",
    [
        # Labels from 0: a background logit would shift every class
        # (before: "pass --prepend_zero").
        (2, {}, "teacher_num_classes", "of these 3 classes"),
        (4, {"prepend_zero": True}, "prepend_zero", "leave --prepend_zero"),
        (5, {}, "teacher_num_classes", "(--teacher_num_classes=3, with w"),
        (6, {"prepend_zero": True}, "teacher_num_classes", "classes=2"),
        (2, {"teacher_saved_model": "t"}, "teacher_saved_model", "other"),
        (5, {"teacher_saved_model": "t"}, "teacher_saved_model", "other"),
        # Before: "needs --teacher_num_classes=3", which a run ignores.
        (5, {"teacher_weights": "RUN"}, "teacher_weights", "a 5-way head"),
    ],
)
def test_label_space_names_the_option_to_change(
    labelled_data, tmp_path, width, teacher, field, fix
):
    """3 classes stored from 0 need 3 logits; the error says how."""
    if teacher.get("teacher_weights") == "RUN":  # a training run's folder
        teacher = {"teacher_weights": str(tmp_path)}
    options = _options(labelled_data, tmp_path / "kd", **teacher)
    assert tl.label_space(options, 3) == (0, CLASSES)
    with pytest.raises(OptionError) as error:
        tl.label_space(options, width)
    assert error.value.field == field
    assert fix in error.value.as_flag(), error.value.as_flag()


def test_prepend_zero_is_advised_for_labels_stored_from_1(tmp_path):
    """ImageNet-style records (labels 1..3) and a 3-class teacher: a
    background logit 0 makes them fit."""
    data = _write_data(tmp_path / "data", label_base=1)
    options = _options(data, tmp_path / "kd", teacher_saved_model="t")
    with pytest.raises(OptionError) as error:
        tl.label_space(options, 3)
    assert error.value.as_flag() == (
        "The teacher's logits are 3 wide, but "
        f"{os.path.join(data, metadata.SUMMARY)} lists 3 classes stored as "
        "1..3, which need 4: pass --prepend_zero."
    )


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_a_failure_inside_a_shard_leaves_no_partial_file(
    labelled_data, tmp_path, monkeypatch
):
    """The teacher fails in the second shard: the finished first shard
    stays (a rerun keeps it), nothing else (before: an empty hidden
    shard)."""
    calls = []

    def call(images):
        calls.append(len(images))
        if len(calls) == 4:  # 3 batches of train, then validation
            raise RuntimeError("teacher failed")
        return tf.zeros([len(images), CLASSES])

    teacher = teachers.Teacher(call, CLASSES, {"test": True})
    monkeypatch.setattr(teachers, "load_teacher", lambda options: teacher)
    out = tmp_path / "kd"
    options = _options(labelled_data, out, teacher_saved_model="unused")
    with pytest.raises(RuntimeError, match="teacher failed"):
        tl.extract_teacher_logits(options)
    # The finished shard, and its counts for the rerun.
    assert sorted(os.listdir(out)) == [metadata.EXTRACT_PROGRESS, SHARDS[0]]
    # Ctrl-C there says how to go on (before: "Interrupted." alone).
    monkeypatch.setattr(
        teachers,
        "load_teacher",
        lambda options: teachers.Teacher(
            lambda images: (_ for _ in ()).throw(KeyboardInterrupt),
            CLASSES,
            {"test": True},
        ),
    )
    with pytest.raises(KeyboardInterrupt) as stopped:
        tl.extract_teacher_logits(options)
    assert str(stopped.value) == (
        "Rerun the same command to resume: the finished shards in "
        f"{out} are kept."
    )
    monkeypatch.setattr(teachers, "load_teacher", lambda options: teacher)
    summary = tl.extract_teacher_logits(options)
    assert summary["shards"][SHARDS[0]]["kept"]
    assert not summary["shards"][SHARDS[1]]["kept"]
    assert sorted(os.listdir(out)) == sorted(
        [*SHARDS, metadata.LABELS, metadata.SUMMARY]
    )


def test_logits_that_are_not_finite_are_refused_naming_the_record(
    labelled_data, tmp_path, monkeypatch
):
    """Before: written, and reported as a success; training then stopped on
    a NaN loss that named no teacher."""

    def call(images):
        logits = np.zeros([len(images), CLASSES], np.float32)
        logits[-1, 1] = np.nan
        return tf.constant(logits)

    teacher = teachers.Teacher(call, CLASSES, {"test": True})
    monkeypatch.setattr(teachers, "load_teacher", lambda options: teacher)
    out = tmp_path / "kd"
    options = _options(labelled_data, out, teacher_saved_model="/x/1")
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(options)
    src = os.path.join(labelled_data, SHARDS[0])
    name = _examples(src)[3].features.feature[schema.FILENAME]
    assert error.value.as_flag() == (
        "--teacher_saved_model=/x/1 gives logits that are not finite (NaN "
        f"or Inf) for {name.bytes_list.value[0].decode()} of {src}: its "
        "weights diverged or overflow on these images; extract from a "
        "checkpoint whose logits are finite."
    )
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"input_dir": ""}, "input_dir", ["required"]),
        ({"output_dir": "IN"}, "output_dir", ["differ"]),
        ({"teacher_saved_model": None}, "teacher_saved_model", ["preset"]),
        (
            {"teacher_saved_model": None, "teacher_preset": "resnet50"},
            "teacher_weights",
            ["--teacher_weights is required with --teacher_preset."],
        ),
        # Before: "--preset='resnet5' is not a preset", no such flag.
        (
            {
                "teacher_saved_model": None,
                "teacher_preset": "resnet5",
                "teacher_weights": "TMP",
            },
            "teacher_preset",
            ["--teacher_preset='resnet5' is not a preset. Did you mean"],
        ),
        ({"teacher_preset": "resnet50"}, "teacher_saved_model", ["whole"]),
        # Before: the weights were dropped without a word.
        (
            {"teacher_weights": "/runs/a"},
            "teacher_saved_model",
            ["--teacher_saved_model and --teacher_weights each name a"],
        ),
        ({"teacher_preprocessing": "bad"}, "teacher_preprocessing", ["'bad'"]),
        ({"batch_size": 0}, "batch_size", ["at least 1"]),
        # Before: an empty glob matched the input folder ("holds , whose
        # records carry nothing readable"), a repeat was read once.
        ({"patterns": ()}, "patterns", ["--patterns is empty: give the"]),
        (
            {"patterns": ("validation-*", "", "validation-*")},
            "patterns",
            ["--patterns=validation-*,,validation-* holds an empty name"],
        ),
        (
            {"patterns": ("train-*", "train-*")},
            "patterns",
            ["--patterns=train-*,train-* names train-* more than once."],
        ),
        (
            {
                "teacher_saved_model": None,
                "teacher_preset": "resnet50",
                "teacher_weights": "w.weights.h5",
                "teacher_overrides": {"num_classes": 10},
            },
            "teacher_overrides",
            ["sets num_classes=10: pass it as --teacher_num_classes=10."],
        ),
    ],
)
def test_options_name_their_field(tmp_path, changes, field, words):
    values = {
        "input_dir": str(tmp_path),
        "output_dir": str(tmp_path / "out"),
        "teacher_saved_model": "teacher",
        **changes,
    }
    if values["output_dir"] == "IN":
        values["output_dir"] = values["input_dir"]
    if values.get("teacher_weights") == "TMP":  # weights that exist
        values["teacher_weights"] = str(tmp_path)
    with pytest.raises(OptionError) as error:
        tl.TeacherLogitsOptions(**values).validate()
    assert error.value.field == field
    for word in words:
        assert word in error.value.as_flag(), error.value.as_flag()


@pytest.mark.slow
def test_binary_with_a_bad_teacher_prints_one_error_line(
    labelled_data, tmp_path
):
    """The user's command with a teacher it cannot call: exit code 2, one
    ERROR line naming the flag and the signatures, no traceback, no file."""
    teacher = _bytes_only(tmp_path / "bytes")
    out = tmp_path / "kd"
    result = testing_utils.run_main(
        "tools.extract_teacher_logits",
        f"--input_dir={labelled_data}",
        f"--output_dir={out}",
        f"--teacher_saved_model={teacher}",
        "--teacher_preprocessing=imagenet_32",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"ERROR: --teacher_saved_model={teacher} ")
    assert "`preprocessed`" in errors[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow  # over 2 s on 2 cores
def test_unreadable_records_are_counted_named_and_kept_on_rerun(
    tmp_path, capsys
):
    """Before: the left-out records were never named, a rerun (keeping the
    finished shards) wrote 'skipped: 0', a cut-off shard was a
    DataLossError traceback, and a split of unreadable records a 0-byte
    shard with exit 0."""
    data = _write_data(tmp_path / "in")
    train = os.path.join(data, SHARDS[0])
    good = [e.SerializeToString() for e in _examples(train)]
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 48))
    bad = [
        schema.make_example(data_, 0, 40, 48, filename=f"bad{i}.jpg")
        for i, data_ in enumerate([b"not an image", jpeg[:200]])
    ]
    with tf.io.TFRecordWriter(train) as writer:
        for record in good[:4] + [b.SerializeToString() for b in bad]:
            writer.write(record)
        # No tf.train.Example at all (before: a DecodeError traceback,
        # after the shard was moved into place).
        writer.write(b"not an example")
        for record in good[4:]:
            writer.write(record)
    out = tmp_path / "kd"
    _, options = _preset_teacher(tmp_path, data, out)
    summary = tl.extract_teacher_logits(options)
    assert summary["splits"]["train"] == {
        "images": 9,
        "shards": 1,
        "skipped": 3,
        "num_logits": CLASSES,
    }
    left_out = ["bad0.jpg", "bad1.jpg", "record 6 (not a tf.train.Example)"]
    assert (
        f"WARNING: {SHARDS[0]}: 3 of 12 records left out (their image is "
        "not one the input pipelines read, or does not decode): "
        f"{', '.join(left_out)}." in capsys.readouterr().err.splitlines()
    )
    written = json.loads((tmp_path / "kd" / metadata.SUMMARY).read_text())
    assert written["shards"][SHARDS[0]]["left_out"] == left_out
    # A rerun keeps the shards and their counts (from summary.json, or
    # extract_progress.json after an interrupted run; else read again).
    assert not (out / metadata.EXTRACT_PROGRESS).exists()
    assert tl.extract_teacher_logits(options)["skipped_records"] == 3
    os.remove(out / metadata.SUMMARY)
    assert tl.extract_teacher_logits(options)["skipped_records"] == 3
    # A cut-off input shard: one line naming it.
    data_bytes = open(train, "rb").read()
    with open(train, "wb") as f:
        f.write(data_bytes[:-10])
    cut = dataclasses.replace(options, output_dir=str(tmp_path / "cut"))
    with pytest.raises(ValueError) as error:
        tl.extract_teacher_logits(cut)
    assert str(error.value).startswith(
        f"{train} is cut off or corrupt (after 11 readable records)."
    )
    # ... also where fewer bytes than a record header are left: TensorFlow
    # reads them as the end (before: 0 records kept from an 11-byte shard,
    # the split's images gone without a word).
    for left in (data_bytes[:11], b"hello"):
        with open(train, "wb") as f:
            f.write(left)
        with pytest.raises(ValueError) as error:
            tl.extract_teacher_logits(cut)
        assert str(error.value).startswith(
            f"{train} is cut off or corrupt (after 0 readable records)."
        )
    # A split without one readable image is refused, not left as a 0-byte
    # shard.
    testing_utils.write_records(train, bad)
    with pytest.raises(ValueError) as error:
        tl.extract_teacher_logits(
            dataclasses.replace(cut, output_dir=str(tmp_path / "none"))
        )
    assert str(error.value) == (
        f"No record of the train shards in {data} has an image that decodes "
        "(2 left out): rebuild them with `python -m "
        "tools.build_imagenet_tfrecords`."
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_a_rerun_keeps_only_shards_of_the_same_teacher(tmp_path):
    """A rerun kept any shard of the name: those of other teacher weights
    (the summary then named this teacher), or the input's own shards
    without logits (exit 0, num_logits in summary.json, none in the
    records); two inputs of one file name wrote one shard, the other
    dropped; a link to the input folder was written into."""
    data = _write_data(tmp_path / "in")
    out = tmp_path / "kd"
    _, options = _preset_teacher(tmp_path, data, out)
    first = tl.extract_teacher_logits(options)
    other = build_model("resnet50", num_classes=CLASSES, **TINY)
    weights = str(tmp_path / "other.weights.h5")
    other.save_weights(weights)
    again = dataclasses.replace(options, teacher_weights=weights)
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(again)
    message = error.value.as_flag()
    assert message.startswith(
        f"--output_dir={out} holds shards extracted with other settings "
        f"(teacher.checkpoint '{options.teacher_weights}' -> '{weights}'; "
        "teacher.sha256 '"
    )
    assert message.endswith(
        "pass --overwrite to extract every shard again, or pick another "
        "--output_dir."
    )
    # Other weights behind the same path (a retrained teacher; before:
    # kept the shards of the first, exit 0, two teachers in one folder).
    import hashlib

    digest = hashlib.sha256(open(weights, "rb").read()).hexdigest()
    assert (
        first["teacher"]["sha256"]
        == hashlib.sha256(
            open(options.teacher_weights, "rb").read()
        ).hexdigest()
    )
    os.replace(weights, options.teacher_weights)
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(options)
    assert f"(teacher.sha256 '{first['teacher']['sha256']}' -> '{digest}')" in (
        error.value.as_flag()
    )
    other.save_weights(weights)
    assert not tl.extract_teacher_logits(
        dataclasses.replace(again, overwrite=True)
    )["shards"][SHARDS[0]]["kept"]
    # A kept shard whose first record is damaged is extracted again
    # (before: refused as "not written by this extraction").
    shard = out / SHARDS[0]
    data_bytes = bytearray(shard.read_bytes())
    data_bytes[20] ^= 0xFF
    shard.write_bytes(bytes(data_bytes))
    summary = tl.extract_teacher_logits(again)
    assert not summary["shards"][SHARDS[0]]["kept"]
    assert summary["shards"][SHARDS[1]]["kept"]
    # The input's shards in the output folder (no record of a run).
    copied = tmp_path / "copied"
    os.makedirs(copied)
    for shard in SHARDS:
        with open(os.path.join(data, shard), "rb") as f:
            (copied / shard).write_bytes(f.read())
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(
            dataclasses.replace(options, output_dir=str(copied))
        )
    assert error.value.as_flag() == (
        f"--output_dir={copied} holds {SHARDS[0]}, whose records carry no "
        f"teacher logits (this teacher writes {CLASSES}): it was not written "
        "by this extraction. Pass --overwrite to extract it again, or pick "
        "another --output_dir."
    )
    # A file that is not TFRecords under a shard's name, in a folder no
    # extraction wrote: refused, not overwritten.
    texty = tmp_path / "texty"
    os.makedirs(texty)
    (texty / SHARDS[0]).write_text("my notes")
    with pytest.raises(OptionError, match="carry (nothing readable|no recor)"):
        tl.extract_teacher_logits(
            dataclasses.replace(options, output_dir=str(texty))
        )
    assert (texty / SHARDS[0]).read_text() == "my notes"
    # Two inputs of one name; a link to the input folder.
    nested = tmp_path / "nested"
    for sub in ("a", "b"):
        os.makedirs(nested / sub)
        with open(os.path.join(data, SHARDS[0]), "rb") as f:
            (nested / sub / SHARDS[0]).write_bytes(f.read())
    with pytest.raises(OptionError, match="share a file name"):
        tl.extract_teacher_logits(
            dataclasses.replace(
                options,
                input_dir=str(nested),
                output_dir=str(tmp_path / "n_out"),
                patterns=("a/train-*", "b/train-*"),
            )
        )
    os.symlink(data, tmp_path / "link")
    with pytest.raises(OptionError, match="must differ from the input"):
        tl.extract_teacher_logits(
            dataclasses.replace(options, output_dir=str(tmp_path / "link"))
        )


def test_a_teacher_of_another_class_count_names_the_flag(
    labelled_data, tmp_path
):
    """Before: Keras' first line, cut at its colon, naming no flag."""
    _, options = _preset_teacher(tmp_path, labelled_data, tmp_path / "kd")
    wrong = dataclasses.replace(options, teacher_num_classes=1001)
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(wrong)
    assert error.value.as_flag() == (
        f"--teacher_weights={options.teacher_weights} cannot be loaded into "
        "resnet50 with --teacher_num_classes=1001 (head_dense/kernel has "
        "shape (256, 1001) in the model and (256, 3) in the file): pass the "
        "preset, --teacher_overrides and --teacher_num_classes it was "
        "trained with."
    )
    assert not (tmp_path / "kd").exists()


def test_a_run_folders_teacher_is_identified_by_its_latest_checkpoint(
    tmp_path,
):
    """A run folder names its latest checkpoint, whose .index (a checksum
    of every tensor) is the digest: the run trained on is another
    teacher."""
    import hashlib

    run = tmp_path / "run"
    model = build_model("resnet50", num_classes=CLASSES, **TINY)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(run / "checkpoints"), 3
    )
    manager.save()
    identity = teachers._weights_identity(str(run))
    prefix = str(run / "checkpoints" / "ckpt-1")
    index = open(prefix + ".index", "rb").read()
    assert identity == {
        "checkpoint": prefix,
        "sha256": hashlib.sha256(index).hexdigest(),
    }
    # The same weights saved by another run: the same digest; other
    # weights under the same checkpoint number: another.
    twin = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(tmp_path / "twin"), 3
    )
    twin.save()
    assert (
        teachers._weights_identity(str(tmp_path / "twin"))["sha256"]
        == (identity["sha256"])
    )
    head = model.get_layer("head_dense")
    head.kernel.assign(head.kernel + 1.0)
    changed = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(tmp_path / "changed"), 3
    )
    changed.save()
    later = teachers._weights_identity(str(tmp_path / "changed"))
    assert later["checkpoint"].endswith("ckpt-1")
    assert later["sha256"] != identity["sha256"]


@pytest.mark.slow  # over 2 s on 2 cores
def test_runs_of_other_patterns_add_up_in_one_summary(tmp_path, labelled_data):
    """Before: summary.json held the last run's shards only, so train
    (which counts from it) ran epochs of the last pattern's records; and a
    second teacher extracting other shards into the folder was not
    refused."""
    from assemble_tf.runs import inputs

    out = tmp_path / "kd"
    _, options = _preset_teacher(tmp_path, labelled_data, out)
    train_only = dataclasses.replace(options, patterns=("train-*",))
    assert list(tl.extract_teacher_logits(train_only)["splits"]) == ["train"]
    summary = tl.extract_teacher_logits(
        dataclasses.replace(options, patterns=("validation-*",))
    )
    assert summary["splits"]["train"]["images"] == 9
    assert summary["splits"]["validation"]["images"] == 4
    inputs_ = [
        teacher_shards.input_identity(os.path.join(labelled_data, n))
        for n in SHARDS
    ]
    assert summary["shards"] == {
        SHARDS[0]: {
            "records": 9,
            "skipped": 0,
            "kept": True,
            "input": inputs_[0],
        },
        SHARDS[1]: {
            "records": 4,
            "skipped": 0,
            "kept": False,
            "input": inputs_[1],
        },
    }
    assert inputs.count_examples(str(out), "train", "train-*") == 9
    # Another teacher for the validation shard alone: the train shard
    # would keep the first teacher's logits. Refused, even overwriting.
    other = build_model("resnet50", num_classes=CLASSES, **TINY)
    weights = str(tmp_path / "other.weights.h5")
    other.save_weights(weights)
    for overwrite in (False, True):
        with pytest.raises(OptionError) as error:
            tl.extract_teacher_logits(
                dataclasses.replace(
                    options,
                    patterns=("validation-*",),
                    teacher_weights=weights,
                    overwrite=overwrite,
                )
            )
        message = error.value.as_flag()
        assert message.startswith(
            f"--output_dir={out} holds {SHARDS[0]} of other settings "
            "(teacher.checkpoint "
        )
        assert message.endswith(
            "which --patterns does not cover: the folder would hold logits "
            "of both. Extract those too (widen --patterns, with "
            "--overwrite), or pick another --output_dir."
        )
    # Every shard again with the other teacher: fine.
    redone = tl.extract_teacher_logits(
        dataclasses.replace(options, teacher_weights=weights, overwrite=True)
    )
    assert redone["teacher"]["checkpoint"] == weights
    assert not any(s["kept"] for s in redone["shards"].values())


@pytest.mark.slow  # over 2 s on 2 cores
def test_a_training_run_is_a_teacher_without_its_preset(
    labelled_data, exported, tmp_path
):
    """`--teacher_weights=<model_dir>` alone: the run's config.json builds
    the model (before: the preset, its overrides and classes had to be
    given again, and a mismatch was refused). A SavedModel given as
    weights names --teacher_saved_model (before: "pass the preset ... it
    was trained with")."""
    from assemble_tf import config as config_lib
    from assemble_tf.runs.models import build_run_model

    run = tmp_path / "run"
    config = config_lib.make_config(
        str(run),
        "resnet50",
        {
            "model": {**TINY, "block_sizes": "1,1,1,1"},
            "data": {
                "data_dir": labelled_data,
                "image_size": 32,
                "eval_preprocessing": "imagenet_32",
            },
        },
    )
    config.to_json(str(run / "config.json"))
    model = build_run_model(config)
    testing_utils.randomize_bn(model, seed=3)
    tf.train.Checkpoint(model=model).save(str(run / "checkpoints" / "ckpt"))
    out = tmp_path / "kd"
    # The run's own eval preprocessing by default (before: imagenet's
    # 224-px crops for this 32-px run).
    summary = tl.extract_teacher_logits(
        _options(
            labelled_data,
            out,
            teacher_weights=str(run),
            teacher_preprocessing=None,
        )
    )
    assert summary["teacher"]["preprocessing"] == "imagenet_32"
    assert summary["teacher"]["run"] == str(run)
    assert summary["teacher"]["preset"] == "resnet50"
    assert summary["teacher"]["checkpoint"].endswith("ckpt-1")
    src = _examples(os.path.join(labelled_data, SHARDS[1]))
    want = model(_crops(src), training=False).numpy()
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(
        _logits(_examples(out / SHARDS[1])), want, atol=1e-4
    )
    with pytest.raises(OptionError) as error:
        tl.TeacherLogitsOptions(
            input_dir=labelled_data,
            output_dir=str(out),
            teacher_weights=str(run),
            teacher_overrides={"base_width": 16},
        ).validate()
    assert error.value.as_flag() == (
        "--teacher_overrides builds a --teacher_preset; the run "
        f"--teacher_weights={run} is built from its config.json: leave "
        "--teacher_overrides out."
    )
    # A preset beside the run folder (before: built, and the run's
    # checkpoint did not fit it: "1001 classes, 180 variables missing").
    with pytest.raises(OptionError) as error:
        _options(
            labelled_data,
            out,
            teacher_weights=str(run),
            teacher_preset="resnet50",
        ).validate()
    assert error.value.as_flag() == (
        f"--teacher_weights={run} is a training run, built from its "
        "config.json: leave --teacher_preset out."
    )
    # A preset with the run's checkpoint prefix and another class count:
    # named (before: the warm start's advice, cut short mid-sentence).
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(
            _options(
                labelled_data,
                tmp_path / "kd4",
                teacher_weights=str(run / "checkpoints" / "ckpt-1"),
                teacher_preset="resnet50",
                teacher_overrides={**TINY, "block_sizes": (1, 1, 1, 1)},
                teacher_num_classes=4,
            )
        )
    assert error.value.as_flag() == (
        "--teacher_num_classes=4 does not fit the head of --teacher_weights="
        f"{run / 'checkpoints' / 'ckpt-1'} (head_dense/kernel (256, 3) vs "
        "(256, 4), head_dense/bias (3,) vs (4,)): pass the class count the "
        "weights were trained with."
    )
    with pytest.raises(OptionError) as error:  # before: ignored
        _options(
            labelled_data, out, teacher_weights=str(run), teacher_num_classes=4
        ).validate()
    assert error.value.as_flag().startswith(
        "--teacher_num_classes builds a --teacher_preset; the run"
    )
    with pytest.raises(OptionError) as error:
        _options(
            labelled_data, out, teacher_weights=str(tmp_path / "nope")
        ).validate()
    assert error.value.as_flag() == (  # before: "--teacher_preset is required"
        f"--teacher_weights={tmp_path / 'nope'} does not exist: a "
        ".weights.h5 file, a checkpoint prefix or a training run's model_dir."
    )
    # The same checkpoint named by its prefix is the same teacher: every
    # shard is kept (before: refused, "teacher.run '<run>' -> '<prefix>'").
    prefix = str(run / "checkpoints" / "ckpt-1")
    again = tl.extract_teacher_logits(
        _options(
            labelled_data,
            out,
            teacher_weights=prefix,
            teacher_preprocessing=None,
        )
    )
    assert all(shard["kept"] for shard in again["shards"].values())
    assert again["teacher"] == summary["teacher"]
    _, path = exported
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(
            _options(
                labelled_data,
                tmp_path / "kd2",
                teacher_preset="resnet50",
                teacher_weights=path,
            )
        )
    assert error.value.as_flag() == (
        f"--teacher_weights={path} is a SavedModel: pass it as "
        f"--teacher_saved_model={path}, without --teacher_preset."
    )
    # The same without a preset (before: "--teacher_preset is required
    # with teacher_weights"), and a folder that is neither.
    for weights, start in (
        (path, f"--teacher_weights={path} is a SavedModel: pass it as"),
        (
            str(tmp_path),
            f"--teacher_weights={tmp_path} is a folder, but neither a "
            "training run (no config.json) nor a SavedModel",
        ),
    ):
        with pytest.raises(OptionError) as error:
            _options(
                labelled_data, tmp_path / "kd3", teacher_weights=weights
            ).validate()
        assert error.value.as_flag().startswith(start), error.value.as_flag()


def test_binary_names_its_own_flags_and_a_file_in_the_way(
    labelled_data, tmp_path
):
    """Before: a preset typo was reported as --preset (no such flag), and
    an --output_dir that is a file as a bare "[Errno 17] File exists"
    once the teacher had loaded."""
    weights = tmp_path / "t.weights.h5"
    weights.write_bytes(b"")
    args = [
        f"--input_dir={labelled_data}",
        f"--teacher_weights={weights}",
        "--teacher_preprocessing=imagenet_32",
    ]
    result = testing_utils.run_main(
        "tools.extract_teacher_logits",
        *args,
        f"--output_dir={tmp_path / 'kd'}",
        "--teacher_preset=resnet5",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ERROR: --teacher_preset='resnet5' is not")
    (tmp_path / "file").write_text("x")
    result = testing_utils.run_main(
        "tools.extract_teacher_logits",
        *args,
        f"--output_dir={tmp_path / 'file'}",
        "--teacher_preset=resnet50",
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"ERROR: --output_dir={tmp_path / 'file'} cannot be created: "
        f"{tmp_path / 'file'} is a file, not a folder.\n"
    )
    # A missing input folder (before: "has no shards matching train-*,
    # validation-*"); --noprogress is a flag here too.
    result = testing_utils.run_main(
        "tools.extract_teacher_logits",
        f"--input_dir={tmp_path / 'nowhere'}",
        f"--teacher_weights={weights}",
        f"--output_dir={tmp_path / 'kd'}",
        "--teacher_preset=resnet50",
        "--noprogress",
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"ERROR: --input_dir={tmp_path / 'nowhere'} is not a folder: point "
        "it at the folder of the TFRecord shards.\n"
    )


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_an_interrupted_overwrite_leaves_no_shard_of_the_old_teacher(
    labelled_data, tmp_path, monkeypatch
):
    """Teacher A extracts both shards; B, with --overwrite, redoes train and
    is stopped before validation. Before: the progress file listed A's
    validation shard as B's, and a rerun kept it (summary.json: teacher
    B). Now a rerun that covers it extracts it again, one that does not
    is refused."""

    def teacher(value, fail_on=None):
        calls = []

        def call(images):
            calls.append(len(images))
            if fail_on is not None and len(calls) == fail_on:
                raise RuntimeError("stopped")
            return tf.fill([len(images), CLASSES], float(value))

        return teachers.Teacher(
            call, CLASSES, {"name": value, "sha256": str(value)}
        )

    out = tmp_path / "kd"
    options = _options(labelled_data, out, teacher_saved_model="unused")
    monkeypatch.setattr(teachers, "load_teacher", lambda o: teacher(1))
    tl.extract_teacher_logits(options)
    # 3 batches of train, then validation's first: stopped.
    monkeypatch.setattr(
        teachers, "load_teacher", lambda o: teacher(2, fail_on=4)
    )
    with pytest.raises(RuntimeError, match="stopped"):
        tl.extract_teacher_logits(dataclasses.replace(options, overwrite=True))
    assert _logits(_examples(out / SHARDS[0])).max() == 2.0
    assert _logits(_examples(out / SHARDS[1])).max() == 1.0  # still A's
    # Training refuses the folder, whose summary.json is gone (before: it
    # named teacher A over shards of both, and training went on).
    assert not (out / metadata.SUMMARY).exists()
    from assemble_tf.data import checks

    config = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {"data": {"data_dir": str(out), "num_classes": CLASSES}},
    )
    progress = out / metadata.EXTRACT_PROGRESS
    refusal = (
        f"{progress} says a `python -m tools.extract_teacher_logits` "
        "run into this folder did not finish (its shards may hold the "
        "logits of two teachers, or none): rerun that command to finish it."
    )
    with pytest.raises(ValueError) as error:
        checks.check_training_data(config)
    assert str(error.value) == refusal
    # Also before a shard it had not written yet is missed (before: "No
    # TFRecord files match", with the builder as the fix).
    validation = out / SHARDS[1]
    kept = validation.read_bytes()
    validation.unlink()
    with pytest.raises(ValueError) as error:
        checks.check_training_data(config)
    assert str(error.value) == refusal
    validation.write_bytes(kept)
    monkeypatch.setattr(teachers, "load_teacher", lambda o: teacher(2))
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(
            dataclasses.replace(options, patterns=("train-*",))
        )
    assert error.value.as_flag().startswith(
        f"--output_dir={out} holds {SHARDS[1]}, which no record lists as "
        "written with these settings and which --patterns does not cover"
    )
    summary = tl.extract_teacher_logits(
        dataclasses.replace(options, patterns=("validation-*",))
    )
    assert _logits(_examples(out / SHARDS[1])).max() == 2.0  # extracted
    assert summary["shards"][SHARDS[1]]["kept"] is False
    assert summary["shards"][SHARDS[0]]["kept"] is True
    assert summary["teacher"]["name"] == 2


@pytest.mark.slow  # over 2 s on 2 cores
def test_runs_of_other_patterns_keep_the_class_names(tmp_path):
    """Input without labels.txt: the names come from the records each run
    reads. Before: a validation-only run holding class 0 alone blanked the
    names the train run had found."""
    data = _write_data(tmp_path / "in", with_metadata=False)
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 48))
    testing_utils.write_records(
        os.path.join(data, SHARDS[1]),
        [
            schema.make_example(
                jpeg, 0, 40, 48, filename="v.jpg", synset="n00", text="class 0"
            )
        ],
    )
    out = tmp_path / "kd"
    _, options = _preset_teacher(tmp_path, data, out)
    tl.extract_teacher_logits(
        dataclasses.replace(options, patterns=("train-*",))
    )
    tl.extract_teacher_logits(
        dataclasses.replace(options, patterns=("validation-*",))
    )
    assert metadata.read_labels(str(out / metadata.LABELS)) == [
        (c, f"n0{c}", f"class {c}") for c in range(CLASSES)
    ]


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_shards_of_a_rebuilt_input_are_not_kept(tmp_path):
    """Before: a dataset rebuilt with 2 train shards instead of 1 kept the
    old output shard beside the new ones (summary.json: every train image
    twice, and train read them so), also with --overwrite; and an input
    shard rewritten under its own name kept its old logits and count."""
    data = _write_data(tmp_path / "data")
    out = tmp_path / "kd"
    _, options = _preset_teacher(tmp_path, data, out)
    tl.extract_teacher_logits(options)
    # The same images, rebuilt into two train shards.
    old = os.path.join(data, SHARDS[0])
    records = [r.numpy() for r in tf.data.TFRecordDataset(old)]
    os.remove(old)
    halves = ("train-00000-of-00002", "train-00001-of-00002")
    for name, part in zip(halves, (records[:5], records[5:]), strict=True):
        with tf.io.TFRecordWriter(os.path.join(data, name)) as writer:
            for record in part:
                writer.write(record)
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(options)
    assert error.value.as_flag() == (
        f"--output_dir={out} holds shards extracted from input shards that "
        f"are gone or have changed since: {SHARDS[0]} (its input shard is "
        "gone). Pass --overwrite to remove them (and extract what "
        "--patterns matches), or pick another --output_dir."
    )
    summary = tl.extract_teacher_logits(
        dataclasses.replace(options, overwrite=True)
    )
    assert sorted(summary["shards"]) == sorted(halves + SHARDS[1:])
    assert summary["splits"]["train"] == {
        "images": 9,
        "shards": 2,
        "skipped": 0,
        "num_logits": CLASSES,
    }
    assert not (out / SHARDS[0]).exists()
    # A validation shard rewritten under its name with other records: its
    # logits are extracted again, not kept (before: 4 images kept).
    val = os.path.join(data, SHARDS[1])
    with tf.io.TFRecordWriter(val) as writer:
        for record in records[:7]:
            writer.write(record)
    os.utime(val, ns=(1, 1))
    rerun = tl.extract_teacher_logits(options)
    assert rerun["shards"][SHARDS[1]]["records"] == 7
    assert not rerun["shards"][SHARDS[1]]["kept"]
    assert all(rerun["shards"][n]["kept"] for n in halves)
    assert len(_examples(out / SHARDS[1])) == 7


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_a_second_run_into_the_folder_is_refused(
    labelled_data, tmp_path, monkeypatch
):
    """Two extractions into one folder at once: the second is refused,
    naming the first (before: both wrote, one's shards stayed under the
    other's summary.json, exit 0). A lock a killed run left is taken
    over."""
    import socket

    def teacher(options):
        return teachers.Teacher(
            lambda images: tf.ones([len(images), CLASSES]),
            CLASSES,
            {"name": "t", "sha256": "1"},
        )

    monkeypatch.setattr(teachers, "load_teacher", teacher)
    out = tmp_path / "kd"
    out.mkdir()
    lock = out / ".lock"
    holder = f"{os.getppid()}@{socket.gethostname()}"  # a live process
    lock.write_text(holder)
    options = _options(labelled_data, out, teacher_saved_model="unused")
    with pytest.raises(OptionError) as error:
        tl.extract_teacher_logits(options)
    assert error.value.as_flag() == (
        f"--output_dir={out} is being written by another job (process "
        f"{holder}): wait for it "
        "to end, or pick another --output_dir. If that process is gone, "
        f"delete {lock}."
    )
    assert sorted(os.listdir(out)) == [".lock"]  # untouched
    lock.write_text(f"999999999@{socket.gethostname()}")  # a dead one's
    assert len(tl.extract_teacher_logits(options)["shards"]) == 2
    assert sorted(os.listdir(out)) == sorted(
        [*SHARDS, metadata.LABELS, metadata.SUMMARY]
    )


def test_an_unknown_teacher_preprocessing_names_its_flag():
    """Before: "... `preprocessing_type` must be one of ... Received:
    `preprocessing_type`='bogus'", an option the binary has not."""
    import types

    from assemble_tf.training import teachers
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError) as error:
        teachers.crop_size(types.SimpleNamespace(teacher_preprocessing="bogus"))
    assert error.value.as_flag().startswith("--teacher_preprocessing must ")
    assert error.value.as_flag().endswith(
        "Received: --teacher_preprocessing='bogus'"
    )
    assert "preprocessing_type" not in error.value.as_flag()
    options = types.SimpleNamespace(teacher_preprocessing="imagenet_64")
    assert teachers.crop_size(options) == 64
