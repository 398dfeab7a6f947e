"""Reading and writing ImageNet-P sequences as .mp4 files.

ImageNet-P (Hendrycks & Dietterich, ICLR 2019, arXiv 1903.12261; reference
code github.com/hendrycks/robustness `ImageNet-P/`) stores each perturbation
sequence of one validation image as an .mp4 video, one frame per step, and
its evaluation reads every frame with OpenCV and converts BGR to RGB
(`ImageNet-P/video_loader.py`). The release wrote the frames as PNGs and
encoded them with ffmpeg and libx264 (`create_p/make_imagenet_p.py`):

    ffmpeg -r 1 -framerate 1 -i img%01d.png -vcodec libx264 -crf 20 \
        -preset veryslow -y out.mp4                     # most sequences
    ffmpeg -r 1 -framerate 1 -i img%01d.png -vcodec libx264 -tune grain \
        -preset veryslow -y out.mp4                     # *_noise (CRF 23)

From RGB input ffmpeg's libx264 keeps full chroma (yuv444p, High 4:4:4).

`write_video(..., codec="x264")` (the default) does the same: it pipes raw
RGB frames to the ffmpeg binary of the `imageio-ffmpeg` wheel (built with
libx264; nothing is downloaded) with the release's options and
`-pix_fmt yuv444p` spelled out (`x264_arguments`). `codec="mp4v"` is a
fallback that needs no ffmpeg binary: OpenCV's bundled FFmpeg with the
MPEG-4 Part 2 codec (fourcc `mp4v`), 4:2:0 chroma (even sides only) and
coarser quantization, so its frames are less faithful and it adds
frame-to-frame change of its own, which inflates flip rates.

Measured on four scikit-image photos (astronaut, coffee, chelsea, rocket)
resized to 256 and cropped to 224, over the ten test sequences: the mean
absolute error of the decoded frames is 0.6-1.4 grey levels with x264 for
the non-noise sequences and 3.9-4.5 for the noise ones (`-tune grain`,
CRF 23), against 2.5-4.3 and 6.3-7.3 with mp4v. The mean frame-to-frame
change (the signal behind flip rates) of snow is 1.41 in the frames, 1.65
decoded from x264 and 2.35 from mp4v; of brightness 3.26, 3.30 and 3.49;
mp4v also removes 40-50 % of the noise sequences' change (gaussian_noise
8.28 -> 4.32; x264 6.76). x264 at `-preset veryslow` costs 0.3-2 s of CPU
per 31-frame 224 x 224 video (about 10 s for the ten test sequences of one
image; the noise ones are the slowest), mp4v about 0.02 s. The frame count
and size are exact with either codec; x264 (4:4:4) takes odd sides too.
"""

import os
import subprocess

import numpy as np

from official.utils.misc.validation import OptionError

CODECS = ("x264", "mp4v")
DEFAULT_CODEC = "x264"
FOURCC = "mp4v"  # OpenCV's fourcc of the mp4v fallback
DEFAULT_FPS = 1.0  # the release: ffmpeg -r 1 -framerate 1
IMAGEIO_FFMPEG_PIN = "imageio-ffmpeg==0.8.1"


class EncoderUnavailableError(OptionError, ImportError):
    """The ffmpeg binary of `imageio-ffmpeg` is not available (an
    `OptionError`, a ValueError, naming the `codec` option's fallback)."""

    def __init__(self, template, **values):
        super().__init__("codec", template, **values)


# The names `write_video` writes under until a video is complete (a killed
# process leaves them): `.<name>.<pid>.tmp.mp4`.
TEMP_GLOB = ".*.tmp.mp4"


def x264_arguments(noise=False):
    """The ffmpeg output options of the release's libx264 encoding.

    Args:
        noise: bool, True for the noise sequences (`-tune grain`, libx264's
            default CRF 23), False for the others (`-crf 20`).

    Returns:
        A tuple of ffmpeg arguments (after the input, before the output).
    """
    quality = ("-tune", "grain") if noise else ("-crf", "20")
    # One encoder thread: the generator already runs a process per core,
    # and x264's output then does not depend on the machine's core count.
    return (
        "-vcodec",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        "-preset",
        "veryslow",
        "-threads",
        "1",
    ) + quality


def codec_settings(codec):
    """What `options.json` records of `codec`: a JSON-able description."""
    check_codec(codec, require_binary=False)
    if codec == "x264":
        return {
            "encoder": "ffmpeg libx264 (imageio-ffmpeg)",
            "noise": " ".join(x264_arguments(noise=True)),
            "other": " ".join(x264_arguments(noise=False)),
        }
    return {
        "encoder": f"OpenCV fourcc {FOURCC}",
        "note": "fallback: MPEG-4 Part 2, 4:2:0, less faithful than x264",
    }


def _imageio_ffmpeg():
    """The imageio_ffmpeg module, or an error that names the fix."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise EncoderUnavailableError(
            "codec x264 needs the ffmpeg binary (with libx264) of the "
            "imageio-ffmpeg package, which is not installed: run "
            "`pip install {pin}` (or `make`), or set {field} to mp4v, a "
            "less faithful fallback.",
            pin=IMAGEIO_FFMPEG_PIN,
        ) from None
    return imageio_ffmpeg


def ffmpeg_exe():
    """The path of imageio-ffmpeg's ffmpeg binary (the first call in a
    process runs it once to check it).

    Raises:
        EncoderUnavailableError (an ImportError and a ValueError): the
            package is missing or finds no binary; the message names the
            fix.
    """
    try:
        return _imageio_ffmpeg().get_ffmpeg_exe()
    except RuntimeError as e:
        raise EncoderUnavailableError(
            "imageio-ffmpeg found no ffmpeg binary ({error}); reinstall it "
            "with `pip install --force-reinstall {pin}`, or set {field} to "
            "mp4v, a less faithful fallback.",
            error=e,
            pin=IMAGEIO_FFMPEG_PIN,
        ) from None


def check_codec(codec, require_binary=True):
    """Validates a codec name; for x264 (with `require_binary`) also that
    the imageio-ffmpeg package is installed (its binary is found and run
    only when a video is written). Returns `codec`.

    Raises:
        ValueError: an unknown codec (the message lists `CODECS`).
        EncoderUnavailableError (a ValueError): x264 without imageio-ffmpeg.
    """
    if codec not in CODECS:
        raise ValueError(
            f"codec {codec!r} is not supported; choose one of "
            f"{', '.join(CODECS)} (x264 encodes as the ImageNet-P release; "
            f"mp4v is a less faithful fallback)."
        )
    if codec == "x264" and require_binary:
        _imageio_ffmpeg()
    return codec


def _check_frames(frames, codec):
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 [n, height, width, 3] RGB; received "
            f"shape {frames.shape}."
        )
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (0..255); received dtype {frames.dtype}. "
            f"Convert with np.clip(x, 0, 255).astype(np.uint8)."
        )
    n, height, width, _ = frames.shape
    if n == 0:
        raise ValueError("frames is empty; a video needs at least one frame.")
    if codec == "mp4v" and (height % 2 or width % 2):
        raise ValueError(
            f"frame size {height} x {width}: {FOURCC} stores 4:2:0 video, "
            f"so height and width must be even (e.g. crop to 224 x 224), "
            f"or use codec x264 (4:4:4, any size)."
        )
    return np.ascontiguousarray(frames)


def write_video(
    path, frames, fps=DEFAULT_FPS, codec=DEFAULT_CODEC, noise=False
):
    """Writes RGB frames to an .mp4 file.

    The video goes to a hidden temporary name in the same folder and is
    renamed onto `path` once complete, so an interrupted write never leaves
    a truncated `path` behind.

    Args:
        path: str, the .mp4 file to create (its folder must exist).
        frames: uint8 array [n, height, width, 3], RGB (even height and
            width for mp4v).
        fps: float > 0, frames per second stored in the file (1 as in the
            release; it does not change the per-frame quality).
        codec: "x264" (the release's libx264 encoding, yuv444p, through
            imageio-ffmpeg's ffmpeg binary) or "mp4v" (OpenCV's MPEG-4 Part
            2, 4:2:0: a fallback that needs no ffmpeg binary but is less
            faithful).
        noise: bool, for x264: the sequence is a noise perturbation, encoded
            with `-tune grain` (CRF 23) instead of `-crf 20`, as the release
            does. mp4v ignores it.

    Returns:
        `path`.

    Raises:
        ValueError: bad frames, fps or codec, or the encoder fails (the
            message includes ffmpeg's own).
        EncoderUnavailableError (a ValueError): codec x264 without the
            imageio-ffmpeg package.
        FileNotFoundError: the folder of `path` does not exist.
    """
    check_codec(codec, require_binary=False)
    frames = _check_frames(frames, codec)
    if not fps > 0:
        raise ValueError(f"fps must be > 0; received {fps}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot write {path}: the folder {folder} does not exist."
        )
    base = os.path.basename(path)
    # The extension tells FFmpeg the container, so it stays last.
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp.mp4")
    encode = _encode_x264 if codec == "x264" else _encode_mp4v
    try:
        encode(tmp, path, frames, fps, noise)
        if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise ValueError(f"the {codec} encoder wrote no data for {path}.")
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    return path


def _encode_x264(tmp, path, frames, fps, noise):
    _, height, width, _ = frames.shape
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-framerate",
        f"{float(fps):g}",
        "-i",
        "-",
        *x264_arguments(noise),
        "-f",
        "mp4",
        "-y",
        tmp,
    ]
    try:
        result = subprocess.run(
            command,
            input=frames.tobytes(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    except OSError as e:
        raise ValueError(
            f"could not run ffmpeg ({command[0]}) to write {path}: {e}. "
            f"Reinstall {IMAGEIO_FFMPEG_PIN}, or pass codec mp4v."
        ) from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise ValueError(
            f"ffmpeg (libx264) failed to write {path} ({width} x {height}, "
            f"{len(frames)} frames), exit code {result.returncode}: "
            f"{message[-2000:] or '(no message)'}"
        )


def _encode_mp4v(tmp, path, frames, fps, noise):
    del noise  # the fallback has a single setting
    import cv2

    _, height, width, _ = frames.shape
    writer = cv2.VideoWriter(
        tmp,
        cv2.CAP_FFMPEG,
        cv2.VideoWriter_fourcc(*FOURCC),
        float(fps),
        (width, height),
    )
    try:
        if not writer.isOpened():
            raise ValueError(
                f"OpenCV could not open a {FOURCC} video writer for {path} "
                f"({width} x {height} at {fps} fps). Check that the folder "
                f"is writable and that this OpenCV build has FFmpeg "
                f"(cv2.getBuildInformation(), 'Video I/O')."
            )
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def read_video(path):
    """Reads every frame of a video file as RGB.

    Args:
        path: str, an .mp4 file (any format OpenCV's FFmpeg reads).

    Returns:
        uint8 array [n, height, width, 3], RGB.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: OpenCV cannot open it or it holds no frame.
    """
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video {path} does not exist.")
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    frames = []
    try:
        if not capture.isOpened():
            raise ValueError(
                f"OpenCV cannot open {path} as a video; the file is not a "
                f"video or is damaged (regenerate it)."
            )
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(
            f"{path} holds no readable frame; the file is damaged or empty "
            f"(regenerate it)."
        )
    return np.stack(frames)
