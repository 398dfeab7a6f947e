"""TensorBoard scalars of a training run, one curve per tag across resumes.

A run that resumes from a checkpoint at step S trains steps S+1... again,
so the points its earlier process wrote after S (up to the kill) would
stay in the event files beside the new ones: two curves over the same
steps. TF1's writers purged them with a `SessionLog.START` event at the
resume step; TF2's `tf.summary` has no such event, so the points after S
are removed from the earlier event files before the new writer starts.
"""

import os

# Event files of `tf.summary.create_file_writer` (and TF1's FileWriter).
EVENTS_GLOB = "events.out.tfevents.*"


def purge_after(logdir, step, epoch_points_at_step=False):
    """Removes the events of steps after `step` from the event files in
    `logdir`; each file that loses any is rewritten atomically (a write
    to a temporary name, then a rename). With `epoch_points_at_step`, also
    the per-epoch points (tags outside `step/`) at `step` itself: those of
    an epoch `max_steps` cut short there, which the resumed run completes
    and writes again (before: a second point of that epoch, a dip in each
    curve).

    Returns:
        the number of events removed.
    """
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    def stale(event):
        if event.step != step or not epoch_points_at_step:
            return event.step > step
        tags = [value.tag for value in event.summary.value]
        return bool(tags) and not any(t.startswith("step/") for t in tags)

    removed = 0
    for path in sorted(tf.io.gfile.glob(os.path.join(logdir, EVENTS_GLOB))):
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                if stale(event_pb2.Event.FromString(record)):
                    dropped += 1
                else:
                    kept.append(record)
        except tf.errors.DataLossError:
            pass  # a file cut by the kill: its whole records are kept
        if not dropped:
            continue
        temporary = f"{path}.purge-tmp"
        with tf.io.TFRecordWriter(temporary) as writer:
            for record in kept:
                writer.write(record)
        tf.io.gfile.rename(temporary, path, overwrite=True)
        removed += dropped
    return removed


class SummaryWriter:
    """TensorBoard scalars (written by the chief only), from `step` on:
    the events after it that an earlier process of the run wrote are
    purged first (`purge_after`)."""

    def __init__(self, logdir, is_chief, step=0, epoch_points_at_step=False):
        import tensorflow as tf

        self._tf = tf
        self.writer = None
        if is_chief:
            purge_after(logdir, step, epoch_points_at_step)
            self.writer = tf.summary.create_file_writer(logdir)

    def scalars(self, step, values):
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                self._tf.summary.scalar(name, value)
