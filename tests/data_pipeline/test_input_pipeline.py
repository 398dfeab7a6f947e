"""The tf.data pipeline on small TFRecords written here."""

import dataclasses
import threading

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.data import schema
from assemble_tf.data.input_pipeline import (
    InputConfig,
    PipelineStats,
    build_dataset,
    build_synthetic_dataset,
)
from tests import testing_utils

NUM_CLASSES = 5


def _examples(n, offset=0, logits=False, start=0):
    out = []
    for i in range(start, start + n):
        jpeg = testing_utils.jpeg_bytes(
            testing_utils.smooth_image(40 + i, 50, seed=i)
        )
        out.append(
            schema.make_example(
                jpeg,
                i % NUM_CLASSES + offset,
                40 + i,
                50,
                filename=f"img{i}.jpg",
                logits=(
                    np.arange(NUM_CLASSES + offset, dtype=float) * (i % 3)
                    if logits
                    else None
                ),
            )
        )
    return out


@pytest.fixture
def records(tmp_path):
    """3 shards of 4 good records each (labels 1..5) plus 2 corrupt ones."""
    for shard in range(3):
        examples = _examples(4, offset=1, start=4 * shard)
        if shard == 1:
            good = testing_utils.jpeg_bytes(testing_utils.smooth_image(30, 30))
            examples.append(
                schema.make_example(
                    good[: len(good) // 2], 1, 30, 30, filename="truncated.jpg"
                )
            )
            examples.append(
                schema.make_example(
                    b"not a jpeg at all", 1, 30, 30, filename="garbage.jpg"
                )
            )
        testing_utils.write_records(
            tmp_path / f"train-{shard:05d}-of-00003", examples
        )
    return str(tmp_path / "train-*")


def _config(pattern, defaults, overrides):
    """The `InputConfig` of the test records: `defaults`, then
    `overrides`."""
    base = dict(file_pattern=pattern, num_classes=NUM_CLASSES, label_offset=1)
    return InputConfig(**{**base, **defaults, **overrides})


def _eval_config(pattern, **kw):
    evaluation = dict(
        is_training=False,
        batch_size=5,
        preprocessing_type="imagenet_32",
        deterministic=True,
    )
    return _config(pattern, evaluation, kw)


def _train_config(pattern, **kw):
    training = dict(is_training=True, batch_size=4, image_size=32)
    return _config(pattern, training, kw)


def test_eval_reads_every_image_and_skips_corrupt_records(records):
    stats = PipelineStats()
    batches = list(build_dataset(_eval_config(records), stats=stats))
    sizes = [images.shape[0] for images, _ in batches]
    assert sizes == [5, 5, 2]  # no dropped partial batch
    images, batch = batches[0]
    assert images.shape == (5, 32, 32, 3) and images.dtype == tf.float32
    names = sorted(
        n.decode() for _, b in batches for n in b["filenames"].numpy()
    )
    assert names == sorted(f"img{i}.jpg" for i in range(12))
    labels = np.concatenate([b["labels"].numpy() for _, b in batches])
    assert sorted(labels.tolist()) == sorted(i % 5 for i in range(12))
    np.testing.assert_array_equal(
        batch["targets"].numpy(), np.eye(5)[batch["labels"].numpy()]
    )
    assert stats.as_dict() == {
        "records_read": 14,
        "records_skipped": 2,
        "records_not_examples": 0,
        "records_invalid_jpeg": 2,  # the truncated one lost its EOI marker
        "records_undecodable": 0,
        "records_without_logits": 0,
        "records_wrong_logits": 0,
        "records_label_out_of_range": 0,
    }
    assert stats.unusable == 2
    assert stats.describe(True) == (
        "2 not images; names: truncated.jpg, garbage.jpg"
    )


@pytest.mark.parametrize("is_training", [True, False])
def test_png_and_bmp_records_are_read(tmp_path, is_training):
    """Before: TFRecords took whole JPEGs only, so training and evaluation
    skipped a PNG or BMP record that `checks` and
    `tools.extract_teacher_logits` took. A JPEG that does not end with its
    end marker (cut off, or with data after it, which our builder
    re-encodes) is refused by all three."""
    import io

    from PIL import Image

    pixels = testing_utils.smooth_image(36, 36, seed=4)
    jpeg = testing_utils.jpeg_bytes(pixels)

    def encoded(fmt):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, fmt)
        return out.getvalue()

    images = {
        "a.jpg": jpeg,
        "b.png": encoded("PNG"),
        "c.bmp": encoded("BMP"),
        "d.jpg": jpeg + b"camera trailer",
        "e.jpg": jpeg[: len(jpeg) // 2],
    }
    testing_utils.write_records(
        tmp_path / "validation-00000-of-00001",
        [
            schema.make_example(data, 1, 36, 36, filename=name)
            for name, data in images.items()
        ],
    )
    config = _eval_config(str(tmp_path / "validation-*"), batch_size=3)
    good = ["a.jpg", "b.png", "c.bmp"]
    stats = PipelineStats()
    if is_training:  # shuffled per epoch, then repeated: 2 whole epochs
        config = dataclasses.replace(config, is_training=True, image_size=32)
        batches = list(build_dataset(config, stats=stats).take(2))
        names = [n.decode() for _, b in batches for n in b["filenames"].numpy()]
        assert sorted(names) == sorted(good * 2)
        assert stats.invalid.numpy() >= 2  # d and e, at least once each
        return
    batches = list(build_dataset(config, stats=stats))
    names = sorted(
        n.decode() for _, b in batches for n in b["filenames"].numpy()
    )
    assert names == good
    assert stats.describe(True) == "2 not images; names: d.jpg, e.jpg"
    # The same crop from every lossless copy.
    images = np.concatenate([x.numpy() for x, _ in batches])
    order = np.argsort([n for _, b in batches for n in b["filenames"].numpy()])
    a, b, c = images[order]
    np.testing.assert_array_equal(b, c)
    assert np.abs(a - b).max() < 20  # JPEG against lossless


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_labels_the_head_does_not_have_are_counted_not_trained_on(tmp_path):
    """The up-front check reads the first records only; a later label of 9
    for a 5-class head was trained on an all-zero target (and failed
    tools.evaluate with a metrics assertion). Now it is skipped and
    counted; a split of such labels stops (the guard) with the range."""
    from assemble_tf.data.input_pipeline import DataError, reraise_data_errors

    examples = _examples(6, offset=1)  # labels 1..5: 0..4 after offset 1
    bad = [
        schema.make_example(
            testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 50)),
            label,
            40,
            50,
            filename=f"bad{label}.jpg",
        )
        for label in (0, 6, 9)  # -1, 5 and 8 after the offset
    ]
    testing_utils.write_records(tmp_path / "validation-0", examples + bad)
    stats = PipelineStats()
    pattern = str(tmp_path / "validation-*")
    batches = list(build_dataset(_eval_config(pattern), stats=stats))
    names = sorted(
        n.decode() for _, b in batches for n in b["filenames"].numpy()
    )
    assert names == [f"img{i}.jpg" for i in range(6)]
    labels = np.concatenate([b["labels"].numpy() for _, b in batches])
    assert labels.min() >= 0 and labels.max() < NUM_CLASSES
    counts = stats.as_dict()
    assert counts["records_label_out_of_range"] == 3
    assert counts["records_skipped"] == 3 and stats.unusable == 3
    assert stats.describe(True) == (
        "3 with a label out of range; names: bad0.jpg, bad6.jpg, bad9.jpg"
    )
    testing_utils.write_records(tmp_path / "train-0", bad)
    config = _eval_config(
        str(tmp_path / "train-*"),
        is_training=True,
        image_size=32,
        shuffle_buffer=4,
    )
    with pytest.raises(DataError) as err, reraise_data_errors():
        next(iter(build_dataset(config)))
    assert (
        "or had a label outside 0..4 (after subtracting the label offset 1)"
        in str(err.value)
    )


def test_boxes_of_other_tools_are_clipped_or_left_out_not_fatal(tmp_path):
    """The builder clips boxes; a record of another tool with a box
    outside the image, NaN in a box or coordinate lists of unequal length
    made the crop sampler fail, and the record was dropped uncounted
    (2 of these 4 images never trained)."""
    from assemble_tf.data.input_pipeline import decode_record

    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 50))
    good = schema.make_example(jpeg, 1, 40, 50, bboxes=[(0.1, 0.2, 0.6, 0.7)])
    outside = schema.make_example(
        jpeg, 2, 40, 50, bboxes=[(-0.5, 0.2, 0.6, 1.4), (np.nan, 0, 1, 1)]
    )
    uneven = schema.make_example(jpeg, 3, 40, 50, bboxes=[(0.1, 0.2, 0.6, 0.7)])
    uneven.features.feature[schema.BBOX_XMIN].float_list.value.append(0.3)
    boxes = [
        decode_record(e.SerializeToString())["bboxes"].numpy()
        for e in (good, outside, uneven)
    ]
    np.testing.assert_allclose(boxes[0], [[0.2, 0.1, 0.7, 0.6]])
    np.testing.assert_allclose(boxes[1], [[0.2, 0.0, 1.0, 0.6]])
    assert boxes[2].shape == (0, 4)
    testing_utils.write_records(
        tmp_path / "train-0", [good, outside, uneven, good]
    )
    stats = PipelineStats()
    config = _eval_config(
        str(tmp_path / "train-*"),
        is_training=True,
        image_size=32,
        batch_size=4,
        shuffle_buffer=4,
        use_bboxes=True,
    )
    images, batch = next(iter(build_dataset(config, stats=stats)))
    assert sorted(batch["labels"].numpy()) == [0, 0, 1, 2]
    assert stats.unusable == 0


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_train_batches_mixup_type1_and_smoothing(records):
    config = _train_config(
        records,
        batch_size=3,
        mixup_type=1,
        label_smoothing=0.1,
        shuffle_buffer=16,
        seed=3,
    )
    images, batch = next(iter(build_dataset(config)))
    assert images.shape == (3, 32, 32, 3)
    targets = batch["targets"].numpy()
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    assert targets.min() >= 0.1 / NUM_CLASSES - 1e-7
    assert batch["lambda"].shape == (3,)


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_sharding_by_input_context_is_disjoint(records):
    names = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2
        )
        ds = build_dataset(_eval_config(records, batch_size=4), ctx)
        names.append({n for _, b in ds for n in b["filenames"].numpy()})
    assert names[0] and names[1] and not names[0] & names[1]
    assert len(names[0] | names[1]) == 12


def test_shards_that_workers_cannot_share_evenly_are_named(records, caplog):
    """Each worker's pipeline reads whole shards: 3 over 2 workers read
    other numbers of records (an epoch saw 27 of 32 images, 5 twice:
    before, without a word), and 3 over 4 cannot be shared."""
    import logging

    from assemble_tf.data.input_pipeline import DataError

    config = _train_config(records)

    def context(n):
        return tf.distribute.InputContext(
            num_input_pipelines=n, input_pipeline_id=0, num_replicas_in_sync=4
        )

    with caplog.at_level(logging.WARNING):
        build_dataset(config, context(3))  # 1 shard each: no word
        assert not caplog.records
        build_dataset(config, context(2))
    assert [r.getMessage() for r in caplog.records] == [
        f"3 shards of {records} over 2 input pipelines (one per worker), "
        "which each read whole shards: they read other numbers of records, "
        "so an epoch sees some images twice and others not at all; rebuild "
        "the records with a multiple of 2 shards (the builder's "
        "train_shards / validation_shards)."
    ]
    with pytest.raises(
        DataError, match="matches 3 shard\\(s\\), fewer than the 4"
    ):
        build_dataset(config, context(4))


def test_deterministic_mode_repeats_exactly(records):
    config = _train_config(
        records,
        deterministic=True,
        seed=5,
        shuffle_buffer=8,
    )
    a = [x.numpy() for x, _ in build_dataset(config).take(3)]
    b = [x.numpy() for x, _ in build_dataset(config).take(3)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_teacher_logits_drop_background_with_the_offset(tmp_path):
    testing_utils.write_records(tmp_path / "val-0", _examples(3, 1, True))
    config = _eval_config(
        str(tmp_path / "val-*"),
        num_logits=NUM_CLASSES + 1,
        teacher_temperature=2.0,
    )
    _, batch = next(iter(build_dataset(config)))
    for name, probs in zip(
        batch["filenames"].numpy(), batch["teacher_probs"].numpy(), strict=True
    ):
        i = int(name.decode()[3:-4])
        logits = np.arange(1, NUM_CLASSES + 1) * (i % 3) / 2.0
        expected = np.exp(logits - logits.max())
        np.testing.assert_allclose(probs, expected / expected.sum(), rtol=1e-5)


def test_logits_of_another_width_are_counted_as_such(tmp_path):
    """Before: counted (and reported) as records without teacher logits,
    while they had logits, of the wrong width."""
    good = _examples(3, 1, True)  # NUM_CLASSES + 1 logits
    none = _examples(2, 1, start=3)
    wide = _examples(1, 2, True, start=5)  # NUM_CLASSES + 2 logits
    testing_utils.write_records(tmp_path / "val-0", good + none + wide)
    stats = PipelineStats()
    config = _eval_config(str(tmp_path / "val-*"), num_logits=NUM_CLASSES + 1)
    names = [
        n.decode()
        for _, b in build_dataset(config, stats=stats)
        for n in b["filenames"].numpy()
    ]
    assert sorted(names) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    counts = stats.as_dict()
    assert counts["records_without_logits"] == 2
    assert counts["records_wrong_logits"] == 1
    assert stats.describe(True) == (
        "2 without teacher logits, 1 with teacher logits of another width; "
        "names: img3.jpg, img4.jpg, img5.jpg"
    )


def test_missing_files_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        build_dataset(_eval_config(str(tmp_path / "nothing-here-*")))
    # A folder that is not there is said to be missing (before: "No
    # TFRecord files match", naming no flag).
    with pytest.raises(FileNotFoundError) as e:
        build_dataset(_eval_config(str(tmp_path / "typo" / "validation-*")))
    assert e.value.as_flag() == (
        f"No TFRecord files match '{tmp_path / 'typo' / 'validation-*'}': "
        f"{tmp_path / 'typo'} is not a folder. Check --data_dir."
    )


def test_synthetic_dataset_has_the_same_structure(records):
    config = _eval_config(
        records, is_training=True, image_size=32, batch_size=4
    )
    real = build_dataset(config).element_spec
    synthetic = build_synthetic_dataset(config).element_spec
    assert set(real[1]) == set(synthetic[1])
    assert real[0].shape[1:] == synthetic[0].shape[1:]
    assert real[0].dtype == synthetic[0].dtype


def test_synthetic_uint8_batches_are_the_real_pipelines_shape(records):
    """A Mixup type-1 recipe: twice the batch, unmixed, for the train step
    to mix (before: the steps asked for B float images, which the step's
    mixer halved, while the run counted B)."""
    common = dict(is_training=True, image_size=32, batch_size=4, mixup_type=1)
    config = _eval_config(records, dtype="uint8", **common)
    real_images, real = next(iter(build_dataset(config)))
    fake_images, fake = next(iter(build_synthetic_dataset(config)))
    assert real_images.shape == fake_images.shape == (8, 32, 32, 3)
    assert fake_images.dtype == tf.uint8
    assert set(real) == set(fake) and "lambda" not in fake
    floats = _eval_config(records, dtype="float32", **common)
    images, batch = next(iter(build_synthetic_dataset(floats)))
    assert images.shape == (4, 32, 32, 3) and "lambda" in batch


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_uint8_pipeline_plus_batch_postprocess_matches_float(records):
    from assemble_tf.data.input_pipeline import BatchPostprocess

    common = dict(
        deterministic=True,
        seed=9,
        shuffle_buffer=8,
        mixup_type=1,
        label_smoothing=0.1,
    )
    u8 = _train_config(records, dtype="uint8", **common)
    raw, batch = next(iter(build_dataset(u8)))
    assert raw.dtype == tf.uint8 and raw.shape == (8, 32, 32, 3)
    assert "lambda" not in batch  # mixing waits for the train step
    images, mixed = BatchPostprocess(u8)(
        dict(batch, images=raw), tf.constant([1, 2])
    )
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32
    np.testing.assert_allclose(mixed["targets"].numpy().sum(-1), 1.0, rtol=1e-6)
    f32 = _train_config(
        records,
        dtype="float32",
        **dict(common, mixup_type=0, label_smoothing=0.0),
    )
    floats, _ = next(iter(build_dataset(f32)))
    # Same crops; uint8 rounding moves a pixel by at most half a level.
    normalized = raw.numpy()[:4].astype(np.float32) - np.array(
        schema.MEAN_RGB, np.float32
    )
    assert np.abs(normalized - floats.numpy()).max() <= 0.5 + 1e-4
    with pytest.raises(ValueError, match="uint8"):
        build_dataset(_eval_config(records, dtype="uint8"))


def _train_kd_config(pattern, **kw):
    base = dict(
        is_training=True,
        batch_size=4,
        image_size=32,
        num_logits=NUM_CLASSES + 1,
        shuffle_buffer=8,
        seed=1,
        deterministic=False,
    )
    base.update(kw)
    return _eval_config(pattern, **base)


def test_kd_on_records_without_logits_stops_instead_of_hanging(records):
    """The repeated train set has no record with image/logit: before the
    guard, ignore_errors() dropped every one and next() never returned."""
    from assemble_tf.data.input_pipeline import DataError, reraise_data_errors

    stats = PipelineStats()
    ds = build_dataset(_train_kd_config(records), stats=stats)
    with pytest.raises(DataError) as err, reraise_data_errors():
        next(iter(ds))
    text = str(err.value)
    assert "1,000 records in a row" in text and records in text
    assert "`kd_temperature`=0" in text
    assert "tools.extract_teacher_logits" in text
    assert "\n" not in text and "[[" not in text
    # Every record read was counted as unusable, none emitted (the
    # parallel decoders may still be counting in-flight ones: >=).
    counts = stats.as_dict()
    unusable = counts["records_without_logits"] + counts["records_invalid_jpeg"]
    assert unusable >= 1000 and counts["records_read"] >= 1000
    assert counts["records_skipped"] >= 1000  # none emitted
    assert counts["records_invalid_jpeg"] > 0


def test_records_with_and_without_logits_are_counted(tmp_path):
    """Half the records carry logits (one of the wrong length): training
    goes on with the good ones and counts the rest."""
    examples = _examples(6, offset=1, logits=True)
    wrong = _examples(1, offset=0, logits=True, start=6)  # 5 values, not 6
    plain = _examples(5, offset=1, start=7)
    testing_utils.write_records(tmp_path / "train-0", examples + wrong + plain)
    stats = PipelineStats()
    config = _train_kd_config(
        str(tmp_path / "train-*"), deterministic=True, shuffle_buffer=1
    )
    ds = build_dataset(config, stats=stats)
    names = []
    for _, batch in ds.take(6):
        names += [n.decode() for n in batch["filenames"].numpy()]
        assert batch["teacher_probs"].shape == (4, NUM_CLASSES)
    assert set(names) == {f"img{i}.jpg" for i in range(6)}
    counts = stats.as_dict()
    # Two passes over 12 records at least: 6 of each 12 lack good logits.
    assert counts["records_without_logits"] >= 12
    assert counts["records_invalid_jpeg"] == 0


def test_guard_bounds_a_run_of_bad_records_with_a_small_limit(records):
    from assemble_tf.data.input_pipeline import DataError, reraise_data_errors

    config = _eval_config(records, max_consecutive_unusable=2)
    # The two corrupt records of shard 1 are adjacent: a run of 2.
    with (
        pytest.raises(DataError, match="2 records in a row"),
        reraise_data_errors(),
    ):
        list(build_dataset(config))
    ok = list(build_dataset(_eval_config(records, max_consecutive_unusable=3)))
    assert sum(int(images.shape[0]) for images, _ in ok) == 12


def _png_bytes(array):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _user_files():
    """Image files as a folder holds them: 6 good ones (JPEG and PNG) and
    a truncated JPEG and PNG (a cut-off download: the right signature,
    no decodable image), which the format check cannot see."""
    good = [
        (testing_utils.jpeg_bytes(testing_utils.smooth_image(30, 40, i)), i)
        for i in range(4)
    ]
    good += [
        (_png_bytes(testing_utils.smooth_image(36, 30, i)), i)
        for i in range(4, 6)
    ]
    jpeg, png = good[0][0], good[4][0]
    bad = [(jpeg[: len(jpeg) // 2], 0), (png[: len(png) // 2], 1)]
    files = good[:3] + bad[:1] + good[3:] + bad[1:]
    return [f for f, _ in files], [label % 5 for _, label in files]


def _source(files, labels):
    def source(input_context, is_training, seed):
        return tf.data.Dataset.from_tensor_slices(
            (tf.constant(files), tf.constant(labels, tf.int64))
        )

    return source


def _evaluate_user_files():
    """(sorted labels evaluated, `PipelineStats`) of `_user_files`."""
    files, labels = _user_files()
    stats = PipelineStats()
    config = _eval_config(
        "", record_source=_source(files, labels), label_offset=0
    )
    batches = list(build_dataset(config, stats=stats))
    got = np.concatenate([b["labels"].numpy() for _, b in batches])
    return sorted(got.tolist()), stats


def test_user_images_that_do_not_decode_are_counted_not_lost():
    """Before: a truncated file of a folder or tfds source passed the
    signature check, failed to decode, and ignore_errors dropped it
    uncounted (evaluation silently counted 6 of 8)."""
    got, stats = _evaluate_user_files()
    assert got == [0, 0, 1, 2, 3, 4]  # labels i % 5
    assert stats.as_dict() == {
        "records_read": 8,
        "records_skipped": 2,
        "records_not_examples": 0,
        "records_invalid_jpeg": 0,
        "records_undecodable": 2,
        "records_without_logits": 0,
        "records_wrong_logits": 0,
        "records_label_out_of_range": 0,
    }
    assert stats.describe() == "2 not decodable"


def test_user_images_over_the_pixel_limit_are_skipped_before_decoding(
    monkeypatch,
):
    """An image whose header says more pixels than the pipelines decode is
    skipped and counted before it is decoded (before: a 90 KB PNG of
    20,000 x 20,000 in an image folder took 17 GB to decode, then was
    called corrupt). Here with a limit of 1,199 pixels: the JPEGs of 40 x
    30 (1,200) of `_user_files` go, its PNGs of 30 x 36 (1,080) stay."""
    from assemble_tf.data import preprocessing

    monkeypatch.setattr(preprocessing, "MAX_DECODE_PIXELS", 1_199)
    got, stats = _evaluate_user_files()
    assert got == [0, 4]  # the two whole PNGs
    counts = stats.counts()
    assert (counts.read, counts.undecodable, counts.invalid) == (8, 6, 0)


def test_a_training_source_of_undecodable_images_stops_not_hangs():
    """Before: training on such files never yielded a batch (the guard
    never saw them) and hung."""
    from assemble_tf.data.input_pipeline import DataError, reraise_data_errors

    files, labels = _user_files()
    # The truncated PNG: TensorFlow's JPEG decoder prints "Improper call to
    # JPEG library" for each truncated JPEG, and the pipeline's threads
    # went on decoding after the test, onto make test's console.
    assert files[7].startswith(b"\x89PNG")
    config = InputConfig(
        file_pattern="",
        is_training=True,
        batch_size=2,
        num_classes=NUM_CLASSES,
        image_size=32,
        record_source=_source(files[7:8] * 3, labels[7:8] * 3),
        max_consecutive_unusable=5,
    )
    stats = PipelineStats()
    errors = []

    def first_batch():  # a daemon thread: a hang fails the test
        try:
            with reraise_data_errors():
                next(iter(build_dataset(config, stats=stats)))
        except DataError as e:
            errors.append(e)

    thread = threading.Thread(target=first_batch, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the pipeline hung"
    assert len(errors) == 1
    text = str(errors[0])
    assert "5 records in a row of `source` could not be used" in text
    assert "a JPEG, PNG, GIF or BMP file that opens" in text
    assert "0 not images, " in text and " not decodable" in text
    assert stats.as_dict()["records_undecodable"] >= 5


def test_tfrecord_images_that_do_not_decode_are_counted_after_a_pass(
    tmp_path,
):
    """A JPEG with intact SOI / EOI markers whose data does not decode
    (not from our builder): dropped, and counted once the pass is over. A
    record that is not a tf.train.Example is named as such (before: "not
    decodable")."""
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(30, 30))
    damaged = jpeg[:200] + bytes(len(jpeg) - 202) + b"\xff\xd9"
    examples = _examples(3, offset=1) + [
        schema.make_example(damaged, 1, 30, 30, filename="damaged.jpg")
    ]
    testing_utils.write_records(tmp_path / "validation-0", examples)
    stats = PipelineStats()
    config = _eval_config(str(tmp_path / "validation-*"))
    batches = list(build_dataset(config, stats=stats))
    assert sum(int(images.shape[0]) for images, _ in batches) == 3
    assert stats.skipped == 1 and stats.unusable == 0
    assert stats.describe(True) == "1 not decodable"
    with tf.io.TFRecordWriter(str(tmp_path / "validation-1")) as writer:
        writer.write(b"not an Example")
        writer.write(jpeg)  # a bare JPEG, not in an Example
        writer.write(examples[0].SerializeToString())
    stats = PipelineStats()
    batches = list(build_dataset(config, stats=stats))
    assert sum(int(images.shape[0]) for images, _ in batches) == 4
    assert stats.as_dict()["records_not_examples"] == 2
    assert stats.describe(True) == ("2 not tf.train.Examples, 1 not decodable")


def test_a_description_names_each_file_once_and_says_when_there_are_more():
    from assemble_tf.data.input_pipeline import NAMED, StatsCounts

    counts = dict.fromkeys(
        ("read", "parsed", "invalid", "no_logits", "wrong_logits"), 0
    )
    counts.update(read=9, parsed=9, bad_label=0, emitted=2)
    names = ("a.jpg", "b.jpg", "a.jpg", "c.jpg", "d.jpg")
    assert len(names) == NAMED
    more = StatsCounts(**counts, undecodable=7, named=7, names=names)
    assert more.describe() == (
        "7 not decodable; first names: a.jpg, b.jpg, c.jpg, d.jpg"
    )
    all_of_them = StatsCounts(**counts, undecodable=7, named=5, names=names)
    assert all_of_them.describe().endswith(
        "; names: a.jpg, b.jpg, c.jpg, d.jpg"
    )
    unnamed = StatsCounts(**counts, undecodable=7)
    assert unnamed.describe() == "7 not decodable"
