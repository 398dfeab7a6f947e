"""Warm start from runs of every layer family that owns state."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from assemble_tf import config as config_lib
from assemble_tf.layers import DropBlock2D
from assemble_tf.runs import models as run_models
from assemble_tf.runs import warm_start
from tests import testing_utils

OVERRIDES = {
    "model": {"base_width": 8, "block_sizes": "2,2,2,1"},
    "data": {"synthetic": True, "num_classes": 5, "image_size": 32},
}


def _run(tmp_path, preset):
    """A run folder (config.json + checkpoints/) of a tiny `preset`."""
    run_dir = str(tmp_path / "run")
    config = config_lib.make_config(run_dir, preset, OVERRIDES)
    config.to_json(os.path.join(run_dir, "config.json"))
    model = run_models.build_run_model(config)
    testing_utils.randomize_bn(model, seed=3)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model),
        os.path.join(run_dir, "checkpoints"),
        1,
    )
    return run_dir, manager.save(), model


@pytest.mark.parametrize(
    "preset, families",
    [
        ("table7_e5", {"SqueezeExcite", "DropBlock2D"}),
        (
            "assemble_resnet50",
            {"SelectiveKernel", "BigLittleMerge", "DropBlock2D"},
        ),
    ],
)
@pytest.mark.slow  # over 2 s on 2 cores
def test_warm_start_from_a_run_of_each_stateful_family(
    tmp_path, preset, families
):
    """Every family of layers with state beyond kernels, in two presets
    (before: one preset per family, SE, SK and Big-Little alone)."""
    run_dir, prefix, source = _run(tmp_path, preset)
    layers = list(source._flatten_layers(include_self=False))
    assert families <= {type(layer).__name__ for layer in layers}
    has_dropblock = any(isinstance(x, DropBlock2D) for x in layers)
    # Seed generators made in between: DropBlock's of the target get
    # other process-wide numbers than the source's (as in a new process).
    shift = [keras.random.SeedGenerator(0) for _ in range(20)]
    assert len(shift) == 20
    want = {
        v.path: v.numpy()
        for v in source.variables
        if not warm_start.is_rng_state(v)
    }
    for origin in (run_dir, prefix):
        target = run_models.build_run_model(
            config_lib.make_config(str(tmp_path / "t"), preset, OVERRIDES)
        )
        rng = [v.path for v in target.variables if warm_start.is_rng_state(v)]
        assert bool(rng) == has_dropblock
        if has_dropblock:
            source_rng = {
                v.path for v in source.variables if warm_start.is_rng_state(v)
            }
            assert not source_rng & set(rng)  # the names really differ
        warm_start.warm_start_model(target, origin, load_head=True)
        got = {v.path: v.numpy() for v in target.variables}
        assert set(want) <= set(got)
        for path, value in want.items():
            np.testing.assert_array_equal(got[path], value, f"{origin} {path}")
        images = testing_utils.random_images((2, 32, 32, 3), low=-100)
        np.testing.assert_allclose(
            target(images, training=False).numpy(),
            source(images, training=False).numpy(),
            atol=1e-5,
        )


@pytest.mark.slow  # over 2 s on 2 cores
def test_warm_start_still_refuses_a_model_of_another_shape(tmp_path):
    run_dir, _, _ = _run(tmp_path, "assemble_resnet50")
    other = run_models.build_run_model(
        config_lib.make_config(
            str(tmp_path / "o"),
            "assemble_resnet50",
            {
                **OVERRIDES,
                "model": {"base_width": 16, "block_sizes": "2,2,2,1"},
            },
        )
    )
    keras.utils.set_random_seed(0)
    with pytest.raises(ValueError) as error:
        warm_start.warm_start_model(other, run_dir, load_head=True)
    assert "of another shape" in str(error.value)
    assert str(error.value).endswith(
        "Use the preset (and overrides) the weights were trained with."
    )
    # Only the head differs (3 classes, not 5): the fix is to leave the
    # head out (before: "use the preset ...", which was right).
    three = run_models.build_run_model(
        config_lib.make_config(
            str(tmp_path / "t"),
            "assemble_resnet50",
            {**OVERRIDES, "data": {**OVERRIDES["data"], "num_classes": 3}},
        )
    )
    with pytest.raises(ValueError) as error:
        warm_start.warm_start_model(three, run_dir, load_head=True)
    assert error.value.as_flag() == (
        f"--warm_start={run_dir} does not fit the model: 2 of another shape "
        "(e.g. ['head_dense/kernel (256, 5) vs (256, 3)', 'head_dense/bias "
        "(5,) vs (3,)']). Only the head differs "
        "(another class count or head): leave out --warm_start_head to "
        "start the head afresh."
    )
    warm_start.warm_start_model(three, run_dir)  # as it says


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_a_weights_file_of_another_architecture_is_refused(tmp_path):
    """Keras' skip_mismatch skips any layer of another shape: a
    .weights.h5 of another width loaded nothing and the run trained from
    scratch without a word. Only the head may be skipped."""
    from assemble_tf.models import build_model

    tiny = {"block_sizes": (1, 1, 1, 1), "image_size": 32}
    path = str(tmp_path / "w16.weights.h5")
    build_model("resnet50", base_width=16, num_classes=5, **tiny).save_weights(
        path
    )
    model = build_model("resnet50", base_width=8, num_classes=3, **tiny)
    with pytest.raises(ValueError) as error:
        warm_start.warm_start_model(model, path)
    message = str(error.value)
    assert message.startswith(
        f"`warm_start`={path} does not fit the model: 85 of its 85 "
        "variables outside the head were not loaded (e.g. "
        "['stem_1_conv/kernel',"
    ), message
    assert message.endswith(
        "Use the preset (and overrides) the weights were trained with."
    )
    # The same width: everything but the 5-class head loads.
    path = str(tmp_path / "w8.weights.h5")
    source = build_model("resnet50", base_width=8, num_classes=5, **tiny)
    source.save_weights(path)
    warm_start.warm_start_model(model, path)
    for a, b in zip(source.weights, model.weights, strict=True):
        if not a.path.startswith("head_"):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), a.path)
    # A whole-model .keras file: its weights, head or not (before: "no
    # checkpoint found" for a file that exists).
    keras_file = str(tmp_path / "m.keras")
    source.save(keras_file)
    fresh = build_model("resnet50", base_width=8, num_classes=3, **tiny)
    warm_start.warm_start_model(fresh, keras_file)
    same = build_model("resnet50", base_width=8, num_classes=5, **tiny)
    warm_start.warm_start_model(same, keras_file, load_head=True)
    for a, b, c in zip(
        source.weights, fresh.weights, same.weights, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), c.numpy(), a.path)
        if not a.path.startswith("head_"):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), a.path)


def test_a_damaged_checkpoint_to_warm_start_from_is_named(tmp_path):
    """A run whose checkpoint is cut off (`truncate -s 1000` of its .data,
    or its .index), or a weights file that is not HDF5: one line naming
    the files, the fix and the option (before: tools.finetune and
    tools.train --warm_start=RUN ended in IndexError "Read less bytes than
    requested" from `_model_keys`, TensorFlow's OpError "not an sstable",
    or h5py's OSError)."""
    from assemble_tf.models import build_model

    tiny = {
        "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
        "data": {"synthetic": True, "num_classes": 5},
    }
    run_dir = str(tmp_path / "run")
    config = config_lib.make_config(run_dir, "resnet50", tiny)
    config.to_json(os.path.join(run_dir, "config.json"))
    prefix = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=run_models.build_run_model(config)),
        os.path.join(run_dir, "checkpoints"),
        1,
    ).save()
    data = prefix + ".data-00000-of-00001"
    whole = {p: open(p, "rb").read() for p in (data, prefix + ".index")}
    noise = str(tmp_path / "noise.weights.h5")
    with open(noise, "wb") as f:
        f.write(b"not an HDF5 file" * 64)
    target = build_model("resnet50", num_classes=3, base_width=8)
    fix = (
        "its files are damaged or incomplete. Restore them from a copy, or "
        "warm start from another checkpoint, SavedModel or weights file "
        "(--warm_start=PATH)."
    )
    for cut, origin, named, reason in (
        (data, run_dir, prefix, "IndexError: Read less bytes than requested"),
        (prefix + ".index", prefix, prefix, "OpError: not an sstable (bad"),
        (None, noise, noise, "OSError: Unable to synchronously open file"),
    ):
        for path, content in whole.items():
            with open(path, "wb") as f:
                f.write(content[:1000] if path == cut else content)
        with pytest.raises(ValueError) as error:
            warm_start.warm_start_model(target, origin)
        message = error.value.as_flag()
        assert message.startswith(f"{named} cannot be read ({reason}"), message
        assert message.endswith(f"): {fix}"), message
