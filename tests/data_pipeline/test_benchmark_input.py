"""The input benchmark: both pipelines timed in alternation, the ratio the
median of per-round ratios."""

import numpy as np
import pytest

from assemble_tf.data import benchmark, schema
from tests import testing_utils


@pytest.fixture
def shards(tmp_path):
    for shard in range(2):
        examples = [
            schema.make_example(
                testing_utils.jpeg_bytes(
                    testing_utils.smooth_image(60, 80, seed=10 * shard + i)
                ),
                i % 3 + 1,
                60,
                80,
                filename=f"img{shard}_{i}.jpg",
            )
            for i in range(6)
        ]
        testing_utils.write_records(tmp_path / f"train-{shard}", examples)
    return str(tmp_path / "train-*")


def test_time_based_rounds_alternate_and_report_the_median_ratio(
    shards, monkeypatch
):
    timed = []
    real = benchmark.images_per_second

    def spy(iterator, batch_size, min_seconds, min_steps=2):
        timed.append(min_seconds)
        return real(iterator, batch_size, min_seconds, min_steps)

    monkeypatch.setattr(benchmark, "images_per_second", spy)
    config = benchmark.InputConfig(
        file_pattern=shards,
        is_training=True,
        batch_size=4,
        num_classes=4,
        image_size=32,
        mixup_type=1,
        shuffle_buffer=8,
    )
    result = benchmark.run(
        config, rounds=3, min_seconds=0.05, warmup_steps=1, settle_seconds=0.01
    )
    # 3 rounds x (full, decode-and-crop), each settled untimed first.
    assert timed == [0.01, 0.05] * 6
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


def test_images_per_second_runs_whole_batches_for_the_minimum_time():
    pulled = []

    class Counting:
        def __next__(self):
            pulled.append(1)

    rate = benchmark.images_per_second(Counting(), 8, 0.0, min_steps=5)
    assert len(pulled) == 5 and rate > 0
