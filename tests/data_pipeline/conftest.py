"""Fixtures shared by the input-pipeline tests."""

import pytest

from assemble_tf.data import schema
from tests import testing_utils


@pytest.fixture
def benchmark_shards(tmp_path):
    """Two TFRecord shards train-0 / train-1 of 6 smooth 60x80 JPEGs each
    (labels 1..3) in `tmp_path`; returns the folder."""
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
    return str(tmp_path)
