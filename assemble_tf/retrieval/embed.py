"""Retrieval embeddings of encoded images with a trained or exported model.

Lee et al. 2020 (arXiv 2001.06268) evaluate zero-shot retrieval on the
embedding of clovaai/assembled-cnn's `return_embedding=True`: the pooled
GAP (or GeM) vector, or, for a model with an embedding head, the
batch-normalised embedding before its ReLU, computed with the eval
preprocessing of the model. This module rebuilds that from our Keras models
(`head_embedding_bn` when present, else `head_pool`) or from the
`feature_vector` signature of `assemble_tf.export.saved_model` (the same
embedding), and runs it over `(image_bytes, label)` datasets with the same
JPEG/PNG decode and eval crop as ImageNet evaluation.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from assemble_tf import config as config_lib
from assemble_tf import presets
from assemble_tf.data import preprocessing as prep
from assemble_tf.models import EMBEDDING_LAYERS, build_model, embedding_layer
from assemble_tf.runs import checkpoints, loading
from assemble_tf.runs import models as run_models
from official.utils.misc import interrupts
from official.utils.misc.validation import MissingPathError, OptionError


@dataclasses.dataclass
class Embedder:
    """A batch function [B, S, S, 3] float32 -> [B, D] float32.

    Attributes:
        fn: the function (a `tf.function` or a SavedModel signature).
        preprocessing: the eval preprocessing type of the inputs.
        layer: where the embedding is taken ("head_pool", ...).
        source: a short description of the model (for the report).
    """

    fn: object
    preprocessing: str
    layer: str
    source: dict

    @property
    def crop_size(self):

        return prep.eval_sizes(self.preprocessing)[2]


def embedding_model(model, layer=None):
    """The sub-model from the input to the retrieval embedding.

    Args:
        model: a Keras model from `assemble_tf.models.build_model`.
        layer: a layer name; default the first of `EMBEDDING_LAYERS` present.

    Returns:
        (keras.Model, layer name).

    Raises:
        OptionError: the layer does not exist (names `embedding_layer`).
    """
    import keras

    names = [lay.name for lay in model.layers]
    if layer is None:
        layer = embedding_layer(model)
        if layer is None:
            raise OptionError(
                "embedding_layer",
                "The model has none of {layers}; pass the layer to embed "
                "from ({field}).",
                layers=EMBEDDING_LAYERS,
            )
    elif layer not in names:
        raise OptionError(
            "embedding_layer",
            "{field}={layer}: no such layer; the last ones are {last}.",
            layer=layer,
            last=names[-6:],
        )
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, model.get_layer(layer).output), layer


def keras_embedder(model, preprocessing, layer=None, source=None):
    """An `Embedder` around a Keras classifier."""

    prep.eval_sizes(preprocessing, "preprocessing")  # validates the type
    sub, layer = embedding_model(model, layer)

    @tf.function(reduce_retracing=True, autograph=False)
    def fn(images):
        out = sub(images, training=False)
        return tf.cast(tf.reshape(out, [tf.shape(out)[0], -1]), tf.float32)

    return Embedder(fn, preprocessing, layer, source or {})


def _export_embedder(saved_model, preprocessing, layer):
    """`saved_model_embedder`, refusing a `layer` (a SavedModel serves one
    embedding; before, the option was ignored without a word)."""
    if layer is not None:
        raise OptionError(
            "embedding_layer",
            "{field} picks a layer of a Keras model; a SavedModel serves "
            "one embedding, its feature_vector signature's (the embedding "
            "head's, else the pooled features). Leave {field} out, or embed "
            "with the training run ({model_dir}).",
            ["embedding_layer", "model_dir"],
        )
    return saved_model_embedder(saved_model, preprocessing)


def saved_model_embedder(path, preprocessing=None):
    """An `Embedder` from the `feature_vector` signature of our export.

    Args:
        path: the SavedModel folder.
        preprocessing: the eval preprocessing; default the export's own
            (its assets/preprocessing.txt), else from the signature's
            input size S: "imagenet" for 224, else "imagenet_S" (resize
            int(S / 0.875), centre crop S).

    Raises:
        FileNotFoundError: no SavedModel there (a `MissingPathError`
            naming `saved_model`).
        OptionError: no `feature_vector` signature, or a preprocessing
            whose crop does not match the signature.
    """

    if not tf.saved_model.contains_saved_model(path):
        raise MissingPathError(
            "saved_model",
            "{field}={path}: no SavedModel there (export one with "
            "python -m tools.export_saved_model).",
            path=path,
        )
    loaded = tf.saved_model.load(path)
    if "feature_vector" not in loaded.signatures:
        raise OptionError(
            "saved_model",
            "{field}={path} has no feature_vector signature (it has "
            "{signatures}); export it with tools.export_saved_model.",
            path=path,
            signatures=sorted(loaded.signatures),
        )
    signature = loaded.signatures["feature_vector"]
    spec = signature.structured_input_signature[1]["images"]
    size = int(spec.shape[1])
    if preprocessing is None:
        from assemble_tf.export import saved_model as export

        preprocessing = export.saved_preprocessing(path)
    if preprocessing is None:  # an export from before the asset
        preprocessing = "imagenet" if size == 224 else f"imagenet_{size}"
    crop = prep.eval_sizes(preprocessing)[2]
    if crop != size:
        raise OptionError(
            "eval_preprocessing",
            "{field}={value} crops {crop} pixels but the SavedModel takes "
            "{size}.",
            value=preprocessing,
            crop=crop,
            size=size,
        )

    def fn(images):
        return signature(images=images)["features"]

    fn.loaded = loaded  # keeps the SavedModel alive
    return Embedder(
        fn, preprocessing, "feature_vector", {"saved_model": str(path)}
    )


def load_embedder(
    *,
    model_dir=None,
    checkpoint=None,
    preset=None,
    weights=None,
    saved_model=None,
    num_classes=None,
    model_overrides=None,
    preprocessing=None,
    layer=None,
):
    """An `Embedder` from one model source.

    Args:
        model_dir: a training run (config.json + checkpoints); `checkpoint`
            "latest" (default), "best" or a prefix; `weights` replaces it.
        preset, weights: a preset built with `model_overrides` (a dict or
            JSON of `build_model` arguments, e.g. {"embedding_size": 512}) and
            `num_classes` (that of the weights), plus a .weights.h5 file.
        saved_model: an export of `tools.export_saved_model`.
        preprocessing: override the eval preprocessing.
        layer: override the embedding layer (Keras models).

    Raises:
        OptionError / FileNotFoundError: no or several sources, bad JSON, a
            missing file (each names the option).
    """
    sources = {
        "model_dir": model_dir,
        "preset": preset,
        "saved_model": saved_model,
    }
    given = [name for name, value in sources.items() if value]
    if len(given) != 1:
        received = ", ".join("{" + name + "}" for name in given)
        raise OptionError(
            "model_dir",
            "Pass exactly one of {field}, {preset} (with {weights}) or "
            "{saved_model}. Received: " + (received or "none") + ".",
            ["model_dir", "preset", "weights", "saved_model"],
        )
    if saved_model:
        return _export_embedder(saved_model, preprocessing, layer)
    overrides = config_lib.parse_model_overrides(model_overrides)
    if model_dir:
        loading.refuse_num_classes_with_run(model_dir, num_classes, overrides)
        config, prefix, weights = loading.resolve(
            model_dir=model_dir, checkpoint=checkpoint, weights=weights
        )
        model = run_models.build_run_model(config, **overrides)
        checkpoints.restore(model, prefix, weights)
        ptype = preprocessing or config.data.eval_preprocessing
        source = {"model_dir": model_dir, "checkpoint": prefix or weights}
    else:
        if not weights:
            raise OptionError(
                "preset",
                "{field} needs {weights} (or use {model_dir}).",
                ["weights", "model_dir"],
            )
        if not os.path.isfile(weights):
            raise MissingPathError(
                "weights", "{field}={path}: no such file.", path=weights
            )
        if num_classes:
            overrides["num_classes"] = num_classes
        model = build_model(preset, **overrides)
        checkpoints.load_weights_file(model, weights)
        ptype = preprocessing or presets.get(preset).eval_preprocessing
        source = {"preset": preset, "weights": weights}
    return keras_embedder(model, ptype, layer, source)


def preprocessed_batches(dataset, preprocessing, batch_size, stats=None):
    """`(bytes, label)` -> batches of (eval crops float32, labels int64,
    indices int64: each image's place in `dataset`).

    Unusable images are skipped and counted as the input pipeline does
    (`assemble_tf.data.input_pipeline`, as `tools.evaluate` and
    `tools.finetune` read): bytes that are not a JPEG, PNG, GIF or BMP
    (`preprocessing.is_supported_image`) and images whose decode fails
    (a truncated JPEG). Their indices are missing from the batches.

    Args:
        dataset: a `tf.data.Dataset` of (tf.string, tf.int64) scalars.
        preprocessing: the eval preprocessing type.
        batch_size: images per batch.
        stats: an `input_pipeline.PipelineStats` counting images read,
            not images (`invalid`) and embedded (`emitted`), or None.
    """
    from assemble_tf.data import input_pipeline

    stats = stats or input_pipeline.PipelineStats()

    def check(index, element):
        ok = prep.is_supported_image(element[0])
        stats.read.assign_add(1)
        stats.invalid.assign_add(tf.cast(tf.logical_not(ok), tf.int64))
        return ok

    def crop(index, element):
        image, label = element
        return prep.preprocess_eval(image, preprocessing), label, index

    def count(images, labels, indices):
        stats.emitted.assign_add(tf.cast(tf.shape(labels)[0], tf.int64))
        return images, labels, indices

    return (
        dataset.enumerate()
        .filter(check)
        .map(crop, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()  # a decode that fails: the image is skipped
        .batch(batch_size)
        .map(count)
        .prefetch(tf.data.AUTOTUNE)
    )


@dataclasses.dataclass
class Embedded:
    """The embeddings of a dataset's usable images.

    Attributes:
        embeddings: float32 [N, D].
        labels: int64 [N].
        indices: int64 [N], each embedded image's place in the dataset.
        read: images read (embedded or skipped).
        not_images: skipped images whose bytes are not an image.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    read: int
    not_images: int

    @property
    def skipped(self):
        """Indices in the dataset of the skipped (unusable) images."""
        mask = np.ones(self.read, bool)
        mask[self.indices] = False
        return np.flatnonzero(mask)


def embed_dataset(embedder, dataset, batch_size=64, progress=None):
    """The `Embedded` of every usable `(image_bytes, label)` of `dataset`;
    unusable images are skipped and counted (`preprocessed_batches`).

    Args:
        embedder: an `Embedder`.
        dataset: a `tf.data.Dataset` of (tf.string, tf.int64) scalars.
        batch_size: images per forward pass.
        progress: optional callable(images read since its last call,
            the skipped ones included: a bar of the dataset's size ends
            full).

    Raises:
        ValueError: no usable image (the dataset is empty, or all of its
            images are unusable).
    """
    from assemble_tf.data import input_pipeline

    if batch_size < 1:
        raise OptionError(
            "batch_size",
            "{field} must be >= 1. Received: {value}",
            value=batch_size,
        )
    stats = input_pipeline.PipelineStats()
    chunks, labels, indices = [], [], []
    position = 0  # images read up to the last batch's last one
    for images, batch_labels, batch_indices in preprocessed_batches(
        dataset, embedder.preprocessing, batch_size, stats
    ):
        interrupts.check()  # a Ctrl-C or SIGTERM swallowed on its way
        chunks.append(np.asarray(embedder.fn(images), np.float32))
        labels.append(batch_labels.numpy())
        indices.append(batch_indices.numpy())
        if progress is not None:
            # The skipped images before it too (before: a bar that ended
            # at 83 %, as if the run had stopped).
            last = int(indices[-1][-1]) + 1
            progress(last - position)
            position = last
    read = int(stats.read.numpy())
    if progress is not None and read > position:
        progress(read - position)
    if not chunks:
        raise ValueError(
            "No images to embed: the split (or class range) is empty."
            if not read
            else f"None of the {read} images could be decoded (not a JPEG, "
            "PNG, GIF or BMP, or truncated)."
        )
    return Embedded(
        np.concatenate(chunks),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(indices).astype(np.int64),
        read,
        int(stats.invalid.numpy()),
    )


def compute_embeddings(embedder, dataset, batch_size=64, progress=None):
    """Embeddings and labels of every usable `(image_bytes, label)` of
    `dataset` (`embed_dataset`, which also says which were skipped).

    Returns:
        (embeddings float32 [N, D], labels int64 [N]).

    Raises:
        ValueError: no usable image.
    """
    done = embed_dataset(embedder, dataset, batch_size, progress)
    return done.embeddings, done.labels
