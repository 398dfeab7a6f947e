"""A TensorFlow run's checkpoint restores under every Keras backend.

Under JAX, `checkpoints.restore` reads a TensorFlow 2 object-based
checkpoint (what `checkpoints/ckpt-N` of a TensorFlow run holds) variable
by variable, by the path each variable is saved under: a JAX run warm
starts from a TensorFlow run (before: refused, asking for a .weights.h5
that no tool wrote). Run in both passes of `make test`.
"""

import os

import numpy as np
import pytest

from assemble_tf.models import build_model
from assemble_tf.runs import checkpoints
from tests.conftest import DATA

EARLIER = os.path.join(DATA, "earlier_checkpoints", "assemble_r50_w4")


def _model(**overrides):
    """The model of the TensorFlow checkpoint in tests/data."""
    kwargs = dict(
        base_width=4, block_sizes=(2, 2, 2, 1), num_classes=3, image_size=32
    )
    return build_model("assemble_resnet50", **{**kwargs, **overrides})


@pytest.mark.parametrize("by_path", [False, True])
@pytest.mark.slow  # over 2 s on 2 cores
def test_a_tensorflow_checkpoint_gives_its_logits(by_path):
    model = _model()
    if by_path:  # what restore does under JAX, here on either backend
        checkpoints.restore_tensorflow_checkpoint(model, EARLIER)
    else:
        checkpoints.restore(model, EARLIER)
    with np.load(EARLIER + "_logits.npz") as data:
        images, want = data["images"], data["logits"]
    got = np.asarray(model(images, training=False))
    assert np.abs(want).max() > 0.05  # restored, not the initial zeros
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_checkpoint_of_another_model_is_refused():
    with pytest.raises(ValueError) as error:
        checkpoints.restore_tensorflow_checkpoint(
            _model(num_classes=5), EARLIER
        )
    # The wording of a restore under TensorFlow, with its fix.
    assert str(error.value) == (
        f"{EARLIER} holds another model than the one built (0 variables "
        "missing, 2 of another shape, e.g. head_dense/kernel (128, 3) vs "
        "(128, 5), head_dense/bias (3,) vs (5,)): build it with the preset "
        "and model options it was trained with."
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_warm_start_from_a_tensorflow_run_under_any_backend(tmp_path):
    """What `tools.train --warm_start=<run>` / `tools.finetune` do: the
    backbone from a TensorFlow run's checkpoint, a new 5-class head."""
    import shutil

    from assemble_tf import config as config_lib
    from assemble_tf.runs.warm_start import warm_start_model

    run = tmp_path / "run"
    config = config_lib.make_config(
        str(run),
        "assemble_resnet50",
        {
            "model": {"base_width": 4, "block_sizes": "2,2,2,1"},
            "data": {"num_classes": 3, "image_size": 32, "synthetic": True},
        },
    )
    config.to_json(str(run / "config.json"))
    folder = run / "checkpoints"
    folder.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(EARLIER + suffix, folder / f"ckpt-1{suffix}")
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    source = _model()
    checkpoints.restore(source, EARLIER)
    model = _model(num_classes=5)
    warm_start_model(model, str(run), load_head=False)
    for name in ("stem_1_conv", "stage4_block1_3_conv"):
        np.testing.assert_array_equal(
            np.asarray(model.get_layer(name).kernel),
            np.asarray(source.get_layer(name).kernel),
        )
    assert np.asarray(model.get_layer("head_dense").kernel).shape == (128, 5)


TF_RUN = os.path.join(DATA, "tf_run")


def test_a_run_of_tools_train_restores_and_warm_starts_by_path():
    """A checkpoint of the TensorFlow trainer (tests/data/tf_run/README.md)
    saves each trainable variable once, under its first path:
    `optimizer/_trainable_variables/N`, not `model/...`. Under JAX the
    restore by path found 189 of them missing, and `--warm_start` from a
    run of tools.train failed."""
    from assemble_tf import config as config_lib
    from assemble_tf.runs import models

    config = config_lib.ExperimentConfig.from_json(
        os.path.join(TF_RUN, "config.json")
    )
    model = models.build_run_model(config)
    checkpoints.restore_tensorflow_checkpoint(
        model, os.path.join(TF_RUN, "checkpoints", "ckpt-1")
    )
    _gives_the_runs_logits_and_backbone(model, config, TF_RUN)


def _gives_the_runs_logits_and_backbone(model, config, source):
    """`model` (restored from tests/data/tf_run or its export) gives the
    run's logits, and a warm start from `source` puts its backbone into a
    5-class model, as tools.finetune does."""
    from assemble_tf.runs.warm_start import warm_start_model

    with np.load(os.path.join(TF_RUN, "logits.npz")) as data:
        images, want = data["images"], data["logits"]
    np.testing.assert_allclose(
        np.asarray(model(images, training=False)), want, rtol=1e-4, atol=1e-5
    )
    target = build_model(config.model.preset, **config.model.build_overrides(5))
    warm_start_model(target, source, load_head=False)
    for name in ("stem_1_conv", "stage4_block1_3_conv"):
        np.testing.assert_array_equal(
            np.asarray(target.get_layer(name).kernel),
            np.asarray(model.get_layer(name).kernel),
        )
    assert np.asarray(target.get_layer("head_dense").kernel).shape[1] == 5


TF_EXPORT = os.path.join(DATA, "tf_export", "1")


def test_warm_start_from_a_tensorflow_saved_model_under_any_backend():
    """`tools.finetune --warm_start=<export>` under JAX: the SavedModel
    that tools.export_saved_model wrote from tests/data/tf_run (see its
    README) is read by variable path; with its head, the model gives the
    run's logits; without, the backbone goes into a 5-class model (before:
    refused under JAX, "a SavedModel, which only TensorFlow restores")."""
    from assemble_tf import config as config_lib
    from assemble_tf.runs import models
    from assemble_tf.runs.warm_start import warm_start_model

    config = config_lib.ExperimentConfig.from_json(
        os.path.join(TF_RUN, "config.json")
    )
    model = models.build_run_model(config)
    warm_start_model(model, TF_EXPORT, load_head=True)
    _gives_the_runs_logits_and_backbone(model, config, TF_EXPORT)
