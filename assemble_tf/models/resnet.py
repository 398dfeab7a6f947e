"""ResNet v1.5 with every Assemble-ResNet network tweak as an option.

Papers: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385), with the stride on the 3x3 (v1.5);
He et al., "Bag of Tricks for Image Classification with Convolutional Neural
Networks", CVPR 2019 (https://arxiv.org/abs/1812.01187: ResNet-D deep stem
and average-pool shortcut); Lee et al., "Compounding the Performance
Improvements of Assembled Techniques in a Convolutional Neural Network",
arXiv 2020 (https://arxiv.org/abs/2001.06268: SK, BigLittleNet, anti-aliasing,
DropBlock, zero-gamma assembled). The graph reproduces clovaai/assembled-cnn
`nets/resnet_model.py` (branch master) exactly where that code defines it,
so its released checkpoints load (see `assemble_tf.convert`): explicit zero
padding before strided convs, BN epsilon 1e-5 and momentum 0.997, TF1
variance-scaling conv init, glorot-uniform dense, 1001 classes.

Every tweak is an independent argument of `build_resnet`; named variants are
a few lines in `assemble_tf/presets.py`. Layer names are hierarchical and
deterministic (`stage3_big_block2_conv2`) and are the checkpoint ABI: the
importer of the original TF1 checkpoints derives the original variable
names from them (`assemble_tf.convert.tf1_names`).
"""

import dataclasses
import inspect
import math
import numbers

import keras
import numpy as np

from assemble_tf import presets
from assemble_tf.layers import common
from assemble_tf.layers.avg_pool import PaddedAveragePool2D
from assemble_tf.layers.batch_norm import BatchNorm
from assemble_tf.layers.big_little import BigLittleMerge
from assemble_tf.layers.conv import Conv2D
from assemble_tf.layers.cosine_classifier import CosineClassifier
from assemble_tf.layers.factory import (
    attention_names,
    create_anti_alias,
    create_attention,
    create_drop_block,
)
from assemble_tf.layers.gem import GeMPooling2D
from official.utils.misc import validation

# depth: (block type, blocks per stage, BigLittleNet "nominal" blocks). The
# BL counts are those of clovaai/assembled-cnn functions/model_fns.py.
RESNET_SPECS = {
    18: ("basic", (2, 2, 2, 2), None),
    34: ("basic", (3, 4, 6, 3), None),
    50: ("bottleneck", (3, 4, 6, 3), (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3), (4, 8, 18, 3)),
    152: ("bottleneck", (3, 8, 36, 3), (5, 12, 30, 3)),
    200: ("bottleneck", (3, 24, 36, 3), None),
}
STAGE_STRIDES = (1, 2, 2, 2)
# In BigLittleNet these are the strides of the merge blocks of S1-S3.
BIG_LITTLE_STAGE_STRIDES = (2, 2, 1, 2)
STEMS = ("classic", "deep")
SHORTCUTS = presets.SHORTCUTS
POOLINGS = ("avg", "gem")
CLASSIFIERS = ("dense", "cosine")
EXPANSION = {"basic": 1, "bottleneck": 4}
ANTI_ALIAS_SIZE = 3  # the paper's blur filter


@dataclasses.dataclass(frozen=True)
class _Options:
    """The `build_resnet` arguments (but `name`), as `_resolve` fills them:
    `block_sizes` and `stage_strides` are 4-tuples, `big_little` a tuple or
    None. Each argument is documented here, once; the defaults are
    `build_resnet`'s.

    Attributes:
        depth: int. 18 or 34 (basic blocks), 50, 101, 152 or 200 (bottleneck).
        image_size: int or None. Square input side; None accepts any size
            (the network is fully convolutional).
        num_classes: int. Logits (1001 for the original ImageNet models,
            class 0 being the unused background).
        include_top: bool. Add pooling and the dense head; False returns
            the last feature map.
        base_width: int. Stem width and S1 bottleneck width (64).
        block_sizes: 4 ints or None. Blocks per stage (BigLittleNet:
            nominal counts); None takes `RESNET_SPECS[depth]`.
        stage_strides: 4 ints or None. Default (1, 2, 2, 2), or (2, 2, 1, 2)
            with BigLittleNet (the merge-block strides).
        stem: str. "classic" (7x7/2) or "deep" (ResNet-C 3x3 x3, 32-32-64).
        shortcut: str. Downsampling projection: "conv" (strided 1x1),
            "avg2" (ResNet-D 2x2/2 average pool + 1x1), "avg3" (original
            BigLittleNet pad-1 3x3/2 average pool + 1x1) or "avg2_tf1"
            (the original code's ResNet-D shortcut, for its checkpoints:
            zero pad bottom / right, 2x2/2 pool counting the zeros, and a
            2x2/1 "same" pool on S1's stride-1 projection too).
        attention: None, "se", "sk", "sknet" or a combination like
            ("sk", "se").
        se_ratio: int. SE reduction (16).
        sk_reduction: int. SK ratio r (2).
        sk_min_dim: int. SK attention floor L (32).
        anti_alias: None or placements among "sconv", "proj", "max".
        anti_alias_size: int. Blur filter size 1-7 (3).
        big_little: None or (alpha, beta): BigLittleNet in S1-S3 with the BL
            stem module.
        dropblock: None or a dict (see `create_drop_block`).
        zero_gamma: bool. Zero-init the last BN gamma of every block.
        bn_momentum: float. BN momentum (0.997).
        bn_epsilon: float. BN epsilon (1e-5).
        pooling: str. "avg" or "gem" (p = 3).
        embedding_size: int or None. 1x1 embedding + BN (+ ReLU before the
            classifier), for retrieval.
        classifier: str. The head: "dense" (biased, glorot-uniform, as the
            original) or "cosine" (NormSoftmax, Zhai & Wu 2019,
            https://arxiv.org/abs/1811.12649: `CosineClassifier`, logits
            cos(embedding, class weight) / `cosine_temperature`, no bias,
            computed in float32; with `embedding_size` it takes the BN
            output, without the ReLU).
        cosine_temperature: float. Temperature T > 0 of the cosine head
            (0.05 as the paper); its logits lie in [-1 / T, 1 / T].

    BN folding (inference) is not a builder option: it belongs to the
    export, `assemble_tf.export.optimize.fold_bn_graph(model)` /
    `folded_copy(model)`.
    """

    depth: int
    image_size: int | None
    num_classes: int
    include_top: bool
    base_width: int
    block_sizes: tuple | None
    stage_strides: tuple | None
    stem: str
    shortcut: str
    attention: object
    se_ratio: int
    sk_reduction: int
    sk_min_dim: int
    anti_alias: object
    anti_alias_size: int
    big_little: tuple | None
    dropblock: dict | None
    zero_gamma: bool
    bn_momentum: float
    bn_epsilon: float
    pooling: str
    embedding_size: int | None
    classifier: str
    cosine_temperature: float

    @property
    def block_type(self):
        return RESNET_SPECS[self.depth][0]


def _invalid(option, requirement, value):
    """The builder's error for `option`: "`option` must <requirement>.
    Received: `option`=<value>" (in a binary, "--option"; before, a
    ValueError whose backticked names read as no flag there)."""
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, numbers.Number) for v in value
    ):
        shown = ",".join(map(str, value))  # as the flag takes it
    else:
        shown = repr(value)
    requirement = requirement.replace("{", "{{").replace("}", "}}")
    return validation.OptionError(
        option,
        "{field} must " + requirement + ". Received: {field}={value}",
        value=shown,
    )


def _check_choice(option, value, choices):
    if value not in choices:
        raise _invalid(option, f"be one of {choices}", value)


def _are_positive_ints(values, count):
    """Whether `values` is `count` ints >= 1: numpy's too (before:
    `tuple(np.array(...))` was refused, where `base_width=np.int64(8)` was
    taken), bools excluded."""
    return (
        isinstance(values, (tuple, list))
        and len(values) == count
        and not any(
            isinstance(v, (bool, np.bool_))
            or not isinstance(v, numbers.Integral)
            or v < 1
            for v in values
        )
    )


def _check_big_little(o):
    """BigLittleNet needs bottleneck blocks, block counts, a multiple of 32
    and a width that alpha divides."""
    if not _are_positive_ints(o.big_little, 2):
        raise _invalid(
            "big_little",
            "be None or (alpha, beta), two positive ints",
            o.big_little,
        )
    if o.block_type != "bottleneck":
        raise ValueError(
            "`big_little` needs bottleneck blocks (depth >= 50). "
            f"Received: depth={o.depth}"
        )
    if o.block_sizes is None and RESNET_SPECS[o.depth][2] is None:
        raise ValueError(
            f"BigLittleNet has no block counts for depth={o.depth}; pass "
            "`block_sizes` (4 nominal counts)."
        )
    # Named as options (a binary prints them as its flags; before, a bare
    # "image_size=48" that read as no flag there).
    if o.image_size is not None and o.image_size % 32:
        raise _invalid(
            "image_size",
            "be a multiple of 32 for BigLittleNet (the big branch is "
            "upsampled 2x and added to the little one)",
            o.image_size,
        )
    if o.base_width % o.big_little[0]:
        raise _invalid(
            "base_width",
            f"be divisible by the BigLittleNet alpha {o.big_little[0]}",
            o.base_width,
        )


def _block_sizes(o):
    """The 4 blocks per stage (BigLittleNet: nominal counts)."""
    _, plain_sizes, bl_sizes = RESNET_SPECS[o.depth]
    if o.block_sizes is None:
        sizes = plain_sizes if o.big_little is None else bl_sizes
    else:
        sizes = o.block_sizes
    if not _are_positive_ints(tuple(sizes), 4):
        raise _invalid(
            "block_sizes",
            "be 4 positive ints (blocks per stage)",
            o.block_sizes,
        )
    sizes = tuple(int(v) for v in sizes)
    if o.big_little is not None and min(sizes[:3]) < 2:
        raise validation.OptionError(
            "block_sizes",
            "BigLittleNet stages S1-S3 need at least 2 nominal blocks (the "
            "big branch has n - 1): {field}={value}; e.g. {field}=2,2,2,1 "
            "for a tiny model.",
            value=",".join(map(str, sizes)),
        )
    return sizes


def _stage_strides(o):
    if o.stage_strides is None:
        big_little = o.big_little is not None
        return BIG_LITTLE_STAGE_STRIDES if big_little else STAGE_STRIDES
    strides = tuple(o.stage_strides)
    if len(strides) != 4 or any(
        isinstance(s, bool) or s not in (1, 2) for s in strides
    ):
        raise _invalid("stage_strides", "be 4 values of 1 or 2", strides)
    return strides


def _check_anti_alias(o):
    placements, _ = create_anti_alias(o.anti_alias)
    if "max" in placements and o.big_little is not None:
        raise ValueError(
            "anti_alias 'max' blurs the stem max-pool, which BigLittleNet "
            f"replaces. Received: anti_alias={o.anti_alias!r}, "
            f"big_little={o.big_little}"
        )
    if "proj" in placements and o.shortcut != "conv":
        raise ValueError(
            "anti_alias 'proj' blurs the strided-conv shortcut only. "
            f"Received: anti_alias={o.anti_alias!r}, shortcut={o.shortcut!r}"
        )


def _number_error(o):
    """The error for a BN option that is not a number, or None (before:
    "'<=' not supported between instances of 'str' and 'float')."""
    for option in ("bn_momentum", "bn_epsilon"):
        value = getattr(o, option)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _invalid(option, "be a number", value)
    return None


def _check_head(o):
    for option in ("image_size", "num_classes", "embedding_size"):
        if getattr(o, option) is not None:
            validation.check_positive_int(option, getattr(o, option))
    if o.include_top and o.num_classes is None:  # Keras' "units=None"
        raise ValueError(
            "`num_classes` must be a positive integer with include_top=True "
            "(None: build without the head, include_top=False). Received: "
            "num_classes=None"
        )
    _check_choice("classifier", o.classifier, CLASSIFIERS)
    t = o.cosine_temperature
    if (
        isinstance(t, bool)
        or not isinstance(t, (int, float))
        or not (0 < t < math.inf)
    ):  # inf: every logit 0
        raise _invalid("cosine_temperature", "be a finite number > 0", t)


# Options that set up a feature, the feature's option and the values that
# turn it on (`None`: any value but None).
_FEATURE_OPTIONS = (
    ("se_ratio", "attention", ("se",), "e.g. attention='se'"),
    ("sk_reduction", "attention", ("sk", "sknet"), "e.g. attention='sk'"),
    ("sk_min_dim", "attention", ("sk", "sknet"), "e.g. attention='sk'"),
    ("anti_alias_size", "anti_alias", None, "e.g. anti_alias='sconv'"),
    ("cosine_temperature", "classifier", ("cosine",), "classifier='cosine'"),
)
# The head's options, which do nothing without it.
_HEAD_OPTIONS = (
    "num_classes",
    "pooling",
    "embedding_size",
    "classifier",
    "cosine_temperature",
)


def _check_unused(o):
    """An option whose feature is off does nothing: refused, naming what
    turns it on (before: se_ratio without SE, SK's options without SK, a
    temperature without the cosine head and the head's options with
    include_top=False were ignored; anti_alias_size alone was refused)."""
    found = next(_unused(o), None)
    if found:
        raise ValueError(found[1])


def _unused(o):
    """(option, message) of each option of `o` set to other than its
    default that its feature's setting leaves out."""
    defaults = _DEFAULTS
    if not o.include_top:
        for name in _HEAD_OPTIONS:
            value = getattr(o, name)
            if value != defaults[name]:
                message = (
                    f"`{name}` sets up the head, which include_top=False "
                    "leaves out: leave it out, or build the head. "
                    f"Received: {name}={value!r}"
                )
                yield name, message
    attention = attention_names(o.attention)
    for option, feature, values, example in _FEATURE_OPTIONS:
        value = getattr(o, option)
        if value == defaults[option]:
            continue
        setting = getattr(o, feature)
        on = setting is not None
        if values is not None:
            names = attention if feature == "attention" else (setting,)
            on = any(v in names for v in values)
        if not on:
            message = (
                f"`{option}` sets up what {feature}={setting!r} leaves "
                f"out: pass {example} too, or leave {option} out. "
                f"Received: {option}={value!r}"
            )
            yield option, message


def unused_options(**kwargs):
    """The `build_resnet` arguments among `kwargs` that the others leave
    out (`se_ratio` without SE, the head's options with include_top=False,
    ...), which `build_resnet` refuses. `build_model` drops a preset's own
    such options where an override turns their feature off."""
    merged = {**_DEFAULTS, **kwargs}
    merged.pop("name")
    try:
        options = _Options(**merged)
        return [option for option, _ in _unused(options)]
    except (TypeError, ValueError):
        return []  # build_resnet names what is wrong


def _check_types(o):
    """Options of the wrong type, or an option that does nothing (before:
    depth=50.0 built "resnet50.0", include_top="no" built the head,
    block_sizes=5 raised a bare TypeError, se_ratio=0 was named as the
    layer's `ratio`, anti_alias_size without anti_alias was ignored)."""
    if isinstance(o.depth, bool) or not isinstance(o.depth, int):
        raise ValueError(
            f"`depth` must be an int, one of {sorted(RESNET_SPECS)}. "
            f"Received: depth={o.depth!r}"
        )
    for option in ("include_top", "zero_gamma"):
        if not isinstance(getattr(o, option), bool):
            raise ValueError(
                f"`{option}` must be True or False. Received: "
                f"{option}={getattr(o, option)!r}"
            )
    for option in ("se_ratio", "sk_reduction", "sk_min_dim", "anti_alias_size"):
        validation.check_positive_int(option, getattr(o, option))
    for option in ("block_sizes", "stage_strides"):
        value = getattr(o, option)
        if value is not None and not isinstance(value, (tuple, list)):
            raise ValueError(
                f"`{option}` must be None or 4 ints, one per stage. "
                f"Received: {option}={value!r}"
            )


def _check_data_format():
    """The models are NHWC throughout (the original's layout, its
    checkpoints and the SavedModel signatures). Keras' layers read the
    process-wide image data format: under "channels_first" a model built
    and ran on NHWC images as if they were NCHW, or failed deep inside."""
    data_format = keras.config.image_data_format()
    if data_format != "channels_last":
        raise ValueError(
            "The ResNet models are channels_last (NHWC); Keras' image data "
            f"format is {data_format!r} (keras.config."
            "set_image_data_format, or ~/.keras/keras.json): set it to "
            "'channels_last' before building."
        )


def _resolve(o):
    """Checks every option, in one pass, and fills the defaults.

    Errors name the argument and echo the value received.

    Args:
        o: an `_Options` of the `build_resnet` arguments as passed.

    Returns:
        The `_Options` with `block_sizes`, `stage_strides` and `big_little`
        as tuples.
    """
    _check_data_format()
    _check_types(o)
    if o.depth not in RESNET_SPECS:
        raise ValueError(
            f"`depth` must be one of {sorted(RESNET_SPECS)}. "
            f"Received: depth={o.depth!r}"
        )
    _check_choice("stem", o.stem, STEMS)
    _check_choice("shortcut", o.shortcut, SHORTCUTS)
    _check_choice("pooling", o.pooling, POOLINGS)
    validation.check_positive_int("base_width", o.base_width)
    if o.stem == "deep" and o.base_width < 2:  # its first convs: width // 2
        raise ValueError(
            "`base_width` must be at least 2 with stem='deep' (its first "
            f"two convolutions are half as wide). Received: "
            f"base_width={o.base_width!r}"
        )
    if number_error := _number_error(o):
        raise number_error
    if not 0.0 <= o.bn_momentum < 1.0:  # 5 built, and trained, diverging
        raise _invalid("bn_momentum", "be in [0, 1)", o.bn_momentum)
    if not 0.0 < o.bn_epsilon < math.inf:
        raise _invalid("bn_epsilon", "be a finite number > 0", o.bn_epsilon)
    if o.big_little is not None:
        _check_big_little(o)
    sizes = _block_sizes(o)
    strides = _stage_strides(o)
    _check_anti_alias(o)
    create_attention(o.attention)
    _check_head(o)
    _check_unused(o)
    big_little = tuple(o.big_little) if o.big_little is not None else None
    return dataclasses.replace(
        o, block_sizes=sizes, stage_strides=strides, big_little=big_little
    )


class _Builder:
    """Builds the functional graph from resolved `_Options`."""

    def __init__(self, options):
        o = self.options = options
        self.attn_middle, self.attn_post = create_attention(
            o.attention,
            se_ratio=o.se_ratio,
            sk_reduction=o.sk_reduction,
            sk_min_dim=o.sk_min_dim,
            bn_momentum=o.bn_momentum,
            bn_epsilon=o.bn_epsilon,
        )
        self.aa, self.blur = create_anti_alias(o.anti_alias, o.anti_alias_size)
        self.dropblock = create_drop_block(o.dropblock)

    # Basic units -----------------------------------------------------------

    def conv_bn(self, x, filters, kernel, strides, name, zero_gamma=False):
        """Conv (no bias) + BN; strided convs pad explicitly, then VALID.

        The pair is `<name>_conv` feeding `<name>_bn` only, the form
        `assemble_tf.export.optimize.fold_bn_graph` folds for inference.
        """
        if strides > 1:
            before = (kernel - 1) // 2
            after = kernel - 1 - before
            if before or after:
                x = keras.layers.ZeroPadding2D(
                    ((before, after), (before, after)), name=f"{name}_pad"
                )(x)
        x = Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="valid" if strides > 1 else "same",
            use_bias=False,
            kernel_initializer=common.conv_initializer(),
            name=f"{name}_conv",
        )(x)
        return self.bn(x, name, zero_gamma=zero_gamma)

    def bn(self, x, name, zero_gamma=False):
        return BatchNorm(
            momentum=self.options.bn_momentum,
            epsilon=self.options.bn_epsilon,
            gamma_initializer="zeros" if zero_gamma else "ones",
            name=f"{name}_bn",
        )(x)

    @staticmethod
    def relu(x, name):
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    @staticmethod
    def drop(x, drop_fn, name):
        return x if drop_fn is None else drop_fn(name=f"{name}_drop")(x)

    # Stem -----------------------------------------------------------------

    def stem(self, x):
        """7x7/2 conv, or the ResNet-C/D deep stem: 3x3/2 (w/2), 3x3 (w/2),
        3x3 (w); each with BN and ReLU."""
        width = self.options.base_width
        if self.options.stem == "classic":
            layers = ((width, 7, 2),)
        else:
            layers = ((width // 2, 3, 2), (width // 2, 3, 1), (width, 3, 1))
        for i, (filters, kernel, strides) in enumerate(layers, start=1):
            x = self.conv_bn(x, filters, kernel, strides, f"stem_{i}")
            x = self.relu(x, f"stem_{i}")
        return x

    def stem_pool(self, x):
        if "max" in self.aa:
            # Zhang 2019: max-pool densely (stride 1), then blur-subsample.
            x = keras.layers.MaxPooling2D(
                3, strides=1, padding="same", name="stem_pool"
            )(x)
            return self.blur(name="stem_blur")(x)
        return keras.layers.MaxPooling2D(
            3, strides=2, padding="same", name="stem_pool"
        )(x)

    def big_little_stem(self, x):
        """The BL stem module that replaces the max-pool (stage0/pool)."""
        width, alpha = self.options.base_width, self.options.big_little[0]
        big = self.conv_bn(x, width, 3, 2, "stem_bl_big")
        little = x
        for i, (filters, kernel, strides) in enumerate(
            ((width // alpha, 3, 1), (width // alpha, 3, 2)), start=1
        ):
            little = self.conv_bn(
                little, filters, kernel, strides, f"stem_bl_little{i}"
            )
            little = self.relu(little, f"stem_bl_little{i}")
        little = self.conv_bn(little, width, 1, 1, "stem_bl_little3")
        x = keras.layers.Add(name="stem_bl_add")([big, little])
        x = self.relu(x, "stem_bl_add")
        x = self.conv_bn(x, width, 1, 1, "stem_bl_merge")
        return self.relu(x, "stem_bl_merge")

    # Blocks ---------------------------------------------------------------

    def shortcut(self, x, filters, strides, name, drop_fn):
        kind = self.options.shortcut
        if strides > 1 and kind == "avg2":
            # ResNet-D: 2x2/2 average pool, padding excluded from the mean.
            x = keras.layers.AveragePooling2D(
                2, strides=2, padding="same", name=f"{name}_pool"
            )(x)
            strides = 1
        elif kind == "avg2_tf1":
            # The original code's ResNet-D shortcut (clovaai master,
            # `resnet_d_projection_shortcut`): at stride 2 a zero row and
            # column after the map, then a 2x2/2 "valid" pool (on an odd
            # side the zeros count in the last mean); at stride 1 (S1's
            # projection) a 2x2/1 "same" pool, padding excluded. "avg2" is
            # the paper's (Bag of Tricks) and has neither.
            if strides > 1:
                x = keras.layers.ZeroPadding2D(
                    ((0, 1), (0, 1)), name=f"{name}_pool_pad"
                )(x)
            x = keras.layers.AveragePooling2D(
                2,
                strides=strides,
                padding="valid" if strides > 1 else "same",
                name=f"{name}_pool",
            )(x)
            strides = 1
        elif strides > 1 and kind == "avg3":
            # Original BigLittleNet shortcut: pad 1, 3x3/2 average pool
            # with the zeros counted (count_include_pad), one layer. The
            # weightless `_pool_pad` stands where the pad layer stood:
            # TensorFlow checkpoints index the model's layers, and runs
            # written before restore.
            x = keras.layers.Identity(name=f"{name}_pool_pad")(x)
            x = PaddedAveragePool2D(
                3, strides=2, padding=1, name=f"{name}_pool"
            )(x)
            strides = 1
        elif strides > 1 and "proj" in self.aa:
            x = self.blur(name=f"{name}_blur")(x)
            strides = 1
        x = self.conv_bn(x, filters, 1, strides, name)
        return self.drop(x, drop_fn, name)

    def unit(self, x, filters, kernel, strides, name, drop_fn):
        """Conv + BN, DropBlock, ReLU: a unit of the residual branch."""
        x = self.conv_bn(x, filters, kernel, strides, name)
        return self.relu(self.drop(x, drop_fn, name), name)

    def middle(self, x, filters, strides, name, drop_fn):
        """The 3x3 of the branch (or the SK unit replacing it), and the
        anti-aliasing blur of a strided block after it."""
        blur_after = strides > 1 and "sconv" in self.aa
        mid_strides = 1 if blur_after else strides
        if self.attn_middle is not None:
            sk = self.attn_middle(
                filters,
                strides=mid_strides,
                name=f"{name}_sk",
            )
            x = self.drop(sk(x), drop_fn, f"{name}_sk")
        else:
            x = self.unit(x, filters, 3, mid_strides, f"{name}_2", drop_fn)
        if blur_after:
            x = self.blur(name=f"{name}_blur")(x)
        return x

    def block(self, x, filters, strides, name, *, project, drop_fn, last_relu):
        """One residual block (bottleneck or basic), v1.5 post-activation."""
        bottleneck = self.options.block_type == "bottleneck"
        out_filters = filters * EXPANSION[self.options.block_type]
        if not bottleneck:
            project = project and (strides != 1 or x.shape[-1] != out_filters)
        shortcut = x
        if project:
            shortcut = self.shortcut(
                x, out_filters, strides, f"{name}_shortcut", drop_fn
            )
        y = x
        if bottleneck:
            y = self.unit(y, filters, 1, 1, f"{name}_1", drop_fn)
        y = self.middle(y, filters, strides, name, drop_fn)
        last = f"{name}_3" if bottleneck else f"{name}_2b"
        y = self.conv_bn(
            y,
            out_filters,
            1 if bottleneck else 3,
            1,
            last,
            zero_gamma=self.options.zero_gamma,
        )
        y = self.drop(y, drop_fn, last)
        if self.attn_post is not None:
            y = self.attn_post(name=f"{name}_se")(y)
        y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
        return self.relu(y, f"{name}_out") if last_relu else y

    def block_layer(
        self, x, filters, num_blocks, strides, name, drop_fn, last_relu=True
    ):
        for b in range(num_blocks):
            x = self.block(
                x,
                filters,
                strides if b == 0 else 1,
                f"{name}_block{b + 1}",
                project=b == 0,
                drop_fn=drop_fn,
                # As in the original block_layer, the first block is built
                # outside the loop that applies `last_relu`: a one-block
                # layer keeps its ReLU (the tiny golden checkpoint shows it).
                last_relu=last_relu or b == 0 or b < num_blocks - 1,
            )
        return x

    def big_little_stage(self, x, stage, filters, num_blocks, strides):
        """Big branch (n - 1 blocks at half resolution), little branch
        (n / beta - 1 blocks of width / alpha, then a 1x1 expansion), the
        merge and one merge block with the stage's stride."""
        alpha, beta = self.options.big_little
        drop_fn = self.dropblock(stage)
        name = f"stage{stage}"
        big = self.block_layer(
            x, filters, num_blocks - 1, 2, f"{name}_big", drop_fn, False
        )
        little = self.block_layer(
            x,
            filters // alpha,
            max(1, num_blocks // beta - 1),
            1,
            f"{name}_little",
            drop_fn,
        )
        little = self.conv_bn(
            little,
            filters * EXPANSION["bottleneck"],
            1,
            1,
            f"{name}_little_expand",
        )
        x = BigLittleMerge(name=f"{name}_merge")([big, little])
        return self.block_layer(
            x, filters, 1, strides, f"{name}_merge", drop_fn
        )

    # Network --------------------------------------------------------------

    def features(self, x):
        """Stem and the four stages: the last feature map."""
        o = self.options
        if o.big_little is not None:
            x = self.big_little_stem(self.stem(x))
        else:
            x = self.stem_pool(self.stem(x))
        for i, (n, s) in enumerate(
            zip(o.block_sizes, o.stage_strides, strict=True)
        ):
            stage, filters = i + 1, o.base_width * 2**i
            if o.big_little is not None and stage < 4:
                x = self.big_little_stage(x, stage, filters, n, s)
            else:
                x = self.block_layer(
                    x, filters, n, s, f"stage{stage}", self.dropblock(stage)
                )
        return x

    def head(self, x):
        """Pooling, the optional embedding and the classifier: logits."""
        o = self.options
        if o.pooling == "gem":
            x = GeMPooling2D(name="head_pool")(x)
        else:
            x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
        if o.embedding_size is not None:
            x = keras.layers.Dense(
                o.embedding_size,
                use_bias=False,
                kernel_initializer=common.conv_initializer(),
                name="head_embedding",
            )(x)
            x = self.bn(x, "head_embedding")
            if o.classifier == "dense":
                x = self.relu(x, "head_embedding")
        if o.classifier == "cosine":
            # float32 policy: no float16 rounding of logits up to 1 / T.
            x = CosineClassifier(
                o.num_classes,
                o.cosine_temperature,
                dtype="float32",
                name="head_dense",
            )(x)
        else:
            # float32 policy too: under a mixed policy a bfloat16 matmul
            # gave every logit 8 significant bits (steps of 0.06 - 0.125 at
            # 10 - 30), so near-ties became ties (2.8 % of rows' top-1 in
            # bfloat16, 0.6 % in float16) in training's validation,
            # tools.evaluate and the robustness metrics; ~0.05 % of the
            # multiply-adds.
            x = keras.layers.Dense(
                o.num_classes,
                kernel_initializer="glorot_uniform",
                dtype="float32",
                name="head_dense",
            )(x)
        # Logits (and so losses) stay float32 under mixed precision.
        return keras.layers.Activation(
            "linear", dtype="float32", name="logits"
        )(x)


# The layer whose output is the model's embedding, best first: the
# batch-normalised embedding of an embedding head (before its ReLU), else
# the pooled features (the original's `return_embedding`,
# clovaai/assembled-cnn). What retrieval embeds and the export's
# `feature_vector` serves.
EMBEDDING_LAYERS = ("head_embedding_bn", "head_pool")


def embedding_layer(model):
    """The name of `model`'s embedding layer (`EMBEDDING_LAYERS`), or None
    for a model with neither."""
    names = {layer.name for layer in model.layers}
    return next((n for n in EMBEDDING_LAYERS if n in names), None)


def build_resnet(
    depth=50,
    *,
    image_size=None,
    num_classes=1001,
    include_top=True,
    base_width=64,
    block_sizes=None,
    stage_strides=None,
    stem="classic",
    shortcut="conv",
    attention=None,
    se_ratio=16,
    sk_reduction=2,
    sk_min_dim=32,
    anti_alias=None,
    anti_alias_size=ANTI_ALIAS_SIZE,
    big_little=None,
    dropblock=None,
    zero_gamma=True,
    bn_momentum=0.997,
    bn_epsilon=1e-5,
    pooling="avg",
    embedding_size=None,
    classifier="dense",
    cosine_temperature=0.05,
    name=None,
):
    """Builds a ResNet v1.5 Keras model with the Assemble-ResNet tweaks.

    Every argument but `name` is an option of the network, documented under
    its own name (type, meaning, choices) in `_Options`, the dataclass that
    holds them; the defaults are the signature's.

    Args:
        name: str or None. Model name (default "resnet<depth>").

    Returns:
        A `keras.Model` from NHWC float images (mean-subtracted RGB) to
        float32 logits (or features with `include_top=False`).
    """
    # The arguments by name (first statement: nothing else is local yet),
    # so the option names are written once, in the signature.
    arguments = dict(locals())
    del arguments["name"]
    options = _resolve(_Options(**arguments))
    builder = _Builder(options)
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = builder.features(inputs)
    if include_top:
        x = builder.head(x)
    return keras.Model(inputs, x, name=name or f"resnet{depth}")


_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(build_resnet).parameters.items()
}
