"""Tests for videoseg.io.video: frame-exact reading of real footage, bad inputs, writing mp4 / masks.

The reference for "frame i" is a plain PyAV sequential decode with default settings; frames are
compared through per-frame digests of their RGB bytes (exact equality), so a whole clip need not
sit in memory. Real clips come from Debian's opencv-doc package (tests/support/realdata.py); if apt is
unreachable those tests fail with the reason.
"""

from __future__ import annotations

import hashlib
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from tests.support.realdata import opencv_clip
from videoseg.io.video import (
    ArrayVideo,
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    UnsupportedCodecError,
    VideoCaps,
    VideoError,
    VideoNotFoundError,
    VideoTooLargeError,
    davis_palette,
    open_video,
    probe,
    read_mask_pngs,
    resize_frame,
    resize_mask,
    scaled_size,
    write_mask_pngs,
    write_mp4,
)

CLIPS = ["vtest.avi", "Megamind.avi", "box.mp4", "cup.mp4", "tree.avi"]
_REFERENCE: dict[str, list[str]] = {}


def digest(rgb: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16).hexdigest()


def reference_digests(name: str) -> list[str]:
    """Digest of every frame of a plain, default-settings sequential PyAV decode (cached)."""
    if name not in _REFERENCE:
        with av.open(str(opencv_clip(name))) as container:
            _REFERENCE[name] = [digest(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return _REFERENCE[name]


def scattered(n_frames: int, count: int, seed: int) -> list[int]:
    """Random indices plus both ends, shuffled (not sorted), with duplicates."""
    rng = np.random.default_rng(seed)
    picks = [int(i) for i in rng.integers(0, n_frames, count)]
    return [*picks, n_frames - 1, 0, picks[0], n_frames - 1]


# --------------------------------------------------------------------------------------------------
# Frame-exactness on real footage.


@pytest.mark.parametrize("name", CLIPS)
def test_frame_count_equals_sequential_decode(name: str) -> None:
    with open_video(opencv_clip(name)) as video:
        assert len(video) == len(reference_digests(name))
        assert video.size == (
            video.frames([0]).shape[2],
            video.frames([0]).shape[1],
        )


def test_container_frame_count_is_not_trusted() -> None:
    # box.mp4 declares 456 frames; its decoder emits 455 (decord reported the extra one).
    path = opencv_clip("box.mp4")
    assert probe(path)["frames_declared"] == 456
    with open_video(path) as video:
        assert len(video) == 455 == len(reference_digests("box.mp4"))


@pytest.mark.parametrize("name", CLIPS)
def test_frames_at_scattered_reversed_duplicate_indices(name: str) -> None:
    reference = reference_digests(name)
    n_frames = len(reference)
    with open_video(opencv_clip(name)) as video:
        for indices in (
            scattered(n_frames, 14, seed=1),
            sorted(scattered(n_frames, 10, seed=2), reverse=True),
            [n_frames // 2] * 3,
        ):
            frames = video.frames(indices)
            assert frames.shape == (len(indices), video.size[1], video.size[0], 3)
            assert frames.dtype == np.uint8
            assert [digest(f) for f in frames] == [reference[i] for i in indices]


@pytest.mark.parametrize("name", CLIPS)
def test_iter_frames_forward_and_reverse(name: str) -> None:
    reference = reference_digests(name)
    n_frames = len(reference)
    # A window that crosses keyframes is enough (keyframes: vtest 250, Megamind 98 and 154, box 250).
    windows = {"vtest.avi": (240, 330), "Megamind.avi": (60, 170), "box.mp4": (200, 300)}
    start, stop = windows.get(name, (0, n_frames))
    with open_video(opencv_clip(name)) as video:
        width, height = video.size
        # Tiny chunks force several decode-and-reverse rounds in the backward pass.
        video.chunk_bytes = 7 * width * height * 3
        forward = [(i, digest(f)) for i, f in video.iter_frames(start, stop)]
        backward = [(i, digest(f)) for i, f in video.iter_frames(start, stop, reverse=True)]
        stepped = [(i, digest(f)) for i, f in video.iter_frames(start, stop, step=5, reverse=True)]
        assert video.stats["max_chunk_frames"] == 7
    expected = [(i, reference[i]) for i in range(start, stop)]
    assert forward == expected
    assert backward == expected[::-1]
    assert stepped == [(i, reference[i]) for i in range(start, stop, 5)][::-1]


@pytest.mark.parametrize("name", ["Megamind.avi", "box.mp4"])
def test_sequential_mode_is_exact_and_never_seeks(name: str) -> None:
    reference = reference_digests(name)
    indices = scattered(len(reference), 8, seed=3)
    with open_video(opencv_clip(name), seek=False) as video:
        assert [digest(f) for f in video.frames(indices)] == [reference[i] for i in indices]
        assert video.stats["seeks"] == 0


def test_seeking_skips_decoding_and_stays_exact() -> None:
    # vtest.avi has keyframes at 0, 250, 500, 750: frame 790 must not cost 790 decodes.
    reference = reference_digests("vtest.avi")
    with open_video(opencv_clip("vtest.avi")) as video:
        assert video.keyframes == [0, 250, 500, 750]
        assert video.seekable
        assert digest(video[790]) == reference[790]
        assert video.stats["seeks"] == 1
        assert video.stats["decoded"] <= 60
        before = video.stats["decoded"]
        assert digest(video[255]) == reference[255]  # backwards: seek to 250, not restart at 0
        assert video.stats["decoded"] - before <= 30
        assert video.stats["restarts"] == 0
        assert video.stats["seek_fallbacks"] == 0


def test_unverifiable_seek_falls_back_to_sequential(tmp_path: Path) -> None:
    # MPEG-TS seeks by timestamp search and lands past the asked keyframe here (frame 27 for a seek
    # to 15): the timestamp check must catch it, disable seeking, and still return exact frames.
    path = _write_with_pyav(tmp_path / "clip.ts", "mpeg2video", frames=40, format="mpegts")
    with av.open(str(path)) as container:
        reference = [digest(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    with open_video(path) as video:
        assert video.seekable
        indices = [20, 3, 39, 20]
        assert [digest(f) for f in video.frames(indices)] == [reference[i] for i in indices]
        assert video.stats["seek_fallbacks"] == 1
        assert not video.seekable
        assert [digest(f) for _, f in video.iter_frames(reverse=True)] == reference[::-1]


def test_forward_reads_continue_from_the_cursor() -> None:
    with open_video(opencv_clip("Megamind.avi"), seek=False) as video:
        video.frames([100])
        before = video.stats["decoded"]
        video.frames([103])
        assert video.stats["decoded"] - before == 3  # frames 101, 102, 103 only
        assert video.stats["restarts"] == 1


def test_interleaved_readers_are_independent() -> None:
    reference = reference_digests("cup.mp4")
    with open_video(opencv_clip("cup.mp4")) as video:
        forward = video.iter_frames(0, 60)
        backward = video.iter_frames(100, 160, reverse=True)
        got_forward, got_backward = [], []
        for _ in range(60):
            i, frame = next(forward)
            got_forward.append((i, digest(frame)))
            j, frame = next(backward)
            got_backward.append((j, digest(frame)))
            if i % 20 == 0:  # the shared frames() cursor moves in between
                assert digest(video[200 - i]) == reference[200 - i]
    assert got_forward == [(i, reference[i]) for i in range(60)]
    assert got_backward == [(j, reference[j]) for j in range(159, 99, -1)]


def test_frames_is_thread_safe() -> None:
    reference = reference_digests("Megamind.avi")
    errors: list[str] = []
    with open_video(opencv_clip("Megamind.avi")) as video:

        def worker(seed: int) -> None:
            indices = scattered(len(reference), 6, seed)
            if [digest(f) for f in video.frames(indices)] != [reference[i] for i in indices]:
                errors.append(f"seed {seed}")

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


@pytest.mark.parametrize(
    ("name", "fps", "duration", "size"),
    [
        ("vtest.avi", 10.0, 79.5, (768, 576)),
        ("Megamind.avi", 2997 / 125, 270 * 125 / 2997, (720, 528)),
        # tree.avi declares 15 fps but its 68 frames span ~30 s: the measured rate keeps time right.
        ("tree.avi", 67 / (443 * 66667 / 1e6), 29.97, (320, 240)),
    ],
)
def test_fps_duration_size(name: str, fps: float, duration: float, size: tuple[int, int]) -> None:
    with open_video(opencv_clip(name)) as video:
        assert video.fps == pytest.approx(fps, rel=1e-3)
        assert video.duration == pytest.approx(duration, rel=1e-3)
        assert video.size == size
        assert video.metadata["frames"] == len(video)


@pytest.mark.parametrize(("degrees", "size"), [(90, (48, 64)), (-90, (48, 64)), (180, (64, 48))])
def test_display_rotation_matches_opencv(tmp_path: Path, degrees: int, size: tuple[int, int]) -> None:
    # Phones store portrait video sideways with a display rotation; players (and OpenCV's
    # orientation handling, the independent reference here) show it turned upright.
    path = tmp_path / f"rot{degrees}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(degrees)
        for i in range(6):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:16, 4 * i : 4 * i + 16] = (255, 0, 0)
            image[-8:] = (0, 255, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    capture = cv2.VideoCapture(str(path))
    expected = []
    while (grabbed := capture.read())[0]:
        expected.append(grabbed[1][..., ::-1])
    capture.release()
    assert len(expected) == 6 and expected[0].shape == (size[1], size[0], 3)
    # Asymmetric caps that only the upright (display) size satisfies.
    caps = VideoCaps(max_width=size[0], max_height=size[1])
    with open_video(path, caps) as video:
        assert video.size == size
        assert video.metadata["rotation"] % 360 == degrees % 360
        frames = video.frames([5, 0, 3])
        backward = [frame for _, frame in video.iter_frames(reverse=True)]
    for got, want in zip([*frames, *backward], [expected[i] for i in (5, 0, 3, 5, 4, 3, 2, 1, 0)]):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 2


# --------------------------------------------------------------------------------------------------
# Bad input: each kind gets its own error class and a message that names the problem.


def _write_with_pyav(path: Path, codec: str, frames: int, size=(64, 48), rate=25, **open_kw) -> Path:
    with av.open(str(path), "w", **open_kw) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        container.start_encoding()  # writes a header even when no frame follows
        for i in range(frames):
            image = np.full((size[1], size[0], 3), (i * 37) % 256, dtype=np.uint8)
            image[: size[1] // 2, : size[0] // 2] = 255 - image[0, 0]
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _truncated(name: str, keep: float, tmp: Path) -> Path:
    data = opencv_clip(name).read_bytes()
    target = tmp / f"cut_{name}"
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def make_missing(tmp: Path) -> Path:
    return tmp / "nope.mp4"


def make_directory(tmp: Path) -> Path:
    (tmp / "folder.mp4").mkdir()
    return tmp / "folder.mp4"


def make_zero_bytes(tmp: Path) -> Path:
    (tmp / "zero.mp4").write_bytes(b"")
    return tmp / "zero.mp4"


def make_text(tmp: Path) -> Path:
    (tmp / "notes.mp4").write_text("these are meeting notes, not a video\n" * 20)
    return tmp / "notes.mp4"


def make_png(tmp: Path) -> Path:
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp / "still.png")
    (tmp / "still.png").rename(tmp / "still.mp4")
    return tmp / "still.mp4"


def make_audio_only(tmp: Path) -> Path:
    with av.open(str(tmp / "tone.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return tmp / "tone.wav"


def make_zero_frames(tmp: Path) -> Path:
    return _write_with_pyav(tmp / "empty.avi", "mpeg4", frames=0)


def make_unknown_codec(tmp: Path) -> Path:
    # An AVI whose video FourCC no decoder claims: FFmpeg demuxes the stream but cannot decode it.
    data = _write_with_pyav(tmp / "m4.avi", "mpeg4", frames=5).read_bytes()
    assert data.count(b"FMP4") == 2
    (tmp / "unknown.avi").write_bytes(data.replace(b"FMP4", b"QZX9"))
    return tmp / "unknown.avi"


def make_mp4_cut_before_index(tmp: Path) -> Path:
    # Without faststart the index (moov) is written last: cutting the file loses it entirely.
    data = _write_with_pyav(tmp / "late_index.mp4", "libx264", frames=30).read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    (tmp / "cut_index.mp4").write_bytes(data[: len(data) // 2])
    return tmp / "cut_index.mp4"


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (make_missing, VideoNotFoundError, "not found"),
        (make_directory, NotAVideoError, "directory"),
        (make_zero_bytes, NotAVideoError, "empty file"),
        (make_text, NotAVideoError, "not a video"),
        (make_png, NotAVideoError, "still image"),
        (make_audio_only, NotAVideoError, "no video stream"),
        (make_zero_frames, EmptyVideoError, "no decodable frames"),
        (make_unknown_codec, UnsupportedCodecError, "no decoder"),
        (make_mp4_cut_before_index, CorruptVideoError, "MP4"),
        # Real files cut short: the demuxer stops quietly, the declared length exposes it.
        (lambda tmp: _truncated("box.mp4", 0.6, tmp), CorruptVideoError, "truncated"),
        (lambda tmp: _truncated("vtest.avi", 0.5, tmp), CorruptVideoError, "truncated"),
        (lambda tmp: _truncated("Megamind.avi", 0.5, tmp), CorruptVideoError, "truncated"),
        # Cut inside the last packets: the decoder itself reports the damage.
        (lambda tmp: _truncated("box.mp4", 0.999, tmp), CorruptVideoError, "damaged or truncated"),
    ],
    ids=[
        "missing",
        "directory",
        "zero-bytes",
        "text-as-mp4",
        "png-as-mp4",
        "audio-only",
        "zero-frames",
        "unknown-codec",
        "mp4-cut-before-index",
        "box-cut-60%",
        "vtest-cut-50%",
        "megamind-cut-50%",
        "box-cut-99.9%",
    ],
)
def test_bad_input_raises_its_specific_error(tmp_path: Path, make, error: type, words: str) -> None:
    path = make(tmp_path)
    with pytest.raises(error, match=words) as info:
        open_video(path)
    assert isinstance(info.value, VideoError) and isinstance(info.value, ValueError)
    # No class is a catch-all for another: the raised error is exactly the expected kind.
    assert type(info.value) is error


@pytest.mark.parametrize(
    ("make", "error"),
    [(make_missing, VideoNotFoundError), (make_text, NotAVideoError), (make_audio_only, NotAVideoError)],
)
def test_probe_raises_the_same_errors(tmp_path: Path, make, error: type) -> None:
    with pytest.raises(error):
        probe(make(tmp_path))


def test_probe_reports_declared_metadata_without_decoding() -> None:
    info = probe(opencv_clip("vtest.avi"))
    assert info["codec"] == "msmpeg4"
    assert (info["width"], info["height"]) == (768, 576)
    assert info["fps_declared"] == 10.0
    assert info["frames_declared"] == 795
    assert info["decodable"] is True


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames, 64x48, 10 fps (2 s), H.264."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8)
    return write_mp4(tmp_path_factory.mktemp("caps") / "small.mp4", frames, fps=10)


@pytest.mark.parametrize(
    ("caps", "cap", "value"),
    [
        (VideoCaps(max_width=63), "max_width", 64),
        (VideoCaps(max_height=40), "max_height", 48),
        (VideoCaps(max_pixels=64 * 48 - 1), "max_pixels", 64 * 48),
        (VideoCaps(max_frames=19), "max_frames", 20),
        (VideoCaps(max_duration_s=1.5), "max_duration_s", None),  # stops as soon as time passes 1.5 s
        (VideoCaps(max_file_bytes=100), "max_file_bytes", None),
    ],
)
def test_each_cap_raises_too_large(small_mp4: Path, caps: VideoCaps, cap: str, value: int | None) -> None:
    with pytest.raises(VideoTooLargeError, match=cap) as info:
        open_video(small_mp4, caps)
    assert info.value.cap == cap
    if value is not None:
        assert info.value.value == value
    if cap == "max_duration_s":
        assert 1.5 < info.value.value <= 2.0
    if cap == "max_file_bytes":
        assert info.value.value == small_mp4.stat().st_size


def test_caps_at_the_limit_pass(small_mp4: Path) -> None:
    caps = VideoCaps(max_width=64, max_height=48, max_pixels=64 * 48, max_frames=20, max_duration_s=2.0)
    with open_video(small_mp4, caps) as video:
        assert len(video) == 20


@pytest.mark.parametrize("bad", [{"max_width": 0}, {"max_duration_s": -1.0}])
def test_caps_reject_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        VideoCaps(**bad)


def test_out_of_range_indices(small_mp4: Path) -> None:
    with open_video(small_mp4) as video:
        with pytest.raises(IndexError, match="20 frames"):
            video.frames([3, 20])
        with pytest.raises(IndexError, match="out of range"):
            video.frames([-1])
        with pytest.raises(IndexError):
            next(video.iter_frames(0, 21))
        with pytest.raises(IndexError):
            video.iter_frames(5, 4)
        with pytest.raises(ValueError, match="step"):
            video.iter_frames(0, 5, step=0)
        with pytest.raises(TypeError):
            video.frames([1.5])
        assert video.frames([]).shape == (0, 48, 64, 3)
        assert video.frames(np.array([2, 2], dtype=np.int64)).shape == (2, 48, 64, 3)


# --------------------------------------------------------------------------------------------------
# ArrayVideo: the same interface in memory.


def test_array_video_matches_its_array() -> None:
    rng = np.random.default_rng(1)
    array = rng.integers(0, 255, (9, 6, 10, 3), dtype=np.uint8)
    video = ArrayVideo(array, fps=4)
    assert (len(video), video.size, video.fps, video.duration) == (9, (10, 6), 4.0, 2.25)
    np.testing.assert_array_equal(video.frames([8, 0, 8]), array[[8, 0, 8]])
    assert [i for i, _ in video.iter_frames(2, 9, step=3, reverse=True)] == [8, 5, 2]
    for i, frame in video.iter_frames(0, 9, reverse=True):
        np.testing.assert_array_equal(frame, array[i])
    with pytest.raises(IndexError):
        video.frames([9])


@pytest.mark.parametrize(
    ("frames", "fps", "error"),
    [
        (np.zeros((0, 4, 4, 3), np.uint8), 10, EmptyVideoError),
        (np.zeros((2, 4, 4), np.uint8), 10, ValueError),
        (np.zeros((2, 4, 4, 3), np.float32), 10, ValueError),
        (np.zeros((2, 4, 4, 3), np.uint8), 0, ValueError),
    ],
)
def test_array_video_rejects_bad_arrays(frames: np.ndarray, fps: float, error: type) -> None:
    with pytest.raises(error):
        ArrayVideo(frames, fps)


# --------------------------------------------------------------------------------------------------
# Writing mp4 and masks.


def _gradient_frames(n: int, width: int, height: int) -> np.ndarray:
    """Smooth moving gradients: lossy H.264 reproduces them closely."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        frames[t, ..., 0] = (x * 255 // max(1, width - 1) + 4 * t) % 256
        frames[t, ..., 1] = y * 255 // max(1, height - 1)
        frames[t, ..., 2] = 128
    return frames


def test_write_mp4_round_trip(tmp_path: Path) -> None:
    frames = _gradient_frames(12, 65, 49)  # odd sides: padded to 66x50
    path = write_mp4(tmp_path / "out" / "clip.mp4", iter(frames), fps=30000 / 1001)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: index first, playable while loading
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (66, 50)
        assert stream.average_rate == Fraction(30000, 1001)
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert len(decoded) == 12
    error = np.abs(decoded[:, :49, :65].astype(int) - frames.astype(int)).mean()
    assert error < 4
    # The padding repeats the last column and row rather than adding a black border.
    assert np.abs(decoded[:, :49, 65].astype(int) - frames[:, :, 64].astype(int)).mean() < 8
    with open_video(path) as video:
        assert (len(video), video.size) == (12, (66, 50))
        assert video.fps == pytest.approx(30000 / 1001, rel=1e-4)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "no frames"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], "shape"),
        ([np.zeros((8, 8), np.uint8)], "RGB"),
    ],
)
def test_write_mp4_rejects_bad_frames(tmp_path: Path, frames: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_mp4(tmp_path / "bad.mp4", frames, fps=10)


@pytest.mark.parametrize(
    ("label", "rgb"),
    [(0, (0, 0, 0)), (1, (128, 0, 0)), (2, (0, 128, 0)), (3, (128, 128, 0)), (4, (0, 0, 128)),
     (5, (128, 0, 128)), (8, (64, 0, 0)), (255, (224, 224, 192))],
)  # fmt: skip
def test_davis_palette(label: int, rgb: tuple[int, int, int]) -> None:
    palette = davis_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert tuple(int(c) for c in palette[label]) == rgb


def test_mask_pngs_round_trip(tmp_path: Path) -> None:
    masks = np.zeros((3, 20, 30), np.uint8)
    masks[0, 2:8, 3:9] = 1
    masks[1, 5:15, 10:20] = 2
    masks[2, :, :5] = 3
    masks[2, -3:, -3:] = 255
    paths = write_mask_pngs(tmp_path / "Annotations", iter(masks), start=5)
    assert [p.name for p in paths] == ["00005.png", "00006.png", "00007.png"]
    with Image.open(paths[1]) as image:
        assert image.mode == "P"
        palette = np.array(image.getpalette()[: 3 * 4], np.uint8).reshape(4, 3)
        np.testing.assert_array_equal(palette, davis_palette()[:4])
        assert image.getpixel((12, 7)) == 2
    np.testing.assert_array_equal(read_mask_pngs(tmp_path / "Annotations"), masks)


def test_mask_pngs_bool_and_rgb(tmp_path: Path) -> None:
    mask = np.zeros((6, 7), bool)
    mask[1:4, 2:5] = True
    write_mask_pngs(tmp_path / "bool", [mask])
    np.testing.assert_array_equal(read_mask_pngs(tmp_path / "bool")[0], mask.astype(np.uint8))
    # An RGB-saved annotation maps back to ids through the palette.
    ids = np.array([[0, 1, 2], [3, 4, 2]], np.uint8)
    Image.fromarray(davis_palette()[ids]).save(tmp_path / "rgb.png")
    (tmp_path / "rgb").mkdir()
    (tmp_path / "rgb.png").rename(tmp_path / "rgb" / "00000.png")
    np.testing.assert_array_equal(read_mask_pngs(tmp_path / "rgb")[0], ids)


def test_mask_pngs_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_mask_pngs(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no PNG"):
        read_mask_pngs(tmp_path / "empty")
    (tmp_path / "odd").mkdir()
    Image.fromarray(np.full((2, 2, 3), 7, np.uint8)).save(tmp_path / "odd" / "00000.png")
    with pytest.raises(ValueError, match="not in the DAVIS palette"):
        read_mask_pngs(tmp_path / "odd")
    with pytest.raises(ValueError, match=r"0\.\.255"):
        write_mask_pngs(tmp_path / "big", [np.full((2, 2), 300, np.int32)])


# --------------------------------------------------------------------------------------------------
# Resizing.


@pytest.mark.parametrize(
    ("size", "kwargs", "expected"),
    [
        ((1920, 1080), {"max_side": 840}, (840, 472)),
        ((1080, 1920), {"max_side": 840}, (472, 840)),
        ((854, 480), {"short_side": 240}, (427, 240)),
        ((640, 360), {"short_side": 480}, (640, 360)),  # no upscale by default
        ((640, 360), {"short_side": 480, "allow_upscale": True}, (853, 480)),
        ((300, 200), {"max_side": 300}, (300, 200)),
        ((1000, 3), {"max_side": 100}, (100, 1)),  # never below 1 px
    ],
)
def test_scaled_size(size: tuple[int, int], kwargs: dict, expected: tuple[int, int]) -> None:
    assert scaled_size(*size, **kwargs) == expected


@pytest.mark.parametrize("kwargs", [{}, {"max_side": 10, "short_side": 10}, {"max_side": 0}])
def test_scaled_size_needs_one_positive_target(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        scaled_size(100, 50, **kwargs)


def test_resize_frame_keeps_content_and_dtype() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 100:] = 200  # right half bright
    small = resize_frame(frame, max_side=50)
    assert small.shape == (25, 50, 3) and small.dtype == np.uint8
    assert small[:, :24].max() == 0 and small[:, 26:].min() == 200
    assert resize_frame(frame, max_side=400) is frame  # already within bounds


def test_resize_mask_is_nearest_and_keeps_dtype() -> None:
    ids = np.zeros((40, 60), np.uint8)
    ids[10:30, 10:25] = 3
    ids[5:15, 40:55] = 7
    small = resize_mask(ids, (30, 20))
    assert small.shape == (20, 30) and small.dtype == np.uint8
    assert set(np.unique(small)) == {0, 3, 7}  # no blended ids
    stack = np.stack([ids == 3, ids == 7])
    big = resize_mask(stack, (120, 80))
    assert big.shape == (2, 80, 120) and big.dtype == bool
    assert big[0].sum() == 4 * (ids == 3).sum()
    with pytest.raises(ValueError):
        resize_mask(np.zeros(5, bool), (2, 2))
