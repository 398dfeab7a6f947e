r"""Image-retrieval recall@k of a model on a tfds set or an image folder.

    python -m tools.eval_retrieval --model_dir=/runs/a50_cub \
        --source=caltech_birds2011 --tfds_data_dir=~/tensorflow_datasets
    python -m tools.eval_retrieval --preset=assemble_resnet50 \
        --weights=a50.weights.h5 --source=cars196 --class_split=test \
        --similarity=cosine --ks=1,2,4,8 --output_dir=/evals/a50_cars
    python -m tools.eval_retrieval --saved_model=/serving/a50/1 \
        --source=/data/my_products --split=test --save_embeddings

Zero-shot retrieval as in Lee et al. 2020 (arXiv 2001.06268) and
clovaai/assembled-cnn `metric/recall_metric.py`: embed every
image of the split with the model's eval preprocessing (the BN'd embedding
of an embedding head, else the pooled GAP/GeM features; a SavedModel's
`feature_vector`), then each image is a query against all the others;
recall@k is the fraction of queries with a same-class image among their k
nearest neighbours. For caltech_birds2011 and cars196 the evaluated images
are those of the class-disjoint test half (classes 100-199 / 98-195 of all
images) and for stanford_online_products its test split, unless
`--class_split` says otherwise. Nothing is downloaded unless `--download`.

Writes `retrieval.json` (recalls, counts, settings), `neighbours.png` (a few
queries and their nearest neighbours, green = same class) and with
`--save_embeddings` `embeddings.npz`; prints one JSON line. The work is
`assemble_tf.retrieval.run.evaluate_retrieval`.
"""

import dataclasses
import json

from absl import flags

from assemble_tf.retrieval import recall, run
from flags import model_source_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the binary's flags (names match `RetrievalOptions` fields)."""
    hw = flags_core.help_wrap
    model_source_flags.define_model_source_flags(model_overrides=True)
    flags.DEFINE_string(
        "saved_model", None, "An export of tools.export_saved_model."
    )
    flags.DEFINE_string(
        "embedding_layer",
        None,
        "Layer to embed from (default head_embedding_bn, else head_pool).",
    )
    flags.DEFINE_string(
        "source",
        None,
        hw(
            "A tfds name (caltech_birds2011, cars196, "
            "stanford_online_products, ...) or a folder "
            "<root>/<split>/<class>/<image>. Default with --model_dir: the "
            "source the run was trained on."
        ),
    )
    flags.DEFINE_string(
        "tfds_data_dir", None, "tfds data_dir (default tfds's)."
    )
    flags.DEFINE_bool(
        "download", False, "Let tfds download and prepare the set (network)."
    )
    flags.DEFINE_string(
        "split",
        None,
        hw(
            "Split to read (tfds syntax: 'test', 'train+test', 'test[:10%]'). "
            "Default: the class split's for the retrieval sets, else test (or "
            "the only split)."
        ),
    )
    flags.DEFINE_enum(
        "class_split",
        None,
        list(run.CLASS_SPLITS),
        hw(
            "Class-disjoint half of caltech_birds2011 / cars196 / "
            "stanford_online_products (default test); 'all' keeps every class "
            "(the default and only choice for other sets)."
        ),
    )
    flags.DEFINE_enum(
        "similarity", "cosine", list(recall.SIMILARITIES), "Neighbour ranking."
    )
    flags.DEFINE_string("ks", "1,2,4,8", "Comma-separated k of recall@k.")
    flags.DEFINE_integer(
        "chunk_size", 2048, "Queries per search chunk (memory).", lower_bound=1
    )
    flags.DEFINE_integer(
        "batch_size", 64, "Images per forward pass.", lower_bound=1
    )
    flags.DEFINE_string(
        "eval_preprocessing",
        None,
        "Eval resize/crop (default: the run's / preset's / SavedModel's).",
    )
    flags.DEFINE_integer(
        "image_size",
        None,
        hw(
            "Shorthand for --eval_preprocessing=imagenet_SIZE (resize "
            "int(SIZE/0.875), centre crop SIZE)."
        ),
        lower_bound=32,
    )
    flags.DEFINE_integer(
        "max_images",
        None,
        "Embed only the first N images (quick runs).",
        lower_bound=2,
    )
    flags.DEFINE_integer(
        "plot_queries",
        6,
        "Queries drawn in neighbours.png (0: no plot).",
        lower_bound=0,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the plotted queries.")
    flags.DEFINE_bool(
        "save_embeddings",
        False,
        "Also write embeddings.npz (embeddings, labels).",
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        hw(
            "Where retrieval.json and neighbours.png go (default "
            "<model_dir or weights folder>/retrieval/<source>; required with "
            "--saved_model)."
        ),
    )
    flags_core.register_int_list_validator("ks", None)


def options_from_flags(flag_values):
    """The `RetrievalOptions` of the parsed flags."""
    names = [f.name for f in dataclasses.fields(run.RetrievalOptions)]
    values = {name: flag_values[name].value for name in names}
    values["ks"] = flags_core.parse_int_list("ks", flag_values.ks)
    return run.RetrievalOptions(**values)


def main(argv):
    del argv
    report = run.evaluate_retrieval(options_from_flags(FLAGS))
    print(json.dumps(report))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main)
