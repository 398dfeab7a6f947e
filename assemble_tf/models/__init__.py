"""Model construction: `build_model(preset, **overrides)`, and
`build_backbone(model)` for multi-scale (P2-P5) features."""

import inspect

from assemble_tf import presets
from assemble_tf.models.backbone import build_backbone, pyramid_outputs
from assemble_tf.models.profile import count_macs, count_params
from assemble_tf.models.resnet import RESNET_SPECS, build_resnet

OVERRIDABLE = tuple(inspect.signature(build_resnet).parameters)


def build_model(preset, **overrides):
    """Builds the Keras model of a named preset.

    Args:
        preset: str. A name from `assemble_tf.presets.names()`.
        **overrides: any `build_resnet` argument, e.g. `image_size`,
            `num_classes`, `base_width`, `block_sizes`.

    Returns:
        A `keras.Model` named after the preset.
    """
    spec = presets.get(preset)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(
            f"Unknown override(s) {unknown} for preset {preset!r}. "
            f"Allowed: {', '.join(OVERRIDABLE)}"
        )
    kwargs = spec.model_kwargs()
    kwargs.update(overrides)
    kwargs.setdefault("name", preset)
    return build_resnet(**kwargs)


__all__ = [
    "OVERRIDABLE",
    "RESNET_SPECS",
    "build_backbone",
    "build_model",
    "build_resnet",
    "count_macs",
    "count_params",
    "pyramid_outputs",
]
