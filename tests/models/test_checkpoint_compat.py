"""Runs written by earlier versions still restore.

TensorFlow checkpoints (`tf.train.Checkpoint(model=...)`, what a TF run's
`checkpoints/ckpt-N` holds) address a functional model's variables by the
index of their layer in `model.layers`: a layer added or removed before
another shifts it, and the restore fails or, worse, loads another layer's
values of the same shape. tests/data/earlier_checkpoints holds one written
before the inference-speed rewrites of the avg3 shortcut and the BigLittle
merge (see its README).
"""

import os

import numpy as np

from assemble_tf.models import build_model
from assemble_tf.runs import checkpoints
from tests.conftest import DATA

EARLIER = os.path.join(DATA, "earlier_checkpoints")


def test_checkpoint_of_4633545_restores_with_the_same_logits():
    model = build_model(
        "assemble_resnet50",
        base_width=4,
        block_sizes=(2, 2, 2, 1),
        num_classes=3,
        image_size=32,
    )
    checkpoints.restore(model, os.path.join(EARLIER, "assemble_r50_w4"))
    with np.load(os.path.join(EARLIER, "assemble_r50_w4_logits.npz")) as data:
        images, want = data["images"], data["logits"]
    got = model(images, training=False).numpy()
    assert np.abs(want).max() > 0.05  # restored, not the initial zeros
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
