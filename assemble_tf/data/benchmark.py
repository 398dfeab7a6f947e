"""Input-pipeline throughput: the full training pipeline against
decode-and-crop alone, timed on the same records in the same process.

The ratio says how much of the JPEG decoding budget the rest of the pipeline
(flip, resize, augmentation, batching, Mixup) costs; the original input
mechanics follow clovaai/assembled-cnn (Lee et al. 2020,
https://arxiv.org/abs/2001.06268).
"""

import dataclasses
import time

import tensorflow as tf

from assemble_tf.data import preprocessing
from assemble_tf.data.input_pipeline import (
    BatchPostprocess,
    InputConfig,
    build_dataset,
    decode_record,
)


def images_per_second(dataset, batch_size, steps, warmup_steps, progress=None):
    """Times `steps` batches after `warmup_steps`; returns images/s."""
    iterator = iter(dataset)
    for _ in range(warmup_steps):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
        if progress is not None:
            progress.update(1)
    elapsed = time.perf_counter() - start
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


def run(config, steps=50, warmup_steps=5, progress=None):
    """Measures both pipelines; returns a dict of figures and the ratio.

    With Mixup type 1 the pipeline reads two images per training example;
    the ratio compares images read per second.
    """
    config = dataclasses.replace(config, is_training=True)
    multiplier = BatchPostprocess(config).batch_multiplier
    full = images_per_second(
        build_dataset(config),
        config.batch_size,
        steps,
        warmup_steps,
        progress,
    )
    crop = images_per_second(
        decode_and_crop_dataset(config),
        config.batch_size,
        steps,
        warmup_steps,
        progress,
    )
    return {
        "full_pipeline_examples_per_sec": round(full, 1),
        "full_pipeline_images_per_sec": round(full * multiplier, 1),
        "decode_and_crop_images_per_sec": round(crop, 1),
        "ratio": round(full * multiplier / crop, 3),
    }


__all__ = ["InputConfig", "decode_and_crop_dataset", "images_per_second", "run"]
