"""The input benchmark: the full pipeline, decode-and-crop and
decode-crop-resize timed in alternation on fresh iterators, each ratio the
median of per-round ratios."""

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.data import benchmark


@pytest.fixture
def shards(benchmark_shards):
    return benchmark_shards + "/train-*"


def _config(shards, **kwargs):
    return benchmark.InputConfig(
        file_pattern=shards,
        is_training=True,
        batch_size=4,
        num_classes=4,
        image_size=32,
        shuffle_buffer=8,
        **kwargs,
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_rounds_time_three_pipelines_on_fresh_iterators(shards, monkeypatch):
    calls = []
    real = benchmark.images_per_second

    def spy(iterator, batch_size, min_seconds, min_steps=2):
        calls.append((iterator, min_seconds))
        return real(iterator, batch_size, min_seconds, min_steps)

    monkeypatch.setattr(benchmark, "images_per_second", spy)
    result = benchmark.run(
        _config(shards, mixup_type=1),
        rounds=3,
        min_seconds=0.05,
        warmup_steps=1,
        settle_seconds=0.01,
    )
    # 3 rounds x (full, decode-and-crop, decode-crop-resize), each settled
    # untimed first on the iterator it then times.
    assert [seconds for _, seconds in calls] == [0.01, 0.05] * 9
    iterators = [it for it, _ in calls]
    assert iterators[0::2] == iterators[1::2]
    # A fresh iterator for every timing: none idles in the background.
    assert len({id(it) for it in iterators[1::2]}) == 9
    assert result["settle_seconds"] == 0.01
    ratios = result["ratio_per_round"]
    assert len(ratios) == 3 and result["ratio"] == pytest.approx(
        float(np.median(ratios)), abs=1e-3
    )
    # Mixup type 1 reads two images per example.
    assert result["full_pipeline_images_per_sec"] == pytest.approx(
        2 * result["full_pipeline_examples_per_sec"], rel=1e-2
    )
    assert result["decode_and_crop_images_per_sec"] > 0
    assert result["decode_crop_resize_images_per_sec"] > 0


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_ratios_are_medians_of_per_round_ratios(shards, monkeypatch):
    # Timings in call order: per round full, crop, resize; each settle
    # call (returning 1) comes before its timing.
    timed = iter([60, 100, 80, 30, 50, 40, 90, 100, 95])

    def fake(iterator, batch_size, min_seconds, min_steps=2):
        next(iterator)
        return 1.0 if min_seconds == 0.01 else float(next(timed))

    monkeypatch.setattr(benchmark, "images_per_second", fake)
    result = benchmark.run(
        _config(shards),
        rounds=3,
        min_seconds=0.05,
        warmup_steps=0,
        settle_seconds=0.01,
    )
    assert result["ratio_per_round"] == [0.6, 0.6, 0.9]
    assert result["ratio"] == 0.6
    # resize / crop per round: 0.8, 0.8, 0.95.
    assert result["resize_ratio"] == 0.8
    # full / resize per round: 0.75, 0.75, 0.947.
    assert result["ratio_vs_resize"] == 0.75
    assert result["full_pipeline_images_per_sec"] == 60.0
    assert result["decode_and_crop_images_per_sec"] == 100.0
    assert result["decode_crop_resize_images_per_sec"] == 80.0


def test_the_references_decode_a_crop_and_optionally_resize_it(shards):
    config = _config(shards)
    crop = next(iter(benchmark.decode_and_crop_dataset(config)))
    resized = next(iter(benchmark.decode_and_crop_dataset(config, resize=True)))
    # One value per image (the work cannot be skipped, batching is free).
    assert crop.shape == (4,) and crop.dtype == tf.uint8
    assert resized.shape == (4,) and resized.dtype == tf.float32
    # The legacy resize (no half-pixel centers) keeps the crop's top-left
    # pixel: whole numbers, where a half-pixel resize would blend.
    values = resized.numpy()
    assert np.array_equal(values, np.round(values))
    assert np.all((values >= 0) & (values <= 255))


def test_images_per_second_runs_whole_batches_for_the_minimum_time():
    pulled = []

    class Counting:
        def __next__(self):
            pulled.append(1)

    rate = benchmark.images_per_second(Counting(), 8, 0.0, min_steps=5)
    assert len(pulled) == 5 and rate > 0


def test_the_binarys_help_describes_the_three_pipelines_it_times():
    # Issue 24 item 11: --help described two pipelines and one ratio.
    from tools import benchmark_input

    text = " ".join(benchmark_input.__doc__.split())
    assert "three pipelines" in text
    for name in ("decode-and-crop", "decode-crop-resize"):
        assert name in text
    for ratio in ("`ratio`", "`resize_ratio`", "`ratio_vs_resize`"):
        assert ratio in text
