"""assemble_tf.convert.run (tools.convert_original_checkpoint) in-process."""

import dataclasses
import os

import keras
import numpy as np
import pytest

from assemble_tf.convert import run
from assemble_tf.models import build_model
from official.utils.misc.validation import OptionError
from tests.conftest import DATA

FOLDER = os.path.join(DATA, "golden", "tiny_assemble_64")
TINY = {"base_width": 16, "block_sizes": (2, 2, 2, 1), "image_size": 64}


def _options(output, **kwargs):
    return run.ConvertOptions(
        checkpoint=os.path.join(FOLDER, "model.ckpt"),
        preset="assemble_resnet50",
        output=output,
        model_overrides=TINY,
        **kwargs,
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_convert_and_verify_the_golden_checkpoint(tmp_path):
    """The numbers the binary test checks: 307 variables, the goldens."""
    output = str(tmp_path / "sub" / "tiny.weights.h5")
    model, count, checked = run.convert(_options(output))
    assert count == 307 and checked is None
    diff, scale = run.verify(model, os.path.join(FOLDER, "golden.npz"), 1e-3)
    assert diff <= 1e-3 * scale
    loaded = build_model("assemble_resnet50", **TINY)
    loaded.load_weights(output)
    golden = np.load(os.path.join(FOLDER, "golden.npz"))
    logits = loaded(golden["inputs"], training=False).numpy()
    assert np.abs(logits - golden["logits"]).max() == pytest.approx(diff)
    with pytest.raises(ValueError, match=r"differs from .*golden\.npz"):
        run.verify(model, os.path.join(FOLDER, "golden.npz"), 0.0)
    with pytest.raises(FileExistsError) as e:
        run.convert(_options(output))
    assert e.value.as_flag() == (
        f"--output={output} exists; pass --overwrite to replace it."
    )
    golden = os.path.join(FOLDER, "golden.npz")
    _, count, checked = run.convert(
        _options(output, overwrite=True, golden=golden)
    )
    assert count == 307 and checked == (diff, scale)
    # A failed check leaves no file (before: written, then the check
    # failed, and the rerun needed --overwrite).
    failed = str(tmp_path / "failed.weights.h5")
    with pytest.raises(ValueError, match="differs from"):
        run.convert(_options(failed, golden=golden, tolerance=0.0))
    assert not os.path.exists(failed)


@pytest.mark.slow  # over 2 s on 2 cores
def test_unreadable_checkpoints_and_goldens_are_one_named_error(tmp_path):
    """A damaged or incomplete checkpoint, its .index passed as the prefix
    and a golden file that is missing, not an .npz or without `logits`:
    one message naming the file (before: tracebacks, or 87 variables
    'missing' for the .index path), and no output file."""
    import shutil

    output = str(tmp_path / "w.weights.h5")
    index = os.path.join(FOLDER, "model.ckpt.index")
    prefix = os.path.join(FOLDER, "model.ckpt")
    data = prefix + ".data-00000-of-00001"
    for path, suffix in ((index, "index"), (data, "data-00000-of-00001")):
        with pytest.raises(FileNotFoundError) as e:
            run.convert(dataclasses.replace(_options(output), checkpoint=path))
        assert e.value.as_flag() == (
            f"--checkpoint: {path!r} is one of a checkpoint's files "
            f"(.{suffix}); pass its prefix, {prefix!r}."
        )
    # A folder without the `checkpoint` state file (before: TensorFlow's
    # "Couldn't find 'checkpoint' file"): its prefixes, the newest last.
    steps = tmp_path / "steps"
    steps.mkdir()
    for step in (900, 80):
        for name in ("index", "data-00000-of-00001"):
            (steps / f"model.ckpt-{step}.{name}").write_text("")
    with pytest.raises(FileNotFoundError) as e:
        run.convert(
            dataclasses.replace(_options(output), checkpoint=str(steps))
        )
    first, last = (str(steps / f"model.ckpt-{s}") for s in (80, 900))
    assert e.value.as_flag() == (
        f"--checkpoint: {str(steps)!r} is a folder without a `checkpoint` "
        f"file naming its newest checkpoint: pass a prefix, e.g. {first!r}, "
        f"{last!r} (the newest last)."
    )
    with pytest.raises(FileNotFoundError, match="without a TF1 checkpoint"):
        run.convert(
            dataclasses.replace(_options(output), checkpoint=str(tmp_path))
        )
    for name, damage in (
        ("cut_data", lambda p: _truncate(p + ".data-00000-of-00001", 1000)),
        ("no_data", lambda p: os.remove(p + ".data-00000-of-00001")),
        ("cut_index", lambda p: _truncate(p + ".index", 200)),
    ):
        folder = tmp_path / name
        shutil.copytree(FOLDER, folder)
        prefix = str(folder / "model.ckpt")
        damage(prefix)
        with pytest.raises(FileNotFoundError) as error:
            run.convert(
                dataclasses.replace(_options(output), checkpoint=prefix)
            )
        assert error.value.as_flag().startswith("--checkpoint: Cannot read")
        assert prefix in str(error.value), name
        assert "damaged or incomplete" in str(error.value), name
        assert "\n" not in str(error.value)
    np.savez(tmp_path / "nologits.npz", inputs=np.zeros((1, 64, 64, 3)))
    (tmp_path / "text.npz").write_text("not a zip")
    (tmp_path / "notes.txt").write_text("some notes, not arrays")
    for golden, reason in (
        (tmp_path / "none.npz", "is not a readable .npz"),
        (tmp_path / "text.npz", "is not a readable .npz"),
        (tmp_path / "nologits.npz", "lacks the arrays ['logits']"),
        (
            tmp_path / "notes.txt",
            r"is not a readable .npz (neither an .npz archive nor a .npy "
            "array).",
        ),
    ):
        with pytest.raises(OptionError) as error:
            run.convert(_options(output, golden=str(golden)))
        assert error.value.as_flag().startswith(f"--golden={golden} {reason}")
    # Arrays of other shapes: named before any work (before: a Keras call
    # dump for one-channel images, numpy's broadcast error for logits).
    for name, inputs, logits in (
        ("gray", (1, 64, 64, 1), (1, 1001)),
        ("counts", (1, 64, 64, 3), (2, 5)),
    ):
        golden = tmp_path / f"{name}.npz"
        np.savez(golden, inputs=np.zeros(inputs), logits=np.zeros(logits))
        with pytest.raises(OptionError) as error:
            run.convert(_options(output, golden=str(golden)))
        assert error.value.as_flag() == (
            f"--golden={golden} holds inputs of shape {inputs} and logits of "
            f"shape {logits}; it needs inputs [N, H, W, 3] (RGB images) and "
            "logits [N, K] of the same N."
        )
    np.savez(
        tmp_path / "k.npz",
        inputs=np.zeros((1, 64, 64, 3)),
        logits=np.zeros((1, 7)),
    )
    with pytest.raises(ValueError, match="holds 7 logits per image and the"):
        run.convert(_options(output, golden=str(tmp_path / "k.npz")))
    assert not os.path.exists(output)


def _truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def test_output_must_be_a_keras_weights_file(tmp_path):
    with pytest.raises(OptionError) as e:
        run.convert(_options(str(tmp_path / "tiny.h5")))
    assert e.value.as_flag() == (
        "--output must end with .weights.h5 (Keras 3 weights file). "
        f"Received: --output={tmp_path / 'tiny.h5'}"
    )
    assert str(e.value).startswith("`output` must end with .weights.h5")
    assert not list(tmp_path.iterdir())
    # A folder of that name (before: an h5py IsADirectoryError traceback
    # with --overwrite).
    folder = tmp_path / "dir.weights.h5"
    folder.mkdir()
    with pytest.raises(OptionError) as e:
        run.convert(_options(str(folder), overwrite=True))
    assert e.value.as_flag() == (
        f"--output={folder} is a folder: name the weights file, e.g. "
        f"--output={folder / 'model.weights.h5'}."
    )


def test_what_the_original_never_had_is_refused(tmp_path):
    """Before: a checkpoint of ours listed hundreds of names under a
    'plain ResNet' hint."""
    ours = os.path.join(DATA, "earlier_checkpoints", "assemble_r50_w4")
    output = str(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError) as e:
        run.convert(dataclasses.replace(_options(output), checkpoint=ours))
    assert e.value.as_flag().startswith(
        f"--checkpoint: {ours!r} is a TensorFlow 2 object-based checkpoint "
        "(one of a "
        "training run of ours), not one of the original TF1 code"
    )
    assert "\n" not in str(e.value)
    # GeM, the original's pool_type='gem' (p = 3), has no variables: it
    # converts (a --golden check tells the pooling); another p is refused.
    from assemble_tf.convert import tf1_names
    from assemble_tf.layers.gem import GeMPooling2D

    gem = build_model("assemble_resnet50", pooling="gem", **TINY)
    assert tf1_names.original_scopes(gem)
    inputs = keras.Input((8, 8, 16))
    other = keras.Model(inputs, GeMPooling2D(p=4.0, name="head_pool")(inputs))
    with pytest.raises(ValueError) as e:
        tf1_names.original_scopes(other)
    assert str(e.value) == (
        "head_pool: GeM with p=4, epsilon=1e-06; the original's GeM has p=3 "
        "and epsilon=1e-6."
    )
    # Negative, NaN (no comparison with it is true: every check passed)
    # or infinite: refused before any work.
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(OptionError) as e:
            run.convert(_options(output, tolerance=bad))
        assert e.value.as_flag() == (
            f"--tolerance={bad} must be a finite number >= 0: the allowed "
            "max |diff| as a fraction of max |logit|, e.g. --tolerance=1e-3."
        )
    assert not os.path.exists(output)


def test_options_the_original_cannot_have_are_refused(tmp_path):
    """Before: --stage_strides=1,2,2,2 on a BL checkpoint (no variables of
    its own) converted all 307 variables, and only --golden told that the
    logits were 13.6 off; an SE preset was refused as "not in the released
    checkpoints", though the original's code has SE blocks."""
    output = str(tmp_path / "w.weights.h5")
    overrides = {**TINY, "stage_strides": (1, 2, 2, 2)}
    with pytest.raises(OptionError) as e:
        run.convert(
            dataclasses.replace(_options(output), model_overrides=overrides)
        )
    assert e.value.as_flag() == (
        "--stage_strides=1,2,2,2: the original's stage strides are 2,2,1,2, "
        "or 2,2,1,1 with its no_downsample; a checkpoint of it computes "
        "other logits under any other."
    )
    # Its no_downsample: the last stage at stride 1 passes this check.
    no_downsample = {**TINY, "stage_strides": (2, 2, 1, 1)}
    run._check_strides(
        dataclasses.replace(_options(output), model_overrides=no_downsample)
    )
    # The paper's ResNet-D shortcut: the original code's is avg2_tf1
    # (before: converted, and the logits differed without a word).
    golden = os.path.join(DATA, "golden", "tiny_resnetd_sk_112")
    resnet_d = run.ConvertOptions(
        checkpoint=os.path.join(golden, "model.ckpt"),
        preset="sk_resnet50d",
        output=output,
        model_overrides={
            "base_width": 16,
            "block_sizes": (1, 1, 1, 1),
            "num_classes": 10,
        },
        golden=os.path.join(golden, "golden.npz"),
    )
    with pytest.raises(OptionError) as e:
        run.convert(resnet_d)
    assert e.value.as_flag().startswith(
        "sk_resnet50d has the paper's ResNet-D shortcut (avg2); the original "
        "code's, whose checkpoints these are, also pools the first stage's "
        "stride-1 projection and counts the padding of an odd side: convert "
        "with --shortcut=avg2_tf1, "
    )
    assert not os.path.exists(output)
    overrides = {**resnet_d.model_overrides, "shortcut": "avg2_tf1"}
    _, count, (diff, scale) = run.convert(
        dataclasses.replace(resnet_d, model_overrides=overrides)
    )
    assert count == 121 and diff <= 1e-3 * scale
    os.remove(output)
    vanilla = os.path.join(DATA, "golden", "tiny_vanilla_64", "model.ckpt")
    se = run.ConvertOptions(
        checkpoint=vanilla,
        preset="table7_e4",
        output=output,
        model_overrides={
            "base_width": 16,
            "block_sizes": (1, 1, 1, 1),
            "shortcut": "avg2_tf1",
        },
    )
    with pytest.raises(ValueError) as e:
        run.convert(se)
    assert str(e.value) == (
        "stage1_block1_se: the importer does not map the original's 'se' "
        "layers. The original code has SE blocks and embedding heads, but "
        "none of the paper's models or released checkpoints does, and no "
        "checkpoint of them was at hand to test their variable names "
        "against."
    )
    assert not os.path.exists(output)
