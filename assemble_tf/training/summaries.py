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


def purge_after(logdir, step):
    """Removes the events of steps after `step` from the event files in
    `logdir`; each file that loses any is rewritten atomically (a write
    to a temporary name, then a rename).

    Returns:
        the number of events removed.
    """
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    removed = 0
    for path in sorted(tf.io.gfile.glob(os.path.join(logdir, EVENTS_GLOB))):
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                if event_pb2.Event.FromString(record).step > step:
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

    def __init__(self, logdir, is_chief, step=0):
        import tensorflow as tf

        self._tf = tf
        self.writer = None
        if is_chief:
            purge_after(logdir, step)
            self.writer = tf.summary.create_file_writer(logdir)

    def scalars(self, step, values):
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                self._tf.summary.scalar(name, value)
