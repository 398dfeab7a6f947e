"""The paper's transfer rows by name: Table 8 (F0-F13), the retrieval
ablation (S0-S9) and Assemble-ResNet-IR-50 (Table 15), Lee et al. 2020
(arXiv 2001.06268, section 5.1).

`ROWS` restates the paper's tables: the backbone (as our preset), the
regularizers switched on during fine-tuning and the paper's figure. Each
recipe must resolve, through the fine-tuning binary's own code path, to
exactly that backbone and those regularizers.
"""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
from absl import flags

from assemble_tf import config as config_lib
from assemble_tf.robustness import evaluation, metrics
from assemble_tf.training import recipes, transfer
from flags import finetune_flags
from official.utils.misc.validation import OptionError
from tests import testing_utils

DB, MX, AA, LS = "DropBlock", "Mixup", "AutoAugment", "LS"
M4 = "table6_m4"  # R50D+SK+BL+AA
REG = "assemble_resnet50"  # E11: R50D+SK+BL+AA + LS/Mixup/DB/KD/AA
SK_REG = "table7_e8"  # R50D+SK + LS/Mixup/DB/KD (no AutoAugment)
SOP = "stanford_online_products"

# name: (backbone preset, fine-tuning regularizers, dataset, metric, paper)
ROWS = {
    "table8_f0": ("resnet50", set(), "food101", "top1", 86.99),
    "table8_f1": ("resnet50d", set(), "food101", "top1", 87.63),
    "table8_f2": ("table6_m2", set(), "food101", "top1", 89.77),
    "table8_f3": ("table6_m3", set(), "food101", "top1", 90.15),
    "table8_f4": (M4, set(), "food101", "top1", 90.37),
    "table8_f5": (M4, {DB}, "food101", "top1", 91.25),
    "table8_f6": (M4, {DB, MX}, "food101", "top1", 91.64),
    "table8_f7": (M4, {DB, MX, AA}, "food101", "top1", 91.85),
    "table8_f8": (M4, {DB, MX, AA, LS}, "food101", "top1", 91.76),
    "table8_f9": (REG, set(), "food101", "top1", 90.63),
    "table8_f10": (REG, {DB}, "food101", "top1", 91.62),
    "table8_f11": (REG, {DB, MX}, "food101", "top1", 92.11),
    "table8_f12": (REG, {DB, MX, AA}, "food101", "top1", 92.21),
    "table8_f13": (REG, {DB, MX, AA, LS}, "food101", "top1", 92.47),
    "retrieval_s0": ("resnet50", set(), SOP, "recall@1", 82.9),
    "retrieval_s1": ("resnet50d", set(), SOP, "recall@1", 84.2),
    "retrieval_s2": ("table6_m2", set(), SOP, "recall@1", 85.4),
    "retrieval_s3": ("table6_m3", set(), SOP, "recall@1", 85.2),
    "retrieval_s4": (M4, set(), SOP, "recall@1", 85.1),
    "retrieval_s5": ("table6_m2", {DB}, SOP, "recall@1", 85.9),
    "retrieval_s6": ("table6_m2", {DB, AA}, SOP, "recall@1", 83.7),
    "retrieval_s7": (SK_REG, set(), SOP, "recall@1", 85.2),
    "retrieval_s8": (SK_REG, {DB}, SOP, "recall@1", 85.9),
    "retrieval_s9": (SK_REG, {DB, AA}, SOP, "recall@1", 84.0),
    "assemble_ir50_sop": (SK_REG, {DB}, SOP, "recall@1", 85.9),
    "assemble_ir50_cub200": (
        SK_REG,
        {DB},
        "caltech_birds2011",
        "recall@1",
        80.3,
    ),
    "assemble_ir50_cars196": (
        SK_REG,
        {DB, LS, AA},
        "cars196",
        "recall@1",
        96.1,
    ),
}
FOOD101_MCE = {  # Table 8, not normalised by AlexNet
    0: 61.50, 1: 62.12, 2: 57.20, 3: 57.16, 4: 56.66, 5: 53.13, 6: 48.53,
    7: 41.73, 8: 41.40, 9: 53.98, 10: 51.01, 11: 45.73, 12: 41.69, 13: 41.99,
}  # fmt: skip


def _resolve(*argv):
    """The binary's resolution of a command line (its flags, then
    `transfer.resolve`), with --dry_run semantics: no data, no weights."""
    values = flags.FlagValues()
    finetune_flags.define_finetune_flags(values)
    values(["finetune", *argv])
    request = finetune_flags.request_from_flags(values)
    result = transfer.resolve(request, dry_run=True)
    assert result.source_info is None  # nothing was opened
    return result.config, result.recipe, result


def test_a_retrieval_row_with_a_dense_head_drops_the_cosine_temperature():
    """The recipe's temperature goes with its cosine head: replacing the
    head is not refused as an ignored --cosine_temperature the user never
    gave; giving both is."""
    config, _, _ = _resolve("--recipe=retrieval_s0", "--classifier=dense")
    assert config.model.classifier == "dense"
    assert config.model.cosine_temperature is None
    with testing_utils.raises_flag_error("applies to --classifier=cosine"):
        _resolve(
            "--recipe=retrieval_s0",
            "--classifier=dense",
            "--cosine_temperature=0.1",
        )


def test_retrieval_training_on_any_tfds_set_takes_a_class_range():
    """The catalogue splits CUB, Cars196 and SOP by class; another set
    trains on the classes --class_range names (before: refused, naming
    --class_split, a flag of eval_retrieval's)."""
    config, _, _ = _resolve(
        "--recipe=retrieval_s5", "--source=food101", "--class_range=0,50"
    )
    data = config.data
    assert (data.class_range, data.num_classes) == ((0, 50), 50)
    assert data.train_split == data.validation_split == "train"
    cub, _, _ = _resolve("--recipe=retrieval_s5", "--source=caltech_birds2011")
    assert (cub.data.class_range, cub.data.num_classes) == ((0, 100), 100)
    with testing_utils.raises_flag_error(
        "^No class-disjoint retrieval split is known for "
        "--source='food101' .*; pass --class_range=LOW,HIGH, the classes"
    ):
        _resolve("--recipe=retrieval_s5", "--source=food101")


def test_a_recipe_option_without_its_feature_is_reset_a_given_one_refused():
    """The recipe's `warm_start_bn_stats=False` without a warm start, its
    Mixup alpha with Mixup off: reset to the defaults, as the options do
    nothing; the same options given on the command line are refused
    (before: accepted and ignored)."""
    config, _, _ = _resolve("--recipe=retrieval_s3")
    assert config.train.warm_start is None
    assert config.train.warm_start_bn_stats  # the default, not the recipe's
    warm, _, _ = _resolve("--recipe=retrieval_s3", "--warm_start=/r")
    assert not warm.train.warm_start_bn_stats  # the recipe's
    with testing_utils.raises_flag_error(
        "--warm_start_bn_stats=False is invalid: applies with --warm_start "
        "only."
    ):
        _resolve("--recipe=retrieval_s3", "--nowarm_start_bn_stats")
    with testing_utils.raises_flag_error(
        "--mixup_alpha=0.4 is invalid: applies to --mixup_type=1 or 2 only"
    ):
        _resolve("--recipe=vanilla", "--source=food101", "--mixup_alpha=0.4")


def test_the_rows_are_the_papers():
    named = {n for n in recipes.RECIPES if n.startswith(("table8", "retr"))}
    named |= {n for n in recipes.RECIPES if n.startswith("assemble_ir50")}
    assert named == set(ROWS)
    assert len(recipes.RECIPES) == len(ROWS) + 3  # vanilla, assemble, fgvc


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_resolves_to_its_backbone_and_regularizers(name):
    preset, regs, dataset, metric, figure = ROWS[name]
    # (warm started: the recipe's BN option applies to a warm start only)
    config, recipe, result = _resolve(f"--recipe={name}", "--warm_start=/r")
    m, d, a, t = config.model, config.data, config.augment, config.train
    assert m.preset == preset and d.source == dataset
    paper = {metric: figure}
    if name.startswith("table8"):
        paper["mce"] = FOOD101_MCE[int(name[len("table8_f") :])]
    assert recipe.paper == {dataset: paper} == result.paper
    assert result.warnings == ()  # the row's own backbone
    # The regularizers of the row, and only those.
    has_db = config_lib._has_dropblock(m.preset, config.to_dict()["model"])
    assert (t.dropblock_keep_prob == (0.9, 0.7)) == (DB in regs)
    assert has_db >= (DB in regs)  # DropBlock layers where it is on
    assert a.mixup_type == (1 if MX in regs else 0)
    assert a.autoaugment == ("good" if AA in regs else "none")
    assert a.label_smoothing == (0.1 if LS in regs else 0.0)
    # The authors' Food-101 protocol otherwise.
    assert t.base_learning_rate == 0.01 and t.lr_schedule == "cosine"
    assert t.weight_decay == 1e-3 and m.bn_momentum == 0.966
    assert t.kd_temperature == 0.0 and not t.warm_start_bn_stats
    assert d.image_size == 224 and d.label_offset == 0
    if metric == "recall@1":  # NormSoftmax on the class-disjoint half
        assert m.classifier == "cosine" and m.cosine_temperature == 0.05
        assert m.embedding_size == 512 and t.epochs == 30.0
        low, high = {
            SOP: (0, 11318),
            "caltech_birds2011": (0, 100),
            "cars196": (0, 98),
        }[dataset]
        assert d.class_range == (low, high)
        assert d.num_classes == high - low
    else:
        assert m.classifier is None and t.epochs == 100.0
        assert d.num_classes == 101 and d.validation_split == "validation"


def test_fgvc50_is_f13_on_any_fgvc_set():
    f13 = recipes.get("table8_f13")
    fgvc = recipes.get("assemble_fgvc50")
    assert fgvc.overrides == f13.overrides and fgvc.preset == f13.preset
    assert fgvc.paper == {
        "food101": {"top1": 92.5},
        "cars196": {"top1": 94.4},
        "oxford_flowers102": {"top1": 98.9},
        "fgvc_aircraft": {"top1": 92.4},
        "oxford_iiit_pet": {"top1": 94.3},
    }
    config, _, result = _resolve("--recipe=assemble_fgvc50", "--source=cars196")
    assert config.data.num_classes == 196 and config.data.source == "cars196"
    assert config.data.validation_split == "test"
    assert result.warnings == ()  # one of the paper's sets
    with pytest.raises(OptionError, match="`source` is required") as e:
        _resolve("--recipe=assemble_fgvc50")
    assert e.value.as_flag().startswith("--source is required: a tfds name")


def test_a_recipe_on_another_dataset_says_its_figures_are_elsewhere(
    image_folder, tmp_path
):
    """Before: the CUB recipe on any folder printed the paper's CUB
    recall@1 (80.3) beside it without a word. A folder named like one of
    the paper's datasets counts as it."""
    import shutil

    _, _, result = _resolve(
        "--recipe=assemble_ir50_cub200", f"--source={image_folder}"
    )
    assert result.paper == {"caltech_birds2011": {"recall@1": 80.3}}
    assert result.warnings[-1] == (
        "the paper's figures of recipe assemble_ir50_cub200 are on "
        f"caltech_birds2011; {image_folder} is none of them by name, so "
        "compare with them only if it holds that dataset."
    )
    named = tmp_path / "fgvc_aircraft"
    shutil.copytree(image_folder, named)
    _, _, result = _resolve("--recipe=assemble_fgvc50", f"--source={named}")
    assert not [w for w in result.warnings if "paper's figures" in w]


def test_explicit_flags_win_and_a_foreign_backbone_is_flagged():
    config, _, result = _resolve(
        "--recipe=table8_f5", "--preset=resnet50", "--epochs=30"
    )
    assert config.model.preset == "resnet50" and config.train.epochs == 30.0
    backbone, epochs = result.warnings
    assert "preset resnet50 replaces it" in backbone
    assert "the paper's figures do not apply" in backbone
    assert epochs == (
        "recipe table8_f5's epochs 100.0 -> 30.0 (set by the options "
        "given): the paper's figures do not apply."
    )
    # ... so they are not reported (issue 24 item 11).
    assert result.paper == {}
    # A regularizer of the row turned off, or one it leaves off turned on
    # (before: unsaid, and F5's figures reported for F4); a value equal
    # to the row's, or a loop option, keeps them.
    for argv, said in (
        (
            ["--recipe=table8_f5", "--noadd_dropblock"],
            "add_dropblock True -> False",
        ),
        (
            ["--recipe=table8_f5", "--label_smoothing=0.1"],
            "label_smoothing 0.0 -> 0.1",
        ),
        (
            ["--recipe=table8_f13", "--dropblock_keep_prob=0.9,0.8"],
            "dropblock_keep_prob (0.9, 0.7) -> (0.9, 0.8)",
        ),
    ):
        _, _, result = _resolve(*argv)
        assert result.paper == {}, argv
        assert [w for w in result.warnings if said in w], result.warnings
    for argv in (
        ["--recipe=table8_f13", "--epochs=100", "--label_smoothing=0.1"],
        ["--recipe=table8_f13", "--dropblock_keep_prob=0.9,0.7"],
        ["--recipe=table8_f13", "--steps_per_loop=7"],
    ):
        _, _, result = _resolve(*argv)
        assert result.paper == {"food101": {"top1": 92.47, "mce": 41.99}}
        assert result.warnings == ()
    with pytest.raises(ValueError, match="Did you mean table8_f1"):
        _resolve("--recipe=table8_f1x")


def test_dry_run_and_list_recipes_from_the_command_line(tmp_path):
    proc = testing_utils.run_main(
        "tools.finetune", "--recipe=table8_f13", "--dry_run"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["recipe"] == "table8_f13"
    assert out["paper"] == {"food101": {"top1": 92.47, "mce": 41.99}}
    cfg = out["config"]
    assert cfg["model"]["preset"] == "assemble_resnet50"
    assert cfg["train"]["dropblock_keep_prob"] == [0.9, 0.7]
    assert cfg["augment"]["autoaugment"] == "good"
    assert not (tmp_path / "run").exists()
    table = testing_utils.run_main("tools.finetune", "--list_recipes")
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.strip().splitlines()
    assert len(lines) == 2 + len(recipes.RECIPES)
    assert any(
        line.startswith("| table8_f7 | table6_m4 | "
                        "DropBlock+Mixup+AutoAugment | food101 |")
        for line in lines
    )  # fmt: skip
    bad = testing_utils.run_main(
        "tools.finetune", "--recipe=retreival_s5", "--dry_run"
    )
    assert bad.returncode == 2 and "Did you mean retrieval_s5" in bad.stderr
    assert "ERROR: --recipe='retreival_s5' is not a recipe." in bad.stderr
    assert "Traceback" not in bad.stderr
    foreign = testing_utils.run_main(
        "tools.finetune", "--recipe=table8_f5", "--preset=resnet50", "--dry_run"
    )
    assert foreign.returncode == 0, foreign.stderr[-2000:]
    assert "figures do not apply" in foreign.stderr
    assert json.loads(foreign.stdout.strip().splitlines()[-1])["paper"] == {}
    # A warning names the flags as the user typed them (before:
    # "eval_preprocessing=imagenet evaluates ...").
    small = testing_utils.run_main(
        "tools.finetune", "--recipe=table8_f13", "--image_size=64", "--dry_run"
    )
    assert small.returncode == 0, small.stderr[-2000:]
    assert (
        "WARNING: --eval_preprocessing=imagenet evaluates 224-px crops of a "
        "model trained on 64-px ones; set --eval_preprocessing to "
        "imagenet_64 (or a size near the training one).\n"
    ) in small.stderr


def test_plain_mce_is_the_mean_corruption_error():
    """Table 8's Food-101 mCE: the plain mean of the corruption errors (in
    %), beside the AlexNet-normalised ImageNet mCE, on a hand-made table."""
    errors = {c: 0.5 for c in metrics.ALL_CORRUPTIONS}
    errors["fog"] = [0.1, 0.2, 0.3, 0.4, 0.5]  # mean 0.3
    errors["saturate"] = 0.9
    plain = metrics.mce(errors, normalization="none")
    assert plain == pytest.approx(100 * (14 * 0.5 + 0.3) / 15)
    assert metrics.mce(
        errors, metrics.ALL_CORRUPTIONS, "none"
    ) == pytest.approx(100 * (17 * 0.5 + 0.3 + 0.9) / 19)
    alexnet = metrics.mce(errors)
    expected = np.mean(
        [
            100 * np.mean(errors[c]) / metrics.ALEXNET_ERROR[c]
            for c in metrics.STANDARD_CORRUPTIONS
        ]
    )
    assert alexnet == pytest.approx(expected) and alexnet != plain
    results = {
        c: {"top1_error": list(np.broadcast_to(errors[c], 5))}
        for c in metrics.ALL_CORRUPTIONS
    }
    summary = evaluation.summarize_c(results, 0.2, normalization="none")
    assert summary["mce"] == pytest.approx(plain)
    assert summary["ce"]["fog"] == pytest.approx(30.0)
    assert summary["relative_mce"] is None  # AlexNet-relative: undefined
    assert summary["note"] is None
    # Some severities only: the note speaks of plain errors (it said
    # "normalised by AlexNet's errors" under normalization="none").
    results["fog"]["top1_error"][4] = None
    note = evaluation.summarize_c(results, 0.2, normalization="none")["note"]
    assert note.startswith(
        "1 corruption(s) evaluated at severities 1,2,3,4 only: their error "
        "is the mean over those severities, and mCE is not the published"
    )
    # A standard corruption missing: no mCE, and the note says why and
    # how to add it (before: "-" without a word).
    del results["frost"]
    summary = evaluation.summarize_c(results, 0.2)
    assert summary["mce"] is None and summary["mce_19"] is None
    assert summary["note"].endswith(
        "No mCE: the set has no results for frost (of the 15 standard "
        "corruptions); generate them into the same folder with `python -m "
        "tools.make_imagenet_c --corruptions=frost`."
    )
    with pytest.raises(ValueError, match="`normalization`='z'"):
        metrics.mce(errors, normalization="z")


def test_a_fine_tuned_model_maps_class_folders_by_name():
    labels = evaluation.source_label_map(
        ["churros", "apple_pie"], ["apple_pie", "baklava", "churros"], "x"
    )
    assert labels == {"apple_pie": 0, "churros": 2}
    assert evaluation.source_label_map(["3", "0"], None, "x") == {
        "3": 3,
        "0": 0,
    }
    with pytest.raises(ValueError, match="'pizza' of the set is not"):
        evaluation.source_label_map(["pizza"], ["apple_pie"], "food101")


TINY_BL = ("--base_width=8", "--block_sizes=2,2,2,1")


def _backbone_weights(tmp_path, preset):
    """A tiny 'ImageNet' backbone of `preset` (10 classes) to start from."""
    import keras

    from assemble_tf.models import build_model

    keras.utils.set_random_seed(3)
    model = build_model(
        preset, base_width=8, block_sizes=(2, 2, 2, 1), num_classes=10
    )
    path = str(tmp_path / f"{preset}.weights.h5")
    model.save_weights(path)
    return path


@pytest.mark.slow  # trains (in process: tools.finetune's own smoke test
# runs the binary, tests/training/test_finetune.py)
@pytest.mark.parametrize("name", ["table8_f8", "retrieval_s5"])
def test_two_steps_of_a_row_on_an_image_folder(tmp_path, image_folder, name):
    """F8 adds DropBlock layers to M4 and trains with Mixup, AutoAugment
    and LS; S5 trains R50D+SK with DropBlock and the NormSoftmax head."""
    preset = recipes.get(name).preset
    proc = testing_utils.run_main(
        "tools.finetune",
        f"--recipe={name}",
        f"--source={image_folder}",
        f"--warm_start={_backbone_weights(tmp_path, preset)}",
        *TINY_BL,
        "--image_size=64",
        "--eval_preprocessing=imagenet_64",
        "--batch_size=4",
        "--eval_batch_size=4",
        "--max_steps=2",
        "--epochs=2",
        "--warmup_epochs=0",
        f"--model_dir={tmp_path}/run",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["recipe"] == name and summary["steps"] == 2
    # A tiny run of the row: its figures are not reported beside it.
    assert "paper" not in summary
    assert f"WARNING: recipe {name}'s image_size 224 -> 64, " in proc.stderr
    assert "(set by the options given): the paper's figures do not apply." in (
        proc.stderr
    )
    config = config_lib.ExperimentConfig.from_json(
        f"{tmp_path}/run/config.json"
    )
    assert config.model.preset == preset
    assert config.train.dropblock_keep_prob == (0.9, 0.7)
    assert config.model.add_dropblock
    if name == "table8_f8":
        assert config.augment.mixup_type == 1
        assert config.augment.autoaugment == "good"
        assert config.augment.label_smoothing == 0.1
        assert config.data.validation_split == "test"
        _food101_c_of_the_run(tmp_path, image_folder)
    else:
        assert config.model.classifier == "cosine"
        assert config.data.validation_split == "train"  # the train half


def _food101_c_of_the_run(tmp_path, image_folder):
    """Table 8's Food-101-C protocol on the fine-tuned run: a corrupted set
    from the dataset's test images (class folders by name), evaluated with
    the plain mean corruption error."""
    from assemble_tf.robustness import generate_c

    corrupted = tmp_path / "c"
    generate_c.generate(
        generate_c.Options(
            output_dir=str(corrupted),
            input_dir=f"{image_folder}/test",
            resize=72,
            crop=64,
            corruptions=("fog", "contrast"),
            severities=(1, 5),
        ),
        progress=False,
    )
    proc = testing_utils.run_main(
        "tools.eval_robustness",
        "--kind=c",
        f"--data_dir={corrupted}",
        f"--model_dir={tmp_path}/run",
        "--normalization=none",
        "--batch_size=4",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(
        (tmp_path / "run/robustness/robustness_c_unnormalized.json").read_text()
    )
    summary = report["summary"]
    assert summary["normalization"] == "none" and report["paper"] is None
    for c in ("fog", "contrast"):
        errors = [
            e for e in report["results"][c]["top1_error"] if e is not None
        ]
        assert len(errors) == 2  # severities 1 and 5, 6 images each
        assert summary["ce"][c] == pytest.approx(100 * np.mean(errors))
    assert (
        "not normalised"
        in (
            tmp_path / "run/robustness/robustness_c_unnormalized.md"
        ).read_text()
    )


def test_a_folder_with_val_is_evaluated_on_it_and_bad_splits_stop_first(
    tmp_path,
):
    """An image folder with train/ and val/ evaluates on val/ (before:
    'validation', missing); its files that are not images are named; a
    split it lacks is refused before anything is trained or written
    (before: after the first epoch)."""
    root = tmp_path / "pets"
    for split in ("train", "val"):
        for c, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            image = testing_utils.smooth_image(40, 48, seed=c)
            (folder / "0.jpg").write_bytes(testing_utils.jpeg_bytes(image))
    (root / "train" / "cat" / "1.webp").write_bytes(b"RIFF")  # not read
    jpeg = (root / "train" / "cat" / "0.jpg").read_bytes()
    (root / "train" / "loose.jpg").write_bytes(jpeg)  # nor these
    (root / "train" / "cat" / "deeper").mkdir()
    (root / "train" / "cat" / "deeper" / "2.jpg").write_bytes(jpeg)
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"")
    # A broken link (its read failed uncounted: retrieval's labels came
    # out one short) and a named pipe (its read never returned).
    (root / "train" / "dog" / "gone.jpg").symlink_to(tmp_path / "missing")
    os.mkfifo(root / "train" / "dog" / "pipe.jpg")
    (root / "val" / "owl").mkdir()  # a class without images
    values = flags.FlagValues()
    finetune_flags.define_finetune_flags(values)
    values(
        ["finetune", "--preset=resnet50", f"--source={root}", "--model_dir=m"]
    )
    result = transfer.resolve(finetune_flags.request_from_flags(values))
    assert (
        result.config.data.train_split,
        result.config.data.validation_split,
    ) == (
        "train",
        "val",
    )
    # Before: left out without a word on the console.
    assert result.warnings[-2:] == (
        f"{root}: left out the files that are not .jpg/.jpeg/.png images "
        "in a class folder <split>/<class>/ (5: train/loose.jpg (outside a "
        "class folder), train/cat/1.webp, train/cat/deeper/ (a subfolder), "
        "...); convert or move them to use them.",
        f"{root}: class folders without images, still counted as classes: owl.",
    )
    assert result.config.data.num_classes == 3
    from assemble_tf.data.sources import folder

    assert folder._ignored_files(str(root))[-2:] == (
        "train/dog/gone.jpg (a broken link, or not a file)",
        "train/dog/pipe.jpg (a broken link, or not a file)",
    )
    assert folder._list_images(str(root / "train" / "dog")) == [
        str(root / "train" / "dog" / "0.jpg")
    ]
    for name in ("gone.jpg", "pipe.jpg"):  # copytree below copies neither
        (root / "train" / "dog" / name).unlink()
    # --dry_run says what the run uses (before: 'validation' and the train
    # split's 2 classes).
    config, _, _ = _resolve("--preset=resnet50", f"--source={root}")
    assert (config.data.validation_split, config.data.num_classes) == (
        "val",
        3,
    )
    # A folder named like a catalogued set is a folder (before: Food-101's
    # splits, 'validation' unknown).
    import shutil

    named = tmp_path / "food101"
    shutil.copytree(root, named)
    config, _, _ = _resolve("--preset=resnet50", f"--source={named}")
    assert (
        config.data.train_split,
        config.data.validation_split,
        config.data.num_classes,
    ) == ("train", "val", 3)
    # Fewer classes than the folder's: refused (before: the others'
    # images were skipped as out of range, top-1 over 2 of 3 classes);
    # a class range alone sets the count.
    with testing_utils.raises_flag_error(
        re.escape(
            f"--num_classes=2 is fewer than the 3 classes of --source={root}: "
            "the images of the others would be skipped as labels out of "
            "range. Leave --num_classes out (the source's count), or train "
            "on some classes with --class_range=LOW,HIGH."
        )
    ):
        values(["finetune", "--num_classes=2"])
        transfer.resolve(finetune_flags.request_from_flags(values))
    values["num_classes"].unparse()
    one = tmp_path / "one"
    shutil.copytree(root / "train" / "cat", one / "train" / "cat")
    with testing_utils.raises_flag_error(
        re.escape(
            f"--source={one} has 1 class(es) (cat): a classifier needs at "
            "least 2 class folders <split>/<class>/."
        )
    ):
        transfer.resolve(
            dataclasses.replace(
                finetune_flags.request_from_flags(values), source=str(one)
            )
        )
    values(["finetune", "--class_range=0,2"])
    result = transfer.resolve(finetune_flags.request_from_flags(values))
    assert result.config.data.num_classes == 2
    run = testing_utils.run_main(
        "tools.finetune",
        "--preset=resnet50",
        f"--source={root}",
        "--validation_split=validation",
        f"--model_dir={tmp_path / 'run'}",
        *TINY_BL,  # tiny, should a regression start training
        "--image_size=32",
        "--eval_preprocessing=imagenet_32",
        "--batch_size=2",
        "--max_steps=1",
        "--warmup_epochs=0",
    )
    assert run.returncode == 2
    error = run.stderr.splitlines()[-1]
    assert error.startswith(
        "ERROR: --validation_split: Unknown split 'validation' for pets: it "
        "has ['train', 'val']"
    )
    # And the fix (before: the splits alone; then a slice of the training
    # split alone, which evaluated on images it trained on).
    assert error.endswith(
        ". Pass one of them as --validation_split, or a slice of one (e.g. "
        "--validation_split='train[80%:]' with --train_split='train[:80%]', "
        "so that the two do not overlap)."
    )
    assert not (tmp_path / "run").exists()
