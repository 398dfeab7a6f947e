"""official.utils.misc.jobs: the skeleton of the builder and generators."""

import dataclasses
import json
import os
import types

import pytest

from official.utils.misc import jobs
from official.utils.misc.validation import OptionError

SPEC = jobs.OutputRecord(
    what="a set", format_version=3, labels={"source": "input"}
)


@dataclasses.dataclass(frozen=True)
class ToyOptions(jobs.JobOptions):
    output_dir: str
    size: int = 2
    progress: bool = True  # no flag of the toy binary: keeps its default

    def validate(self):
        jobs.require(self, "output_dir")
        if self.size < 1:
            raise OptionError(
                "size", "{field}={value} must be >= 1.", value=self.size
            )

    def warnings(self):
        if self.size == 7:
            return (OptionError("size", "{field}=7 is unusual."),)
        return ()


def test_claim_records_resumes_and_refuses_other_options(tmp_path):
    out = str(tmp_path / "out")
    record = {"size": 2, "source": "/a"}
    kept = jobs.claim_output_dir(out, record, SPEC)
    assert kept == {"format_version": 3, "size": 2, "source": "/a"}
    with open(os.path.join(out, "options.json")) as f:
        assert json.load(f) == kept
    assert jobs.claim_output_dir(out, record, SPEC) == kept  # resume
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(out, {"size": 3, "source": "/b"}, SPEC)
    error = info.value
    assert isinstance(error, FileExistsError)
    assert isinstance(error, ValueError) and isinstance(error, OptionError)
    assert error.field == "output_dir"
    assert str(error) == (
        f"`output_dir`={out} holds a set made with other options (`size`: "
        "existing 2, now 3; input: existing /a, now /b). Mixing them would "
        "corrupt the set: rerun with the same values to resume, or pass a "
        "new `output_dir`."
    )
    assert error.as_flag().startswith(
        f"--output_dir={out} holds a set made with other options (--size: "
        "existing 2, now 3; input: existing /a, now /b)."
    )
    newer = dataclasses.replace(SPEC, format_version=4)
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(out, record, newer)
    assert "(format_version: existing 3, now 4)" in info.value.as_flag()


def test_claim_names_the_job_that_made_a_folder(tmp_path):
    """Before: make_imagenet_p into make_imagenet_c's folder was refused
    as "made with other options", listing options that P never had."""
    out = str(tmp_path / "out")
    c = dataclasses.replace(SPEC, job="tools.make_c")
    p = dataclasses.replace(SPEC, what="videos", job="tools.make_p")
    kept = jobs.claim_output_dir(out, {"size": 2}, c)
    assert kept == {"format_version": 3, "size": 2, "job": "tools.make_c"}
    assert jobs.claim_output_dir(out, {"size": 2}, c) == kept  # resume
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(out, {"size": 2}, p)
    assert info.value.as_flag() == (
        f"--output_dir={out} holds the outputs of another job, python -m "
        "tools.make_c (its options.json says so); choose another "
        "--output_dir for videos."
    )
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(out, {"size": 2}, p, overwrite=False)
    assert info.value.as_flag().endswith(
        "says so); pass --overwrite to replace them or choose another "
        "--output_dir for videos."
    )
    assert jobs.claim_output_dir(out, {"size": 2}, p, overwrite=True) == {
        **kept,
        "job": "tools.make_p",
    }
    # A record from before jobs were recorded resumes, and gains the job.
    old = str(tmp_path / "old")
    jobs.claim_output_dir(old, {"size": 2}, SPEC)
    assert jobs.claim_output_dir(old, {"size": 2}, c)["job"] == "tools.make_c"


def test_claim_refuses_a_file_stray_outputs_and_a_broken_record(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(str(tmp_path / "file"), {}, SPEC)
    assert info.value.as_flag().endswith("is a file, not a folder.")
    stray = tmp_path / "stray"
    (stray / "a").mkdir(parents=True)
    (stray / "a" / "x.JPEG").write_bytes(b"")
    spec = dataclasses.replace(SPEC, stray=("*/*.JPEG",))
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(str(stray), {}, spec)
    assert info.value.as_flag() == (
        f"--output_dir={stray} already holds a set ({stray}/a/x.JPEG, ...) "
        "but no options.json; choose another --output_dir."
    )
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(str(stray), {}, spec, overwrite=False)
    assert "; pass --overwrite to replace them or choose another" in (
        info.value.as_flag()
    )
    (stray / "options.json").write_text("{not json")
    with pytest.raises(jobs.OutputMismatchError, match="not valid JSON"):
        jobs.claim_output_dir(str(stray), {}, spec)
    # Another job's folder (a TFRecord set's, whose summary.json training
    # reads): before, a generator wrote into it and replaced that file.
    other = tmp_path / "records"
    other.mkdir()
    (other / "summary.json").write_text('{"num_classes": 10}')
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(str(other), {}, SPEC, overwrite=False)
    assert info.value.as_flag() == (
        f"--output_dir={other} holds another job's outputs (its "
        "summary.json) but no options.json; pass --overwrite to replace "
        "them or choose another --output_dir for a set."
    )
    assert os.listdir(other) == ["summary.json"]


def test_claim_with_overwrite_calls_keep_with_the_old_record(tmp_path):
    out = str(tmp_path / "out")
    jobs.claim_output_dir(out, {"size": 2}, SPEC, overwrite=False)
    with pytest.raises(jobs.OutputMismatchError) as info:
        jobs.claim_output_dir(out, {"size": 3}, SPEC, overwrite=False)
    assert "pass --overwrite to replace it, or pass a new --output_dir" in (
        info.value.as_flag()
    )
    seen = []

    def keep(old):
        seen.append(old)
        return {"size": 3, "kept": True}

    kept = jobs.claim_output_dir(out, {"size": 3}, SPEC, True, keep)
    assert seen == [{"format_version": 3, "size": 2}]
    assert kept == {"format_version": 3, "size": 3, "kept": True}


def test_options_from_flags_validate_and_warnings():
    values = types.SimpleNamespace(output_dir="/o", size=7, json=True)
    options = ToyOptions.from_flags(values)
    assert options == ToyOptions("/o", 7)
    assert [w.as_flag() for w in options.warnings()] == ["--size=7 is unusual."]
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.size = 3
    with pytest.raises(OptionError) as info:
        ToyOptions.from_flags(types.SimpleNamespace(output_dir="", size=1))
    assert info.value.as_flag() == "--output_dir is required."


def test_ctrl_c_in_a_job_says_how_to_resume():
    """Before: the binaries printed "Interrupted." alone."""

    def fn(task):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as e:
        list(jobs.run_tasks(fn, [1], 1, progress=False))
    assert str(e.value) == (
        "Rerun the same command to resume: finished outputs are kept."
    )
    # The job says how it resumes (the builder with overwrite: without it,
    # or the same command starts over).
    with pytest.raises(KeyboardInterrupt, match="^without it$"):
        list(jobs.run_tasks(fn, [1], 1, progress=False, resume="without it"))


def test_a_sigterm_swallowed_in_a_finalizer_stops_at_the_next_task():
    """Before: SIGTERM raised inside a garbage-collector callback (JAX's
    `_xla_gc_callback`) printed "Exception ignored ... Terminated" and the
    job wrote every remaining shard before it stopped."""
    import os
    import signal
    import sys

    from official.utils.misc import interrupts

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # lands in __del__

    reported, ran = [], []
    previous_hook = sys.unraisablehook
    previous_int = signal.getsignal(signal.SIGINT)
    sys.unraisablehook = lambda u: reported.append(u.exc_value)
    interrupts.install()

    def fn(task):
        ran.append(task)
        if task == 1:
            Finalized()  # its Terminated is "ignored" by Python
        return task

    try:
        with pytest.raises(interrupts.Terminated, match="^resume here$"):
            list(
                jobs.run_tasks(
                    fn, [1, 2, 3], 1, progress=False, resume=("resume here")
                )
            )
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous_int)
        interrupts.reset()
    assert ran == [1]
    assert reported == []  # not printed


def test_an_unreadable_path_is_one_line(tmp_path, capsys):
    """Before: a PermissionError traceback (an unreadable class folder)."""
    from official.utils.flags import core as flags_core

    def main(argv):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    with pytest.raises(SystemExit) as e:
        flags_core.clean_errors(main)([])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        f"ERROR: {tmp_path / 'x'}: permission denied; make it readable (and "
        "writable, for an output) or choose another path.\n"
    )


def test_sigterm_outside_a_loop_that_saves_is_one_line(capsys):
    """SIGTERM during a binary's start-up (or any part that does not save
    on it) prints one line and exits 143, as Ctrl-C prints "Interrupted."
    (before: exit 143 without a word); the handler before is back after."""
    import os
    import signal
    import time

    from official.utils.flags import core as flags_core

    def main(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises before this ends

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e:
        flags_core.clean_errors(flags_core.checked_main(main))([])
    assert e.value.code == 143
    assert capsys.readouterr().err == "Terminated.\n"
    assert signal.getsignal(signal.SIGTERM) is before
    from official.utils.misc import interrupts

    # Re-raised by TensorFlow with its own lines (a traced function's
    # "in user code: ..."): the line is still one (before: a dozen).
    def wrapped(argv):
        try:
            main(argv)
        except interrupts.Terminated as e:
            raise interrupts.Terminated(f"in user code:\n  {e}") from None

    # Swallowed on its way (a layer's `except Exception`): the job stops
    # all the same (before: it ran to the end and exited 0).
    def swallowed(argv):
        try:
            main(argv)
        except Exception:
            pass
        return 0

    for fn in (wrapped, swallowed):
        with pytest.raises(SystemExit) as e:
            flags_core.clean_errors(flags_core.checked_main(fn))([])
        assert e.value.code == 143
        assert capsys.readouterr().err == "Terminated.\n"


def test_run_tasks_in_process_and_the_bar():
    done = list(jobs.run_tasks(lambda t: t * 2, [1, 2, 3], 1, progress=False))
    assert done == [(1, 2), (2, 4), (3, 6)]
    moved = []

    def fn(task, progress):
        for _ in range(task):
            progress(1)
            moved.append(task)
        return task

    list(jobs.run_tasks(fn, [2, 1], 1, progress=False, reports_progress=True))
    assert moved == [2, 2, 1]


def test_console_lines_and_main(tmp_path, capsys):
    problems = [{"f": str(i)} for i in range(4)]
    lines = jobs.format_problems(problems, lambda p: p["f"], 2, "bad files")
    assert lines == ["  0", "  1", "  ... 2 more bad files in summary.json"]

    def run(options):
        summary = {"size": options.size}
        jobs.write_summary(options.output_dir, summary)
        return summary

    out = str(tmp_path)
    job = jobs.Job(
        ToyOptions,
        run,
        lambda s: f"size {s['size']}",
        files=(("labels", "labels.txt"),),
    )
    flags = types.SimpleNamespace(output_dir=out, size=7, json=True)
    assert jobs.main(job, ["toy"], flags) == {"size": 7}
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "size 7",
        f"Summary: {out}/summary.json, labels: {out}/labels.txt",
        '{"size": 7}',
    ]
    assert captured.err == "WARNING: --size=7 is unusual.\n"
    with open(os.path.join(out, "summary.json")) as f:
        assert f.read() == '{\n "size": 7\n}'
    with pytest.raises(ValueError, match="Unexpected arguments"):
        jobs.main(job, ["toy", "extra"], flags)


def _sleep_then_pid(task):
    """A pool task (picklable: module level): sleeps, then touches the
    file it names, if any."""
    import time

    seconds, done = task if isinstance(task, tuple) else (task, None)
    time.sleep(seconds)
    if done:
        open(done, "w").close()
    return os.getpid()


@pytest.mark.slow  # spawns worker processes
def test_sigterm_stops_a_pool_job_and_its_workers(tmp_path):
    """SIGTERM (a preempted machine) stops a worker-pool job as Ctrl-C
    does: `Terminated` with the resume line, the pending tasks cancelled,
    the running ones stopped, no worker left (before: the parent died
    alone and its workers wrote on, then hung; then the running tasks
    were waited for: the builder took 9-12 s to stop, a shard a worker)."""
    import multiprocessing
    import signal
    import time

    from official.utils.misc import interrupts

    previous = signal.getsignal(signal.SIGTERM)
    long = [(20.0, str(tmp_path / f"done{i}")) for i in range(40)]
    tasks = [0.05] * 2 + long
    job = jobs.run_tasks(
        _sleep_then_pid, tasks, 2, progress=False, resume="Rerun it."
    )
    done = 0
    with pytest.raises(interrupts.Terminated) as e:
        for _ in job:
            done += 1
            if done == 1:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises here
    assert str(e.value) == "Rerun it."
    job.close()  # the pool shuts down: the running tasks are stopped
    assert done < 10
    assert multiprocessing.active_children() == []
    assert list(tmp_path.iterdir()) == []  # no long task ran to its end
    assert signal.getsignal(signal.SIGTERM) is previous


def _killed_once(task):
    """The second task kills its own worker (the OOM killer, `kill -9`)."""
    import signal

    if task == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return task


@pytest.mark.slow  # starts processes
def test_a_killed_worker_is_one_error_naming_the_option_and_the_resume():
    """Before: a `BrokenProcessPool` traceback naming neither the cause
    nor how the job resumes."""
    import multiprocessing

    job = jobs.run_tasks(
        _killed_once,
        [0, 1, 2, 3],
        2,
        progress=False,
        resume="Rerun it.",
        workers_option="num_workers",
    )
    with pytest.raises(jobs.OptionError) as e:
        list(job)
    assert e.value.as_flag() == (
        "A worker process died (killed by a signal, or by the system for "
        "lack of memory) and the job stopped. Rerun it. If memory ran out, "
        "rerun with a lower --num_workers (here 2)."
    )
    assert multiprocessing.active_children() == []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow  # starts processes
def test_workers_end_when_their_parent_is_killed(tmp_path):
    """`kill -9` of a pool job: its workers end within a second or two
    (before: they waited for tasks forever, re-parented to init)."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import multiprocessing, threading, time\n"
        "from official.utils.misc import worker_pool\n"
        "job = worker_pool.imap_bounded(time.sleep, [60, 60], 2, "
        "in_flight=1)\n"
        "threading.Thread(target=lambda: list(job), daemon=True).start()\n"
        "while len(multiprocessing.active_children()) < 2:\n"
        "    time.sleep(0.05)\n"
        "print(*[p.pid for p in multiprocessing.active_children()], "
        "flush=True)\n"
        "time.sleep(60)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]


@pytest.mark.parametrize(
    "error, message",
    [
        (
            OSError(30, "Read-only file system", "/runs/a/.config.json.tmp-7"),
            "cannot write /runs/a: read-only file system; write to another "
            "folder.",
        ),
        (
            OSError(28, "No space left on device", "/runs/a/eval.json"),
            "cannot write /runs/a/eval.json: no space left on the device; "
            "free some space (a rerun goes on from what was saved) or write "
            "to another folder.",
        ),
        (
            # A relative path (before: named from its first "/", "/b").
            "tf.data: full/b/.train-00000-of-00002.tmp; No space left on "
            "device",
            "cannot write full/b: no space left on the device; free some "
            "space (a rerun goes on from what was saved) or write to another "
            "folder.",
        ),
        (
            # TensorFlow's checkpoint writer on a full disk, verbatim.
            "ResourceExhaustedError",
            "cannot write /runs/a/checkpoints: no space left on the device; "
            "free some space (a rerun goes on from what was saved) or write "
            "to another folder.",
        ),
    ],
)
def test_an_output_on_a_read_only_or_full_disk_is_one_line(
    error, message, capsys
):
    """Before: a traceback ending in `OSError: [Errno 30] Read-only file
    system: '<run>/.config.json.tmp-22467'` (tools.train, tools.evaluate),
    or TensorFlow's `ResourceExhaustedError` from a checkpoint's save."""
    from official.utils.flags import core as flags_core

    if isinstance(error, str) and error.startswith("tf.data: "):
        import tensorflow as tf

        error = tf.errors.ResourceExhaustedError(None, None, error[9:])
    if error == "ResourceExhaustedError":
        import tensorflow as tf

        error = tf.errors.ResourceExhaustedError(
            None,
            None,
            "{{function_node __wrapped__SaveV2_dtypes_2_device_/job:localhost"
            "/replica:0/task:0/device:CPU:0}} /runs/a/checkpoints/ckpt-2_temp/"
            "part-00000-of-00001.data-00000-of-00001.tempstate7448024233904645"
            "034; No space left on device [Op:SaveV2]",
        )

    def main(argv):
        raise error

    with pytest.raises(SystemExit) as e:
        flags_core.clean_errors(main)([])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"ERROR: {message}\n"


def test_an_option_on_a_read_only_disk_keeps_its_own_message(capsys):
    """Before: "cannot write the outputs: read-only file system; write to
    another folder.", naming neither the option nor the folder."""
    import errno

    from official.utils.flags import core as flags_core
    from official.utils.misc.validation import PathNotWritableError

    def main(argv):
        raise PathNotWritableError(
            "model_dir",
            "{field}={path} cannot be written: no folder can be made in "
            "/ro (Read-only file system); choose another {field}.",
            errno_code=errno.EROFS,
            path="/ro/run",
        )

    with pytest.raises(SystemExit) as e:
        flags_core.clean_errors(main)([])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "ERROR: --model_dir=/ro/run cannot be written: no folder can be made "
        "in /ro (Read-only file system); choose another --model_dir.\n"
    )


def test_other_errors_still_raise():
    from official.utils.flags import core as flags_core

    def main(argv):
        raise OSError(5, "Input/output error", "/x")

    with pytest.raises(OSError, match="Input/output error"):
        flags_core.clean_errors(main)([])


def test_the_tpu_strategy_without_a_tpu_names_the_flag():
    """Before: TensorFlow's "Please provide a TPU Name to connect to.",
    naming no flag."""
    from official.utils.misc import distribution_utils
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError) as e:
        distribution_utils.get_distribution_strategy("tpu", tpu_address="")
    assert e.value.as_flag() == (
        "--tpu='': no TPU found (Please provide a TPU Name to connect to). "
        "Pass the TPU's name or grpc:// address ('local' on a TPU VM), or "
        "choose another --distribution_strategy."
    )
