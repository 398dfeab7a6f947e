"""Multi-scale features of our ResNets: a backbone for detection and
segmentation heads.

Feature Pyramid Networks (Lin et al. 2017, https://arxiv.org/abs/1612.03144)
and the detectors and segmenters built on them read a backbone's last
feature map at each output stride 4, 8, 16 and 32, the levels P2-P5 (level
l has stride 2**l). keras-hub's backbones expose these as
`pyramid_outputs`, TF Model Garden's as `endpoints`; this module gives
every model `build_resnet` makes, Assemble-ResNet included, the same dict.

The levels are found from the deterministic layer names: the stem's layers
start with `stem_` and stage n's with `stage{n}_`, and a functional model
lists its layers in graph order, so the last layer of each group is that
group's output. At each stride the deepest output wins: in a BigLittleNet
(`big_little`, merge strides (2, 2, 1, 2)) stage 2 and stage 3 both end at
stride 16 and P4 is stage 3's; the BL stem module gives P2.
"""

import math

import keras

from assemble_tf.models.resnet import build_resnet, embedding_layer

# The groups whose outputs are candidates, in graph order.
_GROUPS = ("stem_", "stage1_", "stage2_", "stage3_", "stage4_")
# Side of the probe input used to measure strides when the model accepts any
# size (a multiple of 32, as BigLittleNet needs).
_PROBE_SIDE = 256


def _group_outputs(model):
    last = {}
    for layer in model.layers:
        for prefix in _GROUPS:
            if layer.name.startswith(prefix):
                last[prefix] = layer
    missing = [p + "*" for p in _GROUPS[1:] if p not in last]
    if "stem_" not in last or missing:
        raise ValueError(
            f"Model {model.name!r} has no layers named {missing or 'stem_*'}: "
            "pyramid outputs need a model made by `build_resnet` / "
            "`build_model` (or loaded from one)."
        )
    return [last[p].output for p in _GROUPS]


def pyramid_outputs(model):
    """The model's last feature map at each output stride.

    Args:
        model: a functional `keras.Model` built by `build_resnet` or
            `build_model` (with or without its head), or loaded from one.

    Returns:
        dict from "P2", "P3", ... ("P{l}": stride 2**l) to the symbolic
        tensors of `model`'s graph, in increasing stride.
    """
    tensors = _group_outputs(model)
    side = model.input.shape[1] or _PROBE_SIDE
    probe = keras.Model(model.input, tensors)
    specs = probe.compute_output_spec(
        keras.KerasTensor((1, side, side, 3), dtype=model.input.dtype)
    )
    sides = [spec.shape[1] for spec in specs]
    if 1 in sides[:-1]:
        # Strides 16 and 32 both give 1 px from 16 px and less: which map
        # is P5 cannot be told (a 16-px resnet50 gave stage 4's map as P4
        # and no P5).
        raise ValueError(
            f"Model {model.name!r} takes {side}-px images, where its feature "
            "maps reach 1 px before the last stage and their strides cannot "
            "be told apart: build it with an image_size whose maps stay "
            "over 1 px until the last stage (at the default strides, 17 "
            "or more), or None, for pyramid outputs."
        )
    levels, level = {}, 0
    for tensor, spec in zip(tensors, specs, strict=True):
        level = _stride_level(side, spec.shape[1], level)
        levels[f"P{level}"] = tensor  # deeper groups come later and win
    return dict(sorted(levels.items(), key=lambda kv: int(kv[0][1:])))


def _stride_level(side, out, at_least):
    """The l of stride 2**l that maps `side` to `out` pixels.

    Every downsampling pads "same" (out = ceil(in / 2)), so `out` is
    ceil(side / 2**l); l never decreases from one group to the next. A
    rounded log2(side / out) mislabelled fixed odd sizes: at 33 px the
    stage-3 map (5 px) became P3's rival and P5 went missing.
    """
    for level in range(at_least, at_least + 16):
        if -(-side // 2**level) == out:
            return level
    return max(at_least, round(math.log2(side / out)))


def build_backbone(model=None, name=None, **kwargs):
    """A model from images to the dict of `pyramid_outputs`.

    Either shares the layers (and so the weights) of an existing model, e.g.
    one whose ImageNet weights were loaded, or builds a new headless
    network from `build_resnet` arguments.

    Args:
        model: a `keras.Model` from `build_resnet` / `build_model`, or None.
        name: str or None. The backbone's name (default: the model's name +
            "_backbone").
        **kwargs: with `model=None`, the `build_resnet` arguments (e.g.
            `depth`, `big_little`, `attention`, `image_size`); the head is
            not built.

    Returns:
        A `keras.Model` whose output is a dict {"P2": [B, H/4, W/4, C2],
        ..., "P5": [B, H/32, W/32, C5]}.
    """
    if model is None:
        kwargs["include_top"] = False
        model = build_resnet(**kwargs)
    elif kwargs:
        raise ValueError(
            "Pass either a model or `build_resnet` arguments, not both. "
            f"Received: model={model.name!r} and {sorted(kwargs)}"
        )
    outputs = pyramid_outputs(model)
    return keras.Model(
        model.input, outputs, name=name or f"{model.name}_backbone"
    )


def feature_model(model, with_logits=False):
    """The sub-model from the input to the model's embedding (its
    embedding head's batch-normalised output, else the pooled features:
    `models.embedding_layer`, what retrieval embeds); with `with_logits`,
    to {"logits", "features"} (one pass for both)."""
    # The single input itself, not `model.inputs` (a list): a sub-model
    # built on a list warns that a tensor "doesn't match the expected
    # structure" each time it is called with one.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    # Before: always head_pool, so an embedding-head (retrieval) model's
    # export served another vector than the one it was evaluated on.
    features = model.get_layer(embedding_layer(model) or "head_pool").output
    if with_logits:
        outputs = {"logits": model.outputs[0], "features": features}
        return keras.Model(inputs, outputs)
    return keras.Model(inputs, features)
