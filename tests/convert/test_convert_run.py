"""assemble_tf.convert.run (tools.convert_original_checkpoint) in-process."""

import os

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


def test_convert_and_verify_the_golden_checkpoint(tmp_path):
    """The numbers the binary test checks: 307 variables, the goldens."""
    output = str(tmp_path / "sub" / "tiny.weights.h5")
    model, count = run.convert(_options(output))
    assert count == 307
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
    _, count = run.convert(_options(output, overwrite=True))
    assert count == 307


def test_output_must_be_a_keras_weights_file(tmp_path):
    with pytest.raises(OptionError) as e:
        run.convert(_options(str(tmp_path / "tiny.h5")))
    assert e.value.as_flag() == (
        "--output must end with .weights.h5 (Keras 3 weights file). "
        f"Received: --output={tmp_path / 'tiny.h5'}"
    )
    assert str(e.value).startswith("`output` must end with .weights.h5")
    assert not list(tmp_path.iterdir())
