"""Image-retrieval recall@k of a model on a tfds set or an image folder.

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
`--save_embeddings` `embeddings.npz`; prints one JSON line.
"""

import json
import os
import sys
import time

from absl import flags

from flags import model_source_flags
from official.utils.flags import core as flags_core
from official.utils.misc import file_utils

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
        "A tfds name (caltech_birds2011, cars196, stanford_online_products, "
        "...) or a folder <root>/<split>/<class>/<image>."
    ),
)
flags.DEFINE_string("tfds_data_dir", None, "tfds data_dir (default tfds's).")
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
    ["test", "train", "all"],
    hw(
        "Class-disjoint half of caltech_birds2011 / cars196 / "
        "stanford_online_products (default test); 'all' keeps every class "
        "(the default and only choice for other sets)."
    ),
)
flags.DEFINE_enum(
    "similarity", "cosine", ["cosine", "euclidean"], "Neighbour ranking."
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
    "save_embeddings", False, "Also write embeddings.npz (embeddings, labels)."
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
flags.mark_flag_as_required("source")
FLAGS = flags.FLAGS


def output_dir(info):
    if FLAGS.output_dir:
        return FLAGS.output_dir
    if FLAGS.saved_model:
        raise ValueError("--saved_model needs --output_dir.")
    root = FLAGS.model_dir or os.path.dirname(os.path.abspath(FLAGS.weights))
    return os.path.join(root, "retrieval", info.name.replace("/", "_"))


def _write_json(path, data):
    file_utils.atomic_write_json(path, data, indent=1)


def check_ks(ks, num_images, where):
    """Each query is ranked against the other images: k <= images - 1."""
    if num_images < 2:
        raise ValueError(
            f"Only {num_images} image(s) in {where}; retrieval needs >= 2."
        )
    if max(ks) > num_images - 1:
        raise ValueError(
            f"--ks={FLAGS.ks}: k can be at most {num_images - 1} for the "
            f"{num_images} images of {where}; lower --ks (or raise "
            "--max_images)."
        )


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from assemble_tf.data import sources
    from assemble_tf.retrieval import embed, recall

    ks = flags_core.parse_int_list("ks", FLAGS.ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"--ks needs positive integers. Received: {FLAGS.ks}")
    preprocessing = FLAGS.eval_preprocessing
    if FLAGS.image_size and not preprocessing:
        preprocessing = f"imagenet_{FLAGS.image_size}"
    # Data first: a missing or unprepared set fails before model building.
    info = sources.open_source(
        FLAGS.source, FLAGS.tfds_data_dir, FLAGS.download
    )
    split, class_range, class_split = sources.retrieval_selection(
        info, FLAGS.split, FLAGS.class_split
    )
    out_dir = output_dir(info)
    total = sources.num_examples(info, split)
    dataset = sources.encoded_dataset(info, split)
    if class_range:
        dataset = sources.filter_classes(dataset, *class_range)
        # The class-disjoint half: count it (labels only, no decoding).
        total = int(
            dataset.map(lambda image, label: label).reduce(
                tf.constant(0, tf.int64), lambda n, _: n + 1
            )
        )
    if FLAGS.max_images:
        dataset = dataset.take(FLAGS.max_images)
        total = min(total, FLAGS.max_images)
    # Before any embedding: a query needs k other images.
    check_ks(ks, total, f"{split} of {info.name}")
    embedder = embed.load_embedder(
        **model_source_flags.model_source(FLAGS),
        saved_model=FLAGS.saved_model,
        num_classes=FLAGS.num_classes,
        model_overrides=FLAGS.model_overrides,
        preprocessing=preprocessing,
        layer=FLAGS.embedding_layer,
    )

    start = time.time()
    with tqdm(
        total=total,
        desc="embedding",
        unit="img",
        file=sys.stderr,
    ) as bar:
        embeddings, labels = embed.compute_embeddings(
            embedder, dataset, FLAGS.batch_size, bar.update
        )
    embed_seconds = time.time() - start
    check_ks(ks, len(labels), f"{split} of {info.name}")  # unreadable ones
    start = time.time()
    with tqdm(total=len(labels), desc="searching", unit="query",
              file=sys.stderr) as bar:  # fmt: skip
        done = [0]

        def progress(n):
            bar.update(n - done[0])
            done[0] = n

        result = recall.recall_at_k(
            embeddings,
            labels,
            ks,
            FLAGS.similarity,
            FLAGS.chunk_size,
            progress=progress,
        )
    search_seconds = time.time() - start

    os.makedirs(out_dir, exist_ok=True)
    summary = dict(result)
    summary.update(
        dataset=info.name,
        source_kind=info.kind,
        split=split,
        class_split=class_split,
        class_range=list(class_range) if class_range else None,
        num_classes_evaluated=int(np.unique(labels[labels != -1]).size),
        embedding_dim=int(embeddings.shape[1]),
        embedding_layer=embedder.layer,
        eval_preprocessing=embedder.preprocessing,
        model=embedder.source,
        images_per_second=round(len(labels) / max(embed_seconds, 1e-9), 2),
        search_seconds=round(search_seconds, 3),
        retrieval_json=os.path.join(out_dir, "retrieval.json"),
        neighbours_png=None,
        embeddings_npz=None,
    )
    if FLAGS.save_embeddings:
        path = os.path.join(out_dir, "embeddings.npz")
        tmp = path[: -len(".npz")] + ".tmp.npz"
        np.savez(tmp, embeddings=embeddings, labels=labels)
        os.replace(tmp, path)
        summary["embeddings_npz"] = path
    if FLAGS.plot_queries:
        from assemble_tf.retrieval import plots

        summary["neighbours_png"] = plots.neighbours_figure(
            os.path.join(out_dir, "neighbours.png"),
            dataset,
            embeddings,
            labels,
            info.class_names,
            result,
            num_queries=FLAGS.plot_queries,
            similarity=FLAGS.similarity,
            seed=FLAGS.seed,
        )
    _write_json(summary["retrieval_json"], summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    flags_core.run(main)
