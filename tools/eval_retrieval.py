r"""Image-retrieval recall@k of a model on a tfds set or an image folder.

    python -m tools.eval_retrieval --model_dir=/runs/a50_cub \
        --source=caltech_birds2011 --tfds_data_dir=~/tensorflow_datasets
    python -m tools.eval_retrieval --preset=assemble_resnet50 \
        --weights=a50.weights.h5 --source=cars196 --class_split=test \
        --similarity=cosine --ks=1,2,4,8 --output_dir=/evals/a50_cars
    python -m tools.eval_retrieval --saved_model=/serving/a50/1 \
        --source=/data/my_products --split=test --save_embeddings \
        --output_dir=/evals/products

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

from assemble_tf import config as config_lib
from assemble_tf.retrieval import run
from flags import eval_retrieval_flags, model_source_flags
from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the model source flags and the binary's own
    (`flags.eval_retrieval_flags`)."""
    model_source_flags.define_model_source_flags(model_overrides=True)
    eval_retrieval_flags.define()


def options_from_flags(flag_values):
    """The `RetrievalOptions` of the parsed flags."""
    names = [f.name for f in dataclasses.fields(run.RetrievalOptions)]
    values = {name: flag_values[name].value for name in names}
    values["ks"] = flags_core.parse_int_list("ks", flag_values.ks)
    values["class_range"] = config_lib.parse_class_range(
        flag_values.class_range
    )
    return run.RetrievalOptions(**values)


def main(argv):
    del argv
    report = run.evaluate_retrieval(options_from_flags(FLAGS))
    print(json.dumps(report))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main, tensorflow_only=True)
