"""Times the 19 ImageNet-C corruptions per image, ours vs `imagecorruptions`.

    python -m tools.benchmark_corruptions
    python -m tools.benchmark_corruptions --compare_imagecorruptions \
        --python=/tmp/icvenv/bin/python

The test image is a real photo (skimage.data.astronaut, 512 px) brought to
224 px with the ImageNet-C preprocessing (shorter side 256, centre crop 224;
`--image_size` and `--resize` change it). For every corruption, each of the
5 severities is timed `--repeats` times (median), and the per-image seconds
are averaged over the severities (the ImageNet-C generator corrupts every
image at all 5). Prints a markdown table and the total for 19 x 5
corruptions of one image. By default every library runs on one thread
(OMP / BLAS / OpenCV) so the figure is per core.

`--compare_imagecorruptions` times bethgelab/imagecorruptions (Michaelis et
al. 2019, `pip install imagecorruptions`; not a project dependency) on the
same image in a subprocess: `--python` names an interpreter that can import
it (default: this one). Its glass blur is a pure-Python loop and takes
seconds per image. Hendrycks & Dietterich (ICLR 2019) define the
corruptions; `assemble_tf.robustness.corruptions` implements them.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import flags

from official.utils.flags import core as flags_core

flags.DEFINE_integer("image_size", 224, "Crop side.", lower_bound=32)
flags.DEFINE_integer(
    "resize", 256, "Shorter side before the centre crop.", lower_bound=32
)
flags.DEFINE_integer(
    "repeats", 3, "Timed calls per severity (median).", lower_bound=1
)
flags.DEFINE_string(
    "corruptions", None, "Comma-separated subset (default: all 19)."
)
flags.DEFINE_bool(
    "single_thread", True, "Limit numpy/BLAS/OpenCV to one thread."
)
flags.DEFINE_bool(
    "compare_imagecorruptions",
    False,
    "Also time the imagecorruptions package (in a subprocess).",
)
flags.DEFINE_string(
    "python",
    None,
    flags_core.help_wrap(
        "Interpreter that can import imagecorruptions, e.g. "
        "/tmp/icvenv/bin/python (default: this interpreter)."
    ),
)
flags.DEFINE_integer(
    "compare_repeats",
    1,
    "Timed calls per severity for imagecorruptions.",
    lower_bound=1,
)
flags.DEFINE_bool("json", False, "Print one JSON line instead of a table.")
FLAGS = flags.FLAGS

_THREAD_VARS = (
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


def parse_names(text, valid):
    """The --corruptions subset (all when empty); errors list valid names."""
    if not text:
        return tuple(valid)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in valid]
    if bad:
        raise ValueError(
            f"--corruptions: unknown {', '.join(bad)}. Valid: "
            f"{', '.join(valid)}."
        )
    return names


def test_image(image_size, resize):
    """astronaut, resized and centre-cropped like ImageNet-C inputs."""
    import skimage.data

    from assemble_tf.robustness import corruptions

    if resize < image_size:
        raise ValueError(
            f"--resize={resize} must be >= --image_size={image_size}."
        )
    return corruptions.resize_center_crop(
        skimage.data.astronaut(), resize, image_size
    )


def time_ours(image, names, repeats, progress=True):
    """{name: mean over severities of the median seconds per image}."""
    import statistics
    import time

    from tqdm import tqdm

    from assemble_tf.robustness import corruptions, filters

    start = time.perf_counter()
    rng = __import__("numpy").random.default_rng(0)
    for index in filters.FROST_INDICES:  # the per-process texture cache
        filters.frost_texture(8, 8, rng, index)
    setup_s = time.perf_counter() - start
    result = {}
    for name in tqdm(names, desc="ours", disable=not progress):
        corruptions.corrupt(image, name, 1)  # warm-up
        per_severity = []
        for severity in corruptions.SEVERITIES:
            times = []
            for repeat in range(repeats):
                t0 = time.perf_counter()
                corruptions.corrupt(image, name, severity, seed=repeat)
                times.append(time.perf_counter() - t0)
            per_severity.append(statistics.median(times))
        result[name] = sum(per_severity) / len(per_severity)
    return result, setup_s


def time_imagecorruptions(image, names, repeats, python, single_thread):
    """Times imagecorruptions in `python`; {name: seconds or None}."""
    import numpy as np

    env = dict(os.environ)
    if single_thread:
        env.update(dict.fromkeys(_THREAD_VARS, "1"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.npy")
        np.save(path, image)
        proc = subprocess.run(
            [
                python,
                "-c",
                _IMAGECORRUPTIONS_SCRIPT,
                path,
                ",".join(names),
                str(repeats),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ValueError(
            f"--compare_imagecorruptions: {python} could not time "
            f"imagecorruptions ({' | '.join(tail)}). Install it in a "
            "separate venv (pip install imagecorruptions) and pass "
            "--python=<that venv>/bin/python."
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
    total_ours, total_theirs = 0.0, 0.0
    for name in names:
        row = f"| {name} | {1000 * ours[name]:.1f} |"
        total_ours += 5 * ours[name]
        if theirs is not None:
            other = theirs.get(name)
            if other is None:
                row += " n/a | |"
            else:
                total_theirs += 5 * other
                row += f" {1000 * other:.1f} | {other / ours[name]:.1f}x |"
        lines.append(row)
    total = f"| **total, {len(names)} x 5** | **{total_ours:.2f} s** |"
    if theirs is not None:
        total += f" **{total_theirs:.2f} s** | |"
    lines.append(total)
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.single_thread:
        # Before numpy / OpenCV spin up their pools.
        for var in _THREAD_VARS:
            os.environ[var] = "1"
    import cv2

    from assemble_tf.robustness import corruptions

    if FLAGS.single_thread:
        cv2.setNumThreads(1)
    names = parse_names(FLAGS.corruptions, corruptions.CORRUPTIONS)
    image = test_image(FLAGS.image_size, FLAGS.resize)
    ours, setup_s = time_ours(image, names, FLAGS.repeats, not FLAGS.json)
    theirs = None
    if FLAGS.compare_imagecorruptions:
        theirs = time_imagecorruptions(
            image,
            names,
            FLAGS.compare_repeats,
            FLAGS.python or sys.executable,
            FLAGS.single_thread,
        )
    if FLAGS.json:
        print(
            json.dumps(
                {
                    "image_size": FLAGS.image_size,
                    "ours_s": ours,
                    "ours_total_s": 5 * sum(ours.values()),
                    "frost_cache_s": setup_s,
                    "imagecorruptions_s": theirs,
                }
            )
        )
        return
    print(markdown_table(names, ours, theirs))
    print(
        f"\nImage {FLAGS.image_size}x{FLAGS.image_size} (astronaut), "
        f"median of {FLAGS.repeats} per severity, mean of 5 severities"
        f"{', one thread' if FLAGS.single_thread else ''}. One-time "
        f"synthetic frost texture build: {setup_s:.2f} s per process."
    )
    if theirs is not None:
        print(f"imagecorruptions version {theirs.get('version')}.")
        for name, error in (theirs.get("errors") or {}).items():
            print(f"imagecorruptions {name} failed: {error}")


if __name__ == "__main__":
    flags_core.run(main)
