"""Per-image time of the 19 ImageNet-C corruptions, ours vs `imagecorruptions`.

The work of `tools.benchmark_corruptions`. The test image is a real photo
(skimage.data.astronaut, 512 px) brought to 224 px with the ImageNet-C
preprocessing (shorter side 256, centre crop 224; `image_size` and
`resize` change it). For every corruption, each of the 5 severities is
timed `repeats` times (median), and the per-image seconds are averaged
over the severities (the ImageNet-C generator corrupts every image at all
5). By default every library runs on one thread (OMP / BLAS / OpenCV), so
the figure is per core: `run_benchmark` sets the thread limits before it
imports numpy, and this module imports none at load time.

With `compare_imagecorruptions`, bethgelab/imagecorruptions (Michaelis et
al. 2019, `pip install imagecorruptions`; not a project dependency) is
timed on the same image in a subprocess: `python` names an interpreter
that can import it (default: this one). Its glass blur is a pure-Python
loop and takes seconds per image. Hendrycks & Dietterich (ICLR 2019)
define the corruptions; `assemble_tf.robustness.corruptions` implements
them.

    report = benchmark.run_benchmark(
        benchmark.CorruptionBenchmarkOptions(corruptions=("fog",)))
    print(benchmark.format_text(report, options))
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile

from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import OptionError

# The keys of the one-line JSON report (`console_line`).
JSON_KEYS = (
    "image_size",
    "resize",
    "repeats",
    "single_thread",
    "ours_s",
    "ours_total_s",
    "frost_cache_s",
    "imagecorruptions_s",
)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# Runs in the other interpreter: argv = image.npy, names (comma), repeats.
_IMAGECORRUPTIONS_SCRIPT = r"""
import json, statistics, sys, time
import numpy as np
import cv2
cv2.setNumThreads(1)
# Compatibility shims so that imagecorruptions 1.1.2 (2019) runs unchanged
# on numpy 2 / scikit-image >= 0.19 (np.float_ and `multichannel` were
# removed); they only rename arguments.
if not hasattr(np, "float_"):
    np.float_ = np.float64
import skimage.filters
_gaussian = skimage.filters.gaussian
def _compat_gaussian(*args, multichannel=None, **kwargs):
    if multichannel:
        kwargs.setdefault("channel_axis", -1)
    return _gaussian(*args, **kwargs)
skimage.filters.gaussian = _compat_gaussian
import imagecorruptions
from importlib import metadata
image = np.load(sys.argv[1])
names, repeats = sys.argv[2].split(","), int(sys.argv[3])
known = set(imagecorruptions.get_corruption_names("all"))
np.random.seed(0)
out = {"version": metadata.version("imagecorruptions")}
errors = {}
for name in names:
    if name not in known:
        out[name] = None
        continue
    try:
        imagecorruptions.corrupt(image, corruption_name=name, severity=1)
    except Exception as e:  # e.g. an API removed from numpy / skimage
        out[name] = None
        errors[name] = f"{type(e).__name__}: {e}"[:200]
        continue
    per_severity = []
    for severity in range(1, 6):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            imagecorruptions.corrupt(
                image, corruption_name=name, severity=severity)
            times.append(time.perf_counter() - start)
        per_severity.append(statistics.median(times))
    out[name] = sum(per_severity) / 5
out["errors"] = errors
print("RESULT " + json.dumps(out))
"""


@dataclasses.dataclass(frozen=True)
class CorruptionBenchmarkOptions:
    """What to time; field names are `tools.benchmark_corruptions`' flags.

    Attributes:
        image_size: crop side of the test image.
        resize: its shorter side before the centre crop.
        repeats: timed calls per severity (median).
        corruptions: the corruptions to time (None: all 19).
        single_thread: limit numpy / BLAS / OpenCV to one thread.
        compare_imagecorruptions: also time the imagecorruptions package
            (in a subprocess).
        python: interpreter that can import imagecorruptions (None: this
            one).
        compare_repeats: timed calls per severity for imagecorruptions.
        progress: show a progress bar (on stderr).
    """

    image_size: int = 224
    resize: int = 256
    repeats: int = 3
    corruptions: tuple[str, ...] | None = None
    single_thread: bool = True
    compare_imagecorruptions: bool = False
    python: str | None = None
    compare_repeats: int = 1
    progress: bool = True


def limit_threads():
    """One thread for OMP / BLAS (environment, read when numpy and OpenCV
    start their pools: call it before they are imported) and OpenCV."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)


def check_names(names, valid):
    """`names` (all of `valid` when None); unknown ones are an error
    listing the valid names."""
    if names is None:
        return tuple(valid)
    bad = [n for n in names if n not in valid]
    if bad:
        raise OptionError(
            "corruptions",
            "{field}: unknown {bad}. Valid: {valid}.",
            bad=", ".join(bad),
            valid=", ".join(valid),
        )
    if not names:
        raise OptionError("corruptions", "{field} is empty: name one.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # the table summed it twice, the JSON once
        raise OptionError(
            "corruptions",
            "{field} names {repeated} more than once.",
            repeated=", ".join(repeated),
        )
    return tuple(names)


def astronaut_crop(image_size, resize):
    """astronaut, resized and centre-cropped like ImageNet-C inputs."""
    import skimage.data

    from assemble_tf.robustness import corruptions

    if resize < image_size:
        raise OptionError(
            "resize",
            "{field}={resize} must be >= {image_size}={size}.",
            ["image_size"],
            resize=resize,
            size=image_size,
        )
    return corruptions.resize_center_crop(
        skimage.data.astronaut(), resize, image_size
    )


def build_frost_cache():
    """Reads the release's frost photos once per process (builds the
    synthetic fallback textures without the imagecorruptions wheel);
    returns the seconds."""
    import time

    import numpy as np

    from assemble_tf.robustness import filters

    start = time.perf_counter()
    if filters.frost_photo_dir() is not None:
        for index in filters.FROST_INDICES:
            filters.frost_photo(index)
    else:
        rng = np.random.default_rng(0)
        for index in filters.FROST_INDICES:
            filters.frost_texture(8, 8, rng, index)
    return time.perf_counter() - start


def frost_cache_name():
    """What `build_frost_cache` does here, for the report."""
    from assemble_tf.robustness import filters

    if filters.frost_photo_dir() is not None:
        return "frost photo read"
    return "synthetic frost texture build (no imagecorruptions wheel)"


def time_corruption(image, name, repeats):
    """Mean over the severities of the median seconds of `repeats` calls
    (seeds 0, 1, ...) of corruption `name` on `image`, after a warm-up."""
    import statistics
    import time

    from assemble_tf.robustness import corruptions

    corruptions.corrupt(image, name, 1)  # warm-up
    per_severity = []
    for severity in corruptions.SEVERITIES:
        times = []
        for repeat in range(repeats):
            t0 = time.perf_counter()
            corruptions.corrupt(image, name, severity, seed=repeat)
            times.append(time.perf_counter() - t0)
        per_severity.append(statistics.median(times))
    return sum(per_severity) / len(per_severity)


def time_ours(image, names, repeats, progress=True):
    """({name: mean over severities of the median seconds per image},
    seconds of the frost cache built first: photos or textures)."""
    setup_s = build_frost_cache()
    result = {}
    for name in progress_lib.bar(names, desc="ours", progress=progress):
        result[name] = time_corruption(image, name, repeats)
    return result, setup_s


def _check_interpreter(python):
    """Refuses a `python` that is not an executable file (before: "[Errno
    2] No such file or directory" after our timings, or a PermissionError
    traceback)."""
    found = shutil.which(python)
    if not found:
        raise OptionError(
            "python",
            "{field}={path} is not an executable file: pass the python of a "
            "virtual environment that has imagecorruptions "
            "(<venv>/bin/python).",
            path=python,
        )


def _run_imagecorruptions(image, names, repeats, python, single_thread):
    """The finished subprocess timing imagecorruptions in `python`."""
    import numpy as np

    env = dict(os.environ)
    if single_thread:
        env.update(dict.fromkeys(THREAD_VARS, "1"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.npy")
        np.save(path, image)
        script = [python, "-c", _IMAGECORRUPTIONS_SCRIPT, path]
        return subprocess.run(
            [*script, ",".join(names), str(repeats)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )


def time_imagecorruptions(image, names, repeats, python, single_thread):
    """Times imagecorruptions in `python`: {name: seconds or None,
    "version": its version, "errors": {name: why it failed}}.

    Raises:
        OptionError: `python` could not import or run it (named).
    """
    proc = _run_imagecorruptions(image, names, repeats, python, single_thread)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise OptionError(
            "compare_imagecorruptions",
            "{field}: {interpreter} could not time imagecorruptions "
            "({tail}). Install it in a separate venv (pip install "
            "imagecorruptions) and pass {python}=<that venv>/bin/python.",
            ["python"],
            interpreter=python,
            tail=" | ".join(tail),
        )
    return json.loads(lines[-1][len("RESULT ") :])


def markdown_table(names, ours, theirs=None):
    """The results as a markdown table with a 19 x 5 total row."""
    head = "| corruption | ours ms/img |"
    rule = "|---|---:|"
    if theirs is not None:
        head += " imagecorruptions ms/img | speed-up |"
        rule += "---:|---:|"
    lines = [head, rule]
    total_ours, total_theirs, both, timed = 0.0, 0.0, 0.0, 0
    for name in names:
        row = f"| {name} | {1000 * ours[name]:.1f} |"
        total_ours += 5 * ours[name]
        if theirs is not None:
            other = theirs.get(name)
            if other is None:
                row += " n/a | |"
            else:
                total_theirs += 5 * other
                both += 5 * ours[name]
                timed += 1
                row += f" {1000 * other:.1f} | {other / ours[name]:.1f}x |"
        lines.append(row)
    # Three significant digits (before: "0.00 s" for small images).
    total = f"| **total, {len(names)} x 5** | **{total_ours:.3g} s** |"
    if theirs is not None:
        # The speed-up over the corruptions both timed (before: none; the
        # two totals also add up different sets where one is n/a).
        speedup = f"{total_theirs / both:.1f}x" if both else ""
        if speedup and timed < len(names):
            speedup += f" (the {timed} both timed)"
        total += f" **{total_theirs:.3g} s** | {speedup} |"
    lines.append(total)
    return "\n".join(lines)


def run_benchmark(options):
    """Times the corruptions of `options` (and imagecorruptions').

    Args:
        options: a `CorruptionBenchmarkOptions`.

    Returns:
        {"image_size", "resize", "repeats", "single_thread", "ours_s"
        ({name: seconds per image}),
        "ours_total_s" (all of them at 5 severities), "frost_cache_s",
        "imagecorruptions_s" (`time_imagecorruptions`' dict, or None),
        "corruptions" (the names timed, as given)}.

    Raises:
        OptionError: an unknown corruption, `resize` below `image_size`,
            or an interpreter that cannot time imagecorruptions (named).
    """
    if options.single_thread:
        limit_threads()  # before numpy / OpenCV spin up their pools
    from assemble_tf.robustness import corruptions

    names = check_names(options.corruptions, corruptions.CORRUPTIONS)
    if options.python and not options.compare_imagecorruptions:
        # Before: ignored without a word.
        raise OptionError(
            "python",
            "{field} names the interpreter that times imagecorruptions: "
            "pass {compare_imagecorruptions} too, or leave {field} out.",
            ["compare_imagecorruptions"],
        )
    if options.python:
        _check_interpreter(options.python)  # before our timings
    image = astronaut_crop(options.image_size, options.resize)
    ours, setup_s = time_ours(image, names, options.repeats, options.progress)
    theirs = None
    if options.compare_imagecorruptions:
        theirs = time_imagecorruptions(
            image,
            names,
            options.compare_repeats,
            options.python or sys.executable,
            options.single_thread,
        )
    return {
        "image_size": options.image_size,
        # The setting, so that a JSON line read later says what it timed
        # (before: the size alone).
        "resize": options.resize,
        "repeats": options.repeats,
        "single_thread": options.single_thread,
        "ours_s": ours,
        "ours_total_s": 5 * sum(ours.values()),
        "frost_cache_s": setup_s,
        "imagecorruptions_s": theirs,
        "corruptions": list(names),
    }


def console_line(report):
    """The one-line JSON summary of a binary: `JSON_KEYS` of `report`."""
    return {key: report[key] for key in JSON_KEYS}


def format_text(report, options):
    """`run_benchmark`'s report as the markdown table and the lines that
    describe the setting (and imagecorruptions' version and failures)."""
    theirs = report["imagecorruptions_s"]
    size = report["image_size"]
    lines = [
        markdown_table(report["corruptions"], report["ours_s"], theirs),
        f"\nImage {size}x{size} (astronaut), median of {options.repeats} "
        "per severity, mean of 5 severities"
        f"{', one thread' if options.single_thread else ''}. One-time "
        f"{frost_cache_name()}: {report['frost_cache_s']:.2f} s per process.",
    ]
    if theirs is not None:
        lines.append(f"imagecorruptions version {theirs.get('version')}.")
        for name, error in (theirs.get("errors") or {}).items():
            lines.append(f"imagecorruptions {name} failed: {error}")
    return "\n".join(lines)
