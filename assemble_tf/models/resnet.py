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
deterministic (`stage3_big_block2_conv2`) and are the checkpoint ABI.
"""

import keras

from assemble_tf.layers import common
from assemble_tf.layers.batch_norm import BatchNorm
from assemble_tf.layers.big_little import BigLittleMerge
from assemble_tf.layers.conv import Conv2D
from assemble_tf.layers.cosine_classifier import CosineClassifier
from assemble_tf.layers.factory import (
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
SHORTCUTS = ("conv", "avg2", "avg3")
POOLINGS = ("avg", "gem")
CLASSIFIERS = ("dense", "cosine")
EXPANSION = {"basic": 1, "bottleneck": 4}


class Layout:
    """Records layers in the order the original TF1 graph created them.

    Keys are the original variable scopes (`resnet_model/stage1/big1`);
    values list `(kind, layer)` with kind in conv, bn, sk, se, dense,
    embedding, cosine. The checkpoint importer maps TF1 names (numbered by
    creation order within a scope) onto our layers with it.
    """

    def __init__(self):
        self.scopes = {}

    def add(self, scope, kind, layer):
        self.scopes.setdefault(scope, []).append((kind, layer))


class _NullLayout:
    def add(self, scope, kind, layer):
        pass


def _check_choice(option, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{option}` must be one of {choices}. Received: {option}={value!r}"
        )


class _Builder:
    """Holds the resolved options while the functional graph is built."""

    def __init__(self, opts, layout):
        self.o = opts
        self.layout = layout
        self.attn_middle, self.attn_post = create_attention(
            opts["attention"],
            se_ratio=opts["se_ratio"],
            sk_reduction=opts["sk_reduction"],
            sk_min_dim=opts["sk_min_dim"],
        )
        self.aa, self.blur = create_anti_alias(
            opts["anti_alias"], opts["anti_alias_size"]
        )
        self.dropblock = create_drop_block(opts["dropblock"])
        self.bn_args = dict(
            momentum=opts["bn_momentum"], epsilon=opts["bn_epsilon"]
        )

    # Basic units -----------------------------------------------------------

    def conv(self, x, filters, kernel, strides, name, scope, dilation=1):
        """Conv without bias; strided convs pad explicitly, then VALID."""
        if strides > 1:
            before = (kernel - 1) // 2
            after = kernel - 1 - before
            if before or after:
                x = keras.layers.ZeroPadding2D(
                    ((before, after), (before, after)), name=f"{name}_pad"
                )(x)
        layer = Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="valid" if strides > 1 else "same",
            dilation_rate=dilation,
            # With BN folded (inference) the conv carries the BN shift.
            use_bias=self.o["fold_bn"],
            kernel_initializer=common.conv_initializer(),
            name=f"{name}_conv",
        )
        self.layout.add(scope, "conv", layer)
        return layer(x)

    def bn(self, x, name, scope, zero_gamma=False, foldable=True):
        if foldable and self.o["fold_bn"]:
            return x
        layer = BatchNorm(
            gamma_initializer="zeros" if zero_gamma else "ones",
            name=f"{name}_bn",
            **self.bn_args,
        )
        self.layout.add(scope, "bn", layer)
        return layer(x)

    def conv_bn(self, x, filters, kernel, strides, name, scope, **kw):
        zero_gamma = kw.pop("zero_gamma", False)
        x = self.conv(x, filters, kernel, strides, name, scope, **kw)
        return self.bn(x, name, scope, zero_gamma=zero_gamma)

    @staticmethod
    def relu(x, name):
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    @staticmethod
    def drop(x, drop_fn, name):
        return x if drop_fn is None else drop_fn(name=f"{name}_drop")(x)

    # Stem -----------------------------------------------------------------

    def stem(self, x, scope_conv, scope_bn):
        width = self.o["base_width"]
        if self.o["stem"] == "classic":
            x = self.conv(x, width, 7, 2, "stem_1", scope_conv)
            x = self.bn(x, "stem_1", scope_bn)
            x = self.relu(x, "stem_1")
        else:
            # ResNet-C/D deep stem: 3x3/2 (w/2), 3x3 (w/2), 3x3 (w).
            for i, (f, s) in enumerate(
                ((width // 2, 2), (width // 2, 1), (width, 1)), start=1
            ):
                x = self.conv(x, f, 3, s, f"stem_{i}", scope_conv)
                x = self.bn(x, f"stem_{i}", scope_bn)
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

    def big_little_stem(self, x, scope):
        """The BL stem module that replaces the max-pool (stage0/pool)."""
        width, alpha = self.o["base_width"], self.o["big_little"][0]
        big = self.conv_bn(x, width, 3, 2, "stem_bl_big", scope)
        little = self.conv_bn(x, width // alpha, 3, 1, "stem_bl_little1", scope)
        little = self.relu(little, "stem_bl_little1")
        little = self.conv_bn(
            little, width // alpha, 3, 2, "stem_bl_little2", scope
        )
        little = self.relu(little, "stem_bl_little2")
        little = self.conv_bn(little, width, 1, 1, "stem_bl_little3", scope)
        x = keras.layers.Add(name="stem_bl_add")([big, little])
        x = self.relu(x, "stem_bl_add")
        x = self.conv_bn(x, width, 1, 1, "stem_bl_merge", scope)
        return self.relu(x, "stem_bl_merge")

    # Blocks ---------------------------------------------------------------

    def shortcut(self, x, filters, strides, name, scope, drop_fn):
        kind = self.o["shortcut"]
        if strides > 1 and kind == "avg2":
            # ResNet-D: 2x2/2 average pool, padding excluded from the mean.
            x = keras.layers.AveragePooling2D(
                2, strides=2, padding="same", name=f"{name}_pool"
            )(x)
            strides = 1
        elif strides > 1 and kind == "avg3":
            # Original BigLittleNet shortcut: pad 1, 3x3/2 average pool
            # with the zeros counted (count_include_pad).
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)
            x = keras.layers.AveragePooling2D(
                3, strides=2, padding="valid", name=f"{name}_pool"
            )(x)
            strides = 1
        elif strides > 1 and "proj" in self.aa:
            x = self.blur(name=f"{name}_blur")(x)
            strides = 1
        x = self.conv_bn(x, filters, 1, strides, name, scope)
        return self.drop(x, drop_fn, name)

    def block(
        self,
        x,
        filters,
        strides,
        name,
        scope,
        *,
        project,
        drop_fn,
        last_relu=True,
    ):
        """One residual block (bottleneck or basic), v1.5 post-activation."""
        btype = self.o["block_type"]
        out_filters = filters * EXPANSION[btype]
        if btype == "basic":
            project = project and (strides != 1 or x.shape[-1] != out_filters)
        shortcut = x
        if project:
            shortcut = self.shortcut(
                x, out_filters, strides, f"{name}_shortcut", scope, drop_fn
            )
        blur_after = strides > 1 and "sconv" in self.aa
        mid_strides = 1 if blur_after else strides
        y = x
        if btype == "bottleneck":
            y = self.conv_bn(y, filters, 1, 1, f"{name}_1", scope)
            y = self.drop(y, drop_fn, f"{name}_1")
            y = self.relu(y, f"{name}_1")
        if self.attn_middle is not None:
            sk = self.attn_middle(
                filters, strides=mid_strides, name=f"{name}_sk"
            )
            self.layout.add(scope, "sk", sk)
            y = self.drop(sk(y), drop_fn, f"{name}_sk")
        else:
            y = self.conv_bn(y, filters, 3, mid_strides, f"{name}_2", scope)
            y = self.drop(y, drop_fn, f"{name}_2")
            y = self.relu(y, f"{name}_2")
        if blur_after:
            y = self.blur(name=f"{name}_blur")(y)
        last = f"{name}_3" if btype == "bottleneck" else f"{name}_2b"
        kernel = 1 if btype == "bottleneck" else 3
        y = self.conv_bn(
            y,
            out_filters,
            kernel,
            1,
            last,
            scope,
            zero_gamma=self.o["zero_gamma"],
        )
        y = self.drop(y, drop_fn, last)
        if self.attn_post is not None:
            se = self.attn_post(name=f"{name}_se")
            self.layout.add(scope, "se", se)
            y = se(y)
        y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
        if last_relu:
            y = self.relu(y, f"{name}_out")
        return y

    def block_layer(
        self,
        x,
        filters,
        num_blocks,
        strides,
        name,
        scope,
        drop_fn,
        last_relu=True,
    ):
        for b in range(num_blocks):
            x = self.block(
                x,
                filters,
                strides if b == 0 else 1,
                f"{name}_block{b + 1}",
                scope,
                project=b == 0,
                drop_fn=drop_fn,
                # As in the original block_layer, the first block is built
                # outside the loop that applies `last_relu`: a one-block
                # layer keeps its ReLU (the tiny golden checkpoint shows it).
                last_relu=last_relu or b == 0 or b < num_blocks - 1,
            )
        return x

    def big_little_stage(self, x, stage, filters, num_blocks, strides, scope):
        alpha, beta = self.o["big_little"]
        drop_fn = self.dropblock(stage)
        name = f"stage{stage}"
        big = self.block_layer(
            x,
            filters,
            num_blocks - 1,
            2,
            f"{name}_big",
            f"{scope}/big{stage}",
            drop_fn,
            last_relu=False,
        )
        little_scope = f"{scope}/little{stage}"
        little = self.block_layer(
            x,
            filters // alpha,
            max(1, num_blocks // beta - 1),
            1,
            f"{name}_little",
            little_scope,
            drop_fn,
        )
        little = self.conv_bn(
            little,
            filters * EXPANSION["bottleneck"],
            1,
            1,
            f"{name}_little_expand",
            little_scope,
        )
        x = BigLittleMerge(name=f"{name}_merge")([big, little])
        return self.block_layer(
            x,
            filters,
            1,
            strides,
            f"{name}_merge",
            f"{scope}/merge{stage}",
            drop_fn,
        )


def _resolve_options(
    depth,
    block_sizes,
    stage_strides,
    base_width,
    stem,
    shortcut,
    big_little,
    anti_alias,
    attention,
    image_size,
    num_classes,
    pooling,
    embedding_size,
    classifier,
    cosine_temperature,
):
    if depth not in RESNET_SPECS:
        raise ValueError(
            f"`depth` must be one of {sorted(RESNET_SPECS)}. "
            f"Received: depth={depth!r}"
        )
    block_type, plain_sizes, bl_sizes = RESNET_SPECS[depth]
    _check_choice("stem", stem, STEMS)
    _check_choice("shortcut", shortcut, SHORTCUTS)
    _check_choice("pooling", pooling, POOLINGS)
    validation.check_positive_int("base_width", base_width)
    if big_little is not None:
        if (
            not isinstance(big_little, (tuple, list))
            or len(big_little) != 2
            or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1
                for v in big_little
            )
        ):
            raise ValueError(
                "`big_little` must be None or (alpha, beta), two positive "
                f"ints. Received: big_little={big_little!r}"
            )
        if block_type != "bottleneck":
            raise ValueError(
                "`big_little` needs bottleneck blocks (depth >= 50). "
                f"Received: depth={depth}"
            )
        if block_sizes is None and bl_sizes is None:
            raise ValueError(
                f"BigLittleNet has no block counts for depth={depth}; pass "
                "`block_sizes` (4 nominal counts)."
            )
        if image_size is not None and image_size % 32:
            raise ValueError(
                "BigLittleNet needs an input side that is a multiple of 32 "
                "(the big branch is upsampled 2x and added to the little "
                f"one). Received: image_size={image_size}"
            )
        alpha = big_little[0]
        if base_width % alpha:
            raise ValueError(
                f"`base_width` must be divisible by the BigLittleNet alpha. "
                f"Received: base_width={base_width}, big_little={big_little}"
            )
        default_sizes = bl_sizes
    else:
        default_sizes = plain_sizes
    sizes = tuple(block_sizes) if block_sizes is not None else default_sizes
    if len(sizes) != 4 or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes
    ):
        raise ValueError(
            "`block_sizes` must be 4 positive ints (blocks per stage). "
            f"Received: block_sizes={block_sizes!r}"
        )
    if big_little is not None and min(sizes[:3]) < 2:
        raise ValueError(
            "BigLittleNet stages S1-S3 need at least 2 nominal blocks (the "
            f"big branch has n - 1). Received: block_sizes={sizes}"
        )
    if stage_strides is None:
        stage_strides = (
            BIG_LITTLE_STAGE_STRIDES
            if big_little is not None
            else STAGE_STRIDES
        )
    stage_strides = tuple(stage_strides)
    if len(stage_strides) != 4 or any(s not in (1, 2) for s in stage_strides):
        raise ValueError(
            "`stage_strides` must be 4 values of 1 or 2. "
            f"Received: stage_strides={stage_strides!r}"
        )
    placements, _ = create_anti_alias(anti_alias)
    if "max" in placements and big_little is not None:
        raise ValueError(
            "anti_alias 'max' blurs the stem max-pool, which BigLittleNet "
            f"replaces. Received: anti_alias={anti_alias!r}, "
            f"big_little={big_little}"
        )
    if "proj" in placements and shortcut != "conv":
        raise ValueError(
            "anti_alias 'proj' blurs the strided-conv shortcut only. "
            f"Received: anti_alias={anti_alias!r}, shortcut={shortcut!r}"
        )
    middle, _ = create_attention(attention)
    if image_size is not None:
        validation.check_positive_int("image_size", image_size)
    if num_classes is not None:
        validation.check_positive_int("num_classes", num_classes)
    if embedding_size is not None:
        validation.check_positive_int("embedding_size", embedding_size)
    _check_choice("classifier", classifier, CLASSIFIERS)
    if (
        isinstance(cosine_temperature, bool)
        or not isinstance(cosine_temperature, (int, float))
        or not cosine_temperature > 0
    ):
        raise ValueError(
            "`cosine_temperature` must be a number > 0. "
            f"Received: cosine_temperature={cosine_temperature!r}"
        )
    return block_type, sizes, stage_strides


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
    anti_alias_size=3,
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
    layout=None,
    fold_bn=False,
):
    """Builds a ResNet v1.5 Keras model with the Assemble-ResNet tweaks.

    Args:
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
            "avg2" (ResNet-D 2x2/2 average pool + 1x1) or "avg3" (original
            BigLittleNet pad-1 3x3/2 average pool + 1x1).
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
        name: str or None. Model name.
        fold_bn: bool. Inference graph with every conv + BN pair fused into
            a biased conv (`assemble_tf.export.optimize.fold_batch_norm`
            fills its weights); BNs inside SK units stay.
        layout: `Layout` or None. Receives the layers in original creation
            order (used by the checkpoint importer).

    Returns:
        A `keras.Model` from NHWC float images (mean-subtracted RGB) to
        float32 logits (or features with `include_top=False`).
    """
    block_type, sizes, strides = _resolve_options(
        depth,
        block_sizes,
        stage_strides,
        base_width,
        stem,
        shortcut,
        big_little,
        anti_alias,
        attention,
        image_size,
        num_classes,
        pooling,
        embedding_size,
        classifier,
        cosine_temperature,
    )
    opts = dict(
        block_type=block_type,
        base_width=base_width,
        stem=stem,
        shortcut=shortcut,
        attention=attention,
        se_ratio=se_ratio,
        sk_reduction=sk_reduction,
        sk_min_dim=sk_min_dim,
        anti_alias=anti_alias,
        anti_alias_size=anti_alias_size,
        big_little=tuple(big_little) if big_little else None,
        dropblock=dropblock,
        zero_gamma=zero_gamma,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        fold_bn=fold_bn,
    )
    b = _Builder(opts, layout if layout is not None else _NullLayout())
    bl = opts["big_little"] is not None
    root = "resnet_model"

    inputs = keras.Input((image_size, image_size, 3), name="images")
    if bl:
        x = b.stem(inputs, f"{root}/stage0", f"{root}/stage0_1")
        x = b.big_little_stem(x, f"{root}/stage0/pool")
    else:
        x = b.stem(inputs, root, root)
        x = b.stem_pool(x)
    for i, (n, s) in enumerate(zip(sizes, strides, strict=True)):
        stage = i + 1
        filters = base_width * 2**i
        if bl and stage < 4:
            x = b.big_little_stage(
                x, stage, filters, n, s, f"{root}/stage{stage}"
            )
        else:
            x = b.block_layer(
                x,
                filters,
                n,
                s,
                f"stage{stage}",
                f"{root}/stage{stage}" if bl else root,
                b.dropblock(stage),
            )
    if include_top:
        if pooling == "gem":
            x = GeMPooling2D(name="head_pool")(x)
        else:
            x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
        if embedding_size is not None:
            emb = keras.layers.Dense(
                embedding_size,
                use_bias=False,
                kernel_initializer=common.conv_initializer(),
                name="head_embedding",
            )
            b.layout.add(root, "embedding", emb)
            x = emb(x)
            x = b.bn(x, "head_embedding", f"{root}/embedding", foldable=False)
            if classifier == "dense":
                x = b.relu(x, "head_embedding")
        if classifier == "cosine":
            # float32 policy: no float16 rounding of logits up to 1 / T.
            # Layout kind "cosine": no bias, no original checkpoint name
            # (the importer refuses it instead of reading a Dense bias).
            dense = CosineClassifier(
                num_classes,
                cosine_temperature,
                dtype="float32",
                name="head_dense",
            )
            b.layout.add(root, "cosine", dense)
        else:
            dense = keras.layers.Dense(
                num_classes,
                kernel_initializer="glorot_uniform",
                name="head_dense",
            )
            b.layout.add(root, "dense", dense)
        x = dense(x)
        # Logits (and so losses) stay float32 under mixed precision.
        x = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(inputs, x, name=name or f"resnet{depth}")
