"""AutoAugment and RandAugment for Assemble-TF, on core TensorFlow only.

Cubuk et al., "AutoAugment: Learning Augmentation Strategies from Data",
CVPR 2019, https://arxiv.org/abs/1805.09501, and Cubuk et al.,
"RandAugment: Practical automated data augmentation with a reduced search
space", CVPRW 2020, https://arxiv.org/abs/1909.13719, as used to train
Assemble-ResNet (Lee et al. 2020, https://arxiv.org/abs/2001.06268).
Behaviour follows tensorflow/tpu `models/official/efficientnet/
autoaugment.py` and clovaai/assembled-cnn `preprocessing/autoaugment.py`
(policies, level mapping, fill 128), with every op matching Pillow's
definition (`ImageOps`, `ImageEnhance`, `Image.transform`), including the
true-mean Contrast. Geometric ops run on `tf.raw_ops.
ImageProjectiveTransformV3`; no tensorflow-addons, no tf_keras.

* `ops`: the image ops, uint8 [H, W, 3] in and out, graph-compatible.
* `autoaugment`: policies, level -> argument tables, `AutoAugment` and
  `RandAugment` with a `distort(image, seed=None)` method.
* `mixup`: batch-level Mixup / CutMix (import it from
  `assemble_tf.augment.mixup`; not re-exported here, so importing this
  package does not pull in its dependencies).
"""

import importlib

# Exported lazily (PEP 562): `assemble_tf.augment.mixup`, which the train
# steps use on every backend, imports no TensorFlow, and importing it must
# not pull in the TensorFlow image ops through this package.
_EXPORTS = {
    "ops": "assemble_tf.augment.ops",
    **{
        name: "assemble_tf.augment.autoaugment"
        for name in (
            "LEVEL_TO_ARG",
            "MAPPINGS",
            "NAME_TO_FUNC",
            "POLICIES",
            "RANDAUGMENT_OPS",
            "AutoAugment",
            "RandAugment",
            "level_to_arg",
        )
    },
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "ops" else getattr(module, name)


__all__ = sorted(_EXPORTS)
