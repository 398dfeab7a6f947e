"""TensorBoard scalars across a resume (assemble_tf.training.summaries)."""

import glob
import os

import tensorflow as tf

from assemble_tf.training import summaries


def scalars(log_dir):
    """{tag: [(step, value)]} of the event files in `log_dir`, in order."""
    out = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                out.setdefault(value.tag, []).append((event.step, number))
    return out


def test_a_resume_purges_the_points_after_its_checkpoint(tmp_path):
    """Before: a run killed at step 7 and resumed from its checkpoint at
    step 4 kept the first process's points 5..7 beside the new ones: two
    curves over the same steps in TensorBoard."""
    log_dir = str(tmp_path)
    first = summaries.SummaryWriter(log_dir, is_chief=True)
    for step in range(1, 8):
        first.scalars(step, {"loss": float(step)})
    first.writer.flush()
    second = summaries.SummaryWriter(log_dir, is_chief=True, step=4)
    for step in range(5, 9):
        second.scalars(step, {"loss": 10.0 * step})
    second.writer.flush()
    assert scalars(log_dir) == {
        "loss": [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
        + [(s, 10.0 * s) for s in range(5, 9)]
    }
    assert len(glob.glob(os.path.join(log_dir, "events.*"))) == 2
    assert not glob.glob(os.path.join(log_dir, "*tmp*"))


def test_only_files_with_later_points_are_rewritten(tmp_path):
    log_dir = str(tmp_path)
    writer = summaries.SummaryWriter(log_dir, is_chief=True)
    writer.scalars(3, {"loss": 1.0})
    writer.writer.flush()
    (path,) = glob.glob(os.path.join(log_dir, "events.*"))
    before = os.stat(path).st_ino
    assert summaries.purge_after(log_dir, 3) == 0
    assert os.stat(path).st_ino == before
    assert summaries.purge_after(log_dir, 2) == 1
    assert scalars(log_dir) == {}


def test_workers_other_than_the_chief_write_and_purge_nothing(tmp_path):
    writer = summaries.SummaryWriter(str(tmp_path), is_chief=False, step=0)
    writer.scalars(1, {"loss": 1.0})
    assert os.listdir(tmp_path) == []


def test_a_cut_epochs_points_go_with_its_record(tmp_path):
    """An epoch max_steps cut at step 14 wrote its per-epoch points there;
    the rerun that completes the epoch writes them at its end (before: the
    step-14 points stayed, a dip in every epoch curve). The step/ points
    of the steps trained stay."""
    log_dir = str(tmp_path)
    first = summaries.SummaryWriter(log_dir, is_chief=True)
    first.scalars(11, {"val_top1": 0.25})
    first.scalars(14, {"val_top1": 0.5, "step/train_loss": 2.5})
    first.writer.flush()
    second = summaries.SummaryWriter(
        log_dir, is_chief=True, step=14, epoch_points_at_step=True
    )
    second.scalars(22, {"val_top1": 0.75})
    second.writer.flush()
    assert scalars(log_dir) == {
        "val_top1": [(11, 0.25), (22, 0.75)],
        "step/train_loss": [(14, 2.5)],
    }
