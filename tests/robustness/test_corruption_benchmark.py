"""assemble_tf.robustness.benchmark (tools.benchmark_corruptions)."""

import json
import stat
import sys

import pytest

from assemble_tf.robustness import benchmark
from official.utils.misc.validation import OptionError
from tests import testing_utils


def test_run_benchmark_times_the_named_corruptions():
    # single_thread=False: the thread limits would stay in this process.
    options = benchmark.CorruptionBenchmarkOptions(
        image_size=64,
        resize=72,
        repeats=1,
        corruptions=("brightness", "contrast"),
        single_thread=False,
        progress=False,
    )
    report = benchmark.run_benchmark(options)
    ours = report["ours_s"]
    assert list(ours) == ["brightness", "contrast"]
    assert all(0 < s < 10 for s in ours.values())
    assert report["ours_total_s"] == pytest.approx(5 * sum(ours.values()))
    assert report["frost_cache_s"] > 0
    assert report["imagecorruptions_s"] is None
    line = benchmark.console_line(report)
    assert list(line) == list(benchmark.JSON_KEYS)
    assert line["image_size"] == 64
    assert (line["resize"], line["repeats"], line["single_thread"]) == (
        72,
        1,
        False,
    )
    json.dumps(line)
    text = benchmark.format_text(report, options).splitlines()
    assert text[:2] == ["| corruption | ours ms/img |", "|---|---:|"]
    assert text[2].startswith("| brightness | ")
    assert text[4].startswith("| **total, 2 x 5** | **")
    assert text[5:] == [
        "",
        "Image 64x64 (astronaut), median of 1 per severity, mean of 5 "
        "severities. One-time "
        f"{benchmark.frost_cache_name()}: "  # frost photo read (the wheel)
        f"{report['frost_cache_s']:.2f} s per process.",
    ]


def test_option_errors_name_the_flags():
    valid = ("fog", "snow")
    assert benchmark.check_names(None, valid) == valid
    assert benchmark.check_names(["snow"], valid) == ("snow",)
    # The table summed a repeat twice, the JSON once; none timed nothing.
    with pytest.raises(ValueError, match="names fog more than once"):
        benchmark.check_names(["fog", "fog", "snow"], valid)
    with pytest.raises(ValueError, match="is empty"):
        benchmark.check_names([], valid)
    # From the command line too (before: --corruptions= timed all 19).
    result = testing_utils.run_main(
        "tools.benchmark_corruptions", "--corruptions="
    )
    assert result.returncode == 2
    assert testing_utils.error_line(result) == (
        "ERROR: --corruptions is empty: name one."
    )
    with pytest.raises(OptionError) as e:
        benchmark.check_names(["bogus", "fog"], valid)
    assert str(e.value) == "`corruptions`: unknown bogus. Valid: fog, snow."
    assert (
        e.value.as_flag() == "--corruptions: unknown bogus. Valid: fog, snow."
    )
    with pytest.raises(OptionError) as e:
        benchmark.astronaut_crop(224, 100)
    assert str(e.value) == "`resize`=100 must be >= `image_size`=224."
    assert e.value.as_flag() == "--resize=100 must be >= --image_size=224."
    # An interpreter that does not run: named before our timings.
    with pytest.raises(OptionError) as e:
        benchmark._check_interpreter("/no/such/python")
    assert e.value.as_flag().startswith(
        "--python=/no/such/python is not an executable file"
    )
    benchmark._check_interpreter(sys.executable)
    with pytest.raises(OptionError, match="not an executable file"):
        benchmark.run_benchmark(
            benchmark.CorruptionBenchmarkOptions(
                corruptions=("fog",),
                single_thread=False,
                compare_imagecorruptions=True,
                python="/no/such/python",
                progress=False,
            )
        )
    # Without the comparison it times nothing: named (before: ignored).
    with pytest.raises(OptionError) as e:
        benchmark.run_benchmark(
            benchmark.CorruptionBenchmarkOptions(
                corruptions=("fog",), python=sys.executable, progress=False
            )
        )
    assert e.value.as_flag() == (
        "--python names the interpreter that times imagecorruptions: pass "
        "--compare_imagecorruptions too, or leave --python out."
    )


def test_markdown_table_with_imagecorruptions():
    ours = {"fog": 0.01, "snow": 0.02}
    theirs = {"fog": 0.05, "snow": None, "version": "1.1.2", "errors": {}}
    assert benchmark.markdown_table(["fog", "snow"], ours, theirs) == (
        "| corruption | ours ms/img | imagecorruptions ms/img | speed-up |\n"
        "|---|---:|---:|---:|\n"
        "| fog | 10.0 | 50.0 | 5.0x |\n"
        "| snow | 20.0 | n/a | |\n"
        "| **total, 2 x 5** | **0.15 s** | **0.25 s** | 5.0x (the 1 both "
        "timed) |"
    )
    theirs["snow"] = 0.04  # both timed: the speed-up of the totals
    assert benchmark.markdown_table(["fog", "snow"], ours, theirs).endswith(
        "| **total, 2 x 5** | **0.15 s** | **0.45 s** | 3.0x |"
    )
    # Small images: three significant digits (before: "**0.00 s**").
    small = {"fog": 1e-4, "snow": 2.14e-4}
    assert benchmark.markdown_table(["fog", "snow"], small).endswith(
        "| **total, 2 x 5** | **0.00157 s** |"
    )


def _script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.slow  # starts an interpreter
def test_time_imagecorruptions_reads_the_result_line(tmp_path):
    result = {"fog": 0.5, "snow": None, "version": "9", "errors": {"snow": "x"}}
    good = _script(
        tmp_path / "good",
        f"#!/bin/sh\necho noise\necho 'RESULT {json.dumps(result)}'\n",
    )
    image = benchmark.astronaut_crop(32, 40)
    got = benchmark.time_imagecorruptions(image, ["fog"], 1, good, True)
    assert got == result
    report = {
        "image_size": 32,
        "ours_s": {"fog": 0.25, "snow": 0.5},
        "frost_cache_s": 0.1,
        "imagecorruptions_s": got,
        "corruptions": ["fog", "snow"],
    }
    options = benchmark.CorruptionBenchmarkOptions(repeats=2)
    text = benchmark.format_text(report, options).splitlines()
    assert text[2] == "| fog | 250.0 | 500.0 | 2.0x |"
    assert text[-2:] == [
        "imagecorruptions version 9.",
        "imagecorruptions snow failed: x",
    ]
    assert ", one thread. One-time" in text[-3]
    bad = _script(tmp_path / "bad", "#!/bin/sh\necho 'no module' >&2\nexit 1\n")
    with pytest.raises(OptionError) as e:
        benchmark.time_imagecorruptions(image, ["fog"], 1, bad, False)
    assert e.value.as_flag() == (
        f"--compare_imagecorruptions: {bad} could not time imagecorruptions "
        "(no module). Install it in a separate venv (pip install "
        "imagecorruptions) and pass --python=<that venv>/bin/python."
    )
