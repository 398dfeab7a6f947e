"""AutoAugment and RandAugment on uint8 images, in core TensorFlow.

Cubuk et al., "AutoAugment: Learning Augmentation Strategies from Data",
CVPR 2019, https://arxiv.org/abs/1805.09501: a policy is a list of
sub-policies, each a short sequence of (op, probability, magnitude level);
per image one sub-policy is chosen uniformly and each of its ops is applied
independently with its probability. Cubuk et al., "RandAugment: Practical
automated data augmentation with a reduced search space", CVPRW 2020,
https://arxiv.org/abs/1909.13719: apply N ops drawn uniformly (with
replacement) from a fixed list, all at one magnitude M.

Behaviour follows tensorflow/tpu
`models/official/efficientnet/autoaugment.py` (policies, `_MAX_LEVEL` = 10,
level-to-argument rules, fill 128, RandAugment's op list with
`translate_const` 100 and `cutout_const` 40), as ported by
clovaai/assembled-cnn `preprocessing/autoaugment.py` for Assemble-ResNet
(Lee et al. 2020, https://arxiv.org/abs/2001.06268), with every op matching
PIL (see `assemble_tf.augment.ops`; in particular Contrast blends with the
true mean gray, not the TPU code's pixel count / 256).

Policies (`POLICIES`, literal data; (op, prob, level), level in [0, 10]):

* `imagenet`: the paper's ImageNet policy, 25 sub-policies; what
  Assemble-ResNet was trained with.
* `v0`: the TPU EfficientNet / detection policy, 25 sub-policies.
* `good`: 95 CIFAR-searched sub-policies (assembled-cnn `good_policies`,
  groups exp0_0 to exp2_7), used for Food-101 fine-tuning.
* `test`: one sub-policy, (TranslateX, 1, 4) (Equalize, 1, 10).

Level -> argument (`LEVEL_TO_ARG`; l = level / 10; "+-" is a random sign
drawn per application). Both mappings share Rotate +-30 l degrees, ShearX/Y
+-0.3 l, Color/Contrast/Brightness/Sharpness factor 1.8 l + 0.1 and
SolarizeAdd int(110 l) (added below 128). They differ in:

* "original" (default; the TPU code, i.e. how the Assemble-ResNet models
  were trained): Posterize keeps max(int(4 l), 1) bits (1 to 4); Solarize
  threshold int(256 l) (weaker as the level grows); TranslateX/Y
  +-l * translate_const px (250, RandAugment 100); Cutout half-side
  int(l * cutout_const) (100, RandAugment 40).
* "paper": the level spread linearly over the ranges of the AutoAugment
  paper's op table, strength growing with the level (the convention of the
  authors' released CIFAR code and of torchvision's `AutoAugment`):
  Posterize keeps 8 - int(4 l) bits ([4, 8]); Solarize threshold
  256 - int(256 l) ([0, 256]); TranslateX/Y +-l * translate_const of the
  image width/height with translate_const = 150/331 ([-150, 150] px on the
  paper's 331-px images); Cutout half-side int(l * cutout_const) with
  cutout_const = 30 (side [0, 60] px).

The TPU code's Posterize argument is int(4 l), 0 below level 2.5 (`v0`'s
low levels, RandAugment at magnitude 0-2), but it shifted a uint8 by 8 - 0,
which TensorFlow clamps to 7: 1 bit was kept, and so the "original"
mapping gives 1 there. (`ops.posterize` with 0 bits gives black, as PIL's
mask arithmetic does.)

Randomness is stateless: `distort(image, seed=s)` with a shape-[2] integer
seed is a pure function of (image, s). Without a seed, a
`tf.random.Generator` owned by the augmenter (seeded by the constructor's
`seed`, else non-deterministic) draws one. That also works inside
`tf.data.Dataset.map`, but with parallel calls the order of draws, hence
the per-element result, is not reproducible; for that, zip the dataset with
`tf.data.Dataset.random(seed).batch(2)` and pass the seeds.

Example:

    aa = AutoAugment("imagenet", seed=0)
    ds = ds.map(lambda image, label: (aa.distort(image), label))
"""

import functools
import numbers

import tensorflow as tf

from assemble_tf.augment import ops
from assemble_tf.augment.policies import POLICIES

MAX_LEVEL = 10.0
MAPPINGS = ("original", "paper")

NAME_TO_FUNC = {
    "AutoContrast": ops.auto_contrast,
    "Equalize": ops.equalize,
    "Invert": ops.invert,
    "Rotate": ops.rotate,
    "Posterize": ops.posterize,
    "Solarize": ops.solarize,
    "SolarizeAdd": ops.solarize_add,
    "Color": ops.color,
    "Contrast": ops.contrast,
    "Brightness": ops.brightness,
    "Sharpness": ops.sharpness,
    "ShearX": ops.shear_x,
    "ShearY": ops.shear_y,
    "TranslateX": ops.translate_x,
    "TranslateY": ops.translate_y,
    "Cutout": ops.cutout,
}

# Ops without an argument, with a random sign, and taking fill/interpolation.
NO_ARG_OPS = frozenset({"AutoContrast", "Equalize", "Invert"})
SIGNED_OPS = frozenset(
    {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
)
GEOMETRIC_OPS = SIGNED_OPS

# TPU `distort_image_with_randaugment` op list.
RANDAUGMENT_OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Cutout",
    "SolarizeAdd",
)

# (translate_const, cutout_const) defaults per (augmenter, mapping).
_CONST_DEFAULTS = {
    ("autoaugment", "original"): (250.0, 100),
    ("randaugment", "original"): (100.0, 40),
    ("autoaugment", "paper"): (150.0 / 331.0, 30),
    ("randaugment", "paper"): (150.0 / 331.0, 30),
}


def _enhance_factor(level, hp):
    del hp
    return (level / MAX_LEVEL) * 1.8 + 0.1


def _no_arg(level, hp):
    del level, hp
    return None


def _shared_level_to_arg():
    return {
        "AutoContrast": _no_arg,
        "Equalize": _no_arg,
        "Invert": _no_arg,
        "Rotate": lambda level, hp: (level / MAX_LEVEL) * 30.0,
        "SolarizeAdd": lambda level, hp: int((level / MAX_LEVEL) * 110),
        "Color": _enhance_factor,
        "Contrast": _enhance_factor,
        "Brightness": _enhance_factor,
        "Sharpness": _enhance_factor,
        "ShearX": lambda level, hp: (level / MAX_LEVEL) * 0.3,
        "ShearY": lambda level, hp: (level / MAX_LEVEL) * 0.3,
        "TranslateX": lambda level, hp: (level / MAX_LEVEL) * hp[0],
        "TranslateY": lambda level, hp: (level / MAX_LEVEL) * hp[0],
        "Cutout": lambda level, hp: int((level / MAX_LEVEL) * hp[1]),
    }


# op name -> fn(level, (translate_const, cutout_const)) -> unsigned argument.
LEVEL_TO_ARG = {
    "original": {
        **_shared_level_to_arg(),
        # The TPU code's 0 bits (level < 2.5) shifted a uint8 by 8, which
        # TensorFlow clamps to 7: 1 bit kept, as here (before: 0 bits, a
        # black image, for 10 % of RandAugment's at magnitude 0-2).
        "Posterize": lambda level, hp: max(int((level / MAX_LEVEL) * 4), 1),
        "Solarize": lambda level, hp: int((level / MAX_LEVEL) * 256),
    },
    "paper": {
        **_shared_level_to_arg(),
        "Posterize": lambda level, hp: 8 - int((level / MAX_LEVEL) * 4),
        "Solarize": lambda level, hp: 256 - int((level / MAX_LEVEL) * 256),
    },
}


def _check_mapping(mapping):
    if mapping not in MAPPINGS:
        raise ValueError(
            f"Unknown level mapping {mapping!r}; known: {list(MAPPINGS)}."
        )


def _check_op_name(name):
    if name not in NAME_TO_FUNC:
        raise ValueError(
            f"Unknown augmentation op {name!r}; known: {sorted(NAME_TO_FUNC)}."
        )


def _check_level(level):
    if (
        not isinstance(level, numbers.Real)
        or isinstance(level, bool)
        or not 0 <= level <= MAX_LEVEL
    ):
        raise ValueError(
            f"Augmentation level must be a number in [0, {MAX_LEVEL:g}], "
            f"got {level!r}."
        )


def level_to_arg(
    op_name,
    level,
    mapping="original",
    translate_const=None,
    cutout_const=None,
):
    """Returns the unsigned argument of `op_name` at magnitude `level`.

    Args:
        op_name: A key of `NAME_TO_FUNC`.
        level: Magnitude in [0, 10].
        mapping: "original" (TPU code, default) or "paper".
        translate_const: Translate at level 10: pixels ("original", default
            250) or a fraction of the image side ("paper", default 150/331).
        cutout_const: Cutout half-side at level 10 (default 100 "original",
            30 "paper").

    Returns:
        None for AutoContrast/Equalize/Invert, else a Python number. Ops in
        `SIGNED_OPS` get a random sign when applied.

    Raises:
        ValueError: For an unknown op or mapping, or a level out of range.
    """
    _check_op_name(op_name)
    _check_mapping(mapping)
    _check_level(level)
    default_translate, default_cutout = _CONST_DEFAULTS[
        ("autoaugment", mapping)
    ]
    hp = (
        default_translate if translate_const is None else translate_const,
        default_cutout if cutout_const is None else cutout_const,
    )
    return LEVEL_TO_ARG[mapping][op_name](level, hp)


def _check_policy(policy):
    """Validates a sequence of sub-policies; returns it as nested tuples."""
    if isinstance(policy, str) or not policy:
        raise ValueError(
            f"A policy must be a non-empty sequence of sub-policies, got "
            f"{policy!r}."
        )
    checked = []
    for sub_policy in policy:
        if isinstance(sub_policy, str) or not sub_policy:
            raise ValueError(
                f"A sub-policy must be a non-empty sequence of (op, prob, "
                f"level), got {sub_policy!r}."
            )
        entries = []
        for entry in sub_policy:
            if isinstance(entry, str) or len(entry) != 3:
                raise ValueError(
                    f"Expected an (op, prob, level) triple, got {entry!r}."
                )
            name, prob, level = entry
            _check_op_name(name)
            if not isinstance(prob, numbers.Real) or not 0 <= prob <= 1:
                raise ValueError(
                    f"Probability of {name!r} must be in [0, 1], got {prob!r}."
                )
            _check_level(level)
            entries.append((name, float(prob), level))
        checked.append(tuple(entries))
    return tuple(checked)


class _Augmenter:
    """Shared state: level mapping, fill, interpolation, seeding."""

    _kind = None

    def __init__(
        self, mapping, translate_const, cutout_const, fill, interpolation, seed
    ):
        _check_mapping(mapping)
        if not isinstance(fill, numbers.Real) or not 0 <= fill <= 255:
            raise ValueError(f"fill must be in [0, 255], got {fill!r}.")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(
                f"Unknown interpolation {interpolation!r}; known: "
                f"['bilinear', 'nearest']."
            )
        if seed is not None and not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed must be an int or None, got {seed!r}.")
        default_translate, default_cutout = _CONST_DEFAULTS[
            (self._kind, mapping)
        ]
        self.mapping = mapping
        self.translate_const = (
            default_translate if translate_const is None else translate_const
        )
        self.cutout_const = (
            default_cutout if cutout_const is None else cutout_const
        )
        self.fill = fill
        self.interpolation = interpolation
        self.seed = seed
        if seed is None:
            self._rng = tf.random.Generator.from_non_deterministic_state()
        else:
            self._rng = tf.random.Generator.from_seed(seed)

    def __call__(self, image, seed=None):
        return self.distort(image, seed=seed)

    def _resolve_seed(self, seed):
        """Returns a shape-[2] int64 stateless seed."""
        if seed is None:
            return self._rng.make_seeds(1)[:, 0]
        if isinstance(seed, numbers.Integral):
            return tf.constant([int(seed), 0], tf.int64)
        seed = tf.convert_to_tensor(seed)
        if not seed.dtype.is_integer or not seed.shape.is_compatible_with([2]):
            raise ValueError(
                f"seed must be an int or a shape-[2] integer tensor, got "
                f"{seed!r}."
            )
        return tf.reshape(tf.cast(seed, tf.int64), [2])

    def _argument(self, name, level):
        hp = (self.translate_const, self.cutout_const)
        return LEVEL_TO_ARG[self.mapping][name](level, hp)

    def apply_op(self, image, name, level, seed):
        """Applies op `name` at magnitude `level` (always, no probability).

        Args:
            image: uint8 tensor [H, W, 3].
            name: A key of `NAME_TO_FUNC`.
            level: Magnitude in [0, 10].
            seed: Shape-[2] integer seed for the random sign and Cutout.

        Returns:
            uint8 tensor [H, W, 3].
        """
        _check_op_name(name)
        _check_level(level)
        arg = self._argument(name, level)
        return self._apply_with_arg(image, name, arg, seed)

    def _apply_with_arg(self, image, name, arg, seed):
        """Applies op `name` with an unsigned argument (number or tensor)."""
        func = NAME_TO_FUNC[name]
        if name in NO_ARG_OPS:
            return func(image)
        sign_seed, op_seed = tf.unstack(tf.random.split(seed, 2))
        arg = tf.cast(arg, tf.float32)
        if name in SIGNED_OPS:
            flip = tf.random.stateless_uniform([], sign_seed) < 0.5
            arg = tf.where(flip, -arg, arg)
        if self.mapping == "paper" and name in ("TranslateX", "TranslateY"):
            side = tf.shape(image)[1 if name == "TranslateX" else 0]
            arg = arg * tf.cast(side, tf.float32)
        if name in GEOMETRIC_OPS:
            return func(
                image, arg, fill=self.fill, interpolation=self.interpolation
            )
        if name == "Cutout":
            return func(image, arg, fill=self.fill, seed=op_seed)
        return func(image, arg)


class AutoAugment(_Augmenter):
    """AutoAugment (Cubuk et al. 2019) on uint8 H x W x 3 images.

    Per image, one sub-policy is chosen uniformly; each of its
    (op, prob, level) entries is applied in order, independently with
    probability `prob`.

    Args:
        policy: A name in `POLICIES` ("imagenet", "v0", "good", "test") or a
            sequence of sub-policies, each a sequence of (op, prob, level).
        mapping: Level -> argument mapping, "original" (TPU code, default)
            or "paper" (see the module docstring).
        translate_const: Translate magnitude at level 10; None for the
            mapping's default (250 px "original", 150/331 of the side
            "paper").
        cutout_const: Cutout half-side at level 10; None for the default
            (100 "original", 30 "paper").
        fill: Gray level of uncovered pixels (geometric ops, Cutout).
        interpolation: "nearest" (as the original) or "bilinear".
        seed: Optional int seeding the generator used when `distort` gets
            no seed.

    Example:

        aa = AutoAugment("imagenet", seed=0)
        image = aa.distort(image)  # uint8 [H, W, 3] in and out.
    """

    _kind = "autoaugment"

    def __init__(
        self,
        policy="imagenet",
        mapping="original",
        translate_const=None,
        cutout_const=None,
        fill=128,
        interpolation="nearest",
        seed=None,
    ):
        if isinstance(policy, str):
            if policy not in POLICIES:
                raise ValueError(
                    f"Unknown AutoAugment policy {policy!r}; known: "
                    f"{sorted(POLICIES)}."
                )
            self.policy_name = policy
            policy = POLICIES[policy]
        else:
            self.policy_name = None
        self.policy = _check_policy(policy)
        super().__init__(
            mapping, translate_const, cutout_const, fill, interpolation, seed
        )
        self._build_tables()

    def __repr__(self):
        name = self.policy_name or f"<{len(self.policy)} sub-policies>"
        return (
            f"AutoAugment(policy={name!r}, mapping={self.mapping!r}, "
            f"translate_const={self.translate_const!r}, "
            f"cutout_const={self.cutout_const!r}, fill={self.fill!r}, "
            f"interpolation={self.interpolation!r}, seed={self.seed!r})"
        )

    def _build_tables(self):
        """Policy as [num_sub_policies, longest] op / prob / argument tables.

        Each position of the sub-policies then needs one `tf.switch_case`
        over the distinct ops (plus an identity branch) instead of one
        branch per sub-policy, which keeps graphs small and tracing fast.
        """
        self._op_names = sorted({e[0] for sub in self.policy for e in sub})
        identity = len(self._op_names)
        longest = max(len(sub) for sub in self.policy)
        op_rows, prob_rows, arg_rows = [], [], []
        for sub in self.policy:
            pad = longest - len(sub)
            op_rows.append(
                [self._op_names.index(e[0]) for e in sub] + [identity] * pad
            )
            prob_rows.append([e[1] for e in sub] + [0.0] * pad)
            args = [self._argument(e[0], e[2]) for e in sub]
            arg_rows.append(
                [0.0 if x is None else x for x in args] + [0.0] * pad
            )
        self._op_table = op_rows
        self._prob_table = prob_rows
        self._arg_table = arg_rows

    def distort(self, image, seed=None):
        """Applies one uniformly chosen sub-policy to `image`.

        Args:
            image: uint8 tensor [H, W, 3]; H and W may be unknown.
            seed: Optional int or shape-[2] integer tensor; with it the
                result is deterministic. None draws from the augmenter's
                generator.

        Returns:
            uint8 tensor with the shape of `image`.
        """
        image = ops.check_image(image)
        seed = self._resolve_seed(seed)
        longest = len(self._op_table[0])
        seeds = tf.random.split(seed, 1 + 2 * longest)
        choice = tf.random.stateless_uniform(
            [], seeds[0], 0, len(self.policy), dtype=tf.int32
        )
        op_table = tf.constant(self._op_table, tf.int32)
        prob_table = tf.constant(self._prob_table, tf.float32)
        arg_table = tf.constant(self._arg_table, tf.float32)
        identity = len(self._op_names)
        out = image
        for position in range(longest):
            coin_seed = seeds[1 + 2 * position]
            op_seed = seeds[2 + 2 * position]
            coin = tf.random.stateless_uniform([], coin_seed)
            apply = coin < prob_table[choice, position]
            index = tf.where(apply, op_table[choice, position], identity)
            arg = arg_table[choice, position]
            branches = [
                functools.partial(self._apply_with_arg, out, name, arg, op_seed)
                for name in self._op_names
            ]
            branches.append(functools.partial(tf.identity, out))
            out = tf.switch_case(index, branches)
            out.set_shape(image.shape)
        return out


class RandAugment(_Augmenter):
    """RandAugment (Cubuk et al. 2020) on uint8 H x W x 3 images.

    Applies `num_layers` ops, each drawn uniformly (with replacement) from
    `ops` and always applied at level `magnitude`, as in the paper and the
    TPU EfficientNet code.

    Args:
        num_layers: Number N of ops applied per image (>= 0).
        magnitude: Level M in [0, 10] shared by all ops.
        ops: Op names to draw from; default `RANDAUGMENT_OPS` (the TPU list:
            14 PIL ops plus Cutout and SolarizeAdd).
        mapping: "original" (default) or "paper".
        translate_const: None for the mapping's default (100 px
            "original", 150/331 of the side "paper").
        cutout_const: None for the default (40 "original", 30 "paper").
        fill: Gray level of uncovered pixels.
        interpolation: "nearest" or "bilinear".
        seed: Optional int seeding the generator used when `distort` gets
            no seed.
    """

    _kind = "randaugment"

    def __init__(
        self,
        num_layers=2,
        magnitude=10,
        ops=None,
        mapping="original",
        translate_const=None,
        cutout_const=None,
        fill=128,
        interpolation="nearest",
        seed=None,
    ):
        if (
            not isinstance(num_layers, numbers.Integral)
            or isinstance(num_layers, bool)
            or num_layers < 0
        ):
            raise ValueError(
                f"num_layers must be an int >= 0, got {num_layers!r}."
            )
        _check_level(magnitude)
        ops_list = RANDAUGMENT_OPS if ops is None else ops
        if isinstance(ops_list, str) or not ops_list:
            raise ValueError(
                f"ops must be a non-empty sequence of op names, got {ops!r}."
            )
        for name in ops_list:
            _check_op_name(name)
        self.num_layers = int(num_layers)
        self.magnitude = magnitude
        self.ops = tuple(ops_list)
        super().__init__(
            mapping, translate_const, cutout_const, fill, interpolation, seed
        )

    def __repr__(self):
        return (
            f"RandAugment(num_layers={self.num_layers!r}, "
            f"magnitude={self.magnitude!r}, ops={self.ops!r}, "
            f"mapping={self.mapping!r}, "
            f"translate_const={self.translate_const!r}, "
            f"cutout_const={self.cutout_const!r}, fill={self.fill!r}, "
            f"interpolation={self.interpolation!r}, seed={self.seed!r})"
        )

    def distort(self, image, seed=None):
        """Applies `num_layers` randomly chosen ops to `image`.

        Args:
            image: uint8 tensor [H, W, 3]; H and W may be unknown.
            seed: Optional int or shape-[2] integer tensor; with it the
                result is deterministic. None draws from the augmenter's
                generator.

        Returns:
            uint8 tensor with the shape of `image`.
        """
        image = ops.check_image(image)
        if self.num_layers == 0:
            return image
        seed = self._resolve_seed(seed)
        seeds = tf.random.split(seed, 2 * self.num_layers)
        out = image
        for layer in range(self.num_layers):
            choice_seed, op_seed = seeds[2 * layer], seeds[2 * layer + 1]
            branches = [
                functools.partial(
                    self._apply_with_arg,
                    out,
                    name,
                    self._argument(name, self.magnitude),
                    op_seed,
                )
                for name in self.ops
            ]
            if len(branches) == 1:
                out = branches[0]()
            else:
                choice = tf.random.stateless_uniform(
                    [], choice_seed, 0, len(branches), dtype=tf.int32
                )
                out = tf.switch_case(choice, branches)
            out.set_shape(image.shape)
        return out
