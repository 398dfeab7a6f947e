"""Experiment config: preset recipes, explicit overrides, validation."""

import dataclasses
import json
import os
import re

import pytest
from absl import flags as absl_flags

from assemble_tf import config as config_lib
from flags import config_flags
from official.utils.misc import validation
from tests import testing_utils


def test_preset_recipe_sets_the_defaults(tmp_path):
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "assemble_resnet50",
        {"data": {"data_dir": str(tmp_path)}},
    )
    assert cfg.train.epochs == 600 and cfg.train.base_learning_rate == 0.4
    assert cfg.augment.mixup_type == 1 and cfg.augment.label_smoothing == 0.1
    assert cfg.augment.autoaugment == "imagenet"
    assert cfg.train.dropblock_keep_prob == (1.0, 0.9)  # parsed once
    assert cfg.train.kd_temperature == 1.0
    assert cfg.data.eval_preprocessing == "imagenet_224_256"
    vanilla = config_lib.make_config(
        str(tmp_path / "run"), "resnet50", {"data": {"data_dir": str(tmp_path)}}
    )
    assert vanilla.augment.mixup_type == 0 and vanilla.train.epochs == 120


def test_json_round_trip(tmp_path):
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {"data": {"data_dir": str(tmp_path)}, "train": {"batch_size": 32}},
    )
    (tmp_path / "run").mkdir()
    path = str(tmp_path / "run" / "config.json")
    cfg.to_json(path)
    assert config_lib.ExperimentConfig.from_json(path) == cfg


@pytest.mark.parametrize(
    "overrides,match",
    [
        (
            {"train": {"base_learning_rate": -0.1}},
            "--base_learning_rate=-0.1 is invalid: must be > 0",
        ),
        ({"train": {"mixed_precision": "fp16"}}, "--mixed_precision='fp16'"),
        # Before: inf trained to a NaN loss; NaN was "must be >= 0".
        (
            {"train": {"kd_temperature": float("inf")}},
            "--kd_temperature=inf is invalid: must be a finite number",
        ),
        (
            {"augment": {"mixup_alpha": float("nan")}},
            "--mixup_alpha=nan is invalid: must be a finite number",
        ),
        ({"augment": {"mixup_type": 3}}, "--mixup_type=3"),
        ({"train": {"eval_batch_size": -3}}, "--eval_batch_size=-3 is invalid"),
        ({"train": {"eval_batch_size": 0}}, "--eval_batch_size=0 is invalid"),
        ({"train": {"steps_per_loop": 0}}, "--steps_per_loop=0 is invalid"),
        # Before: Keras' "Seed must be between 0 and 2**32 - 1", no flag.
        (
            {"train": {"seed": -1}},
            re.escape("--seed=-1 is invalid: must be between 0 and 2**32 - 1"),
        ),
        ({"train": {"seed": 2**32}}, "--seed=4294967296 is invalid"),
        ({"augment": {"autoaugment": "cifar"}}, "--autoaugment='cifar'"),
        ({"train": {"dropblock_keep_prob": "1.0"}}, "dropblock_keep_prob"),
        (
            {"data": {"data_dir": "/no/such/dir"}},
            "--data_dir='/no/such/dir' is invalid: no such directory",
        ),
        (
            {"data": {"eval_preprocessing": "inception"}},
            "--eval_preprocessing must be one of .* Received: "
            "--eval_preprocessing='inception'",
        ),
        (  # it failed at training time, naming no flag
            {"augment": {"randaugment_magnitude": 15}},
            re.escape(
                "--randaugment_magnitude=15 is invalid: must be in [0, 10]"
            ),
        ),
        (  # --data_dir was ignored and the source trained, without a word
            {"data": {"source": "oxford_flowers102"}},
            re.escape(
                "is invalid: not with --source: pass one dataset, TFRecords "
                "(this) or a tfds set or image folder (--source; its tfds "
                "folder is --tfds_data_dir)."
            ),
        ),
        (  # an odd batch lost an image per step, 1 failed
            {"augment": {"mixup_type": 2}, "train": {"batch_size": 3}},
            "--batch_size=3 is invalid: --mixup_type=2 mixes the two halves "
            "of each batch: it must be even.",
        ),
        (  # CutMix without a Mixup type: accepted, and it never ran
            {"augment": {"mixup_mode": "cutmix"}},
            re.escape(
                "--mixup_mode='cutmix' is invalid: mixes nothing with "
                "--mixup_type=0 (the preset's or yours): set --mixup_type=1 "
                "(two batches) or 2 (halves)."
            ),
        ),
        (  # a head trained on a random frozen backbone, without a word
            {"train": {"freeze_backbone": True}},
            re.escape(
                "--freeze_backbone=True is invalid: trains only the head, on "
                "the backbone's initial random weights without "
                "--warm_start: give the run or weights to start from "
                "(--warm_start=...), or train the backbone too."
            ),
        ),
        (  # the reset BN statistics stayed 0 / 1: train loss 135
            {
                "train": {
                    "warm_start": "w.weights.h5",
                    "warm_start_bn_stats": False,
                    "freeze_backbone": True,
                }
            },
            re.escape(
                "--freeze_backbone=True is invalid: a frozen backbone never "
                "updates its BN statistics, and --warm_start_bn_stats=False "
                "resets them to 0 / 1: keep them (--warm_start_bn_stats) or "
                "re-estimate them on the new data (--bn_reestimate_steps=N)."
            ),
        ),
    ],
)
def test_validation_names_flag_and_value(tmp_path, overrides, match):
    overrides = dict(overrides)
    data = dict(overrides.pop("data", {}))
    data.setdefault("data_dir", str(tmp_path))
    with testing_utils.raises_flag_error(match):
        config_lib.make_config(
            str(tmp_path / "run"), "resnet50", {"data": data, **overrides}
        )


def test_only_explicit_flags_override_the_preset(tmp_path):
    values = absl_flags.FlagValues()
    config_flags.define_config_flags(flag_values=values)
    values(
        [
            "prog",
            f"--model_dir={tmp_path}/run",
            "--preset=assemble_resnet50",
            f"--data_dir={tmp_path}",
            "--batch_size=64",
            "--epochs=3",
            "--mixup_type=0",
            "--warmup_epochs=1",
        ]
    )
    cfg = config_flags.flags_to_config(values)
    assert cfg.train.batch_size == 64 and cfg.train.epochs == 3.0
    assert cfg.augment.mixup_type == 0
    # Not set: the preset's recipe, not the flag defaults.
    assert cfg.augment.label_smoothing == 0.1
    assert cfg.train.kd_temperature == 1.0
    assert cfg.data.eval_preprocessing == "imagenet_224_256"


def test_none_is_none_only_where_the_field_takes_none():
    """Before: --eval_preprocessing=none became None and was refused as
    "must be text", not with the values the flag takes."""
    values = absl_flags.FlagValues()
    config_flags.define_config_flags(flag_values=values)
    values(["prog", "--source=None", "--eval_preprocessing=none"])
    assert config_flags.explicit_overrides(values) == {
        "data": {"source": None, "eval_preprocessing": "none"}
    }


def test_dropblock_schedule_is_parsed_once_and_needs_dropblock_layers(
    tmp_path,
):
    data = {"data": {"data_dir": str(tmp_path)}}
    for given in ("0.9,0.7", [0.9, 0.7], (0.9, 0.7)):
        cfg = config_lib.make_config(
            str(tmp_path / "run"),
            "assemble_resnet50",
            {**data, "train": {"dropblock_keep_prob": given}},
        )
        assert cfg.train.dropblock_keep_prob == (0.9, 0.7)
    (tmp_path / "run").mkdir()
    path = str(tmp_path / "run" / "config.json")
    cfg.to_json(path)
    assert config_lib.ExperimentConfig.from_json(path) == cfg  # list -> pair
    off = config_lib.make_config(
        str(tmp_path / "run"),
        "assemble_resnet50",
        {**data, "train": {"dropblock_keep_prob": "none"}},
    )
    assert off.train.dropblock_keep_prob is None
    # Before: accepted, and silently did nothing.
    with pytest.raises(ValueError, match="resnet50 has none"):
        config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {**data, "train": {"dropblock_keep_prob": "1.0,0.9"}},
        )
    # --nodropblock drops the preset's schedule; an explicit one is refused.
    plain = config_lib.make_config(
        str(tmp_path / "run"),
        "assemble_resnet50",
        {**data, "model": {"dropblock": False}},
    )
    assert plain.train.dropblock_keep_prob is None
    with pytest.raises(ValueError, match="`dropblock`=False removes them"):
        config_lib.make_config(
            str(tmp_path / "run"),
            "assemble_resnet50",
            {
                **data,
                "model": {"dropblock": False},
                "train": {"dropblock_keep_prob": "1.0,0.9"},
            },
        )


def test_add_dropblock_gives_a_preset_without_them_the_papers_layers(
    tmp_path,
):
    """Table 8 F5-F8 fine-tune M4 (no DropBlock layers) with DropBlock."""
    from assemble_tf.layers import DropBlock2D
    from assemble_tf.runs import models as run_models

    data = {"data": {"data_dir": str(tmp_path), "num_classes": 10}}
    schedule = {"train": {"dropblock_keep_prob": "0.9,0.7"}}
    with pytest.raises(ValueError, match="`add_dropblock` adds them"):
        config_lib.make_config(
            str(tmp_path / "run"), "table6_m4", {**data, **schedule}
        )
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "table6_m4",
        {
            **data,
            **schedule,
            "model": {
                "add_dropblock": True,
                "base_width": 8,
                "block_sizes": "2,2,2,1",
            },
        },
    )
    assert cfg.train.dropblock_keep_prob == (0.9, 0.7)
    model = run_models.build_run_model(cfg, image_size=64)
    layers = model._flatten_layers()
    blocks = [x for x in layers if isinstance(x, DropBlock2D)]
    # Groups 3 and 4 (the paper's): one per block there, and shortcuts.
    assert blocks and {b.block_size for b in blocks} == {7}
    names = sorted({b.name.split("_")[0] for b in blocks})
    assert names == ["stage3", "stage4"], names
    # Layers without a schedule keep every activation (before: trained
    # so without a word).
    with testing_utils.raises_flag_error(
        "--add_dropblock=True is invalid: adds DropBlock layers that keep "
        "every activation without --dropblock_keep_prob: give the schedule "
        "too, e.g. --dropblock_keep_prob=0.9,0.7 \\(Table 8's rows F5-F8\\)"
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "table6_m4",
            {**data, "model": {"add_dropblock": True}},
        )
    with testing_utils.raises_flag_error(
        "--add_dropblock=True is invalid: contradicts"
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "table6_m4",
            {**data, "model": {"add_dropblock": True, "dropblock": False}},
        )


@pytest.mark.slow  # builds three models
def test_dropblock_shared_mask_reaches_every_dropblock_layer(tmp_path):
    """The original's one mask per batch (docs/fidelity.md), from a flag
    (before: a key of the builder's `dropblock` dict alone)."""
    from assemble_tf.layers import DropBlock2D
    from assemble_tf.runs import models as run_models

    data = {"data": {"data_dir": str(tmp_path), "num_classes": 10}}
    tiny = {"base_width": 8, "block_sizes": "2,2,2,1"}

    def layers(preset, **model):
        schedule = {"dropblock_keep_prob": "0.9,0.7"}
        cfg = config_lib.make_config(
            str(tmp_path / "run"),
            preset,
            {**data, "model": {**tiny, **model}, "train": schedule},
        )
        model = run_models.build_run_model(cfg, image_size=64)
        found = model._flatten_layers()
        return [x for x in found if isinstance(x, DropBlock2D)]

    assert {b.shared_mask for b in layers("assemble_resnet50")} == {False}
    shared = layers("assemble_resnet50", dropblock_shared_mask=True)
    assert len(shared) == len(layers("assemble_resnet50"))
    assert {(b.shared_mask, b.block_size) for b in shared} == {(True, 7)}
    added = layers("table6_m4", add_dropblock=True, dropblock_shared_mask=True)
    assert added and all(b.shared_mask for b in added)
    with testing_utils.raises_flag_error(
        "--dropblock_shared_mask=True is invalid: sets up DropBlock layers "
        "this model does not have \\(table6_m4 has none; --add_dropblock "
        "adds them\\)"
    ):
        layers("table6_m4", dropblock_shared_mask=True)
    with testing_utils.raises_flag_error(
        "--dropblock_shared_mask=True is invalid: sets up DropBlock layers "
        "this model does not have \\(--dropblock=False removes them\\)"
    ):
        layers("assemble_resnet50", dropblock=False, dropblock_shared_mask=True)


def test_classifier_is_checked_before_the_model_is_built(tmp_path):
    data = {"data": {"data_dir": str(tmp_path), "num_classes": 10}}
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {**data, "model": {"classifier": "cosine", "cosine_temperature": 0.1}},
    )
    assert cfg.model.build_overrides(10)["classifier"] == "cosine"
    for model, match in (
        ({"classifier": "arcface"}, "--classifier='arcface' is invalid"),
        ({"cosine_temperature": 0.0}, "--cosine_temperature=0.0 is invalid"),
    ):
        with testing_utils.raises_flag_error(match):
            config_lib.make_config(
                str(tmp_path / "run"), "resnet50", {**data, "model": model}
            )


def test_a_damaged_config_json_is_named_with_the_fix(tmp_path):
    """Before: a bare JSON decoder message naming no file, or a
    TypeError traceback for a config.json holding a list."""
    path = tmp_path / "config.json"
    fix = (
        "tools.train writes it; restore it from a copy (the tools that read "
        "a run also take --preset and --weights instead)."
    )
    for text, message in (
        ('{"model": ', f"{path} is not valid JSON ("),
        ("[]", f"{path} holds a list, not a config object; {fix}"),
        ('{"model": 5}', f'{path} has no model preset ("model": '),
        # A value of the wrong type, named (it was a TypeError in the
        # model builder, naming neither the file nor the field).
        (
            '{"model": {"preset": "resnet50", "base_width": "eight"}}',
            f"{path} does not read as a config (`base_width`='eight' is "
            "invalid: must be an integer or null);",
        ),
        (
            '{"model": {"preset": "resnet50"}, "data": {"num_classes": 4.5}}',
            f"{path} does not read as a config (`num_classes`=4.5 is "
            "invalid: must be an integer);",
        ),
        (
            '{"model": {"preset": "resnet50"}, '
            '"train": {"deterministic": "yes"}}',
            f"{path} does not read as a config (`deterministic`='yes' is "
            "invalid: must be true or false);",
        ),
        # A group left out became its defaults (another model than the
        # checkpoints'): the preset at least must be there.
        ('{"data": {}}', f'{path} has no model preset ("model": '),
        ('{"model": [1, 2]}', f'{path} has no model preset ("model": '),
        # Values the model builder or the pipeline refused, or int()
        # rounded, without naming the file.
        (
            '{"model": {"preset": "resnet50", "block_sizes": [2, 2]}}',
            f"{path} does not read as a config (`block_sizes`=(2, 2) is "
            "invalid: must be 4 numbers, one per stage);",
        ),
        (
            '{"model": {"preset": "resnet50", "block_sizes": [2.7, 2, 2, 1]}}',
            f"{path} does not read as a config (`block_sizes`=[2.7, 2, 2, 1] "
            "is invalid: comma-separated positive integers",
        ),
        (
            '{"model": {"preset": "resnet50"}, '
            '"data": {"synthetic": true, "eval_preprocessing": "foo"}}',
            f"{path} does not read as a config (`eval_preprocessing` must "
            "be one of",
        ),
    ):
        path.write_text(text)
        with pytest.raises(ValueError) as error:
            config_lib.ExperimentConfig.from_json(str(path))
        assert str(error.value).startswith(message)
        assert str(error.value).endswith(fix)


def test_fields_take_their_own_types_only():
    """Integers in float fields are numbers; bools are not integers."""
    assert config_lib.TrainConfig(epochs=2, base_learning_rate=1).epochs == 2
    assert config_lib.ModelConfig(base_width=None).base_width is None
    for group, field, value in (
        (config_lib.DataConfig, "num_classes", True),
        (config_lib.TrainConfig, "epochs", "2"),
        (config_lib.ModelConfig, "preset", 50),
        (config_lib.RuntimeConfig, "num_gpus", 1.0),
    ):
        with pytest.raises(config_lib.OptionError) as error:
            group(**{field: value})
        assert error.value.field == field


def test_loop_and_data_sizes_are_checked_before_anything_runs(tmp_path):
    """Before: --shuffle_buffer=0 failed in tf.data with a traceback after
    config.json was written, --keep_checkpoints=0 with Keras' message
    naming no flag, and an --eval_every_epochs of 0.5 or -1 was silently
    taken as 1."""
    data = {"synthetic": True}
    for group, field, value, allowed in (
        ("data", "shuffle_buffer", 0, "must be >= 1"),
        ("data", "num_train_examples", -5, "must be >= 1"),
        ("train", "keep_checkpoints", 0, "must be >= 1"),
        ("train", "keep_best", -1, "must be >= 0"),
        ("train", "eval_every_epochs", 0.5, "must be a whole number"),
        ("train", "checkpoint_every_epochs", -1.0, "must be a whole number"),
        ("augment", "randaugment_layers", -1, "must be >= 0"),
        ("augment", "randaugment_magnitude", -5, "must be in [0, 10]"),
        ("runtime", "num_gpus", -3, "must be >= 0"),
    ):
        overrides = {"data": dict(data)}
        overrides.setdefault(group, {})[field] = value
        with testing_utils.raises_flag_error(
            re.escape(f"--{field}={value!r} is invalid: {allowed}")
        ):
            config_lib.make_config(str(tmp_path / "run"), "resnet50", overrides)
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {"data": data, "train": {"eval_every_epochs": 2, "keep_best": 0}},
    )
    assert cfg.train.eval_every_epochs == 2 and cfg.train.keep_best == 0


def test_runtime_options_of_another_strategy_are_refused(tmp_path):
    """Before: --tpu or --num_gpus with another strategy were ignored (the
    run trained on one device without a word)."""
    data = {"synthetic": True}
    for runtime, message in (
        (
            {"tpu": "my-tpu"},
            "--tpu='my-tpu' is invalid: applies to --distribution_strategy=tpu "
            "only (here off).",
        ),
        (
            {"num_gpus": 2, "distribution_strategy": "multi_worker_mirrored"},
            "--num_gpus=2 is invalid: applies to "
            "--distribution_strategy=mirrored or one_device only (here "
            "multi_worker_mirrored).",
        ),
    ):
        with testing_utils.raises_flag_error(re.escape(message)):
            config_lib.make_config(
                str(tmp_path / "run"),
                "resnet50",
                {"data": data, "runtime": runtime},
            )
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {
            "data": data,
            "runtime": {"num_gpus": 0, "distribution_strategy": "mirrored"},
        },
    )
    assert cfg.runtime.num_gpus == 0


SOURCE = {"source": "/data/flowers"}  # refused before it is read


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"data": {**SOURCE, "train_pattern": "zzz-*"}},
            "--train_pattern='zzz-*' is invalid: applies to TFRecords "
            "(--data_dir) only, not to --source.",
        ),
        (
            {"data": {**SOURCE, "use_bboxes": True}},
            "--use_bboxes=True is invalid: applies to TFRecords (--data_dir) "
            "only, not to --source.",
        ),
        (
            {"data": {**SOURCE, "label_offset": 1}},
            "--label_offset=1 is invalid: applies to TFRecords (--data_dir) "
            "only, not to --source, whose labels start at 0.",
        ),
        (
            {"data": {"synthetic": True, "data_dir": "/data/records"}},
            "--data_dir='/data/records' is invalid: not read with "
            "--synthetic (random images): leave one out.",
        ),
        # Before: a split or tfds folder with TFRecords trained without a
        # word (the split of the records' own file names was read).
        (
            {"data": {"synthetic": True, "train_split": "foo"}},
            "--train_split='foo' is invalid: applies to a tfds or folder "
            "--source only.",
        ),
        (
            {"data": {"synthetic": True, "tfds_data_dir": "/tfds"}},
            "--tfds_data_dir='/tfds' is invalid: applies to a tfds or "
            "folder --source only.",
        ),
        (
            {"data": {"synthetic": True}, "augment": {"mixup_alpha": 0.7}},
            "--mixup_alpha=0.7 is invalid: applies to --mixup_type=1 or 2 "
            "only (here 0: no Mixup).",
        ),
        (
            {
                "data": {"synthetic": True},
                "augment": {"randaugment_magnitude": 5},
            },
            "--randaugment_magnitude=5 is invalid: applies to "
            "--randaugment_layers > 0 only (here 0: no RandAugment).",
        ),
        (
            {"data": {"synthetic": True}, "train": {"warm_start_head": True}},
            "--warm_start_head=True is invalid: applies with --warm_start "
            "only.",
        ),
        (
            {
                "data": {"synthetic": True},
                "train": {
                    "warm_start": "/x",
                    "freeze_backbone": True,
                    "backbone_lr_multiplier": 0.1,
                },
            },
            "--backbone_lr_multiplier=0.1 is invalid: applies to a backbone "
            "that trains (here --freeze_backbone: only the head trains).",
        ),
    ],
)
def test_an_option_that_others_make_do_nothing_is_refused(
    tmp_path, overrides, message
):
    """Before: each trained without a word (`label_offset` with a folder
    shifted its labels: its first class was skipped as out of range and
    the second trained as logit 0)."""
    with testing_utils.raises_flag_error(re.escape(message)):
        config_lib.make_config(str(tmp_path / "run"), "resnet50", overrides)


def test_a_recipe_option_another_turns_off_is_reset_not_refused(tmp_path):
    """Mixup off on a (fine-tuning) recipe that sets Mixup's alpha: the
    recipe's alpha is reset to the default (it does nothing), not refused
    as if given."""
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {"data": {"synthetic": True}, "augment": {"mixup_type": 0}},
        recipe={"augment": {"mixup_type": 1, "mixup_alpha": 0.4}},
    )
    assert cfg.augment.mixup_type == 0
    default = config_lib.AugmentConfig.__dataclass_fields__["mixup_alpha"]
    assert cfg.augment.mixup_alpha == default.default == 0.2


def test_a_cosine_temperature_needs_the_cosine_head(tmp_path):
    """Before: ignored by the dense head without a word."""
    data = {"synthetic": True}
    with testing_utils.raises_flag_error(
        re.escape(
            "--cosine_temperature=0.1 is invalid: applies to "
            "--classifier=cosine only."
        )
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {"data": data, "model": {"cosine_temperature": 0.1}},
        )
    cfg = config_lib.make_config(
        str(tmp_path / "run"),
        "resnet50",
        {
            "data": data,
            "model": {"classifier": "cosine", "cosine_temperature": 0.1},
        },
    )
    assert cfg.model.build_overrides(4)["cosine_temperature"] == 0.1
    # A config.json of an earlier version that holds such options still
    # loads (its run trained without them).
    stored = cfg.to_dict()
    stored["model"]["classifier"] = "dense"
    stored["runtime"]["num_gpus"] = 1
    path = tmp_path / "old" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(stored))
    loaded = config_lib.ExperimentConfig.from_json(str(path))
    assert loaded.runtime.num_gpus == 1
    # ... and resumes with the options that run had in effect (before the
    # fix: refused with them, and refused as another config without).
    from assemble_tf.training import train_lib

    (path.parent / "checkpoints").mkdir()
    for suffix in (".state.npz", ".weights.h5"):
        (path.parent / "checkpoints" / f"ckpt-1{suffix}").write_bytes(b"")
    rerun = config_lib.make_config(
        str(path.parent),
        "resnet50",
        {"data": data, "model": {"classifier": "dense"}},
    )
    assert train_lib.check_resume(rerun) == []


def test_a_resume_may_change_how_the_loop_runs_not_what_it_trains(tmp_path):
    """check_resume: a run with a checkpoint refuses another configuration
    (listing the differences), takes new loop and reporting settings
    (before: --steps_per_loop or --keep_best alone blocked a resume), and
    refuses checkpoints without their config.json (before: compared with
    nothing, then a shape-mismatch error from the restore)."""
    from assemble_tf.training import train_lib

    def config(**train):
        return config_lib.make_config(
            str(tmp_path),
            "resnet50",
            {
                "data": {"synthetic": True},
                "train": {"epochs": 2.0, "warmup_epochs": 0.0, **train},
            },
        )

    base = config()
    assert train_lib.check_resume(base) == []  # a new folder
    base.to_json(str(tmp_path / "config.json"))
    assert train_lib.check_resume(config(epochs=3.0)) == []  # no checkpoint
    (tmp_path / "checkpoints").mkdir()
    for suffix in (".state.npz", ".weights.h5"):
        (tmp_path / "checkpoints" / f"ckpt-1{suffix}").write_bytes(b"")
    assert train_lib.check_resume(base) == []
    changed = train_lib.check_resume(
        config(
            steps_per_loop=3,
            keep_best=0,
            eval_every_epochs=2.0,
            checkpoint_every_epochs=2.0,
        )
    )
    assert [c.as_flag() for c in changed] == [
        "--steps_per_loop: 100 -> 3",
        "--checkpoint_every_epochs: 1.0 -> 2.0",
        "--eval_every_epochs: 1.0 -> 2.0",
        "--keep_best: 3 -> 0",
    ]
    assert str(changed[0]) == "`steps_per_loop`: 100 -> 3"  # the library's

    # A job back on fewer GPUs (before: refused, "--num_gpus: 8 -> 4").
    def gpus(n):
        return config_lib.make_config(
            str(tmp_path),
            "resnet50",
            {
                "data": {"synthetic": True},
                "train": {"epochs": 2.0, "warmup_epochs": 0.0},
                "runtime": {"distribution_strategy": "mirrored", "num_gpus": n},
            },
        )

    gpus(8).to_json(str(tmp_path / "config.json"))
    changed = train_lib.check_resume(gpus(4))
    assert [c.as_flag() for c in changed] == ["--num_gpus: 8 -> 4"]
    base.to_json(str(tmp_path / "config.json"))
    with testing_utils.raises_flag_error(
        re.escape(
            f"--model_dir={tmp_path} holds a run with a different "
            "configuration (--epochs: 2.0 -> 3.0). Rerun with the same "
            "options to resume, or pick a new --model_dir."
        )
    ):
        train_lib.check_resume(config(epochs=3.0, steps_per_loop=3))
    # An option the change makes ignored is not listed beside it (before:
    # "train.warm_start_bn_stats: False -> True" too).
    warm = {"warm_start": str(tmp_path / "w.h5"), "warm_start_bn_stats": False}
    config(**warm).to_json(str(tmp_path / "config.json"))
    with testing_utils.raises_flag_error(
        re.escape(f"configuration (--warm_start: '{tmp_path}/w.h5' -> None). ")
    ):
        train_lib.check_resume(base)
    # A run written before the optimizer option (Keras' SGD): read as
    # such, and the same command names the option that resumes it.
    written = base.to_dict()
    del written["train"]["optimizer"]
    (tmp_path / "config.json").write_text(json.dumps(written))
    old = config_lib.ExperimentConfig.from_json(str(tmp_path / "config.json"))
    assert (old.train.optimizer, base.train.optimizer) == (
        "keras_sgd",
        "momentum",
    )
    with testing_utils.raises_flag_error(
        re.escape(
            "(--optimizer: 'keras_sgd' -> 'momentum'). Rerun with the "
            "same options to resume (runs written before these defaults "
            "changed: add --optimizer=keras_sgd to resume one), or pick a "
            "new --model_dir."
        )
    ):
        train_lib.check_resume(base)
    assert train_lib.check_resume(config(optimizer="keras_sgd")) == []
    # A resnet50 run written before its step-LR recipe: both flags.
    written["train"]["lr_schedule"] = "cosine"
    (tmp_path / "config.json").write_text(json.dumps(written))
    with testing_utils.raises_flag_error(
        re.escape(
            "(runs written before these defaults changed: add "
            "--optimizer=keras_sgd --lr_schedule=cosine to resume one)"
        )
    ):
        train_lib.check_resume(base)
    (tmp_path / "config.json").unlink()
    with testing_utils.raises_flag_error(
        re.escape(
            f"--model_dir={tmp_path} holds checkpoints (ckpt-1) but no "
            "config.json (deleted?)"
        )
    ):
        train_lib.check_resume(base)


def test_local_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    """A run trained with a relative --data_dir / --source / --warm_start
    stores where they are (before: config.json kept "data/digits", and
    tools.evaluate from another folder found no records); URLs and tfds
    names stay; a run whose config.json kept a relative path resumes from
    the folder it was started in."""
    from assemble_tf.training import train_lib

    (tmp_path / "data" / "digits").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def make(data, train=None):
        # Both given: the source is not opened (TFRecords take no split).
        split = {"validation_split": "t"} if "source" in data else {}
        return config_lib.make_config(
            "run",
            "resnet50",
            {
                "data": {"num_classes": 10, **split, **data},
                "train": {"kd_temperature": 0.0, **(train or {})},
            },
        )

    config = make({"data_dir": "data/digits"}, {"warm_start": "../w.h5"})
    assert config.data.data_dir == str(tmp_path / "data" / "digits")
    assert config.train.warm_start == str(tmp_path.parent / "w.h5")
    folder = make({"source": "./data", "tfds_data_dir": "~/tfds"})
    assert folder.data.source == str(tmp_path / "data")
    assert folder.data.tfds_data_dir == os.path.expanduser("~/tfds")
    assert make({"source": "oxford_flowers102"}).data.source == (
        "oxford_flowers102"
    )
    url = dataclasses.replace(config.data, data_dir="gs://bucket/digits")
    url = config_lib.absolute_paths(dataclasses.replace(config, data=url))
    assert url.data.data_dir == "gs://bucket/digits"
    # config.json of a run started before, with the relative path.
    config = make({"data_dir": "data/digits"})
    config.to_json("run/config.json")
    text = (tmp_path / "run" / "config.json").read_text()
    text = text.replace(str(tmp_path / "data" / "digits"), "data/digits")
    (tmp_path / "run" / "config.json").write_text(text)
    (tmp_path / "run" / "checkpoints").mkdir()
    for suffix in (".state.npz", ".weights.h5"):
        (tmp_path / "run" / "checkpoints" / f"ckpt-1{suffix}").write_bytes(b"")
    assert train_lib.check_resume(config) == []


def test_big_little_models_take_multiples_of_32_px(tmp_path):
    """Before: --image_size=17 (>= 16, so accepted) failed a BigLittleNet
    model at its first training step inside BigLittleMerge, leaving
    config.json behind; sizes such as 48 or 224 + 8 failed alike."""
    data = {"synthetic": True}
    train = {"kd_temperature": 0.0}
    for size in (17, 48, 232):
        with testing_utils.raises_flag_error(
            re.escape(
                f"--image_size={size} is invalid: assemble_resnet50 is a "
                "BigLittleNet model: its crops must be a multiple of 32 px"
            )
        ):
            config_lib.make_config(
                str(tmp_path / "run"),
                "assemble_resnet50",
                {"data": {**data, "image_size": size}, "train": train},
            )
    with testing_utils.raises_flag_error(
        re.escape(
            "--eval_preprocessing='imagenet_17' is invalid: "
            "assemble_resnet50 is a BigLittleNet model: its crop (17 px)"
        )
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "assemble_resnet50",
            {
                "data": {**data, "eval_preprocessing": "imagenet_17"},
                "train": train,
            },
        )
    # A plain ResNet takes any size from 16; the BigLittle one 32k.
    config_lib.make_config(
        str(tmp_path / "run"), "resnet50", {"data": {**data, "image_size": 17}}
    )
    config_lib.make_config(
        str(tmp_path / "run"),
        "assemble_resnet50",
        {"data": {**data, "image_size": 96}, "train": train},
    )


def test_randaugment_beside_autoaugment_is_refused(tmp_path):
    """Before: --randaugment_layers=2 on an Assemble preset (which sets
    AutoAugment) was stored in config.json and silently not applied."""
    overrides = {
        "data": {"synthetic": True},
        "augment": {"randaugment_layers": 2},
        "train": {"kd_temperature": 0.0},
    }
    with testing_utils.raises_flag_error(
        re.escape(
            "--randaugment_layers=2 is invalid: RandAugment replaces "
            "AutoAugment, and --autoaugment=imagenet is set (the preset's or "
            "yours); add --autoaugment=none to use RandAugment."
        )
    ):
        config_lib.make_config(
            str(tmp_path / "run"), "assemble_resnet50", overrides
        )
    overrides["augment"]["autoaugment"] = "none"
    config = config_lib.make_config(
        str(tmp_path / "run"), "assemble_resnet50", overrides
    )
    assert config.augment.randaugment_layers == 2


def test_model_overrides_take_block_sizes_as_lists_or_as_their_flag():
    """'{"block_sizes": "1,1,1,1"}' was taken by a run's overrides and
    refused by a teacher's build ("must be 4 positive ints", no flag)."""
    parse = config_lib.parse_model_overrides
    want = {"base_width": 8, "block_sizes": (1, 1, 1, 1)}
    assert parse('{"base_width": 8, "block_sizes": "1,1,1,1"}') == want
    assert parse('{"base_width": 8, "block_sizes": [1, 1, 1, 1]}') == want
    assert parse({"stage_strides": "1,2,2,1"}) == {
        "stage_strides": (1, 2, 2, 1)
    }
    with pytest.raises(ValueError, match="block_sizes"):
        parse('{"block_sizes": "1,x"}')


def test_an_eval_crop_far_from_the_training_crop_is_a_warning(tmp_path):
    """tools.train --image_size=32 on assemble_resnet50 scored 256-px eval
    crops of a 32-px model without a word."""

    def data(preset, **given):
        overrides = {"data": {"data_dir": str(tmp_path), **given}}
        return config_lib.make_config(
            str(tmp_path / "run"), preset, overrides
        ).data

    far = data("assemble_resnet50", image_size=32)
    warning = config_lib.eval_size_warning(far)
    assert str(warning) == (
        "`eval_preprocessing`=imagenet_224_256 evaluates 256-px crops of a "
        "model trained on 32-px ones; set `eval_preprocessing` to "
        "imagenet_32 (or a size near the training one)."
    )
    with validation.options_as_flags({"eval_preprocessing": "eval"}):
        assert str(warning) == (
            "--eval=imagenet_224_256 evaluates 256-px crops of a model "
            "trained on 32-px ones; set --eval to imagenet_32 (or a size "
            "near the training one)."
        )
    assert str(warning).startswith("`eval_preprocessing`=")  # put back
    assert config_lib.eval_size_warning(data("assemble_resnet50")) is None
    near = data("resnet50", image_size=128, eval_preprocessing="imagenet_160")
    assert config_lib.eval_size_warning(near) is None


def test_records_of_one_class_are_refused(tmp_path):
    """Before: a one-class TFRecord set trained a 1-way head (train loss
    0.06, top-1 1) without a word; a one-class folder source is refused
    (`sources.require_classes`)."""
    from assemble_tf.data import metadata

    metadata.write_labels(str(tmp_path / "labels.txt"), [(0, "cat", "cat")])
    with testing_utils.raises_flag_error(
        re.escape(
            f"--data_dir={tmp_path}: its labels.txt lists 1 class(es): a "
            "classifier needs at least 2 (build the records from a folder "
            "of 2 or more class folders)."
        )
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {"data": {"data_dir": str(tmp_path)}},
        )


def test_a_model_dir_that_is_a_file_or_the_data_folder_is_refused(tmp_path):
    """Before: "[Errno 17] File exists: '<path>'" naming no flag; and a
    model_dir equal to data_dir wrote checkpoints among the shards."""
    data = {"data": {"data_dir": str(tmp_path)}}
    (tmp_path / "afile").write_text("")
    for model_dir in (tmp_path / "afile", tmp_path / "afile" / "run"):
        with testing_utils.raises_flag_error(
            re.escape(
                f"--model_dir={model_dir} cannot be created: "
                f"{tmp_path / 'afile'} is a file, not a folder."
            )
        ):
            config_lib.make_config(str(model_dir), "resnet50", data)
    with testing_utils.raises_flag_error(
        re.escape(
            f"--model_dir={tmp_path} is --data_dir, the folder of the "
            "records: give the run a folder of its own."
        )
    ):
        config_lib.make_config(f"{tmp_path}/", "resnet50", data)


def test_an_invalid_value_of_the_recipe_says_so(tmp_path):
    """Before: "--warmup_epochs=5.0 is invalid: must be < --epochs=2.0"
    for a user who set --epochs=2 only."""
    data = {"data": {"data_dir": str(tmp_path)}}
    with testing_utils.raises_flag_error(
        re.escape(
            "--warmup_epochs=5.0 is invalid: must be < --epochs=2.0. (That "
            "value is the resnet50 recipe's; set --warmup_epochs to change "
            "it.)"
        )
        + "$"
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {**data, "train": {"epochs": 2.0}},
        )
    with testing_utils.raises_flag_error(r"must be < --epochs=2\.0\.$"):
        config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {**data, "train": {"epochs": 2.0, "warmup_epochs": 3.0}},
        )
    # A fine-tuning recipe's value (its 5 warm-up epochs; before: no note).
    with testing_utils.raises_flag_error(
        re.escape(
            "--warmup_epochs=5.0 is invalid: must be < --epochs=3.0. (That "
            "value is the fine-tuning recipe's; set --warmup_epochs to "
            "change it.)"
        )
        + "$"
    ):
        config_lib.make_config(
            str(tmp_path / "run"),
            "resnet50",
            {**data, "train": {"epochs": 3.0}},
            recipe={"train": {"warmup_epochs": 5.0}},
        )


def test_a_second_run_into_a_model_dir_is_refused(tmp_path):
    """Two processes training into one model_dir: the second is refused,
    naming the first (before: both trained from scratch over each other's
    checkpoints and TensorBoard files, exit 0); the folder the refused one
    found is left as it was."""
    import socket

    from assemble_tf.training import train_lib

    config = config_lib.make_config(
        str(tmp_path / "run"), "resnet50", {"data": {"synthetic": True}}
    )
    (tmp_path / "run").mkdir()
    holder = f"{os.getppid()}@{socket.gethostname()}"  # a live process
    (tmp_path / "run" / ".lock").write_text(f"{holder} training run")
    with testing_utils.raises_flag_error(
        re.escape(
            f"--model_dir={tmp_path / 'run'} is being written by another "
            f"training run (process {holder}): wait for it to end, or pick "
            "another --model_dir. If that process is gone, delete "
            f"{tmp_path / 'run' / '.lock'}."
        )
    ):
        train_lib.run_experiment(config)
    assert os.listdir(tmp_path / "run") == [".lock"]
