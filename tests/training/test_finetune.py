"""Fine-tuning: tfds mock data and image folders through the ImageNet loop."""

import gc
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from assemble_tf import config as config_lib
from assemble_tf.models import build_model
from assemble_tf.runs import inputs, runtime, warm_start
from assemble_tf.runs import models as run_models
from assemble_tf.training import recipes
from assemble_tf.training import trainer as trainer_lib
from tests import testing_utils
from tests.data_pipeline.test_sources import _write_metadata

TINY = {"base_width": 8, "block_sizes": (1, 1, 1, 1)}


@pytest.fixture(scope="module")
def source_weights(tmp_path_factory):
    """A 'pretrained' tiny R50 (5 classes) with non-trivial BN stats."""
    keras.utils.set_random_seed(7)
    model = build_model("resnet50", num_classes=5, **TINY)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 1, n).astype("float32"))
            layer.moving_variance.assign(
                rng.uniform(0.5, 2, n).astype("float32")
            )
    path = str(tmp_path_factory.mktemp("src") / "src.weights.h5")
    model.save_weights(path)
    return model, path


def make_config(model_dir, source, **train):
    """The vanilla recipe (as a recipe: its options that a run without a
    warm start ignores are reset) with a tiny model and `train` given."""
    overrides = {
        "model": dict(base_width=8, block_sizes="1,1,1,1", bn_momentum=0.9),
        "data": dict(
            source=source,
            num_classes=3,
            validation_split="test",
            image_size=32,
            eval_preprocessing="imagenet_32",
            shuffle_buffer=16,
        ),
        "train": {
            **dict(
                batch_size=4,
                eval_batch_size=4,
                epochs=1.0,
                max_steps=2,
                warmup_epochs=0.0,
                base_learning_rate=0.5,
                log_every=1,
            ),
            **train,
        },
    }
    return config_lib.make_config(
        str(model_dir),
        "resnet50",
        overrides,
        recipe=recipes.get("vanilla").overrides,
    )


def backbone(model):
    return {
        v.path: v.numpy()
        for v in model.variables
        if not v.path.startswith(run_models.HEAD_PREFIXES)
    }


def test_recipes_follow_the_food101_scripts():
    a = recipes.get("assemble").overrides
    assert a["train"]["base_learning_rate"] == 0.01
    assert a["train"]["batch_size"] == 256
    assert a["train"]["weight_decay"] == 1e-3
    assert a["train"]["epochs"] == 100.0
    assert a["train"]["dropblock_keep_prob"] == (0.9, 0.7)
    assert a["model"] == {"bn_momentum": 0.966, "add_dropblock": True}
    assert a["augment"] == {
        "mixup_type": 1,
        "autoaugment": "good",
        "label_smoothing": 0.1,
    }
    assert not a["train"]["warm_start_bn_stats"]
    v = recipes.get("vanilla").overrides
    assert v["augment"] == {
        "mixup_type": 0,
        "autoaugment": "none",
        "label_smoothing": 0.0,
    }
    assert v["train"]["dropblock_keep_prob"] is None
    assert recipes.default_for("assemble_resnet50") == "assemble"
    assert recipes.default_for("resnet50") == "vanilla"
    with pytest.raises(ValueError, match="`recipe`='food' is not") as e:
        recipes.get("food")
    assert e.value.as_flag().startswith("--recipe='food' is not a recipe.")


@pytest.mark.slow  # trains or compiles
def test_folder_frozen_backbone_changes_only_the_head(
    tmp_path, image_folder, source_weights, monkeypatch, capsys
):
    import shutil

    src, path = source_weights
    # A cut-off download in each split: counted and named, not lost.
    folder = tmp_path / "folder"
    shutil.copytree(image_folder, folder)
    jpeg = (folder / "test" / "class_2" / "0.jpg").read_bytes()
    for split in ("train", "test"):
        (folder / split / "class_2" / "cut.jpg").write_bytes(jpeg[:300])
    config = make_config(
        tmp_path / "run",
        str(folder),
        warm_start=path,
        warm_start_bn_stats=True,
        freeze_backbone=True,
    )
    assert config.data.label_offset == 0
    strategy = runtime.setup_runtime(config)
    logged = []
    trainer = trainer_lib.Trainer(config, strategy, log=logged.append)
    assert trainer.num_train == 13  # 3 classes x 4 (one PNG), cut.jpg
    snapshot = {}
    original = warm_start.warm_start_model

    def spy(model, *args, **kwargs):
        original(model, *args, **kwargs)
        snapshot["head"] = model.get_layer("head_dense").kernel.numpy().copy()
        snapshot["backbone"] = backbone(model)

    monkeypatch.setattr(warm_start, "warm_start_model", spy)
    history = trainer.train()
    # Warm start: every backbone variable (BN statistics included) is the
    # source's exactly; the head is new (3 classes, zero bias).
    want = backbone(src)
    assert set(snapshot["backbone"]) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(snapshot["backbone"][key], value, key)
    assert snapshot["head"].shape == (256, 3)
    # Two steps with a frozen backbone: the backbone is untouched (frozen
    # BN layers normalise with their moving statistics), the head moved.
    for key, value in backbone(trainer.model).items():
        np.testing.assert_array_equal(value, want[key], key)
    head = trainer.model.get_layer("head_dense").kernel.numpy()
    assert np.abs(head - snapshot["head"]).max() > 1e-4
    assert len(trainer.model.trainable_variables) == 2
    assert history[-1]["val_count"] == 6  # the test split, PNG-free
    assert history[-1]["val_skipped"] == 1  # cut.jpg
    # The training side counts what the pipeline has read by the epoch's
    # end, read-ahead included: the 2 steps take 8 of the 13 records, and
    # cut.jpg was read 0, 1 or 2 times by then (the shuffled split
    # repeats) in runs of this test. The exact count is the validation
    # side's above; here the warning must say what the history counts.
    skipped = history[-1]["train_records_skipped"]
    warned = [line for line in logged if "unusable training" in line]
    if skipped:  # named, once (the split repeats)
        assert warned == [
            f"WARNING: epoch 1 skipped {skipped} unusable training records "
            f"({skipped} not decodable; names: {folder}/train/class_2/cut.jpg; "
            "counted as read, records read ahead included)."
        ]
    else:
        assert not warned
    assert 0.0 <= history[-1]["val_top1"] <= 1.0
    # What tools.evaluate runs: the same count, and a warning.
    from assemble_tf.evaluation import run as evaluation_run

    evaluator = evaluation_run.make_evaluator(
        evaluation_run.LoadedModel(config, strategy, trainer.model, None, None)
    )
    capsys.readouterr()
    result = evaluation_run.run_evaluation(evaluator, config, progress=False)
    assert (result["count"], result["skipped"]) == (6, 1)
    assert capsys.readouterr().err.splitlines()[-1] == (
        "WARNING: 1 of 7 validation records skipped (1 not decodable; "
        f"names: {folder}/test/class_2/cut.jpg); the metrics count the "
        "others."
    )


@pytest.mark.slow  # trains or compiles
def test_tfds_mock_backbone_lr_zero_and_bn_reestimation(
    tmp_path, source_weights
):
    src, path = source_weights
    data_dir = tmp_path / "tfds"
    _write_metadata(
        "oxford_flowers102", data_dir, {"train": 1020, "test": 6149}
    )
    with tfds.testing.mock_data(num_examples=8, data_dir=str(data_dir)):
        config = make_config(
            tmp_path / "run",
            "oxford_flowers102",
            warm_start=path,
            backbone_lr_multiplier=0.0,
            bn_reestimate_steps=2,
        )
        config = config_lib.ExperimentConfig.from_dict(
            dict(
                config.to_dict(),
                data=dict(
                    config.to_dict()["data"],
                    num_classes=102,
                    tfds_data_dir=str(data_dir),
                ),
            )
        )
        strategy = runtime.setup_runtime(config)
        trainer = trainer_lib.Trainer(config, strategy, log=lambda s: None)
        assert trainer.num_train == 1020
        trainer.train()
    model = trainer.model
    want = backbone(src)
    for v in model.trainable_variables:
        if not v.path.startswith(run_models.HEAD_PREFIXES):
            np.testing.assert_array_equal(v.numpy(), want[v.path], v.path)
    bn = model.get_layer("stem_1_bn")
    # Reset by the recipe (warm_start_bn_stats False), then re-estimated
    # from data and updated by training: neither 0/1 nor the source's.
    assert np.abs(bn.moving_mean.numpy()).max() > 1e-3
    assert (
        np.abs(bn.moving_mean.numpy() - want[bn.moving_mean.path]).max() > 1e-3
    )
    assert model.get_layer("head_dense").kernel.shape == (256, 102)


@pytest.mark.slow  # trains or compiles
def test_warm_start_from_a_run_and_a_saved_model(
    tmp_path, source_weights, caplog
):
    from tests.testing_utils import write_export

    src, _ = source_weights
    export = str(tmp_path / "export")
    write_export(src, export, "imagenet_32")
    ckpt = tf.train.Checkpoint(model=src).save(str(tmp_path / "run/ckpt"))
    run_config = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {
            "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
            "data": {"num_classes": 5, "synthetic": True},
        },
    )
    run_config.to_json(str(tmp_path / "run" / "config.json"))
    # Its best/ folder, as training keeps it (before: "no checkpoint
    # found" for a folder tools.evaluate reads as --checkpoint=best).
    from assemble_tf.runs import checkpoints

    checkpoints.BestKeeper(str(tmp_path / "run"), 1).offer(ckpt, 0.5, 1)
    best = str(tmp_path / "run" / "best") + "/"
    # An export written before 2026-12-08 tracked the Keras model as the
    # root's `model` (which warm starts read then): still read.
    from assemble_tf.export import saved_model

    old_export = str(tmp_path / "old_export")
    module = saved_model.ServingModule(src, "imagenet_32")
    module.model = src
    saved_model.save_module(module, old_export)
    want = backbone(src)
    for origin in (export, old_export, ckpt, best):
        target = build_model("resnet50", num_classes=3, **TINY)
        warm_start.warm_start_model(target, origin)
        got = backbone(target)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, f"{origin} {key}")
    # A model with DropBlock layers: its random-generator states are not
    # weights, and their names differ between two builds (before: its
    # export was refused as "another graph ... fold_bn").
    from assemble_tf import presets

    dropblock = {**TINY, "dropblock": dict(presets.DROPBLOCK["dropblock"])}
    source = build_model("resnet50", num_classes=5, **dropblock)
    testing_utils.randomize_bn(source, seed=4)
    assert [v for v in source.variables if warm_start.is_rng_state(v)]
    write_export(source, tmp_path / "db", "imagenet_32")
    target = build_model("resnet50", num_classes=3, **dropblock)
    warm_start.warm_start_model(target, str(tmp_path / "db"))
    got, want = (
        {k: v for k, v in backbone(m).items() if "seed_generator" not in k}
        for m in (target, source)
    )
    assert got.keys() == want.keys() and len(want) > 50
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, key)
    other = build_model("resnet50", num_classes=3, base_width=16)
    with pytest.raises(ValueError, match="does not fit the model"):
        warm_start.warm_start_model(other, ckpt)
    # Issue 24 item 7: a BN-folded export is another graph; it gave a raw
    # TensorFlow message and hundreds of warning lines.
    from assemble_tf.export.optimize import folded_copy

    folded_dir = str(tmp_path / "folded")
    write_export(folded_copy(src)[0], folded_dir, "imagenet_32")
    target = build_model("resnet50", num_classes=3, **TINY)
    with testing_utils.tensorflow_logs_to(caplog):
        with pytest.raises(ValueError) as e:
            warm_start.warm_start_model(target, folded_dir)
        (line,) = str(e.value).splitlines()
        del e  # its traceback holds the half-restored model
        gc.collect()  # where that restore's objects warned
    assert line.startswith(
        f"`warm_start`={folded_dir} does not fit the model: "
    )
    assert "_bn/" in line and "without fold_bn" in line
    # Before: 70 lines of "Value in checkpoint could not be found in the
    # restored object" at exit, after the one-line error.
    assert not [r for r in caplog.records if "checkpoint" in r.getMessage()]


@pytest.mark.slow  # exports
def test_warm_start_into_a_new_embedding_head_and_gem_pooling(
    tmp_path, source_weights
):
    """The retrieval recipes add a 512-d embedding head (and GeM pooling
    may be added) to an ImageNet backbone: from a run or a SavedModel
    without one (before: refused, "head_embedding_bn/gamma missing", and
    a SavedModel as "another graph ... fold_bn"). The new head keeps its
    initial values; from a source that has one, the embedding head is
    re-initialised too, its BN included (before: the BN kept the source's
    statistics, which described the source's projection)."""
    from tests.testing_utils import write_export

    src, _ = source_weights
    export = str(tmp_path / "export")
    write_export(src, export, "imagenet_32")
    ckpt = tf.train.Checkpoint(model=src).save(str(tmp_path / "run/ckpt"))
    config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {
            "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
            "data": {"num_classes": 5, "synthetic": True},
        },
    ).to_json(str(tmp_path / "run" / "config.json"))
    head = {"embedding_size": 6, "classifier": "cosine", "pooling": "gem"}

    def fresh():
        keras.utils.set_random_seed(11)
        return build_model("resnet50", num_classes=3, **TINY, **head)

    initial = {v.path: v.numpy() for v in fresh().variables}
    for origin in (export, ckpt):
        target = fresh()
        warm_start.warm_start_model(target, origin)
        got = {v.path: v.numpy() for v in target.variables}
        for path, value in backbone(src).items():
            np.testing.assert_array_equal(got[path], value, path)
        for path in ("head_embedding_bn/moving_variance", "head_dense/kernel"):
            np.testing.assert_array_equal(got[path], initial[path], path)
    # A source with an embedding head (BN statistics moved).
    src_head = build_model("resnet50", num_classes=5, **TINY, **head)
    testing_utils.randomize_bn(src_head, seed=5)
    bn = src_head.get_layer("head_embedding_bn")
    assert not np.allclose(bn.moving_variance.numpy(), 1.0)
    path = str(tmp_path / "head.weights.h5")
    src_head.save_weights(path)
    for load_head, want in ((False, 1.0), (True, bn.moving_variance)):
        target = build_model(
            "resnet50", num_classes=5 if load_head else 3, **TINY, **head
        )
        warm_start.warm_start_model(target, path, load_head=load_head)
        np.testing.assert_array_equal(
            target.get_layer("head_embedding_bn").moving_variance.numpy(),
            np.broadcast_to(np.asarray(want), (6,)),
        )
    # The head itself, asked for, must be there.
    target = build_model("resnet50", num_classes=5, **TINY, **head)
    with pytest.raises(ValueError, match="head_embedding"):
        warm_start.warm_start_model(target, ckpt, load_head=True)


def test_finetune_tool_names_unknown_datasets(tmp_path):
    proc = testing_utils.run_main(
        "tools.finetune",
        "--source=oxford_flowers10",
        f"--model_dir={tmp_path}/run",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "oxford_flowers102" in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("ERROR: ") and not (tmp_path / "run").exists()


@pytest.mark.slow  # trains or compiles
def test_class_range_and_retrieval_head_on_a_folder(tmp_path, image_folder):
    from assemble_tf.layers import GeMPooling2D

    config = make_config(tmp_path / "run", image_folder, max_steps=1)
    data = dict(config.to_dict()["data"], class_range="1,3", num_classes=2)
    model = dict(config.to_dict()["model"], embedding_size=16, pooling="gem")
    config = config_lib.ExperimentConfig.from_dict(
        dict(config.to_dict(), data=data, model=model)
    )
    config_lib.validate(config)
    strategy = runtime.setup_runtime(config)
    trainer = trainer_lib.Trainer(config, strategy, log=lambda s: None)
    assert trainer.num_train == 8  # classes 1 and 2 of the train split
    labels = [
        int(label)
        for _, label, _ in inputs._record_source(config.data, False)(
            None, False, 0
        )
    ]
    assert sorted(labels) == [0, 0, 1, 1]  # test split, shifted by 1
    history = trainer.train()
    assert history[-1]["val_count"] == 4
    assert isinstance(trainer.model.get_layer("head_pool"), GeMPooling2D)
    assert trainer.model.get_layer("head_embedding").kernel.shape[-1] == 16
    bad = dict(data, num_classes=3)
    with testing_utils.raises_flag_error("--class_range='1,3' is invalid"):
        config_lib.validate(
            config_lib.ExperimentConfig.from_dict(
                dict(config.to_dict(), data=bad)
            )
        )


def test_a_class_range_that_keeps_no_image_of_a_split_is_refused(tmp_path):
    """Classes a-c train, d-e test: a range of one side's classes left the
    other split empty (before: found after the first epoch's training,
    with an error naming --data_dir and --validation_pattern, or as "no
    images ... or --num_train_examples")."""
    for split, names in (("train", "abc"), ("test", "de")):
        for name in names:
            folder = tmp_path / "folder" / split / name
            folder.mkdir(parents=True)
            image = testing_utils.smooth_image(8, 8, seed=ord(name))
            (folder / "0.jpg").write_bytes(testing_utils.jpeg_bytes(image))
    root = tmp_path / "folder"

    def data(class_range):
        return config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {"data": {"source": str(root), "class_range": class_range}},
        ).data

    for class_range, field, split in (
        ("0,3", "validation_split", "test"),
        ("3,5", "train_split", "train"),
    ):
        with pytest.raises(ValueError) as error:
            inputs.check_source_splits(data(class_range))
        low, high = class_range.split(",")
        assert error.value.as_flag() == (
            f"--class_range={class_range} keeps no image of the '{split}' "
            f"split of --source={root} (--{field}): its images are all of "
            f"classes outside labels {low}-{int(high) - 1}. Widen "
            f"--class_range, or pick another --{field}."
        )
    inputs.check_source_splits(data("2,4"))  # c trains, d tests


@pytest.mark.slow
def test_finetune_tool_on_a_folder(tmp_path, image_folder, source_weights):
    _, weights = source_weights
    proc = testing_utils.run_main(
        "tools.finetune",
        "--preset=resnet50",
        f"--source={image_folder}",
        f"--warm_start={weights}",
        "--base_width=8",
        "--block_sizes=1,1,1,1",
        "--image_size=32",
        "--eval_preprocessing=imagenet_32",
        "--batch_size=4",
        "--max_steps=2",
        "--epochs=1",
        "--warmup_epochs=0",
        f"--model_dir={tmp_path}/run",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["recipe"] == "vanilla" and summary["steps"] == 2
    config = config_lib.ExperimentConfig.from_json(
        f"{tmp_path}/run/config.json"
    )
    assert config.data.num_classes == 3
    assert config.data.validation_split == "test"
    assert config.model.bn_momentum == 0.966  # the recipe's
    assert config.train.weight_decay == 1e-3
    assert "3 classes; train 'train', eval 'test'" in proc.stderr


def test_a_folder_source_sets_the_classes_and_held_out_split(
    tmp_path, image_folder
):
    """tools.train --source=<folder> as tools.finetune: before, a 3-class
    folder got the preset's 1001-way head, the split "validation" it does
    not have, and no word about the files it left out."""
    import shutil

    root = tmp_path / "folder"
    shutil.copytree(image_folder, root)
    (root / "train" / "class_0" / "x.webp").write_bytes(b"RIFF")
    (root / "train" / "class_9").mkdir()  # a class without images

    def data(**given):
        overrides = {"data": {"source": str(root), **given}}
        return config_lib.make_config(
            str(tmp_path / "run"), "resnet50", overrides
        ).data

    d = data()
    assert (d.num_classes, d.validation_split) == (4, "test")
    assert inputs.source_warnings(d) == [
        f"{root}: left out the files that are not .jpg/.jpeg/.png images "
        "in a class folder <split>/<class>/ (1: train/class_0/x.webp); "
        "convert or move them to use them.",
        f"{root}: class folders without images, still counted as classes: "
        "class_9.",
    ]
    d = data(num_classes=10, validation_split="train")  # given: kept
    assert (d.num_classes, d.validation_split) == (10, "train")
    assert data(class_range="1,3").num_classes == 2
    # An empty, reversed or one-class range is named as itself (before:
    # "--num_classes=-3 is invalid" or "--num_classes=1 is invalid", a
    # flag not given).
    for text in ("5,2", "3,3", "1,2"):
        with pytest.raises(ValueError) as e:
            data(class_range=text)
        assert e.value.as_flag() == (
            f"--class_range='{text}' is invalid: 'low,high' with 0 <= low "
            "and high >= low + 2 (a head of at least 2 classes)."
        )
    one = tmp_path / "one"
    shutil.copytree(root / "train" / "class_1", one / "train" / "a")
    with pytest.raises(ValueError) as e:
        config_lib.make_config(
            str(tmp_path / "run"), "resnet50", {"data": {"source": str(one)}}
        )
    assert e.value.as_flag() == (
        f"--source={one} has 1 class(es) (a): a classifier needs at least "
        "2 class folders <split>/<class>/."
    )
