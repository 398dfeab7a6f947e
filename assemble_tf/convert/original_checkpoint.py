"""Import TF1 checkpoints written by the original Assemble-ResNet code.

The authors' checkpoints (clovaai/assembled-cnn, branch master, TF 1.14;
Lee et al. 2020, https://arxiv.org/abs/2001.06268) name variables by TF1
variable scope and creation order: `resnet_model/conv2d_5/kernel` for a
plain ResNet (resnet_version=1), `resnet_model/stage1/big1/conv2d_3/kernel`,
`resnet_model/stage0/pool/batch_normalization_2/gamma` and
`resnet_model/stage1/big1/sk_block/sk_fc_1/kernel` for BigLittleNet models
(resnet_version=2). `tf1_names.original_scopes` gives, from our layer
names, the layers of each original scope in the order that graph created
them; the k-th `conv2d` of a scope is our k-th conv there, and so on.
Optimizer slots and bookkeeping variables are ignored; any other unmatched,
missing or mis-shaped variable is an error that lists every offender.
"""

import collections
import re

import numpy as np
import tensorflow as tf

from assemble_tf.convert import tf1_names
from official.utils.misc.validation import first_line

# Variables a training run adds beside the model: ignored on import.
_IGNORED = re.compile(
    r"(^global_step$)|(^beta[12]_power$)|"
    r"(/(Momentum|Adam|Adam_1|RMSProp|RMSProp_1|ExponentialMovingAverage)$)|"
    r"(loss_scale)|(good_steps)"
)
_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
_SK_NAME = re.compile(
    r"^(?P<scope>.+)/sk_block(?:_(?P<unit>\d+))?/"
    r"(?P<layer>sk_fc_1|sk_fc_2|batch_normalization)(?:_(?P<idx>\d+))?/"
    r"(?P<var>\w+)$"
)


class CheckpointMismatchError(ValueError):
    """The checkpoint and the model do not hold the same variables."""


def _tf1_name(base, index):
    return base if index == 0 else f"{base}_{index}"


def _sk_units(scope, names):
    """Groups the SK attention variables of `scope`, in creation order.

    TF1 uniquifies either the `sk_block` scope (`sk_block_1/...`) or the
    layers inside it (`sk_block/sk_fc_1_1/...`); both sort the same way.
    """
    layers = collections.defaultdict(dict)
    for name in names:
        m = _SK_NAME.match(name)
        if not m or m.group("scope") != scope:
            continue
        key = (int(m.group("unit") or 0), int(m.group("idx") or 0))
        layers[m.group("layer")].setdefault(key, []).append(name)
    ordered = {}
    for layer, groups in layers.items():
        ordered[layer] = [groups[key] for key in sorted(groups)]
    return ordered


def expected_variables(scopes, checkpoint_names):
    """Maps original variable names to our Keras variables.

    Args:
        scopes: `tf1_names.original_scopes(model)`.
        checkpoint_names: names present in the checkpoint (used only to
            order the SK units of a scope).

    Returns:
        A dict `{tf1_name: keras.Variable}`.

    Raises:
        CheckpointMismatchError: for layers the original never had.
    """
    expected = {}
    for scope, items in scopes.items():
        conv_i = bn_i = sk_i = 0
        sk = _sk_units(scope, checkpoint_names)

        def add_bn(layer, name):
            for var in _BN_VARIABLES:
                expected[f"{name}/{var}"] = getattr(layer, var)

        for kind, layer in items:
            if kind == "conv":
                name = f"{scope}/{_tf1_name('conv2d', conv_i)}"
                expected[f"{name}/kernel"] = layer.kernel
                conv_i += 1
            elif kind == "bn":
                add_bn(
                    layer, f"{scope}/{_tf1_name('batch_normalization', bn_i)}"
                )
                bn_i += 1
            elif kind == "sk":
                if layer.variant != "assemble":
                    raise CheckpointMismatchError(
                        f"{layer.name}: the original code has only the "
                        "'assemble' SK variant; received attention='sknet'."
                    )
                # The SK's 3x3 conv and its BN live in the block scope.
                name = f"{scope}/{_tf1_name('conv2d', conv_i)}"
                expected[f"{name}/kernel"] = layer.conv.kernel
                conv_i += 1
                add_bn(
                    layer.bn,
                    f"{scope}/{_tf1_name('batch_normalization', bn_i)}",
                )
                bn_i += 1
                for part, sub in (
                    ("sk_fc_1", layer.fc1),
                    ("batch_normalization", layer.attn_bn),
                    ("sk_fc_2", layer.fc2),
                ):
                    found = sk.get(part, [])
                    if sk_i < len(found):
                        names = sorted(found[sk_i])
                        prefix = names[0].rsplit("/", 1)[0]
                    else:  # reported as missing below
                        prefix = f"{scope}/{_tf1_name('sk_block', sk_i)}/{part}"
                    if part == "batch_normalization":
                        add_bn(sub, prefix)
                    else:
                        expected[f"{prefix}/kernel"] = sub.kernel
                sk_i += 1
            elif kind == "dense":
                expected[f"{scope}/dense/kernel"] = layer.kernel
                expected[f"{scope}/dense/bias"] = layer.bias
            else:
                raise CheckpointMismatchError(
                    f"{layer.name}: the importer does not map the original's "
                    f"'{kind}' layers. The original code has SE blocks and "
                    "embedding heads, but none of the paper's models or "
                    "released checkpoints does, and no checkpoint of them "
                    "was at hand to test their variable names against."
                )
    return expected


# The variable every TF2 `tf.train.Checkpoint` holds.
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


_FILE_SUFFIX = re.compile(r"\.(index|data-\d+-of-\d+)$")


def _step(prefix):
    """The trailing step of a prefix (model.ckpt-750683), for sorting."""
    found = re.search(r"-(\d+)$", prefix)
    return (int(found.group(1)) if found else -1, prefix)


def _check_prefix(prefix):
    """Raises `FileNotFoundError` for a path that is no prefix: one of a
    checkpoint's files (named with the prefix to pass instead), or a folder
    without a `checkpoint` state file (named with the prefixes in it).
    Before: "not the .index file" for a .data file too, and a folder gave
    TensorFlow's "Couldn't find 'checkpoint' file"."""
    import glob
    import os

    suffix = _FILE_SUFFIX.search(prefix)
    if suffix:
        raise FileNotFoundError(
            f"{prefix!r} is one of a checkpoint's files (.{suffix.group(1)}); "
            f"pass its prefix, {prefix[: suffix.start()]!r}."
        )
    if not os.path.isdir(prefix) or tf.train.latest_checkpoint(prefix):
        return
    found = sorted(
        (
            p[: -len(".index")]
            for p in glob.glob(os.path.join(prefix, "*.index"))
        ),
        key=_step,
    )
    if not found:
        raise FileNotFoundError(
            f"{prefix!r} is a folder without a TF1 checkpoint (no .index "
            "file in it): pass a checkpoint's prefix, e.g. "
            "/ckpts/model.ckpt-750683."
        )
    shown = ", ".join(repr(p) for p in found[-3:])
    raise FileNotFoundError(
        f"{prefix!r} is a folder without a `checkpoint` file naming its "
        f"newest checkpoint: pass a prefix, e.g. {shown}"
        f"{' (the newest last)' if len(found) > 1 else ''}."
    )


def read_checkpoint(prefix):
    """Returns `(reader, {name: shape})` of the model variables in `prefix`."""
    hint = "pass the prefix, e.g. model.ckpt-750683, not the .index file"
    _check_prefix(prefix)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, IndexError, ValueError) as e:
        # A damaged .index (not an sstable) or a missing .data file too.
        raise FileNotFoundError(
            f"Cannot read a TF1 checkpoint at prefix {prefix!r} ({hint}; "
            f"its files may be damaged or incomplete): "
            f"{first_line(e)}"
        ) from None
    if not names:
        raise FileNotFoundError(f"{prefix!r} holds no variables: {hint}.")
    if _OBJECT_GRAPH in names:
        # Before: hundreds of unmatched names and a wrong hint.
        raise ValueError(
            f"{prefix!r} is a TensorFlow 2 object-based checkpoint (one of "
            "a training run of ours), not one of the original TF1 code: no "
            "conversion needed. Use its run folder as it is: tools.evaluate, "
            "tools.export_saved_model, tools.finetune and "
            "tools.extract_teacher_logits read run folders."
        )
    shapes = {
        name: tuple(shape)
        for name, shape in names.items()
        if not _IGNORED.search(name)
    }
    return reader, shapes


def load_original_checkpoint(prefix, model):
    """Copies a TF1 checkpoint of the original code into `model`.

    Args:
        prefix: str. Checkpoint prefix (`.../model.ckpt-750683`).
        model: a `keras.Model` made by `build_resnet` / `build_model`; the
            original names of its variables follow from its layer names
            (`tf1_names`).

    Returns:
        The number of variables copied.

    Raises:
        CheckpointMismatchError: listing every unmatched checkpoint
            variable, every model variable missing from the checkpoint and
            every shape mismatch.
    """
    try:
        scopes = tf1_names.original_scopes(model)
    except ValueError as e:
        raise CheckpointMismatchError(str(e)) from None
    reader, shapes = read_checkpoint(prefix)
    expected = expected_variables(scopes, list(shapes))
    missing = sorted(set(expected) - set(shapes))
    unmatched = sorted(set(shapes) - set(expected))
    mismatched = sorted(
        f"{name}: checkpoint {list(shapes[name])} vs model "
        f"{list(variable.shape)}"
        for name, variable in expected.items()
        if name in shapes and tuple(variable.shape) != shapes[name]
    )
    if missing or unmatched or mismatched:
        lines = [
            f"Checkpoint {prefix!r} does not match the model "
            f"({len(expected)} model variables, {len(shapes)} in the "
            "checkpoint). Check the preset (BigLittleNet or not comes with "
            "it) and the overrides (num_classes, base_width, block_sizes)."
        ]
        ckpt_bl = any("/stage" in n for n in shapes)
        model_bl = tf1_names.is_big_little(model)
        if ckpt_bl != model_bl:
            lines.append(
                "Hint: the checkpoint is a "
                + (
                    "BigLittleNet (resnet_version=2)"
                    if ckpt_bl
                    else "plain ResNet (resnet_version=1)"
                )
                + " graph but the model is not; pick a preset of that kind ("
                + (
                    "e.g. assemble_resnet50, table6_m3"
                    if ckpt_bl
                    else "e.g. resnet50, table7_e8"
                )
                + ")."
            )
        for title, items in (
            ("in the checkpoint but not in the model", unmatched),
            ("in the model but not in the checkpoint", missing),
            ("shape mismatches", mismatched),
        ):
            if items:
                lines.append(f"{len(items)} {title}:")
                lines.extend(f"  {item}" for item in items)
        raise CheckpointMismatchError("\n".join(lines))
    for name, variable in expected.items():
        try:
            value = np.asarray(reader.get_tensor(name))
        except (tf.errors.OpError, IndexError) as e:
            raise FileNotFoundError(
                f"Cannot read {name} from the checkpoint {prefix!r}: its "
                f".data file is damaged or incomplete ({first_line(e)})."
            ) from None
        variable.assign(value.astype(variable.dtype))
    return len(expected)


def build_and_load(prefix, build_fn, **build_kwargs):
    """Builds a model with `build_fn(**build_kwargs)` and imports `prefix`.

    Returns:
        `(model, num_variables)`.
    """
    model = build_fn(**build_kwargs)
    return model, load_original_checkpoint(prefix, model)
