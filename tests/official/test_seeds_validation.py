"""The shared seed derivation and argument check (official/utils/misc)."""

import os

import numpy as np
import pytest

from official.utils.misc.seeds import derive_seed
from official.utils.misc.validation import (
    check_non_negative_int,
    check_positive_int,
)


def test_derive_seed_is_stable_and_separates_streams():
    # Fixed values: a change of derivation changes every run's randomness,
    # so it must show up here.
    assert derive_seed(0, "input", 0) == derive_seed(0, "input", 0)
    seeds = {
        derive_seed(s, name, e)
        for s in range(4)
        for name in ("input", "step", "mixing")
        for e in range(50)
    }
    assert len(seeds) == 4 * 3 * 50
    # The collision the old `seed * 1000 + epoch` had.
    assert derive_seed(1, "input", 0) != derive_seed(0, "input", 1000)
    assert all(0 <= s < 2**31 for s in seeds)
    expected = np.random.SeedSequence([7, 3]).generate_state(1)[0]
    assert derive_seed(7, 3) == int(expected) & 0x7FFFFFFF
    with pytest.raises(ValueError, match="-1"):
        derive_seed(-1, "input")


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3", None])
def test_check_positive_int_names_the_argument_and_value(bad):
    with pytest.raises(ValueError, match=f"Received: width={bad!r}$"):
        check_positive_int("width", bad)


def test_check_positive_int_returns_a_python_int():
    out = check_positive_int("k", np.int64(5))
    assert out == 5 and type(out) is int


@pytest.mark.parametrize("bad", [-1, 0.5, False, "0", None])
def test_check_non_negative_int_takes_zero_and_names_bad_values(bad):
    assert check_non_negative_int("pad", np.int64(0)) == 0
    with pytest.raises(
        ValueError, match=r"`pad` must be an integer >= 0. Received: pad="
    ):
        check_non_negative_int("pad", bad)


def test_option_error_names_the_field_and_binaries_print_the_flag(capsys):
    from official.utils.flags import core as flags_core
    from official.utils.misc.validation import OptionError

    error = OptionError(
        "source", "{field} is required, e.g. {example}.", example="food101"
    )
    assert str(error) == "`source` is required, e.g. food101."
    assert error.as_flag("data_source") == (
        "--data_source is required, e.g. food101."
    )

    def main(argv):
        raise error

    with pytest.raises(SystemExit) as exit_info:
        flags_core.clean_errors(main)([])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "ERROR: --source is required, e.g. food101.\n"
    )


def test_a_swallowed_ctrl_c_is_still_seen_by_the_next_check():
    """A Ctrl-C landing in a finalizer (tqdm's `__del__` at an epoch's end
    made the Ctrl-C test of `tests/training/test_trainer.py` flaky):
    no "Exception ignored" traceback, the next check raises; another
    exception in a finalizer is still reported."""
    import os
    import signal
    import sys

    from official.utils.misc import interrupts

    interrupts.reset()
    previous = signal.getsignal(signal.SIGINT)
    previous_hook = sys.unraisablehook
    reported = []  # what reaches the hook before ours (Python's prints)
    sys.unraisablehook = lambda u: reported.append(u.exc_value)
    try:
        interrupts.install()
        interrupts.install()  # twice: the hook is not stacked

        class Finalized:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)  # lands in __del__

        class Broken:
            def __del__(self):
                raise RuntimeError("a finalizer's own error")

        interrupts.check()  # nothing yet
        try:
            Finalized()  # its KeyboardInterrupt is "ignored" by Python
        except KeyboardInterrupt:
            pass
        assert interrupts.requested()
        assert reported == []
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        Broken()
        assert [str(e) for e in reported] == ["a finalizer's own error"]
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
        interrupts.reset()


def test_path_exists_error_is_an_option_error_and_a_file_exists_error():
    import errno

    from official.utils.misc.validation import PathExistsError

    e = PathExistsError(
        "output",
        "{field}={path} exists; pass {overwrite}.",
        ["overwrite"],
        path="w.h5",
    )
    assert isinstance(e, FileExistsError) and isinstance(e, ValueError)
    assert e.errno == errno.EEXIST
    assert str(e) == "`output`=w.h5 exists; pass `overwrite`."
    assert e.as_flag() == "--output=w.h5 exists; pass --overwrite."


def test_a_renamed_error_names_the_callers_options():
    """`build_model`'s `preset` is a teacher's `teacher_preset`."""
    from official.utils.misc.validation import PathExistsError

    e = PathExistsError(
        "output",
        "{field}={path} exists; pass {overwrite}.",
        ["overwrite"],
        path="w.h5",
    )
    r = e.renamed({"output": "teacher_out", "overwrite": "force"})
    assert type(r) is PathExistsError and isinstance(r, FileExistsError)
    assert (r.field, r.others) == ("teacher_out", ("force",))
    assert str(r) == "`teacher_out`=w.h5 exists; pass `force`."
    assert r.as_flag() == "--teacher_out=w.h5 exists; pass --force."
    assert e.as_flag() == "--output=w.h5 exists; pass --overwrite."  # kept


def test_first_line_ends_at_a_word():
    """Before: cut at 300 characters, mid-word ("... 'stem_1_")."""
    from official.utils.misc.validation import first_line

    words = " ".join(f"word{i}" for i in range(100))
    line = first_line(ValueError(words + "\nsecond line"), limit=30)
    assert line == "word0 word1 word2 word3 ..."
    assert len(line) <= 30
    assert first_line(ValueError("short\nmore")) == "short"
    assert first_line(ValueError("")) == "ValueError"


def test_sigterm_sets_a_flag_only_inside_graceful_termination():
    import os
    import signal
    import time

    from official.utils.misc import interrupts

    def sigterm_seen(wait=5.0):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + wait
        while not interrupts.termination_requested():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    calls = []
    previous = signal.signal(signal.SIGTERM, lambda *a: calls.append(a[0]))
    try:
        with interrupts.graceful_termination():
            assert not interrupts.termination_requested()
            assert sigterm_seen()
        assert calls == []  # the flag, not the handler before
        with interrupts.graceful_termination():  # a new block: not stale
            assert not interrupts.termination_requested()
        with interrupts.graceful_termination(enabled=False):
            interrupts.reset()
            assert not sigterm_seen(wait=0.2)
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
        interrupts.reset()
    assert interrupts.TERMINATED_EXIT_CODE == 143


def test_outputs_behind_a_file_are_refused_before_the_work(tmp_path):
    """A file where an output folder must go failed after the whole
    conversion, evaluation or profile, with "[Errno 17] File exists"."""
    import types

    from assemble_tf.convert import run as convert_run
    from official.utils.misc.validation import OptionError, check_creatable

    afile = tmp_path / "afile"
    afile.write_text("")
    options = types.SimpleNamespace(
        out=str(afile / "sub"), weights=str(afile / "w.weights.h5"), none=None
    )
    with pytest.raises(OptionError) as error:
        check_creatable(options, folders=["out"], files=["weights"])
    assert error.value.as_flag() == (
        f"--out={afile / 'sub'} cannot be created: {afile} is a file, not a "
        "folder."
    )
    options.out = str(tmp_path / "new" / "deeper")  # can be made
    with pytest.raises(OptionError) as error:
        check_creatable(options, folders=["out"], files=["weights"])
    assert error.value.as_flag().startswith(
        f"--weights={afile / 'w.weights.h5'} cannot be created: {afile} "
    )
    check_creatable(options, folders=["none"], files=[])
    options.out = str(afile)  # the output folder itself is a file
    with pytest.raises(OptionError, match="is a file, not a folder"):
        check_creatable(options, folders=["out"])
    with pytest.raises(OptionError, match="`output`=.* cannot be created"):
        convert_run.check_output(str(afile / "x.weights.h5"))
    # A folder in which none can be made (root passes permission bits, so
    # /proc stands in for a read-only mount): named before the work (before:
    # "[Errno 2] No such file or directory: '/proc/out'" after a whole
    # evaluation, a NotADirectoryError traceback in tools.make_demo_dataset).
    options.out, options.weights = "/proc/out/deeper", None
    with pytest.raises(OptionError) as error:
        check_creatable(options, folders=["out"])
    assert error.value.as_flag() == (
        "--out=/proc/out/deeper cannot be written: no folder can be made in "
        "/proc (No such file or directory); choose another --out."
    )
    before = sorted(os.listdir(tmp_path))
    options.out = str(tmp_path / "new")
    check_creatable(options, folders=["out"])
    assert sorted(os.listdir(tmp_path)) == before  # the probe is removed


def test_a_folder_that_cannot_be_written_is_named_before_the_work(
    tmp_path, monkeypatch
):
    """tools.evaluate evaluated, then failed writing its plot to a run on a
    read-only disk (a traceback). `os.access` stands in for the read-only
    mount (root passes permission bits)."""
    import os

    from official.utils.misc.validation import (
        OptionError,
        check_writable_folder,
    )

    target = tmp_path / "run" / "eval"
    check_writable_folder("output_dir", str(target))  # writable: passes
    assert not target.exists()  # and nothing made
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(tmp_path))
    with pytest.raises(OptionError) as e:
        check_writable_folder("output_dir", str(target))
    assert e.value.as_flag() == (
        f"--output_dir={target}: {tmp_path} is not writable (a read-only "
        "disk, or no permission); pass --output_dir a folder that is."
    )
    with pytest.raises(OptionError) as e:
        check_writable_folder("output_dir", str(target), given=False)
    assert e.value.as_flag().startswith(f"The outputs go to {target}: ")
    check_writable_folder("output_dir", "gs://bucket/run")


def test_name_lists_refuse_empty_names_and_repeats():
    """Before: `--corruptions=,` generated all 19 corruptions x 5
    severities (its empty names dropped), `--corruptions=a,,b` dropped the
    gap and `--perturbations=brightness,,brightness` generated it once;
    the generators, the robustness evaluation and the corruption benchmark
    now share one parser."""
    from assemble_tf.robustness import generate_c, generate_p
    from official.utils.misc.validation import OptionError, split_names

    assert split_names("names", " fog , snow") == ("fog", "snow")
    assert split_names("names", ("fog",)) == ("fog",)
    assert split_names("names", "") == split_names("names", None) == ()
    with pytest.raises(OptionError) as error:
        generate_c.parse_corruptions(",")
    assert error.value.as_flag() == (
        "--corruptions=, holds an empty name (a comma too many?); separate "
        "the names by single commas."
    )
    with pytest.raises(OptionError, match="^`corruptions`=fog,,snow holds"):
        generate_c.parse_corruptions("fog,,snow")
    assert generate_c.parse_corruptions("") == generate_c.parse_corruptions(
        None
    )
    assert len(generate_c.parse_corruptions("")) == 19
    with pytest.raises(OptionError) as error:
        generate_p.resolve_perturbations("brightness,,brightness", None)
    assert "holds an empty name" in str(error.value)
    with pytest.raises(OptionError) as error:
        generate_p.resolve_perturbations("brightness,rotate,brightness", None)
    assert error.value.as_flag() == (
        "--perturbations=brightness,rotate,brightness names brightness more "
        "than once."
    )
    assert generate_p.resolve_perturbations(" rotate", None) == ("rotate",)
