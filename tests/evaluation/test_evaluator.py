"""assemble_tf.evaluation.evaluator under tf.distribute strategies."""

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.evaluation.evaluator import Evaluator
from assemble_tf.models import build_model
from tests import testing_utils


def _evaluate(strategy, weights, images, labels, global_batch):
    """The report of `Evaluator` over the arrays, under `strategy`, for a
    tiny R50-D + SK (its residual add is where a batch of 0 failed)."""
    with strategy.scope():
        model = build_model(
            "table7_e6",
            base_width=8,
            block_sizes=(1, 1, 1, 1),
            num_classes=4,
            image_size=32,
        )
        if weights is not None:
            model.set_weights(weights)
        evaluator = Evaluator(model, strategy)

    def dataset(ctx):
        ds = tf.data.Dataset.from_tensor_slices((images, {"labels": labels}))
        return ds.batch(ctx.get_per_replica_batch_size(global_batch))

    report = evaluator.evaluate(
        strategy.distribute_datasets_from_function(dataset)
    )
    return report, model.get_weights()


@pytest.mark.slow  # builds three models
def test_replicas_without_images_are_skipped_and_every_image_counts():
    """A split smaller than one replica's share of the batch (3 images,
    4 per replica: the second replica gets none), and a last batch
    shorter than the replicas (9 images at 8: the last 1 + 0). Before:
    the model traced on a batch of 0 failed ("Shape must be rank 1 but is
    rank 2 ... [0,1,1,256], [0,256]"), after the epoch had trained."""
    rng = np.random.default_rng(0)
    images = rng.normal(0, 50, (9, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 4, 9)
    one, weights = _evaluate(
        tf.distribute.OneDeviceStrategy("/cpu:0"), None, images, labels, 8
    )
    two = testing_utils.two_replica_strategy()
    small, _ = _evaluate(two, weights, images[:3], labels[:3], 8)
    assert small["count"] == 3
    whole, _ = _evaluate(two, weights, images, labels, 8)
    assert whole["count"] == 9
    for key in ("top1", "top5", "loss", "ece"):
        assert whole[key] == pytest.approx(one[key], rel=1e-5), key
