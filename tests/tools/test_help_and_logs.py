"""Every binary: --help lists its own flags; TensorFlow's start-up is quiet."""

import glob
import os
import re

import pytest

from official.utils.logs import startup
from tests import testing_utils
from tests.conftest import REPO

TOOLS = sorted(
    os.path.basename(p)[:-3]
    for p in glob.glob(os.path.join(REPO, "tools", "*.py"))
    if not p.endswith("__init__.py")
)
_HEADER = re.compile(r"^(\S.*):$")
_FLAG = re.compile(r"^  --(?:\[no\])?(\w+):")


def _flags_by_module(helpfull):
    """{module header: [flag names]} of `--helpfull` output."""
    out, module = {}, None
    for line in helpfull.splitlines():
        header = _HEADER.match(line)
        if header:
            module = header.group(1)
            continue
        flag = _FLAG.match(line)
        if flag and module:
            out.setdefault(module, []).append(flag.group(1))
    return out


def test_there_are_binaries():
    assert len(TOOLS) >= 18 and "train" in TOOLS


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_help_lists_the_binarys_own_flags(tool):
    """Before: `--help` of tools.train and others said only 'Try
    --helpfull' (their flags live in flags/, not in the main module)."""
    full = testing_utils.run_binary(f"tools.{tool}", "--helpfull")
    assert full.returncode == 0, full.stderr[-2000:]
    own = [
        name
        for module, names in _flags_by_module(full.stdout).items()
        if module.startswith(("flags.", "official."))
        or module.endswith(os.path.join("tools", f"{tool}.py"))
        for name in names
    ]
    assert own, f"tools.{tool} defines no flags of its own?"
    short = testing_utils.run_binary(f"tools.{tool}", "--help")
    assert short.returncode == 0, short.stderr[-2000:]
    listed = {
        m.group(1) for m in map(_FLAG.match, short.stdout.splitlines()) if m
    }
    assert set(own) <= listed, sorted(set(own) - listed)
    assert "--verbosity" not in short.stdout  # absl's own stay in --helpfull
    # Issue 24 item 11: the docstring's example commands keep their line
    # breaks (a `\` line end in a non-raw docstring joined them into runs
    # of spaces), and flag help is wrapped once, by absl (text pre-wrapped
    # by us came out broken mid-sentence, a line of one or two words).
    joined = [line for line in short.stdout.splitlines() if "    --" in line]
    assert not [j for j in joined if re.search(r"\S {4,}--", j)], joined
    lines = short.stdout.split("\nflags:\n", 1)[-1].splitlines()

    def prose(line):  # a continuation line of a flag's help text
        return line.startswith("    ") and not line.strip().startswith("(")

    # absl fills each line to ~80 columns: a short line followed by more
    # of the same paragraph is a break inside a sentence.
    stubs = [
        a
        for a, b in zip(lines, lines[1:], strict=False)
        if prose(a) and prose(b) and len(a) < 50
    ]
    assert not stubs, stubs
    if tool in ("train", "finetune"):
        # The recipe sets the defaults (issue 24 item 11: --help showed
        # tools.train's field defaults, e.g. 120 epochs, as the values).
        text = " ".join(short.stdout.split())
        assert "Training epochs. (default: the recipe's, else 120.0)" in text
        assert "(default: '120.0')" not in text


NOISE = (
    "All log messages before absl::InitializeLog",
    "cuInit",
    "Could not find cuda drivers",
    "oneDNN custom operations",
    "functional_saver.py",
)


@pytest.mark.slow
def test_tensorflow_startup_is_quiet_and_v_brings_it_back():
    # A tiny model: the start-up, not the build, is the point.
    args = ["--preset=resnet50", "--base_width=8", "--block_sizes=1,1,1,1"]
    quiet = testing_utils.run_binary("tools.model_summary", *args, "--json")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert not [n for n in NOISE if n in quiet.stderr], quiet.stderr[-2000:]
    loud = testing_utils.run_binary(
        "tools.model_summary", *args, "--json", "-v", "0"
    )
    assert loud.returncode == 0
    assert "All log messages before absl::InitializeLog" in loud.stderr
    assert quiet.stdout == loud.stdout


def test_startup_filter_keeps_everything_else():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\n"
        "I0000 00:00:1796138478.457638    2425 port.cc:153] oneDNN custom "
        "operations are on.\n"
        "E0000 00:00:1796138481.496639    2425 cuda_platform.cc:52] failed "
        "call to cuInit: INTERNAL: CUDA error\n"
        "W0000 00:00:1796138481.5  2425 some.cc:1] a real warning\n"
        "Traceback (most recent call last):\n"
        "ValueError: kept\n"
    )
    assert startup.filter_startup_lines(text) == (
        "W0000 00:00:1796138481.5  2425 some.cc:1] a real warning\n"
        "Traceback (most recent call last):\n"
        "ValueError: kept\n"
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["x"], None),
        (["x", "-v", "1"], 1),
        (["x", "-v=0"], 0),
        (["x", "--verbosity=-1"], -1),
        (["x", "--verbosity", "info"], 0),
        (["x", "--v=2", "--other=3"], 2),
    ],
)
def test_requested_verbosity(argv, expected):
    assert startup.requested_verbosity(argv) == expected


@pytest.mark.parametrize(
    "tool, flag",
    [
        ("tools.export_saved_model", "export_dir"),
        ("tools.model_summary", "preset"),
        ("tools.benchmark_input", "data_dir"),
    ],
)
def test_a_missing_required_flag_is_one_plain_line(tool, flag):
    """absl's "flag --export_dir=None: Flag --export_dir must have a value
    other than None." as the other binaries say it."""
    result = testing_utils.run_main(tool)
    assert result.returncode == 2
    assert result.stderr == f"ERROR: --{flag} is required; see --help.\n"


def test_several_missing_required_flags_are_one_line():
    """absl writes one line per missing flag."""
    result = testing_utils.run_main("tools.convert_original_checkpoint")
    assert result.returncode == 2
    assert re.fullmatch(
        r"ERROR: (--\w+, )*--\w+ and --\w+ are required; see --help\.\n",
        result.stderr,
    ), result.stderr
    assert "--preset" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--preset=resnet50", "--json", "false"],
            "unexpected argument 'false': the binaries take flags only "
            "(--name=value); a boolean is written --json=false or --nojson, "
            "not --json false.",
        ),
        (
            ["--preset=resnet50", "resnet152"],
            "unexpected argument 'resnet152': the binaries take flags only "
            "(--name=value).",
        ),
    ],
)
def test_an_argument_that_is_no_flag_is_refused(args, message):
    """Before: absl left it to `main`, which dropped it: `--json false`
    printed JSON, `--overwrite false` overwrote."""
    result = testing_utils.run_main("tools.model_summary", *args)
    assert result.returncode == 2
    assert result.stderr == f"ERROR: {message}\n"
    assert result.stdout == ""


class _FakeConfig:
    """`tf.config` of a TensorFlow with one GPU, set up or not yet."""

    def __init__(self, initialized):
        self.initialized = initialized
        self.visible = ["GPU:0"]
        self.calls = []

    def set_visible_devices(self, devices, kind):
        self.calls.append((devices, kind))
        if self.initialized:
            raise RuntimeError("cannot be modified after being initialized")
        self.visible = devices

    def get_visible_devices(self, kind):
        return self.visible

    def list_physical_devices(self):
        return []


def test_tensorflow_is_kept_off_the_gpus_under_jax(monkeypatch):
    """Under JAX, TensorFlow (tf.data) would map most of each GPU's memory
    at its first op: the GPUs are hidden from it at its import."""
    import types

    fake = types.SimpleNamespace(config=_FakeConfig(initialized=False))
    assert startup.keep_tensorflow_off_gpus(fake)
    assert fake.config.calls == [([], "GPU")] and fake.config.visible == []
    late = types.SimpleNamespace(config=_FakeConfig(initialized=True))
    assert not startup.keep_tensorflow_off_gpus(late)  # kept them
    # The binaries' import hook: under JAX only.
    for backend, calls in (("jax", [([], "GPU")]), ("tensorflow", [])):
        monkeypatch.setenv("KERAS_BACKEND", backend)
        fake = types.SimpleNamespace(config=_FakeConfig(initialized=False))
        startup._set_up_devices(fake)
        assert fake.config.calls == calls, backend
