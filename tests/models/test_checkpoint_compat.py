"""Runs written by earlier versions still restore.

TensorFlow checkpoints (`tf.train.Checkpoint(model=...)`, what a TF run's
`checkpoints/ckpt-N` holds) address a functional model's variables by the
index of their layer in `model.layers`: a layer added or removed before
another shifts it, and the restore fails or, worse, loads another layer's
values of the same shape. tests/data/earlier_checkpoints holds one written
before the inference-speed rewrites of the avg3 shortcut and the BigLittle
merge (see its README).
"""

import os

import numpy as np

from assemble_tf.models import build_model
from assemble_tf.runs import checkpoints
from tests import testing_utils
from tests.conftest import DATA

EARLIER = os.path.join(DATA, "earlier_checkpoints")


def _earlier_model():
    """The model of the checkpoint in tests/data/earlier_checkpoints."""
    return build_model(
        "assemble_resnet50",
        base_width=4,
        block_sizes=(2, 2, 2, 1),
        num_classes=3,
        image_size=32,
    )


def test_checkpoint_of_4633545_restores_with_the_same_logits():
    model = _earlier_model()
    checkpoints.restore(model, os.path.join(EARLIER, "assemble_r50_w4"))
    with np.load(os.path.join(EARLIER, "assemble_r50_w4_logits.npz")) as data:
        images, want = data["images"], data["logits"]
    got = model(images, training=False).numpy()
    assert np.abs(want).max() > 0.05  # restored, not the initial zeros
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_damaged_checkpoint_or_weights_file_is_named(tmp_path):
    """Before: IndexError / OpError tracebacks from tools.evaluate and
    tools.export_saved_model (a cut-off .data file, an empty .index, a
    weights file that is not HDF5)."""
    import shutil

    import pytest

    model = build_model(
        "resnet50", base_width=4, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    for name in ("cut", "empty_index"):
        shutil.copytree(EARLIER, tmp_path / name)
    cut = tmp_path / "cut" / "assemble_r50_w4"
    data = cut.with_name(cut.name + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:1000])
    empty = tmp_path / "empty_index" / "assemble_r50_w4"
    empty.with_name(empty.name + ".index").write_bytes(b"")
    weights = tmp_path / "noise.weights.h5"
    weights.write_bytes(b"not an HDF5 file" * 64)
    assembled = _earlier_model()
    for target, kwargs in (
        (assembled, {"checkpoint": str(cut)}),
        (assembled, {"checkpoint": str(empty)}),
        (model, {"weights": str(weights)}),
    ):
        with pytest.raises(ValueError) as error:
            checkpoints.restore(target, **kwargs)
        text = str(error.value)
        path = kwargs.get("checkpoint") or kwargs.get("weights")
        assert text.startswith(f"{path} cannot be read ("), text
        assert text.endswith(
            "its files are damaged or incomplete. Restore them from a copy, "
            "or choose another checkpoint (--checkpoint=PREFIX) or weights "
            "file."
        )


def test_a_checkpoint_deleted_while_it_is_read_is_not_called_damaged(
    tmp_path, monkeypatch
):
    """tools.evaluate found a run's newest checkpoint, which the training
    run (--keep_checkpoints=1) deleted before it was read: said so, and to
    rerun (before: "... its files are damaged or incomplete. Restore them
    from a copy ...")."""
    import shutil

    import pytest

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(
            os.path.join(EARLIER, "assemble_r50_w4" + suffix),
            folder / f"ckpt-5{suffix}",
        )
    prefix = checkpoints.find_checkpoint(str(tmp_path / "run"))
    assert prefix == str(folder / "ckpt-5")
    differences = checkpoints.model_differences

    def pruned_first(model, checkpoint, skip=None):
        for path in folder.iterdir():  # as the training run prunes it
            path.unlink()
        return differences(model, checkpoint, skip)

    monkeypatch.setattr(checkpoints, "model_differences", pruned_first)
    with pytest.raises(ValueError) as error:
        checkpoints.restore(_earlier_model(), prefix)
    assert str(error.value) == (
        f"{prefix} was deleted while it was being read (NotFoundError: "
        "Unsuccessful TensorSliceReader constructor: Failed to find any "
        f"matching files for {prefix}): a training run keeps only its last "
        "--keep_checkpoints checkpoints (and --keep_best best), deleting "
        "older ones as it saves. Rerun to read one it holds now."
    )


def test_weights_of_another_model_are_one_line_naming_the_variable(tmp_path):
    """Keras' own error printed the variable's values (20 lines of numbers)
    after a warning per skipped container (tools.evaluate,
    tools.eval_retrieval, tools.export_saved_model)."""
    import warnings

    import pytest

    from official.utils.misc.validation import OptionError

    tiny = {"block_sizes": (1, 1, 1, 1), "base_width": 8}
    path = str(tmp_path / "ten.weights.h5")
    build_model("resnet50", num_classes=10, **tiny).save_weights(path)
    nine = build_model("resnet50", num_classes=9, **tiny)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OptionError) as error:
            checkpoints.restore(nine, weights=path)
    assert error.value.as_flag() == (
        f"--weights={path} does not fit the model (head_dense/kernel has "
        "shape (256, 9) in the model and (256, 10) in the file): the "
        "file's head has 10 classes: set --num_classes=10, or use the "
        "preset, model overrides and class count the weights were saved "
        "with."
    )
    assert not [w for w in caught if "Skipping nested" in str(w.message)]
    wide = build_model("resnet50", num_classes=10, block_sizes=(1, 1, 1, 1))
    with pytest.raises(OptionError) as error:
        checkpoints.restore(wide, weights=path)
    message = error.value.as_flag()
    assert "\n" not in message and " layers differ)" in message, message
    # Not a weights file by its name: the option, not "does not fit" (nor
    # Keras' own message, naming no option).
    (tmp_path / "x.txt").write_text("not weights")
    with pytest.raises(OptionError) as error:
        checkpoints.restore(nine, weights=str(tmp_path / "x.txt"))
    assert error.value.as_flag() == (
        f"--weights={tmp_path / 'x.txt'} is no weights file by its name: "
        "Keras reads .weights.h5, .keras and legacy .h5 files."
    )
    # No such file: named (before: h5py's "[Errno 2] Unable to
    # synchronously open file ...").
    missing = str(tmp_path / "nothere.weights.h5")
    with pytest.raises(FileNotFoundError) as error:
        checkpoints.restore(nine, weights=missing)
    assert error.value.as_flag() == f"--weights={missing}: no such file."


def test_pruning_mid_epoch_checkpoints_keeps_the_named_one(tmp_path):
    """A save cut short leaves TensorFlow's `<prefix>_temp/` folder: the
    next pruning failed on it (IsADirectoryError, a traceback instead of
    the SIGTERM line)."""
    folder = tmp_path / "checkpoints" / "preempted"
    os.makedirs(folder / "ckpt-7_temp")
    for name in ("ckpt-5.index", "ckpt-50.index", "ckpt-7.index", "checkpoint"):
        (folder / name).write_text("")
    checkpoints.prune_preempted(str(tmp_path / "checkpoints"), "x/ckpt-5")
    assert sorted(os.listdir(folder)) == ["checkpoint", "ckpt-5.index"]
    checkpoints.prune_preempted(str(tmp_path / "checkpoints"), None)
    assert os.listdir(folder) == ["checkpoint"]


def test_a_run_with_only_a_mid_epoch_checkpoint_is_explained(tmp_path):
    """Before: "train first", for a run that trained and was preempted
    within its first epoch."""
    import pytest

    os.makedirs(tmp_path / "checkpoints" / "preempted")
    with pytest.raises(FileNotFoundError) as error:
        checkpoints.find_checkpoint(str(tmp_path))
    assert error.value.as_flag().startswith(
        f"No checkpoint 'latest' under {tmp_path}; the run was stopped "
        "before its first epoch checkpoint (only checkpoints/preempted, "
        "which resumes training): rerun its training to finish an epoch, or "
        "pass "
        "--checkpoint=PREFIX"
    )


def test_a_checkpoint_of_another_width_is_one_line_without_warnings(caplog):
    """Before: TensorFlow's "Received incompatible tensor ..." naming
    neither the checkpoint nor the fix, then a warning line per value of
    the partial restore (56 of them for a tiny run)."""
    import pytest

    model = build_model(
        "assemble_resnet50",
        base_width=8,
        block_sizes=(2, 2, 2, 1),
        num_classes=3,
        image_size=32,
    )

    prefix = os.path.join(EARLIER, "assemble_r50_w4")
    with testing_utils.tensorflow_logs_to(caplog):
        with pytest.raises(ValueError) as e:
            checkpoints.restore(model, prefix)
        import gc

        gc.collect()  # where the partial restore's objects warned
    assert str(e.value).startswith(
        f"{prefix} holds another model than the one built (0 variables "
        "missing, 266 of another shape, e.g. stem_1_conv/kernel (7, 7, 3, 4) "
        "vs (7, 7, 3, 8), stem_1_bn/gamma (4,) vs (8,))"
    )
    assert str(e.value).endswith(
        "build it with the preset and model options it was trained with."
    )
    assert not [r for r in caplog.records if "checkpoint" in r.getMessage()]


def test_a_checkpoint_named_inside_the_run_is_found_or_the_run_lists_its(
    tmp_path,
):
    """Before: --checkpoint=ckpt-1 was looked for in the current folder
    only, and the error said "train first" of a finished run."""
    import shutil

    import pytest

    from official.utils.misc.validation import MissingPathError

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(
            os.path.join(EARLIER, "assemble_r50_w4" + suffix),
            folder / f"ckpt-3{suffix}",
        )
    found = checkpoints.find_checkpoint(str(tmp_path), "ckpt-3")
    assert found == str(folder / "ckpt-3")
    # As the listing names it, relative to the run.
    listed = checkpoints.find_checkpoint(str(tmp_path), "checkpoints/ckpt-3")
    assert listed == str(folder / "ckpt-3")
    with pytest.raises(MissingPathError) as e:
        checkpoints.find_checkpoint(str(tmp_path), "ckpt-1")
    assert e.value.as_flag() == (
        f"--checkpoint=ckpt-1: no such checkpoint, in {tmp_path} or its "
        "checkpoints/ folder; the run has checkpoints/ckpt-3."
    )


def test_a_lower_keep_best_prunes_the_kept_checkpoints_at_once(tmp_path):
    """A finished run rerun with a lower keep_best: `best/` kept all of
    them (only a new epoch pruned, and a finished run has none)."""
    import json

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    keeper = checkpoints.BestKeeper(str(run), 3)
    for epoch, top1 in ((1, 0.5), (2, 0.7), (3, 0.6)):
        prefix = run / "checkpoints" / f"ckpt-{epoch}"
        for suffix in (".index", ".data-00000-of-00001"):
            (run / "checkpoints" / f"ckpt-{epoch}{suffix}").write_text("x")
        keeper.offer(str(prefix), top1, epoch)
    assert len(os.listdir(run / "best")) == 7  # 3 x 2 files + best.json
    checkpoints.BestKeeper(str(run), 0).prune()  # 0: nothing is removed
    assert len(os.listdir(run / "best")) == 7
    lower = checkpoints.BestKeeper(str(run), 1)
    lower.prune()
    assert sorted(os.listdir(run / "best")) == [
        "best.json",
        "epoch0002.data-00000-of-00001",
        "epoch0002.index",
    ]
    stored = json.load(open(run / "best" / "best.json"))
    assert [(e["epoch"], e["prefix"]) for e in stored] == [(2, "epoch0002")]


def test_a_cut_epoch_never_pushes_a_whole_one_out_of_best(tmp_path):
    """keep_best 1: epoch 1 scored 0.50; epoch 3, cut by max_steps, 0.60;
    completed by a rerun, 0.40 (before: the cut epoch pushed epoch 1 out,
    and best/ ended with the completed epoch 3 at 0.40)."""
    import json

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)

    def offer(epoch, top1, cut=False):
        prefix = run / "checkpoints" / f"ckpt-{epoch}"
        (run / "checkpoints" / f"ckpt-{epoch}.index").write_text(str(top1))
        keeper = checkpoints.BestKeeper(str(run), 1)  # a process each
        keeper.offer(str(prefix), top1, epoch, cut=cut)
        stored = json.load(open(run / "best" / "best.json"))
        return [(e["epoch"], e["top1"], e.get("cut", False)) for e in stored]

    assert offer(1, 0.5) == [(1, 0.5, False)]
    assert offer(2, 0.3) == [(1, 0.5, False)]
    # The cut epoch ranks first (tools.evaluate --checkpoint=best takes
    # it), beside the best whole one.
    assert offer(3, 0.6, cut=True) == [(3, 0.6, True), (1, 0.5, False)]
    assert sorted(os.listdir(run / "best")) == [
        "best.json",
        "epoch0001.index",
        "epoch0003.index",
    ]
    assert offer(3, 0.4) == [(1, 0.5, False)]
    assert (run / "best" / "epoch0001.index").read_text() == "0.5"
    assert not (run / "best" / "epoch0003.index").exists()
    # A cut epoch that ranks below the kept ones is not kept.
    assert offer(4, 0.45, cut=True) == [(1, 0.5, False)]
    assert not (run / "best" / "epoch0004.index").exists()


def test_a_damaged_or_missing_best_json_is_named_or_rebuilt(tmp_path):
    """best.json cut off (`truncate -s 10`), of another shape, or deleted
    beside the checkpoints in best/: tools.evaluate --checkpoint=best
    names the file and the fix; training rebuilds it from those
    checkpoints and the top-1 and cut marks they were offered with, and
    loses none (before: json.load's "Unterminated string starting at ..."
    naming no file, a TypeError traceback, or "No checkpoint 'best' ...
    train first"; a resume stopped on the first two)."""
    import pytest

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    keeper = checkpoints.BestKeeper(str(run), 2)
    # Epoch 2, cut by max_steps, ranks first without pushing out epoch 1.
    scores = {1: (0.5, False), 2: (0.7, True), 3: (0.6, False), 4: (0.2, False)}
    for epoch, (top1, cut) in scores.items():
        prefix = run / "checkpoints" / f"ckpt-{epoch}"
        (run / "checkpoints" / f"ckpt-{epoch}.index").write_text("x")
        keeper.offer(str(prefix), top1, epoch, cut=cut)
    best = run / "best"
    index = best / "best.json"
    whole = index.read_text()
    files = sorted(os.listdir(best))
    assert files == [
        "best.json",
        "epoch0001.index",
        "epoch0002.index",
        "epoch0003.index",
    ]
    fix = (
        "rerun the run's training to rebuild it from history.json and the "
        f"checkpoints in {best} (epoch0001, epoch0002, epoch0003), or pass "
        f"one of them by its path (e.g. {best}/epoch0003)."
    )
    for damage, problem in (
        (
            whole[:10],
            "is not valid JSON (Unterminated string starting at: line 3 "
            "column 3 (char 7))",
        ),
        (
            '{"a":1}',
            'is not a list of best checkpoints ([{"epoch": 3, "top1": 0.71, '
            '"prefix": "epoch0003"}, ...])',
        ),
        (None, "is missing, though its folder holds checkpoints"),
    ):
        if damage is None:
            index.unlink()
        else:
            index.write_text(damage)
        with pytest.raises(ValueError) as error:
            checkpoints.find_checkpoint(str(run), "best")
        assert str(error.value) == f"{index} {problem}; {fix}"
        rebuilt = checkpoints.BestKeeper(str(run), 2, scores)
        assert rebuilt.rebuilt == (
            f"{index} {problem}; keeping the best anew from the checkpoints "
            f"in {best} (epoch0001, epoch0002, epoch0003), ranked by their "
            "val_top1 in history.json."
        )
        rebuilt.prune()
        assert index.read_text() == whole
        assert sorted(os.listdir(best)) == files
    # An epoch without a score stays, unranked.
    index.unlink()
    partial = checkpoints.BestKeeper(str(run), 2, {1: (0.5, False)})
    assert partial.rebuilt.endswith(
        "history.json (none for epoch0002, epoch0003: left there, unranked)."
    )
    partial.prune()
    assert sorted(os.listdir(best)) == files


def test_a_checkpoint_without_a_layer_of_the_model_is_refused(tmp_path, caplog):
    """A model with a layer its checkpoint lacks (tools.evaluate
    --model_overrides='{"embedding_size": 16}'): the restore matched by
    layer order, failed half-way on a shifted head and left 210 warnings
    at exit; a lacking layer of the same shapes would have stayed at its
    initial values. Refused before it, naming the variables."""
    import gc

    import pytest
    import tensorflow as tf

    tiny = {"base_width": 4, "block_sizes": (1, 1, 1, 1), "num_classes": 3}
    saved = build_model("resnet50", **tiny)
    prefix = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))
    model = build_model("resnet50", embedding_size=16, **tiny)
    with testing_utils.tensorflow_logs_to(caplog):
        with pytest.raises(ValueError) as e:
            checkpoints.restore(model, prefix)
        gc.collect()
    assert str(e.value).startswith(
        f"{prefix} holds another model than the one built (5 variables "
        "missing, 1 of another shape, e.g. head_embedding/kernel, "
    )
    assert not [r for r in caplog.records if "checkpoint" in r.getMessage()]
    checkpoints.restore(build_model("resnet50", **tiny), prefix)  # its own
