"""Input-pipeline throughput: the full training pipeline against
decode-and-crop alone, timed on the same records in the same process.

The ratio says how much of the JPEG decoding budget the rest of the pipeline
(flip, resize, augmentation, batching, Mixup) costs; the original input
mechanics follow clovaai/assembled-cnn (Lee et al. 2020,
https://arxiv.org/abs/2001.06268).
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from assemble_tf.data import preprocessing
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


def decode_and_crop_dataset(config):
    """Records -> random crop decoded (no resize, no augmentation)."""
    files = sorted(tf.io.gfile.glob(config.file_pattern))
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
        # Keep one value so the decode cannot be skipped, and batch cheaply.
        return image[0, 0, 0]

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def run(
    config,
    rounds=5,
    min_seconds=2.0,
    warmup_steps=5,
    progress=None,
    settle_seconds=0.5,
):
    """Measures both pipelines, interleaved; returns figures and the ratio.

    Both pipelines are built and warmed up first; then each round times
    the full pipeline and decode-and-crop one after the other for at least
    `min_seconds` each, so a slow period of the machine hits both. The
    ratio is the median over rounds of the per-round ratios. With Mixup
    type 1 the pipeline reads two images per training example; the ratio
    compares images read per second.

    Args:
        config: an `InputConfig` (is_training is forced on).
        rounds: timed rounds (each pipeline once per round).
        min_seconds: minimum timing per pipeline and round.
        warmup_steps: untimed batches per pipeline first.
        progress: optional tqdm-like object, updated once per timing.
        settle_seconds: untimed pulling before each timing, which drains
            the batches the pipeline prefetched in the background while
            the other one was timed.
    """
    config = dataclasses.replace(config, is_training=True)
    multiplier = BatchPostprocess(config).batch_multiplier
    full = iter(build_dataset(config))
    crop = iter(decode_and_crop_dataset(config))
    for _ in range(warmup_steps):
        next(full)
        next(crop)
    full_rates, crop_rates = [], []
    for _ in range(rounds):
        for iterator, rates, scale in (
            (full, full_rates, multiplier),
            (crop, crop_rates, 1),
        ):
            # Untimed first: the batches this pipeline prefetched while the
            # other one ran would otherwise count as instant.
            if settle_seconds > 0:
                images_per_second(iterator, config.batch_size, settle_seconds)
            rates.append(
                scale
                * images_per_second(iterator, config.batch_size, min_seconds)
            )
            if progress is not None:
                progress.update(1)
    ratios = [f / c for f, c in zip(full_rates, crop_rates, strict=True)]
    full_images = float(np.median(full_rates))
    return {
        "full_pipeline_examples_per_sec": round(full_images / multiplier, 1),
        "full_pipeline_images_per_sec": round(full_images, 1),
        "decode_and_crop_images_per_sec": round(
            float(np.median(crop_rates)), 1
        ),
        "ratio": round(float(np.median(ratios)), 3),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "rounds": rounds,
        "min_seconds": min_seconds,
        "settle_seconds": settle_seconds,
    }


__all__ = ["InputConfig", "decode_and_crop_dataset", "images_per_second", "run"]
