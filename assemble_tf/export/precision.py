"""bfloat16 inference: the same weights computed in bfloat16.

A model built under Keras' "mixed_bfloat16" policy keeps float32 variables
and computes every layer in bfloat16; `bfloat16_copy` then computes the
classifier (`head_dense`) in float32, so the logits are float32 values, not
bfloat16 ones cast up (Micikevicius et al. 2018,
https://arxiv.org/abs/1710.03740, for the mixed-precision scheme; Kalamkar
et al. 2019, https://arxiv.org/abs/1905.12322, for bfloat16). On CPUs with
AVX512_BF16 / AMX, oneDNN runs its convolutions and matmuls in bfloat16:
R50 ran at 1.6-2.7x its float32 images/s there (docs/benchmarks.md).

`bfloat16_copy` rebuilds a float32 model under that policy and copies its
weights; `compare_logits` measures how far the bfloat16 logits are from the
float32 ones, as the export verification reports it.
"""

import numpy as np

from assemble_tf.runs import runtime

PRECISIONS = ("float32", "bfloat16")


def bfloat16_copy(model, build):
    """The model rebuilt by `build()` under "mixed_bfloat16", with `model`'s
    weights.

    Args:
        model: the float32 Keras model (any variable dtype policy).
        build: a no-argument callable building the same architecture (e.g.
            `lambda: build_model(preset, **overrides)`).

    Returns:
        A Keras model computing in bfloat16 from float32 inputs, with
        float32 variables and a float32 classifier.

    Raises:
        ValueError: `build()` makes another architecture.
    """
    with runtime.kept_dtype_policy("mixed_bfloat16"):
        copy = build()
    source = model.get_weights()
    shapes = [tuple(v.shape) for v in copy.weights]
    if shapes != [w.shape for w in source]:
        raise ValueError(
            "The bfloat16 rebuild does not match the model's weights "
            f"({len(shapes)} vs {len(source)} arrays)."
        )
    copy.set_weights(source)
    names = {layer.name for layer in copy.layers}
    if "head_dense" in names:
        # Before: a bfloat16 matmul whose result was cast to float32, so
        # every logit had bfloat16's 8 significant bits (steps of 0.06 -
        # 0.125 at 10 - 30: near-ties became ties) and a tiny R50's logits
        # were up to 0.56 off. A float32 classifier costs ~0.05 % of the
        # multiply-adds.
        copy.get_layer("head_dense").dtype_policy = "float32"
    return copy


def compare_logits(reference, logits):
    """How far `logits` (e.g. bfloat16) are from `reference` (float32).

    Args:
        reference: [N, K] array, the float32 logits.
        logits: [N, K] array of the same images.

    Returns:
        {"count": N, "top1_agreement": fraction of rows with the same
        argmax, "mean_relative_l2": mean over rows of
        ||logits - reference|| / ||reference||, "max_relative_l2": its
        largest row}. A row whose reference is all zero has relative L2 0
        when `logits` is too, else infinity.
    """
    ref = np.asarray(reference, np.float64)
    got = np.asarray(logits, np.float64)
    if ref.shape != got.shape or ref.ndim != 2 or not len(ref):
        raise ValueError(
            f"Expected two [N, K] arrays of one shape, got {ref.shape} and "
            f"{got.shape}."
        )
    diff = np.linalg.norm(got - ref, axis=-1)
    norm = np.linalg.norm(ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / norm)
    return {
        "count": len(ref),
        "top1_agreement": float(np.mean(ref.argmax(-1) == got.argmax(-1))),
        "mean_relative_l2": float(rel.mean()),
        "max_relative_l2": float(rel.max()),
    }
