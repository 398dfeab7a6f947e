"""Flags of `tools.eval_retrieval` (names match `RetrievalOptions` fields).

The binary's own flags; it also defines the model source flags
(`flags.model_source_flags`, with `--model_overrides`).
"""

from assemble_tf.retrieval import recall, run
from flags import flag_table
from official.utils.flags import core as flags_core

_hw = flags_core.help_wrap

TABLE = (
    ("string", "saved_model", None, "An export of tools.export_saved_model."),
    (
        "string",
        "embedding_layer",
        None,
        "Layer to embed from (default head_embedding_bn, else head_pool).",
    ),
    (
        "string",
        "source",
        None,
        _hw(
            "A tfds name (caltech_birds2011, cars196, "
            "stanford_online_products, ...) or a folder "
            "<root>/<split>/<class>/<image>. Default with --model_dir: the "
            "source the run was trained on."
        ),
    ),
    ("string", "tfds_data_dir", None, "tfds data_dir (default tfds's)."),
    (
        "bool",
        "download",
        False,
        "Let tfds download and prepare the set (network).",
    ),
    (
        "string",
        "split",
        None,
        _hw(
            "Split to read (tfds syntax: 'test', 'train+test', 'test[:10%]'). "
            "Default: the class split's for the retrieval sets, else test (or "
            "the only split)."
        ),
    ),
    (
        "enum",
        "class_split",
        None,
        _hw(
            "Class-disjoint half of caltech_birds2011 / cars196 / "
            "stanford_online_products (default test); 'all' keeps every class "
            "(the default and only choice for other sets)."
        ),
        {"enum_values": list(run.CLASS_SPLITS)},
    ),
    (
        "string",
        "class_range",
        None,
        _hw(
            "'low,high': evaluate only labels in [low, high) of any source "
            "(e.g. the classes a run fine-tuned with --class_range left "
            "out); for the retrieval sets instead of --class_split, over both "
            "halves' images."
        ),
    ),
    (
        "enum",
        "similarity",
        "cosine",
        "Neighbour ranking.",
        {"enum_values": list(recall.SIMILARITIES)},
    ),
    ("string", "ks", "1,2,4,8", "Comma-separated k of recall@k."),
    (
        "integer",
        "chunk_size",
        2048,
        "Queries per search chunk (memory).",
        {"lower_bound": 1},
    ),
    (
        "integer",
        "batch_size",
        64,
        "Images per forward pass.",
        {"lower_bound": 1},
    ),
    (
        "string",
        "eval_preprocessing",
        None,
        "Eval resize/crop (default: the run's / preset's / SavedModel's).",
    ),
    (
        "integer",
        "image_size",
        None,
        _hw(
            "Shorthand for --eval_preprocessing=imagenet_SIZE (resize "
            "int(SIZE/0.875), centre crop SIZE)."
        ),
        {"lower_bound": 32},
    ),
    (
        "integer",
        "max_images",
        None,
        "Embed only the first N images (quick runs).",
        {"lower_bound": 2},
    ),
    (
        "integer",
        "plot_queries",
        6,
        "Queries drawn in neighbours.png (0: no plot).",
        {"lower_bound": 0},
    ),
    ("integer", "seed", 0, "Seed of the plotted queries."),
    (
        "bool",
        "save_embeddings",
        False,
        "Also write embeddings.npz (embeddings, labels, images, class_names).",
    ),
    (
        "string",
        "output_dir",
        None,
        _hw(
            "Where retrieval.json and neighbours.png go (default "
            "<model_dir>/retrieval/<source>; with --weights, also beside "
            "--model_dir, <--weights folder>/retrieval/<weights name>/"
            "<source>; required with --saved_model)."
        ),
    ),
)


def define():
    """Defines the binary's own flags and the --ks validator."""
    flag_table.define_table(TABLE, __name__)
    flags_core.register_int_list_validator("ks", None, example="1,2,4,8")
