"""`data.checks.check_training_data`: records that cannot feed the run are
refused before training, naming the option to change (the field for a
library user, the flag through `as_flag()` for a binary's)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

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


def _eval_input(pattern):
    """An evaluation pipeline's config over the shards of `pattern`."""
    from assemble_tf.data import input_pipeline

    return input_pipeline.InputConfig(
        file_pattern=str(pattern),
        is_training=False,
        batch_size=2,
        num_classes=3,
        preprocessing_type="imagenet_32",
    )


def test_records_that_fit_pass_and_report_what_was_read(tmp_path):
    _write(tmp_path, [0, 1, 2, 3], logits=[0.5] * 4)
    samples = checks.check_training_data(_config(tmp_path, 4, 1.0))
    assert samples["train"].records == samples["validation"].records == 4
    assert samples["train"].logit_sizes == {4: 4}
    assert (samples["train"].min_label, samples["train"].max_label) == (0, 3)


def test_use_bboxes_on_records_without_boxes_is_refused(tmp_path):
    """Before: taken, and every crop sampled from the whole image."""
    _write(tmp_path, [0, 1, 2])
    config = _config(tmp_path, 3)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, use_bboxes=True)
    )
    with pytest.raises(DataError) as error:
        checks.check_training_data(config)
    assert error.value.as_flag() == (
        f"None of the first 3 records of {tmp_path}/train-* holds a "
        "bounding box (image/object/bbox/*), so --use_bboxes would sample "
        "every crop from the whole image: leave --use_bboxes out, or "
        "rebuild the records with `python -m tools.build_imagenet_tfrecords "
        "--bbox_csv=...`."
    )
    jpeg = testing_utils.jpeg_bytes(np.full((8, 8, 3), 9))
    boxed = schema.make_example(jpeg, 1, 8, 8, bboxes=[(0.1, 0.2, 0.5, 0.9)])
    testing_utils.write_records(tmp_path / "train-00000-of-00001", [boxed])
    assert checks.check_training_data(config)["train"].boxed == 1


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


def test_a_split_whose_images_look_whole_but_none_decodes_is_refused(
    tmp_path,
):
    """JPEG markers around bytes that do not decode (12-bit or lossless
    JPEGs of another converter, damaged data): refused before training
    (before: the pipeline dropped each as it failed, and training read
    on forever, deaf to SIGTERM). One such image among good ones passes:
    the pipeline drops and counts it."""
    _write(tmp_path, [0, 1, 2])
    train = tmp_path / "train-00000-of-00001"
    bad = [
        schema.make_example(b"\xff\xd8garbage\xff\xd9", label, 8, 8)
        for label in (0, 1, 2)
    ]
    testing_utils.write_records(train, bad)
    sample = checks.sample_records(str(train))
    assert (sample.images, sample.decode_tries, sample.decoded) == (3, 3, 0)
    with pytest.raises(DataError) as error:
        checks.check_training_data(_config(tmp_path, 3))
    assert str(error.value).startswith(
        f"None of the first 3 images of {tmp_path}/train-* decodes, though "
        "each looks "
        "like a whole JPEG, PNG, GIF or BMP"
    )
    good = schema.make_example(
        testing_utils.jpeg_bytes(np.full((8, 8, 3), 9)), 1, 8, 8
    )
    testing_utils.write_records(train, bad[:2] + [good] * 9)
    sample = checks.sample_records(str(train))
    assert (sample.decode_tries, sample.decoded) == (8, 6)
    checks.check_training_data(_config(tmp_path, 3))


def test_records_that_are_not_examples_and_cut_off_shards(tmp_path):
    """The check reads the first records with tf.io.parse_example: a
    record that is not an Example (the pipeline skips and counts it) and a
    cut-off shard were tracebacks before any training."""
    import tensorflow as tf

    _write(tmp_path, [0, 1, 2, 1])
    train = tmp_path / "train-00000-of-00001"
    good = [r.numpy() for r in tf.data.TFRecordDataset(str(train))]
    # A bare JPEG written as a record too: TensorFlow's parse error quotes
    # its bytes, which are not UTF-8 (before: "'utf-8' codec can't decode
    # byte 0xff", naming nothing).
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(8, 8))
    with tf.io.TFRecordWriter(str(train)) as writer:
        for record in good[:2] + [b"not an Example", jpeg] + good[2:]:
            writer.write(record)
    sample = checks.sample_records(str(train))
    assert (sample.records, sample.images, sample.unparsed) == (6, 4, 2)
    assert (sample.min_label, sample.max_label) == (0, 2)
    checks.check_training_data(_config(tmp_path, 3))
    data = train.read_bytes()
    train.write_bytes(data[:-10])
    with pytest.raises(ValueError) as error:
        checks.check_training_data(_config(tmp_path, 3))
    # Read in batches of 256, it said "after 0" of the 5 before the cut.
    assert str(error.value).startswith(
        f"{train} is cut off or corrupt (after 5 readable records)."
    )


def test_a_cut_shard_past_the_sample_is_named_by_the_count(tmp_path):
    """Without summary.json training counts its records: a cut-off shard
    past the records the up-front check samples was a DataLossError
    traceback naming no file (before: "truncated record at 69523 ...
    [Op:IteratorGetNext]")."""
    from assemble_tf.runs import inputs

    _write(tmp_path, [0, 1, 2, 1])
    first = tmp_path / "train-00000-of-00002"
    (tmp_path / "train-00000-of-00001").rename(first)
    cut = tmp_path / "train-00001-of-00002"
    cut.write_bytes(first.read_bytes()[:-10])
    checks.check_training_data(_config(tmp_path, 3), limit=4)  # 1st only
    with pytest.raises(ValueError) as error:
        inputs.count_examples(str(tmp_path), "train", "train-*")
    assert str(error.value) == (
        f"{cut} is cut off or corrupt (after 3 readable records). Rebuild "
        "it with `python -m tools.build_imagenet_tfrecords`, or leave it "
        "out of the input."
    )
    cut.write_bytes(first.read_bytes())
    assert inputs.count_examples(str(tmp_path), "train", "train-*") == 8


def test_a_shard_cut_after_the_build_is_refused_by_its_size(tmp_path):
    """The builder records each shard's size (.build_state/): a shard cut
    off since (a partial copy) is refused by the up-front check and by
    every pipeline, where the reader stopped at the cut and the records
    after it were lost without a word (tools.evaluate counted 14 of 26)."""
    import json

    from assemble_tf.data import input_pipeline, metadata

    _write(tmp_path, [0, 1, 2, 1])
    shard = tmp_path / "validation-00000-of-00001"
    size = shard.stat().st_size
    (tmp_path / metadata.STATE_DIR).mkdir()
    (
        tmp_path / metadata.STATE_DIR / "validation-00003-of-00009.json"
    ).write_text(json.dumps({"file": shard.name, "bytes": size, "images": 4}))
    checks.check_training_data(_config(tmp_path, 3))
    shard.write_bytes(shard.read_bytes()[: size - 10])
    want = (
        f"{shard} has {size - 10:,} bytes and the build wrote {size:,} "
        f"({tmp_path}/.build_state/): it is cut off or was changed since. "
        "Copy it again, or rebuild it with `python -m "
        "tools.build_imagenet_tfrecords` (the rerun rewrites that shard)."
    )
    with pytest.raises(DataError) as error:
        checks.check_training_data(_config(tmp_path, 3))
    assert str(error.value) == want
    with pytest.raises(DataError) as error:
        input_pipeline.build_dataset(_eval_input(tmp_path / "validation-*"))
    assert str(error.value) == want


def test_an_evaluation_short_of_the_listed_images_names_the_cut_shard(
    tmp_path, capsys
):
    """Without the build's state (a copy of the visible files), a cut-off
    validation shard is found by the count: an evaluation that read fewer
    records than summary.json lists reads the shards through and names the
    cut one (tools.evaluate refuses); fewer records without a damaged shard
    (one removed) is a warning."""
    import json

    from assemble_tf.evaluation import run as eval_run
    from assemble_tf.runs import inputs

    _write(tmp_path, [0, 1, 2, 1])
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"splits": {"validation": {"images": 4}}}))
    config = _config(tmp_path, 3)
    assert inputs.validation_shortfall(config, 4) is None
    shard = tmp_path / "validation-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:-10])
    message, cut_off = inputs.validation_shortfall(config, 3)
    assert cut_off and message == (
        f"{shard} is cut off or corrupt (after 3 readable records): the "
        f"evaluation read 3 of the 4 validation images {summary} lists. "
        "Copy it again, or rebuild it with `python -m "
        "tools.build_imagenet_tfrecords`."
    )

    class Fake:  # an Evaluator that read the 3 records before the cut
        def dataset(self, input_config, stats):
            return None

        def evaluate(self, dataset, bar, stats):
            return {"count": 3, "skipped": 0}

    with pytest.raises(DataError) as error:
        eval_run.run_evaluation(Fake(), config, progress=False)
    assert str(error.value) == message
    shard.unlink()
    testing_utils.write_records(tmp_path / "validation-00001-of-00002", [])
    assert eval_run.run_evaluation(Fake(), config, progress=False)
    assert capsys.readouterr().err == (
        f"WARNING: the validation shards ({tmp_path}/validation-*) hold 3 "
        f"records and {summary} lists 4 images (shards missing?): the "
        "metrics count the 3.\n"
    )
    # Training's evaluation warns once per run (it does not stop a run).
    import types

    from assemble_tf.training import trainer as trainer_lib

    logged = []
    trainer = types.SimpleNamespace(
        config=config, log=logged.append, _validation_counted=False
    )
    for _ in range(2):
        trainer_lib.Trainer._check_evaluation(
            trainer, {"count": 2, "skipped": 1}
        )
    assert logged == [
        f"WARNING: the validation shards ({tmp_path}/validation-*) hold 3 "
        f"records and {summary} lists 4 images (shards missing?): the "
        "metrics count the 3."
    ]


def test_a_hand_edited_labels_file_is_refused_naming_it(tmp_path):
    """labels.txt names each logit (class_names.txt, the export, teacher
    logits): a label or class listed twice, or a line removed, were
    trusted (a duplicate named the wrong class; a gap made a class
    "unused_3")."""
    from assemble_tf.data import metadata
    from assemble_tf.robustness import evaluation

    path = tmp_path / "labels.txt"
    fix = (
        "Restore it from the build (tools.build_imagenet_tfrecords writes "
        "one line per class, labels in a row)."
    )
    for text, problem in (
        ("0\tcat\t\n1\tdog\t\n1\towl\t\n", "label 1 twice (entries 2 and 3)"),
        (
            "0\tcat\t\n1\tdog\t\n2\tcat\t\n",
            "class 'cat' twice (entries 1 and 3)",
        ),
        ("1\ta\t\n2\tb\t\n4\td\t\n7\tg\t\n", "labels 1..7 without 3, 5, 6"),
    ):
        path.write_text(text)
        with pytest.raises(metadata.LabelsFileError) as error:
            metadata.read_labels(str(path))
        assert str(error.value) == f"{path} lists {problem}. {fix}"
        # Not taken for a synsets list by eval_robustness either.
        with pytest.raises(metadata.LabelsFileError):
            evaluation.read_label_map(str(path))
    path.write_text("0\tcat\t\n1\t\t\n2\t\t\n")  # unnamed classes: fine
    assert len(metadata.read_labels(str(path))) == 3
    # A line removed at the end: the count of summary.json disagrees.
    path.write_text("0\tcat\t\n1\tdog\t\n")
    (tmp_path / "summary.json").write_text('{"num_classes": 3}')
    with pytest.raises(metadata.LabelsFileError) as error:
        metadata.dataset_info(str(tmp_path))
    assert str(error.value) == (
        f"{path} lists 2 classes and {tmp_path / 'summary.json'} 3: one of "
        "them was edited. Restore it from the build "
        "(tools.build_imagenet_tfrecords writes both)."
    )


def test_a_missing_shard_of_a_numbered_set_is_named(tmp_path):
    """Before: a copy without summary.json and build state that lost
    validation-00001-of-00002 was evaluated on the other half, without a
    word. A pattern that picks shards on purpose is not checked."""
    from assemble_tf.data.input_pipeline import DataError

    files = [str(tmp_path / f"validation-{i:05d}-of-00004") for i in (0, 2)]
    pattern = str(tmp_path / "validation-*")
    with pytest.raises(DataError) as e:
        checks.check_shard_set(files, pattern)
    assert str(e.value) == (
        f"{pattern} matches 2 of the 4 shards validation-*-of-00004 in "
        f"{tmp_path}: validation-00001-of-00004, validation-00003-of-00004 "
        "missing. Copy them too, or rebuild with `python -m "
        "tools.build_imagenet_tfrecords`; to read only some shards, name "
        "them in the pattern (e.g. validation-00000-*)."
    )
    checks.check_shard_set(files, str(tmp_path / "validation-0000[02]-*"))
    whole = [str(tmp_path / f"train-{i:05d}-of-00002") for i in (0, 1)]
    checks.check_shard_set(whole, str(tmp_path / "train-*"))


def test_a_copy_of_a_shard_is_refused_not_read_twice(tmp_path):
    """Before: `train-00000-of-00001 copy` and `validation-...-of-00001.bak`
    were read as more shards (tools.train counted 128 of 64 images,
    tools.evaluate 32 of 16 though summary.json listed 16), without a
    word. Shards of two builds are refused too; names of another scheme
    (none NAME-NNNNN-of-NNNNN) are all shards, as before."""
    import json
    import shutil

    from assemble_tf.data import input_pipeline
    from assemble_tf.runs import inputs

    _write(tmp_path, [0, 1, 2, 1])
    config = _config(tmp_path, 3)
    train = tmp_path / "train-00000-of-00001"
    copy = tmp_path / "train-00000-of-00001 copy"
    shutil.copy(train, copy)
    stray = (
        f"{copy} is not named NAME-NNNNN-of-NNNNN like the other shards "
        f"{tmp_path}/train-* matches (a copy?) and would be read as one "
        "more, its records counted twice: remove or rename it, or give "
    )
    with pytest.raises(DataError) as e:
        checks.check_training_data(config)
    assert e.value.as_flag() == (
        stray + "--train_pattern / --validation_pattern that leaves it out."
    )
    with pytest.raises(DataError) as e:
        inputs.count_examples(str(tmp_path), "train", "train-*")
    assert e.value.as_flag() == stray + "--train_pattern that leaves it out."
    with pytest.raises(DataError) as e:
        inputs.input_config(config, is_training=True)
    assert e.value.as_flag() == stray + "--train_pattern that leaves it out."
    with pytest.raises(DataError) as e:
        input_pipeline.build_dataset(_eval_input(tmp_path / "train-*"))
    assert str(e.value) == stray + "a pattern that leaves it out."
    copy.unlink()
    assert inputs.count_examples(str(tmp_path), "train", "train-*") == 4
    # More records than summary.json lists: a warning naming both.
    (tmp_path / "summary.json").write_text(
        json.dumps({"splits": {"validation": {"images": 4}}})
    )
    assert inputs.validation_shortfall(config, 8) == (
        f"the validation shards ({tmp_path}/validation-*) hold 8 records "
        f"and {tmp_path}/summary.json lists 4 images (a copy of a shard, or "
        "shards of another build?): the metrics count the 8.",
        False,
    )
    # Two whole sets of one prefix: two builds.
    files = [str(tmp_path / "train-00000-of-00001")] + [
        str(tmp_path / f"train-{i:05d}-of-00002") for i in (0, 1)
    ]
    with pytest.raises(DataError) as e:
        checks.check_shard_set(files, str(tmp_path / "train-*"))
    assert str(e.value) == (
        f"{tmp_path}/train-* matches the shards of 2 builds in {tmp_path}: "
        "train-*-of-00001 and train-*-of-00002. Keep one set (remove or "
        "move the others), or name one in the pattern (e.g. "
        "train-*-of-00002)."
    )
    # Another naming scheme: every match is a shard.
    for name in ("mine-a.tfrecord", "mine-b.tfrecord"):
        shutil.copy(train, tmp_path / name)
    assert inputs.count_examples(str(tmp_path), "train", "mine-*") == 8


def test_folders_that_the_pattern_matches_are_not_shards(tmp_path):
    """Before: a `train-old/` folder was a FailedPreconditionError
    traceback ("Is a directory") in tools.train, and `validation-old/`
    was skipped by tools.evaluate: both leave them out now."""
    from assemble_tf.runs import inputs

    _write(tmp_path, [0, 1, 2, 1])
    (tmp_path / "train-old").mkdir()
    (tmp_path / "validation-old").mkdir()
    config = _config(tmp_path, 3)
    samples = checks.check_training_data(config)
    assert samples["train"].files == samples["validation"].files == 1
    assert inputs.count_examples(str(tmp_path), "train", "train-*") == 4
    # The pipelines' files (tools.evaluate's, tools.train's).
    for split in ("train", "validation"):
        assert checks.shard_files(str(tmp_path / f"{split}-*")) == [
            str(tmp_path / f"{split}-00000-of-00001")
        ]
    # A pattern matching folders only matches no shard.
    with pytest.raises(FileNotFoundError) as error:
        checks.sample_records(str(tmp_path / "*-old"))
    assert str(error.value).startswith(
        f"No TFRecord files match '{tmp_path}/*-old'."
    )


def test_read_through_counts_bytes_after_the_last_record(tmp_path):
    """TensorFlow's reader takes fewer bytes than a record header (12) as
    the end of the file: such a tail is a cut, not the end (before: an
    11-byte shard, or a short text file, read as 0 records)."""
    path = str(tmp_path / "records")
    with tf.io.TFRecordWriter(path) as writer:
        for size in (1, 11, 21):
            writer.write(b"x" * size)
    whole = open(path, "rb").read()
    assert len(whole) == 3 * 16 + 33  # length, CRC, data, CRC per record
    assert checks.read_through(path) == (3, None)
    for tail, records in ((whole[:11], 0), (whole + b"hello", 3)):
        with open(path, "wb") as f:
            f.write(tail)
        assert len(list(tf.data.TFRecordDataset(path))) == records
        count, error = checks.read_through(path)
        assert count == records and isinstance(error, tf.errors.DataLossError)
    with open(path, "wb") as f:
        f.write(b"")
    assert checks.read_through(path) == (0, None)  # empty: no records


def _rewritten(path, change):
    """Rewrites the records of `path` as `change(example, index)` makes
    them (a `tf.train.Example` changed in place)."""
    records = [
        tf.train.Example.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(str(path))
    ]
    for i, example in enumerate(records):
        change(example, i)
    testing_utils.write_records(path, records)


def test_records_of_another_schema_are_named_as_such(tmp_path):
    """Before: labels stored as floats were "None of the first 4 records
    holds a whole JPEG" (the images were fine), and records without a
    label read as label -1 ("holds labels -1..2: fix --num_classes")."""
    _write(tmp_path, [0, 1, 2, 1])
    train = tmp_path / "train-00000-of-00001"

    def unlabelled(example, i):
        if i == 1:
            del example.features.feature[schema.LABEL]

    _rewritten(train, unlabelled)
    sample = checks.sample_records(str(train))
    assert (sample.records, sample.unlabelled, sample.unparsed) == (4, 1, 0)
    assert (sample.min_label, sample.max_label) == (0, 2)
    checks.check_training_data(_config(tmp_path, 3))  # the pipeline skips it

    def no_label(example, i):
        example.features.feature.pop(schema.LABEL, None)

    _rewritten(train, no_label)
    with pytest.raises(DataError) as error:
        checks.check_training_data(_config(tmp_path, 3))
    assert str(error.value) == (
        f"None of the first 4 records of {tmp_path}/train-* has a label "
        "(image/class/label, one int64). Rebuild them with `python -m "
        "tools.build_imagenet_tfrecords`."
    )

    def float_label(example, i):
        example.features.feature[schema.LABEL].float_list.value.append(1.0)

    _rewritten(train, float_label)
    sample = checks.sample_records(str(train))
    assert (sample.records, sample.unparsed, sample.images) == (4, 4, 0)
    with pytest.raises(DataError) as error:
        checks.check_training_data(_config(tmp_path, 3))
    assert str(error.value).startswith(
        f"None of the first 4 records of {tmp_path}/train-* is a "
        "tf.train.Example of this project's features (image/encoded: one "
        "bytes value; image/class/label: one int64; image/logit: floats)"
    )


def test_a_few_teacher_logits_of_another_width_are_left_to_the_pipeline(
    tmp_path,
):
    """3 of 4 records carry the head's 3 logits: the other is skipped and
    counted by the pipeline (before: the whole set was refused, "hold [2]
    values", naming only the odd width)."""
    _write(tmp_path, [0, 1, 2, 1], logits=[0.5] * 3)
    train = tmp_path / "train-00000-of-00001"

    def shorter(example, i):
        if i == 2:
            del example.features.feature[schema.LOGIT].float_list.value[2:]

    _rewritten(train, shorter)
    sample = checks.check_training_data(_config(tmp_path, 3, 1.0))["train"]
    assert sample.logit_sizes == {3: 3, 2: 1}
