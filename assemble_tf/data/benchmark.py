"""Input-pipeline throughput: the full training pipeline against
decode-and-crop alone (and decode-crop-resize), timed on the same records in
the same process.

The ratio says how much of the JPEG decoding budget the rest of the pipeline
(flip, resize, augmentation, batching, Mixup) costs; the original input
mechanics follow clovaai/assembled-cnn (Lee et al. 2020,
https://arxiv.org/abs/2001.06268).
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from assemble_tf.data import checks, preprocessing
from assemble_tf.data.input_pipeline import (
    BatchPostprocess,
    InputConfig,
    build_dataset,
    decode_record,
)


def images_per_second(iterator, batch_size, min_seconds, min_steps=2):
    """Pulls batches from `iterator` for at least `min_seconds` (and
    `min_steps` batches); returns images/s."""
    steps, start = 0, time.perf_counter()
    while True:
        next(iterator)
        steps += 1
        elapsed = time.perf_counter() - start
        if steps >= min_steps and elapsed >= min_seconds:
            return steps * batch_size / elapsed


def decode_and_crop_dataset(config, resize=False):
    """Records -> random crop decoded: the least any training pipeline does.

    With `resize`, the crop is also resized to `config.image_size` (the
    legacy bilinear resize, float32): the least work that yields training
    crops, so its rate bounds what any exact pipeline can reach here.
    """
    files = checks.shard_files(config.file_pattern, others=())
    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files))
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=config.cycle_length,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    )
    ds = ds.shuffle(config.shuffle_buffer).repeat().enumerate()

    def crop(index, serialized):
        image_bytes = decode_record(serialized)["image_bytes"]
        window = preprocessing.sample_crop_window(
            image_bytes,
            tf.zeros([0, 4]),
            tf.stack([tf.constant(0, tf.int64), index]),
        )
        image = tf.image.decode_and_crop_jpeg(
            image_bytes,
            window,
            channels=3,
            dct_method=preprocessing.DCT_METHOD,
        )
        if resize:
            size = [config.image_size, config.image_size]
            image = preprocessing.resize_bilinear_legacy(image, size)
        # Keep one value so the work cannot be skipped, and batch cheaply.
        return image[0, 0, 0]

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    # Records that are not JPEGs, or do not decode, are left out (before:
    # the first such record stopped the benchmark with a traceback).
    ds = ds.ignore_errors()
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def run(
    config,
    rounds=5,
    min_seconds=2.0,
    warmup_steps=5,
    progress=None,
    settle_seconds=0.5,
):
    """Measures three pipelines, interleaved; returns figures and ratios.

    The pipelines are the full training pipeline, decode-and-crop alone,
    and decode-crop-resize (the crop resized to `image_size`, nothing
    else). Each round times them one after the other, for at least
    `min_seconds` each, so a slow period of the machine hits all; each
    timing gets a fresh iterator (deleted after it, so no idle pipeline
    refills its buffers in the background), warmed up and settled untimed
    first. Ratios are medians over rounds of per-round ratios:

    * `ratio`: full pipeline / decode-and-crop, the figure of merit;
    * `resize_ratio`: decode-crop-resize / decode-and-crop, the most
      `ratio` can be on this machine for a pipeline that resizes exactly;
    * `ratio_vs_resize`: full pipeline / decode-crop-resize, what the
      rest (flip, rounding, augmentation, batching, Mixup) costs.

    With Mixup type 1 the pipeline reads two images per training example;
    the ratios compare images read per second.

    Args:
        config: an `InputConfig` (is_training is forced on).
        rounds: timed rounds (each pipeline once per round).
        min_seconds: minimum timing per pipeline and round.
        warmup_steps: untimed batches per timing first.
        progress: optional tqdm-like object, updated once per timing.
        settle_seconds: untimed pulling after the warm-up, which drains
            the batches prefetched while the pipeline warmed up.

    Returns:
        A dict: the median images/s of each pipeline (the full one also
        per example), the ratios above (`ratio` also per round), rounds,
        min_seconds and settle_seconds.
    """
    config = dataclasses.replace(config, is_training=True)
    multiplier = BatchPostprocess(config).batch_multiplier
    pipelines = {
        "full": (build_dataset(config), multiplier),
        "crop": (decode_and_crop_dataset(config), 1),
        "resize": (decode_and_crop_dataset(config, resize=True), 1),
    }
    rates = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, (dataset, scale) in pipelines.items():
            rate = _time_pipeline(
                dataset,
                config.batch_size,
                warmup_steps,
                settle_seconds,
                min_seconds,
            )
            rates[name].append(scale * rate)
            if progress is not None:
                progress.update(1)
    return dict(
        _summary(rates, multiplier),
        rounds=rounds,
        min_seconds=min_seconds,
        settle_seconds=settle_seconds,
    )


def _time_pipeline(dataset, batch_size, warmup_steps, settle_seconds, seconds):
    """Times one fresh iterator of `dataset`; returns its batches' images/s.

    The iterator is deleted after the timing: an idle iterator keeps filling
    its buffers in the background and would take CPU from the one being
    timed.

    Args:
        dataset: the `tf.data.Dataset` of batches.
        batch_size: images per batch.
        warmup_steps: untimed batches first.
        settle_seconds: untimed pulling after the warm-up (none if <= 0).
        seconds: minimum timed duration.

    Returns:
        The images per second of the timed part.
    """
    iterator = iter(dataset)
    for _ in range(warmup_steps):
        next(iterator)
    if settle_seconds > 0:
        images_per_second(iterator, batch_size, settle_seconds)
    rate = images_per_second(iterator, batch_size, seconds)
    del iterator
    return rate


def _summary(rates, multiplier):
    """The figures and ratios of `run` from the timings of every round.

    Args:
        rates: {"full", "crop", "resize": images/s of each round}.
        multiplier: images read per training example (2 with Mixup type 1).

    Returns:
        The medians over rounds of the rates (the full pipeline also per
        example) and of the per-round ratios, rounded for the report.
    """

    def ratios(top, bottom):
        return [t / b for t, b in zip(rates[top], rates[bottom], strict=True)]

    def median(values):
        return float(np.median(values))

    full_images = median(rates["full"])
    return {
        "full_pipeline_examples_per_sec": round(full_images / multiplier, 1),
        "full_pipeline_images_per_sec": round(full_images, 1),
        "decode_and_crop_images_per_sec": round(median(rates["crop"]), 1),
        "decode_crop_resize_images_per_sec": round(median(rates["resize"]), 1),
        "ratio": round(median(ratios("full", "crop")), 3),
        "ratio_per_round": [round(r, 3) for r in ratios("full", "crop")],
        "resize_ratio": round(median(ratios("resize", "crop")), 3),
        "ratio_vs_resize": round(median(ratios("full", "resize")), 3),
    }


__all__ = ["InputConfig", "decode_and_crop_dataset", "images_per_second", "run"]
