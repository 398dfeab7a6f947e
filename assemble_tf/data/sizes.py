"""Train and eval image sizes of the preprocessing types.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268) evaluate 224-px models
on 256 -> 224 centre crops and 256-px models on 292 -> 256 (ResNet-152:
257 -> 256); `imagenet_NNN` is resize int(NNN / 0.875) then crop NNN,
`imagenet_NNNa` resize NNN + 1. No TensorFlow here: configs are validated
on machines that train under JAX alone.
"""

import re

from official.utils.misc.validation import OptionError

_FIXED_TYPES = {
    "imagenet": (224, 256, 224),
    "imagenet_224_256": (224, 292, 256),
    "imagenet_224_256a": (224, 257, 256),
}
_PATTERN = re.compile(r"^imagenet_(\d+)(a?)$")


def eval_sizes(preprocessing_type, field="preprocessing_type"):
    """Returns `(train_size, resize_side, crop_size)` of a preprocessing type.

    Raises:
        OptionError: (a ValueError) naming `field`, the option that gave
            the unknown type, and the accepted forms.
    """
    if preprocessing_type in _FIXED_TYPES:
        return _FIXED_TYPES[preprocessing_type]
    m = _PATTERN.match(str(preprocessing_type))
    if m:
        size = int(m.group(1))
        if size > 0:
            resize = size + 1 if m.group(2) else int(size / 0.875)
            return size, resize, size
    raise OptionError(
        field,
        "{field} must be one of {types}, 'imagenet_NNN' or 'imagenet_NNNa'. "
        "Received: {field}={value!r}",
        types=sorted(_FIXED_TYPES),
        value=preprocessing_type,
    )
