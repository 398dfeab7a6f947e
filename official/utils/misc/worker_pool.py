"""A bounded pool of spawned worker processes over a stream of tasks.

Shared by the TFRecord builder and the ImageNet-C / ImageNet-P generators:
tasks are drawn from an iterable as workers free up, at most `in_flight`
per worker at a time, so a long stream (tasks may carry image bytes) never
sits in memory at once. Workers are spawned, not forked: forking a process
that has imported TensorFlow is unsafe. With one worker everything runs in
this process, in order.
"""

import concurrent.futures
import functools
import multiprocessing
import os
import threading
import time

from official.utils.misc import interrupts

IN_FLIGHT_PER_WORKER = 2


def init_image_worker():
    """Worker set-up for pixel work: no GPU, one OpenCV thread (the pool
    already runs one process per core)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import cv2

    cv2.setNumThreads(1)


def _exit_with_parent(parent, initializer=None, poll_seconds=0.5):
    """Worker set-up: a thread that ends this worker once its parent is
    gone (a parent killed by SIGKILL left its workers waiting for tasks
    forever), then `initializer()`."""

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    if initializer is not None:
        initializer()


def imap_bounded(
    fn, tasks, workers, initializer=None, in_flight=IN_FLIGHT_PER_WORKER
):
    """Yields `(task, fn(task))` as tasks finish.

    Args:
        fn: a picklable callable (with several workers) of one task.
        tasks: an iterable of picklable tasks, consumed lazily.
        workers: worker processes; <= 1 runs `fn` here, in task order.
        initializer: run once in each worker before its first task.
        in_flight: tasks submitted per worker ahead of completion.

    Raises:
        Whatever `fn` raised; the pending tasks are cancelled first.
    """
    tasks = iter(tasks)
    if workers <= 1:
        for task in tasks:
            yield task, fn(task)
        return
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=functools.partial(
            _exit_with_parent, os.getpid(), initializer
        ),
    ) as pool:
        pending = {}

        def submit_next():
            task = next(tasks, None)
            if task is not None:
                pending[pool.submit(fn, task)] = task

        try:
            for _ in range(in_flight * workers):
                submit_next()
            while pending:
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    task = pending.pop(future)
                    yield task, future.result()
                    submit_next()
        except (KeyboardInterrupt, interrupts.Terminated, GeneratorExit):
            # Stopped (here, or in the caller, which then closes this
            # generator): the running tasks end now, not when done (the
            # builder took 9-12 s to exit on Ctrl-C, a whole shard per
            # worker). Every job writes to a temporary name and renames
            # when done, and its rerun removes what a stopped task left.
            _terminate_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        except BaseException:  # a task's error: the others finish first
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _terminate_workers(pool):
    """Sends SIGTERM to the pool's worker processes (Python 3.14 has
    `ProcessPoolExecutor.terminate_workers`; before it, its `_processes`)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
