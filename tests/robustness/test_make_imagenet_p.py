"""mp4 I/O and the `make_imagenet_p` binary on tiny folders and TFRecords."""

import contextlib
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from assemble_tf.robustness import generate_p as tool
from assemble_tf.robustness import inputs, video
from assemble_tf.robustness import perturbations as P
from official.utils.misc import jobs
from tests import testing_utils
from tests.testing_utils import jpeg_bytes, smooth_image, write_records

WNIDS = ("n01440764", "n01443537")
FILES = ("ILSVRC2012_val_00000293.JPEG", "ILSVRC2012_val_00002138.JPEG")


def picture(seed):
    """A 40 x 48 photo-like image: smooth colours plus a few edges."""
    image = smooth_image(40, 48, seed=seed).astype(int)
    image[10:30, 12:20] = 255 - image[10:30, 12:20]
    return np.clip(image, 0, 255).astype(np.uint8)


def make_folder(root):
    """2 wnids x 2 JPEGs; returns {(wnid, file): jpeg bytes}."""
    images = {}
    for w, wnid in enumerate(WNIDS):
        os.makedirs(os.path.join(root, wnid))
        for f, name in enumerate(FILES):
            data = jpeg_bytes(picture(10 * w + f))
            with open(os.path.join(root, wnid, name), "wb") as out:
                out.write(data)
            images[(wnid, name)] = data
    return images


@contextlib.contextmanager
def raises_as_flag(kind, match):
    """`pytest.raises` matching the message the binary prints (an
    `OptionError`'s `as_flag()`, options written as --flags; other errors'
    text)."""
    with pytest.raises(kind) as info:
        yield info
    error = info.value
    text = error.as_flag() if hasattr(error, "as_flag") else str(error)
    assert re.search(match, text), text


def options(tmp_path, out="out", **kwargs):
    """Options of a tiny run (the default codec, x264, unless given)."""
    settings = dict(
        output_dir=str(tmp_path / out),
        input_dir=str(tmp_path / "val"),
        resize=36,
        crop=32,
        perturbations="translate,gaussian_noise",
        progress=False,
    )
    settings.update(kwargs)
    return tool.Options(**settings)


def tree(root):
    return sorted(
        os.path.relpath(p, root)
        for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
        if os.path.isfile(p)
    )


def crop_errors(frame, data):
    """Mean |frame - crop| of the PIL bilinear 40x48 -> 36x43 resize for
    every crop offset; the specified one is (2, 5)."""
    image = tool.load_image(data=data)
    resized = np.asarray(image.resize((43, 36), Image.Resampling.BILINEAR))
    errors = np.full((5, 12), np.inf)
    for top in range(5):
        for left in range(12):
            crop = resized[top : top + 32, left : left + 32].astype(int)
            errors[top, left] = np.abs(frame.astype(int) - crop).mean()
    return errors


def photo(name):
    """A scikit-image photo (bundled, no download), shorter side 256 as the
    generator resizes."""
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    return np.asarray(inputs.resize_shorter_side(image, 256))


def mean_abs_error(a, b):
    return np.abs(a.astype(int) - b.astype(int)).mean()


def change(frames):
    """Mean |frame t+1 - frame t|: what flip rates respond to."""
    return np.abs(np.diff(frames.astype(int), axis=0)).mean()


def x264_settings(path):
    """The options text libx264 writes into its stream (an SEI message)."""
    with open(path, "rb") as f:
        data = f.read()
    start = data.find(b"x264 - core")
    assert start >= 0, f"{path} holds no libx264 settings"
    return data[start : data.index(b"\0", start)].decode()


# --------------------------------------------------------------------------
# Video files.


def test_mp4v_round_trip_is_exact_in_count_and_close_in_pixels(tmp_path):
    base = smooth_image(64, 64, seed=3).astype(int)
    frames = np.stack([np.clip(base + k - 15, 0, 255) for k in range(31)])
    frames = frames.astype(np.uint8)
    path = str(tmp_path / "clip.mp4")
    assert video.write_video(path, frames, codec="mp4v") == path
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no temp file left
    back = video.read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    error = np.abs(back.astype(int) - frames).mean(axis=(1, 2, 3))
    assert error.max() < 3.0  # mp4v is lossy
    # RGB order survives (a BGR swap would cost ~40 grey levels here).
    red = np.zeros((3, 16, 16, 3), np.uint8)
    red[..., 0] = 200
    video.write_video(path, red, codec="mp4v")
    np.testing.assert_allclose(
        video.read_video(path).mean(axis=(0, 1, 2)), [200, 0, 0], atol=6
    )


def test_video_errors_name_the_problem(tmp_path, monkeypatch):
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="must be even.*or use codec x264"):
        video.write_video(str(tmp_path / "a.mp4"), frames[:, :15], codec="mp4v")
    with pytest.raises(ValueError, match="uint8"):
        video.write_video(str(tmp_path / "a.mp4"), frames.astype(float))
    missing_dir = str(tmp_path / "nowhere" / "a.mp4")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        video.write_video(missing_dir, frames)
    monkeypatch.setattr(video, "FOURCC", "zzzz")
    with pytest.raises(ValueError, match="could not open a zzzz"):
        video.write_video(str(tmp_path / "a.mp4"), frames, codec="mp4v")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []  # nothing half-written
    with pytest.raises(FileNotFoundError, match="gone.mp4 does not exist"):
        video.read_video(str(tmp_path / "gone.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.mp4"):
        video.read_video(str(junk))


@pytest.mark.slow  # runs ffmpeg
def test_x264_round_trip_of_photos_is_closer_than_mp4v(tmp_path):
    for name, perturbation in (("astronaut", "brightness"), ("coffee", "snow")):
        frames = P.sequence(photo(name), perturbation, 0, crop_size=224)
        errors, changes = {}, {}
        for codec in video.CODECS:
            path = str(tmp_path / f"{name}_{codec}.mp4")
            assert video.write_video(path, frames, codec=codec) == path
            back = video.read_video(path)
            assert back.shape == frames.shape == (31, 224, 224, 3)
            assert back.dtype == np.uint8
            errors[codec] = mean_abs_error(back, frames)
            changes[codec] = abs(change(back) - change(frames))
        # The release's encoder: about 1.2 grey levels; mp4v 3.5-4.3.
        assert errors["x264"] <= 4.5, errors
        assert errors["x264"] < errors["mp4v"], errors
        # mp4v adds frame-to-frame change of its own (snow: 1.35 -> 2.3).
        assert changes["x264"] < changes["mp4v"], changes
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


@pytest.mark.slow  # runs ffmpeg
def test_noise_sequences_use_tune_grain_as_the_release(tmp_path):
    common = ("-vcodec", "libx264", "-pix_fmt", "yuv444p")
    common += ("-preset", "veryslow", "-threads", "1")
    assert video.x264_arguments() == common + ("-crf", "20")
    assert video.x264_arguments(noise=True) == common + ("-tune", "grain")
    frames = P.sequence(photo("chelsea"), "gaussian_noise", 0, crop_size=224)
    frames = frames[:11]
    grain, plain = str(tmp_path / "grain.mp4"), str(tmp_path / "plain.mp4")
    video.write_video(grain, frames, noise=True)
    video.write_video(plain, frames)
    # libx264 records its settings in the stream: -tune grain keeps the
    # default CRF 23 and sets its deadzones, psy-trellis and qcomp.
    settings = x264_settings(grain)
    assert "crf=23.0" in settings and "crf=20.0" not in settings
    for option in ("deadzone=6,6", "psy_rd=1.00:0.25", "qcomp=0.80"):
        assert option in settings, settings
    settings = x264_settings(plain)
    assert "crf=20.0" in settings and "deadzone=21,11" in settings
    for path in (grain, plain):  # -preset veryslow
        assert "ref=16" in x264_settings(path)
        assert "subme=10" in x264_settings(path)
    # Grain keeps most of the noise; mp4v smooths about half of it away.
    mp4v = str(tmp_path / "mp4v.mp4")
    video.write_video(mp4v, frames, codec="mp4v")
    back, smoothed = video.read_video(grain), video.read_video(mp4v)
    assert change(back) > 0.7 * change(frames)
    assert change(smoothed) < change(back)
    assert mean_abs_error(back, frames) < mean_abs_error(smoothed, frames)


@pytest.mark.slow  # runs ffmpeg
def test_x264_is_yuv444p_any_size_and_its_errors_quote_ffmpeg(
    tmp_path, monkeypatch
):
    frames = P.sequence(photo("rocket"), "rotate", 0, crop_size=224)[:4]
    frames = frames[:, :33, :35]  # odd sides: 4:4:4 needs no even size
    path = str(tmp_path / "odd.mp4")
    video.write_video(path, frames)
    back = video.read_video(path)
    assert back.shape == (4, 33, 35, 3)
    assert mean_abs_error(back, frames) <= 4.5
    with open(path, "rb") as f:
        data = f.read()
    # avcC: version 1, then the profile: 244 = High 4:4:4 Predictive.
    assert data[data.index(b"avcC") + 4 : data.index(b"avcC") + 6] == (
        bytes([1, 244])
    )
    even = frames[:, :32, :32]
    video.write_video(str(tmp_path / "even.mp4"), even, codec="mp4v")
    described = {
        name: subprocess.run(
            [video.ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / name)],
            capture_output=True,
            text=True,
        ).stderr
        for name in ("odd.mp4", "even.mp4")
    }
    assert "h264 (High 4:4:4 Predictive)" in described["odd.mp4"]
    assert "yuv444p" in described["odd.mp4"]
    assert "mpeg4" in described["even.mp4"]
    assert "yuv420p" in described["even.mp4"]
    # A failing ffmpeg: its message is in the error; nothing is left.
    monkeypatch.setattr(
        video, "x264_arguments", lambda noise=False: ("-vcodec", "nope264")
    )
    with pytest.raises(ValueError, match="ffmpeg .libx264. failed.*nope264"):
        video.write_video(str(tmp_path / "bad.mp4"), frames)
    assert sorted(os.listdir(tmp_path)) == ["even.mp4", "odd.mp4"]


def test_codec_choices_and_a_missing_imageio_ffmpeg_are_explained(
    tmp_path, monkeypatch
):
    assert video.CODECS == ("x264", "mp4v") and video.DEFAULT_CODEC == "x264"
    assert tool.Options(output_dir="out").codec == "x264"
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    target = str(tmp_path / "a.mp4")
    with pytest.raises(
        ValueError,
        match="codec 'h265' is not supported; choose one of x264, mp4v",
    ):
        video.write_video(target, frames, codec="h265")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # not installed
    assert issubclass(video.EncoderUnavailableError, ValueError)
    with pytest.raises(
        video.EncoderUnavailableError,
        match=r"pip install imageio-ffmpeg==0\.8\.1.*set `codec` to mp4v",
    ):
        video.write_video(target, frames)
    make_folder(str(tmp_path / "val"))
    with pytest.raises(video.EncoderUnavailableError, match="imageio-ffmpeg"):
        tool.generate(options(tmp_path))
    assert not (tmp_path / "out").exists()
    # The fallback needs no ffmpeg binary.
    video.write_video(target, frames, codec="mp4v")
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "val"]


# --------------------------------------------------------------------------
# The binary.


@pytest.mark.slow  # spawns worker processes
def test_folder_input_tree_frames_workers_and_resume(tmp_path):
    images = make_folder(str(tmp_path / "val"))
    serial = tool.generate(options(tmp_path, "serial", workers=1))
    parallel = tool.generate(options(tmp_path, "parallel", workers=2))
    videos = [
        f"{p}/{w}/{os.path.splitext(f)[0]}.mp4"
        for p in ("gaussian_noise", "translate")
        for w in WNIDS
        for f in FILES
    ]
    expected_tree = sorted(["options.json", "summary.json"] + videos)
    assert tree(tmp_path / "serial") == expected_tree
    # Another input into the folder: refused, naming both (before: also a
    # warning that its outputs would be kept, which the refusal belied).
    other = options(tmp_path, "serial", input_dir=str(tmp_path / "x"))
    assert not [w for w in other.warnings() if "made from" in str(w)]
    with pytest.raises(jobs.OutputMismatchError) as error:
        tool.prepare_output(other)
    assert (
        f"(input: existing --input_dir={tmp_path / 'val'}, now "
        f"--input_dir={tmp_path / 'x'})"
    ) in error.value.as_flag(), error.value.as_flag()
    assert tree(tmp_path / "parallel") == expected_tree
    for summary in (serial, parallel):
        assert summary["images_processed"] == 4 and summary["complete"]
        assert summary["perturbations"] == {
            "translate": {"frames": 41, "written": 4, "kept": 0, "videos": 4},
            "gaussian_noise": {
                "frames": 31,
                "written": 4,
                "kept": 0,
                "videos": 4,
            },
        }
    for rel in videos:
        frames = video.read_video(str(tmp_path / "serial" / rel))
        n = 41 if rel.startswith("translate") else 31
        assert frames.shape == (n, 32, 32, 3)
        # Same seed per file name whatever the worker count.
        np.testing.assert_array_equal(
            frames, video.read_video(str(tmp_path / "parallel" / rel))
        )
    # Resize 36 and crop 32 as specified: the clean frames match.
    data = images[(WNIDS[1], FILES[0])]
    stem = f"{WNIDS[1]}/{os.path.splitext(FILES[0])[0]}.mp4"
    noise = video.read_video(str(tmp_path / "serial/gaussian_noise" / stem))
    shift = video.read_video(str(tmp_path / "serial/translate" / stem))
    for clean in (noise[0], shift[20]):  # frame 1; shift 0
        errors = crop_errors(clean, data)
        assert np.unravel_index(errors.argmin(), errors.shape) == (2, 5)
        assert errors[2, 5] < 3  # x264 on a 32 px frame: ~1.5 (mp4v ~4.3)
    # Noise of std 0.03 * 255 = 7.7; -tune grain keeps most (~6.5; mp4v
    # ~5.7).
    assert 5.5 < (noise[1:].astype(int) - noise[0]).std() < 9
    recorded = json.loads((tmp_path / "serial" / "options.json").read_text())
    assert recorded["codec"] == "x264"
    assert recorded["codec_settings"]["noise"] == " ".join(
        video.x264_arguments(noise=True)
    )
    assert recorded["codec_settings"]["other"].endswith("-crf 20")
    # The generator tunes the noise videos for grain (CRF 23), as released.
    assert "crf=23.0" in x264_settings(
        str(tmp_path / "serial/gaussian_noise" / stem)
    )
    assert "crf=20.0" in x264_settings(
        str(tmp_path / "serial/translate" / stem)
    )
    # The two images of a class get different noise.
    other = video.read_video(
        str(
            tmp_path
            / "serial/gaussian_noise"
            / stem.replace("00000293", "00002138")
        )
    )
    assert not np.array_equal(noise[1:] - noise[0], other[1:] - other[0])
    # A rerun skips every video.
    mtime = os.path.getmtime(tmp_path / "serial" / videos[0])
    again = tool.generate(options(tmp_path, "serial"))
    assert again["images_processed"] == 0
    assert {p["kept"] for p in again["perturbations"].values()} == {4}
    assert {p["written"] for p in again["perturbations"].values()} == {0}
    assert os.path.getmtime(tmp_path / "serial" / videos[0]) == mtime
    saved = json.loads((tmp_path / "serial" / "summary.json").read_text())
    assert saved["perturbations"]["translate"]["kept"] == 4


def test_changed_options_are_refused_other_perturbations_added(tmp_path):
    make_folder(str(tmp_path / "val"))

    def mp4v(**kwargs):  # the fallback: no ffmpeg process in this test
        return options(tmp_path, codec="mp4v", **kwargs)

    tool.generate(mp4v(perturbations="brightness", limit=1))
    recorded = json.loads((tmp_path / "out" / "options.json").read_text())
    assert recorded["format_version"] == 5 and "fourcc" not in recorded
    assert recorded["crop_rounding"] == "floor"  # auto, crop != 224
    assert recorded["codec"] == "mp4v"
    assert recorded["codec_settings"] == {
        "encoder": "OpenCV fourcc mp4v",
        "note": "fallback: MPEG-4 Part 2, 4:2:0, less faithful than x264",
    }
    with raises_as_flag(FileExistsError, match="--codec: existing mp4v, now"):
        tool.generate(options(tmp_path, perturbations="brightness"))
    with raises_as_flag(FileExistsError, match="--crop: existing 32, now 30"):
        tool.generate(mp4v(crop=30, perturbations="brightness"))
    with raises_as_flag(FileExistsError, match="--seed: existing 0, now 5"):
        tool.generate(mp4v(seed=5, perturbations="brightness"))
    os.makedirs(tmp_path / "val2" / WNIDS[0])
    (tmp_path / "val2" / WNIDS[0] / FILES[0]).write_bytes(
        jpeg_bytes(picture(0))
    )
    with raises_as_flag(FileExistsError, match="input: existing --input_dir"):
        tool.generate(mp4v(input_dir=str(tmp_path / "val2")))
    # An ImageNet-C set's folder is named as make_imagenet_c's (before:
    # "made with other options", listing options P never had).
    from assemble_tf.robustness import generate_c

    c_set = str(tmp_path / "c_set")
    generate_c.generate(
        generate_c.Options(
            output_dir=c_set,
            input_dir=str(tmp_path / "val2"),
            resize=36,
            crop=32,
            corruptions="fog",
            severities="1",
            progress=False,
        )
    )
    with raises_as_flag(
        FileExistsError,
        match=re.escape(
            f"--output_dir={c_set} holds the outputs of another job, python "
            "-m tools.make_imagenet_c (its options.json says so); choose "
            "another --output_dir for videos."
        ),
    ):
        tool.generate(mp4v(output_dir=c_set, perturbations="brightness"))
    # Another perturbation, a limit and a stale temp file are fine.
    stale = tmp_path / "out" / "brightness" / WNIDS[0] / ".x.mp4.9.tmp.mp4"
    stale.write_bytes(b"partial")
    summary = tool.generate(mp4v(perturbations="brightness,scale", limit=2))
    assert not stale.exists() and summary["stale_temp_files_removed"] == 1
    assert summary["perturbations"]["brightness"]["kept"] == 1
    assert summary["perturbations"]["brightness"]["written"] == 1
    assert summary["perturbations"]["scale"]["written"] == 2
    assert summary["images_selected"] == 2 and summary["images_found"] == 4


@pytest.mark.slow  # runs ffmpeg (x264)
def test_tfrecord_input_gives_the_folder_videos(tmp_path):
    from assemble_tf.data import schema

    images = make_folder(str(tmp_path / "val"))
    items = sorted(images.items())
    for shard, part in enumerate((items[:3], items[3:])):
        write_records(
            tmp_path / f"validation-{shard:05d}-of-00002",
            [
                schema.make_example(data, 1, 40, 48, filename=name, synset=wnid)
                for (wnid, name), data in part
            ],
        )
    common = dict(perturbations="gaussian_noise", difficulty=2)
    from_records = tool.generate(
        options(
            tmp_path,
            "records",
            input_dir=None,
            tfrecord_pattern=str(tmp_path / "validation-*"),
            **common,
        )
    )
    tool.generate(options(tmp_path, "folder", **common))
    assert from_records["images_found"] == 4 and from_records["complete"]
    assert list(from_records["perturbations"]) == ["gaussian_noise_2"]
    expected = sorted(
        f"gaussian_noise_2/{w}/{os.path.splitext(f)[0]}.mp4"
        for w in WNIDS
        for f in FILES
    )
    assert [p for p in tree(tmp_path / "records") if p.endswith(".mp4")] == (
        expected
    )
    for rel in expected:
        a = video.read_video(str(tmp_path / "records" / rel))
        b = video.read_video(str(tmp_path / "folder" / rel))
        np.testing.assert_array_equal(a, b)
    # Difficulty 2 is sigma 0.05 (0.05 * 255 = 12.75 before the lossy
    # codec; x264 with -tune grain keeps ~12.1, mp4v ~8.8).
    spread = (a[1:].astype(float) - a[0]).std()
    assert 10 < spread < 14


def test_unreadable_images_are_listed_not_fatal(tmp_path):
    make_folder(str(tmp_path / "val"))
    (tmp_path / "val" / WNIDS[0] / "broken.JPEG").write_bytes(b"\xff\xd8 no")
    summary = tool.generate(
        options(tmp_path, perturbations="rotate", codec="mp4v")
    )
    assert summary["unreadable"][0]["file"] == f"{WNIDS[0]}/broken.JPEG"
    assert summary["perturbations"]["rotate"]["written"] == 4
    assert not summary["complete"]
    assert "unreadable n01440764/broken.JPEG" in tool.format_summary(summary)
    # Every input unreadable: an error after the summary, as make_imagenet_c
    # (before: "0 images processed", exit code 0).
    only = tmp_path / "only" / WNIDS[0]
    only.mkdir(parents=True)
    (only / "broken.JPEG").write_bytes(b"\xff\xd8 no")
    with pytest.raises(
        jobs.NothingWrittenError,
        match=r"^No video was written: all 1 inputs failed \(first: "
        f"{WNIDS[0]}/broken.JPEG: ",
    ):
        tool.generate(
            options(
                tmp_path,
                "none",
                input_dir=str(tmp_path / "only"),
                perturbations="rotate",
                codec="mp4v",
            )
        )
    assert (tmp_path / "none" / "summary.json").is_file()


def test_bad_options_are_refused_clearly(tmp_path):
    make_folder(str(tmp_path / "val"))
    cases = [
        (dict(tfrecord_pattern="x*"), "exactly one of --input_dir"),
        (dict(crop=31, codec="mp4v"), "--crop=31: .* even with --codec=mp4v"),
        (dict(crop=1), "--crop=1: the crop side must be >= 2"),
        (dict(codec="h265"), "codec 'h265' is not supported; choose one of"),
        (dict(resize=30), "--resize=30 is smaller than --crop=32"),
        (dict(perturbations="rotate,fog"), "unknown fog. Valid: gaussian"),
        (dict(perturbations="rotate", difficulty=2), "none is in"),
        (dict(set="train", perturbations=None), "--set must be one of"),
        (
            dict(set="validation", perturbations="rotate"),
            "^--set=validation chooses the perturbations only when "
            "--perturbations does not name them; give one of the two.$",
        ),
        (dict(input_dir=str(tmp_path / "nope")), "is not a directory"),
    ]
    for kwargs, message in cases:
        with raises_as_flag((ValueError, FileNotFoundError), match=message):
            tool.generate(options(tmp_path, **kwargs))
    # Two files that would share one video name.
    twin = tmp_path / "val" / WNIDS[0] / "ILSVRC2012_val_00000293.png"
    twin.write_bytes(b"")
    with pytest.raises(ValueError, match="would both be written"):
        tool.generate(options(tmp_path))
    assert tool.image_seed(0, "n1", "a.JPEG") == tool.image_seed(
        0, "n1", "a.JPEG"
    )
    assert (
        len(
            {
                tool.image_seed(0, "n1", "a.JPEG"),
                tool.image_seed(1, "n1", "a.JPEG"),
                tool.image_seed(0, "n1", "b.JPEG"),
                tool.image_seed(0, "n2", "a.JPEG"),
            }
        )
        == 4
    )


@pytest.mark.slow
def test_binary_end_to_end_and_clean_errors(tmp_path):
    make_folder(str(tmp_path / "val"))

    def run(*flags):
        return testing_utils.run_binary(
            "tools.make_imagenet_p", *flags, timeout=300
        )

    common = [
        f"--input_dir={tmp_path / 'val'}",
        f"--output_dir={tmp_path / 'out'}",
        "--resize=36",
        "--crop=32",
        "--noprogress",
    ]
    result = run(*common, "--perturbations=tilt,shot_noise", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["perturbations"]["tilt"]["written"] == 4
    assert summary["perturbations"]["shot_noise"]["frames"] == 31
    assert "tilt: 4 videos of 31 frames (4 written" in result.stdout
    assert video.read_video(
        str(tmp_path / "out/tilt" / WNIDS[0] / "ILSVRC2012_val_00000293.mp4")
    ).shape == (31, 32, 32, 3)
    # tools.eval_robustness' command for missing perturbations: the set's
    # own input and options, which the generator takes for this folder.
    from assemble_tf.robustness import evaluation

    command = evaluation.regenerate_command(
        str(tmp_path / "out"),
        "tools.make_imagenet_p",
        "perturbations",
        ["tilt"],
    )
    assert command == (
        f"python -m tools.make_imagenet_p --input_dir={tmp_path / 'val'} "
        f"--output_dir={tmp_path / 'out'} --resize=36 --crop=32 "
        "--crop_rounding=floor --seed=0 --codec=x264 --perturbations=tilt"
    )
    again = testing_utils.run_main(*command.split()[2:], "--noprogress")
    assert again.returncode == 0, again.stderr
    assert "tilt: 4 videos of 31 frames (0 written" in again.stdout
    refused = run(*common, "--crop=30", "--perturbations=tilt")
    assert refused.returncode == 2
    assert "ERROR: --output_dir=" in refused.stderr
    assert "--crop: existing 32, now 30" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = run(*common, "--perturbations=fog")
    assert bad.returncode == 2 and "unknown fog" in bad.stderr
    fallback = run(*common, "--perturbations=tilt", "--codec=mp4v")
    assert fallback.returncode == 2
    assert "--codec: existing x264, now mp4v" in fallback.stderr
    unknown = run(*common, "--codec=h265")
    assert unknown.returncode != 0 and "x264|mp4v" in unknown.stderr


@pytest.mark.slow  # runs the binary
def test_help_keeps_the_example_lines_and_whole_sentences():
    """Issue 24 item 11. Before: the module docstring was not raw, so each
    `\\` joined its example line with the next (runs of spaces), and the
    flag help pre-wrapped by `help_wrap` was wrapped again by absl, breaking
    lines mid-sentence ("(-crf" / "20, or -tune grain for" / "the noise")."""
    result = testing_utils.run_binary("tools.make_imagenet_p", "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in (
        "    python -m tools.make_imagenet_p --input_dir=/data/imagenet/val \\",
        "        --output_dir=/data/imagenet-p --workers=16",
        "        --tfrecord_pattern='/data/imagenet_tfrecords/validation-*' \\",
    ):
        assert line in lines
    # Each flag's help is one paragraph: every line but its last is full.
    paragraphs = []
    for line in lines:
        if line.startswith("  --"):
            paragraphs.append([line])
        elif line.startswith("    ") and paragraphs and line.strip()[:1] != "(":
            paragraphs[-1].append(line)
    assert len(paragraphs) >= 15
    for paragraph in paragraphs:
        for line in paragraph[:-1]:
            assert len(line) > 60, paragraph


def test_a_crop_other_than_224_warns():
    """Issue 24 item 12: the perturbation constants are pixels of the
    benchmark's 224 crop; there is no reference set at 256 either."""
    assert tool.Options("/o", input_dir="/i").warnings() == ()
    for crop in (32, 256):
        (warning,) = tool.Options("/o", input_dir="/i", crop=crop).warnings()
        text = warning.as_flag()
        assert text.startswith(f"--crop={crop}: the ImageNet-P perturbation")
        assert "pixels of a 224 crop" in text


def test_a_cmyk_jpeg_is_resized_before_its_rgb_conversion():
    """The reference: `trn.Resize(256)(Image.open(f)).convert('RGB')`, so
    a CMYK JPEG (ImageNet's validation set has some) is resized in CMYK
    (torchvision 0.2.1: shorter side to the size, long side int(size *
    long / short), bilinear) and converted afterwards."""
    import io

    import skimage.data

    rgb = Image.fromarray(skimage.data.coffee()).resize((75, 50))
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as original:
        assert original.mode == "CMYK"
        w, h = original.size
        resized = original.resize((int(32 * w / h), 32), Image.BILINEAR)
        want = np.asarray(resized.convert("RGB"))
        converted_first = np.asarray(
            original.convert("RGB").resize((48, 32), Image.BILINEAR)
        )
    got = tool.load_resized(32, data=data)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, converted_first)  # the order matters


def test_a_16_bit_png_is_scaled_to_8_bits_in_both_generators():
    """A 16-bit greyscale PNG: Pillow's (and the reference's) RGB
    conversion clips its samples at 255, so every frame and corrupted image
    came out white. Both generators scale it as the TFRecord builder does
    (value / 257), then resize."""
    import io

    from assemble_tf.robustness import corruptions

    ramp = np.tile(np.linspace(0, 65535, 48), (40, 1)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode.startswith("I")  # a wide-sample image
        clipped = np.asarray(opened.convert("RGB"))
        assert (clipped == 255).mean() > 0.95  # the bug: white
        eight = Image.fromarray(
            np.round(ramp / 257.0).astype(np.uint8)
        ).convert("RGB")
    want = np.asarray(eight.resize((38, 32), Image.BILINEAR))
    np.testing.assert_array_equal(tool.load_resized(32, data=data), want)
    with Image.open(io.BytesIO(data)) as opened:
        got = corruptions.resize_center_crop(opened, 32, 32, rounding="round")
    np.testing.assert_array_equal(got, want[:, 3:35])
    assert got.min() < 40 and got.max() > 215  # dark to bright, as drawn


def test_transparency_is_composed_onto_white_in_both_generators():
    """An RGBA PNG from a folder: the TFRecord builder stores it composed
    onto white, and Pillow's RGB conversion kept the colour under the
    transparent pixels (a generated set differed by 75 grey levels from
    the same file's record). Both generators now compose it as the builder
    does: the builder's image, resized."""
    import io

    from assemble_tf.data.builder import images
    from assemble_tf.robustness import corruptions

    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., 0] = 200  # red under the transparent half
    rgba[:, :24, 3] = 255  # the left half opaque red, the right transparent
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    data = buf.getvalue()
    built, *_ = images.encode_image(data)  # the builder's record
    with Image.open(io.BytesIO(built)) as record:
        assert np.asarray(record)[:, 30:].min() > 250  # white, as stored
    white = rgba[..., :3].copy()
    white[:, 24:] = 255
    want = np.asarray(Image.fromarray(white).resize((38, 32), Image.BILINEAR))
    np.testing.assert_array_equal(tool.load_resized(32, data=data), want)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode == "RGBA"
        got = corruptions.resize_center_crop(opened, 32, 32, rounding="round")
    np.testing.assert_array_equal(got, want[:, 3:35])
    assert got[:, -4:].min() == 255  # before: red (200, 0, 0)


def test_the_summary_lists_every_perturbation_folder(tmp_path):
    """summary.json described the last run alone: after runs of other
    perturbations into one folder, it listed the last one's."""
    from assemble_tf.robustness import generate_p

    for name in ("rotate", "gaussian_noise_2", "gaussian_noise", "rotate_2"):
        (tmp_path / name).mkdir()
    (tmp_path / "notes").mkdir()
    assert generate_p.folders_in(str(tmp_path)) == [
        "gaussian_noise",
        "gaussian_noise_2",
        "rotate",
    ]


def test_the_regenerate_command_keeps_a_limited_sets_input_and_limit(
    tmp_path,
):
    """A set made from a glob with --limit=10 (summary.json: 10 of 359
    images selected): its command quotes the glob and keeps the limit
    (before: no --limit, so the missing perturbations were made from all
    359 images and the set was uneven). A folder with spaces is quoted
    (before: the pasted command stopped at the first space)."""
    import json
    import shlex

    from assemble_tf.robustness import evaluation

    tmp_path = tmp_path / "p out ü"
    tmp_path.mkdir()

    (tmp_path / "options.json").write_text(
        json.dumps(
            {
                "job": "tools.make_imagenet_p",
                "input": "--tfrecord_pattern=/d/validation-*",
                "resize": 36,
                "crop": 32,
            }
        )
    )
    (tmp_path / "summary.json").write_text(
        json.dumps({"images_found": 359, "images_selected": 10})
    )
    command = evaluation.regenerate_command(
        str(tmp_path), "tools.make_imagenet_p", "perturbations", ["tilt"]
    )
    assert command == (
        "python -m tools.make_imagenet_p --tfrecord_pattern='/d/validation-*' "
        f"--output_dir='{tmp_path}' --resize=36 --crop=32 "
        "--perturbations=tilt --limit=10"
    )
    assert shlex.split(command)[4] == f"--output_dir={tmp_path}"
