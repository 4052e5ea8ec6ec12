"""Frame-exact video reading and writing for every stage of the pipeline.

Paper steps served: the input video of step 1 (HTFS samples frames across it by index and time),
the key segment / target / reference frames of step 2 (the reasoner), and step 3 (SAM2 on the
target frame, XMem propagating forward and *backward* over every frame). Outputs: the overlay mp4
(H.264, browser-playable) and DAVIS-style palette PNG masks, which is also the layout the
benchmarks read.

Why not trust the container or a random-access library: on real clips decord returned wrong frames
(Megamind.avi, box.mp4) and containers misstate their frame count (box.mp4 declares 456 frames, its
H.264 decoder emits 455; tree.avi declares 444 time units for 68 frames). Here frame ``i`` is, by
definition, the ``i``-th frame that a plain sequential PyAV decode emits. On open we run one decode
pass (no pixel conversion) that counts frames exactly and records each frame's timestamp and
keyframe flag. Reads then decode sequentially from the nearest usable point, converting only the
wanted frames to RGB:

* a persistent cursor continues forward when the wanted frames lie ahead of it;
* where every emitted frame has a unique timestamp, the reader may seek to a keyframe at or before
  the first wanted frame. After a seek, frames are identified by timestamp and must reproduce the
  recorded timestamp sequence frame after frame (and not be flagged corrupt); any mismatch turns
  seeking off for that video and falls back to decoding from the start.

Frames come out as players show them: a display rotation (portrait phone video) is applied, so
``size`` is the upright (width, height).

Memory stays bounded: the index is a few integers per frame, ``iter_frames`` streams, and backward
iteration decodes chunks of at most ``chunk_bytes`` and reverses each chunk.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "ArrayVideo",
    "CorruptVideoError",
    "EmptyVideoError",
    "NotAVideoError",
    "UnsupportedCodecError",
    "Video",
    "VideoCaps",
    "VideoError",
    "VideoNotFoundError",
    "VideoTooLargeError",
    "davis_palette",
    "open_video",
    "probe",
    "read_mask_pngs",
    "resize_frame",
    "resize_mask",
    "scaled_size",
    "write_mask_pngs",
    "write_mp4",
]

_ReadFn = Callable[[list[int]], Iterator[tuple[int, np.ndarray]]]
DEFAULT_CHUNK_BYTES = 256 * 1024 * 1024  # RGB bytes held at once by backward iteration
_SEEK_MIN_GAP = 8  # decoding a few frames forward is cheaper than a seek + decoder flush


# --------------------------------------------------------------------------------------------------
# Errors: one class per kind of bad input, all ValueErrors so callers can catch them broadly.


class VideoError(ValueError):
    """A video file cannot be used; the message says why in words a user understands."""


class VideoNotFoundError(VideoError):
    """The path does not exist."""


class NotAVideoError(VideoError):
    """The file is not a video (text, still image, audio only, directory...)."""


class EmptyVideoError(VideoError):
    """The container holds a video stream with no decodable frame."""


class CorruptVideoError(VideoError):
    """The file looks like a video but is truncated or damaged."""


class UnsupportedCodecError(VideoError):
    """The video stream uses a codec this FFmpeg build cannot decode."""


class VideoTooLargeError(VideoError):
    """The video exceeds one of the configured :class:`VideoCaps`."""

    def __init__(self, cap: str, value: float, limit: float, path: str | Path | None = None):
        self.cap = cap
        self.value = value
        self.limit = limit
        where = f"{Path(path).name}: " if path is not None else ""
        super().__init__(f"{where}{_too_large_words(cap, value, limit)} (VideoCaps.{cap})")


def _bytes_text(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:g} bytes"


def _too_large_words(cap: str, value: float, limit: float) -> str:
    """The cap in a user's words. Length caps stop decoding early, so they say "more than"."""
    if cap == "max_duration_s":
        return f"video too long: it runs more than {limit:g} s, the limit"
    if cap == "max_frames":
        return f"video too long: it has more than {limit:g} frames, the limit"
    if cap == "max_file_bytes":
        return f"file too large: {_bytes_text(value)}, the limit is {_bytes_text(limit)}"
    if cap == "max_pixels":
        return f"frames too large: {value:g} pixels each, the limit is {limit:g}"
    side = "wide" if cap == "max_width" else "high"
    return f"frames too large: {value:g} px {side}, the limit is {limit:g} px"


@dataclass(frozen=True)
class VideoCaps:
    """Limits on what :func:`open_video` accepts (``None`` disables a limit).

    Defaults are generous (4K, 10 minutes, 2 GB); a public demo should lower them.
    """

    max_width: int | None = 4096
    max_height: int | None = 4096
    max_pixels: int | None = None  # width * height of one frame
    max_duration_s: float | None = 600.0
    max_file_bytes: int | None = 2 * 1024**3
    max_frames: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_width",
            "max_height",
            "max_pixels",
            "max_duration_s",
            "max_file_bytes",
            "max_frames",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"VideoCaps.{name} must be positive or None, got {value!r}")

    def check_size(self, width: int, height: int, path: str | Path | None = None) -> None:
        if self.max_width is not None and width > self.max_width:
            raise VideoTooLargeError("max_width", width, self.max_width, path)
        if self.max_height is not None and height > self.max_height:
            raise VideoTooLargeError("max_height", height, self.max_height, path)
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise VideoTooLargeError("max_pixels", width * height, self.max_pixels, path)

    def check_length(self, n_frames: int, duration_s: float, path: str | Path | None = None) -> None:
        if self.max_frames is not None and n_frames > self.max_frames:
            raise VideoTooLargeError("max_frames", n_frames, self.max_frames, path)
        if self.max_duration_s is not None and duration_s > self.max_duration_s:
            raise VideoTooLargeError("max_duration_s", round(duration_s, 3), self.max_duration_s, path)


# --------------------------------------------------------------------------------------------------
# Opening a container and naming what went wrong.

# Leading bytes of container formats FFmpeg reads; a file that starts like one of these but does
# not open is a damaged video, anything else that does not open is not a video at all.
_MAGIC: list[tuple[int, bytes, str]] = [
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MP4/MOV"),
    (4, b"mdat", "MP4/MOV"),
    (4, b"free", "MP4/MOV"),
    (4, b"wide", "MP4/MOV"),
    (0, b"RIFF", "AVI"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
    (0, b"nut/multimedia", "NUT"),
]
# Demuxers that read a single still image; such a file is not a video.
_STILL_IMAGE_FORMATS = ("image2", "_pipe")


def _container_kind(path: Path) -> str | None:
    """Which video container the file's first bytes announce, if any."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    if len(head) >= 1 and head[0] == 0x47:  # MPEG-TS: sync byte every 188 bytes
        with path.open("rb") as fh:
            block = fh.read(188 * 3 + 1)
        if len(block) > 376 and block[188] == 0x47 and block[376] == 0x47:
            return "MPEG-TS"
    return None


def _check_path(path: str | Path) -> Path:
    if isinstance(path, str) and not path.strip():
        # Path("") is "." (the working directory): say what is really wrong.
        raise VideoNotFoundError("no video given (the path is empty)")
    path = Path(path)
    try:
        if not path.exists():
            raise VideoNotFoundError(f"video file not found: {path}")
        if path.is_dir():
            raise NotAVideoError(f"{path} is a directory, not a video file")
        size = path.stat().st_size
    except OSError as exc:  # a name too long, a path through a file, no permission on a folder...
        shown = str(path) if len(str(path)) <= 200 else str(path)[:100] + "..." + str(path)[-60:]
        raise VideoError(f"cannot open video {shown}: {exc.strerror or exc}") from exc
    if size == 0:
        raise NotAVideoError(f"{path.name} is an empty file (0 bytes), not a video")
    return path


def _reason(exc: Exception) -> str:
    """FFmpeg's own words for an error, without the errno number and path PyAV adds."""
    return getattr(exc, "strerror", None) or str(exc)


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FileNotFoundError as exc:
        raise VideoNotFoundError(f"video file not found: {path}") from exc
    except av.error.PermissionError as exc:
        raise VideoError(f"cannot read {path}: permission denied") from exc
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        kind = _container_kind(path)
        if kind is not None:
            raise CorruptVideoError(
                f"{path.name} starts like a {kind} file but FFmpeg cannot read it ({_reason(exc)}); "
                "it is probably truncated or damaged"
            ) from exc
        raise NotAVideoError(f"{path.name} is not a video file FFmpeg can read ({_reason(exc)})") from exc
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        container.close()
        raise NotAVideoError(f"{path.name} is a still image ({fmt}), not a video")
    return container


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    # Cover art in audio files is a "video" stream holding one attached picture: not a video.
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        container.close()
        raise NotAVideoError(f"{path.name} holds no video stream ({kinds})")
    stream = streams[0]
    if stream.codec_context is None:
        fmt = container.format.name
        container.close()
        raise UnsupportedCodecError(
            f"{path.name}: FFmpeg has no decoder for the video codec in this {fmt} file; "
            "re-encode it, e.g. to H.264 mp4"
        )
    return stream


def _nominal_fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def probe(path: str | Path) -> dict[str, Any]:
    """Container metadata without decoding (cheap; frame count and duration as the file *declares*).

    Raises the same :class:`VideoError` subclasses as :func:`open_video` for missing files and
    non-videos. ``decodable`` is False when this FFmpeg build has no decoder for the codec.
    """
    path = _check_path(path)
    container = _open_container(path)
    try:
        streams = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise NotAVideoError(f"{path.name} holds no video stream ({kinds})")
        stream = streams[0]
        ctx = stream.codec_context
        duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        return {
            "path": str(path),
            "file_bytes": path.stat().st_size,
            "format": container.format.name,
            "codec": ctx.name if ctx is not None else None,
            "decodable": ctx is not None,
            "width": ctx.width if ctx is not None else None,
            "height": ctx.height if ctx is not None else None,
            "pix_fmt": ctx.pix_fmt if ctx is not None else None,
            "fps_declared": _nominal_fps(stream),
            "frames_declared": stream.frames or None,
            "duration_declared_s": duration_s,
            "bit_rate": container.bit_rate,
            "has_audio": bool(container.streams.audio),
        }
    finally:
        container.close()


# --------------------------------------------------------------------------------------------------
# The frame index: what one full sequential decode emitted.


@dataclass
class _FrameIndex:
    """Facts from the one-time decode pass; frame ``i`` = the ``i``-th frame decoded."""

    n_frames: int
    width: int  # decoded width (before display rotation)
    height: int
    quarter_turns: int  # display rotation, counter-clockwise quarter turns (np.rot90's k)
    pts: list[int | None]  # timestamp of each emitted frame, in stream.time_base
    keyframes: list[int]  # indices of frames flagged key by the decoder, increasing
    corrupt: set[int]  # indices of frames the decoder flagged corrupt (seeks must reproduce this)
    pts_to_index: dict[int, int]  # only when every pts is present and unique
    seekable: bool  # may frames be located after a seek (see module docstring)
    fps: float
    fps_declared: float | None
    time_base: Fraction | None
    stream_index: int


def _decode_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    """Every frame the decoder emits from the container's current position, with errors named."""
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            # The final demuxed packet is empty and flushes the decoder.
            yield from codec.decode(packet)
    except av.error.DecoderNotFoundError as exc:
        raise UnsupportedCodecError(f"{path.name}: no decoder for codec {codec.name!r}") from exc
    except (av.error.InvalidDataError, av.error.EOFError, av.error.UndefinedError) as exc:
        raise CorruptVideoError(
            f"{path.name}: the video stream is damaged or truncated ({_reason(exc)})"
        ) from exc
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"{path.name}: decoding failed ({_reason(exc)})") from exc


def _configure(stream: av.video.stream.VideoStream) -> None:
    # Frame threading is bit-exact in FFmpeg and roughly doubles throughput on 2 cores; the tests
    # compare against a default (single-frame) decode to keep that claim honest.
    stream.thread_type = "AUTO"


def _build_index(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    caps: VideoCaps,
) -> _FrameIndex:
    """Decode once without converting pixels: exact count, timestamps, keyframes; caps as we go."""
    fps_declared = _nominal_fps(stream)
    fps_guess = fps_declared or 25.0
    pts: list[int | None] = []
    keyframes: list[int] = []
    corrupt: set[int] = set()
    width = height = quarter_turns = 0
    packet_end: int | None = None  # last timestamp the demuxed packets reach
    packet_start: int | None = None
    n_packets = 0
    codec = stream.codec_context
    time_base = stream.time_base
    try:
        for packet in container.demux(stream):
            if packet.size:
                n_packets += 1
                if packet.is_corrupt:
                    # A partial read (file cut inside a packet) or a damaged packet; frame-threaded
                    # decoding would otherwise pass over it silently.
                    raise CorruptVideoError(
                        f"{path.name}: the video stream is damaged or truncated "
                        f"(incomplete packet after {len(pts)} frames)"
                    )
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None:
                    end = stamp + (packet.duration or 0)
                    packet_end = end if packet_end is None else max(packet_end, end)
                    packet_start = stamp if packet_start is None else min(packet_start, stamp)
            for frame in codec.decode(packet):
                if not pts:
                    width, height = frame.width, frame.height
                    quarter_turns = _quarter_turns(frame, path)
                    if quarter_turns % 2:
                        caps.check_size(height, width, path)
                    else:
                        caps.check_size(width, height, path)
                if frame.key_frame:
                    keyframes.append(len(pts))
                if frame.is_corrupt:
                    corrupt.add(len(pts))
                pts.append(frame.pts)
                # Stop early on caps so that a huge file costs no more than the limit.
                if frame.pts is not None and pts[0] is not None and time_base is not None:
                    elapsed_s = float((frame.pts - pts[0]) * time_base)
                else:
                    elapsed_s = len(pts) / fps_guess
                caps.check_length(len(pts), elapsed_s, path)
    except av.error.DecoderNotFoundError as exc:
        raise UnsupportedCodecError(f"{path.name}: no decoder for codec {codec.name!r}") from exc
    except (av.error.InvalidDataError, av.error.EOFError, av.error.UndefinedError) as exc:
        raise CorruptVideoError(
            f"{path.name}: the video stream is damaged or truncated after {len(pts)} frames ({_reason(exc)})"
        ) from exc
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(
            f"{path.name}: decoding failed after {len(pts)} frames ({_reason(exc)})"
        ) from exc

    n_frames = len(pts)
    if n_frames == 0:
        raise EmptyVideoError(f"{path.name} holds a video stream with no decodable frames")

    if container.format.name.startswith("mov") and stream.frames and n_packets < stream.frames:
        # MP4 sample tables list every sample, so fewer packets than samples means a cut file.
        raise CorruptVideoError(
            f"{path.name} is truncated: {n_packets} of the {stream.frames} samples "
            "its index lists are present"
        )
    _check_truncation(stream, path, packet_start, packet_end, fps_declared, time_base)
    fps = _measured_fps(pts, time_base, fps_declared)
    caps.check_length(n_frames, n_frames / fps, path)

    known = [p for p in pts if p is not None]
    unique = len(known) == n_frames and len(set(known)) == n_frames
    pts_to_index = {p: i for i, p in enumerate(known)} if unique else {}
    return _FrameIndex(
        n_frames=n_frames,
        width=width,
        height=height,
        quarter_turns=quarter_turns,
        pts=pts,
        keyframes=keyframes or [0],
        corrupt=corrupt,
        pts_to_index=pts_to_index,
        seekable=unique and time_base is not None,
        fps=fps,
        fps_declared=fps_declared,
        time_base=time_base,
        stream_index=stream.index,
    )


def _quarter_turns(frame: av.VideoFrame, path: Path) -> int:
    """Display rotation of the stream (phones store portrait video sideways plus a rotation).

    Browsers and players show the rotated picture, so frames are returned rotated the same way
    (the convention of FFmpeg's autorotate and OpenCV's orientation handling).
    """
    degrees = frame.rotation or 0
    if degrees % 90:
        log.warning("%s: display rotation of %s degrees ignored (not a multiple of 90)", path.name, degrees)
        return 0
    return round(degrees / 90) % 4


def _check_truncation(
    stream: av.video.stream.VideoStream,
    path: Path,
    packet_start: int | None,
    packet_end: int | None,
    fps_declared: float | None,
    time_base: Fraction | None,
) -> None:
    """A cut-off file often demuxes cleanly but stops early: compare with what the header declares.

    Two declarations, either may expose it: the stream duration (MP4 sample tables) and the
    declared frame count at the declared rate (AVI headers, whose ``frames`` counts time units, which
    is why a sparse AVI such as tree.avi still passes).
    """
    if packet_end is None or packet_start is None or time_base is None or not fps_declared:
        return
    reached_s = float((packet_end - packet_start) * time_base)
    tolerance_s = 2.5 / fps_declared
    declared: list[float] = []
    if stream.duration:
        declared.append(float(stream.duration * time_base))
    if stream.frames:
        declared.append(stream.frames / fps_declared)
    for declared_s in declared:
        if reached_s < declared_s - tolerance_s - 0.005 * declared_s:
            raise CorruptVideoError(
                f"{path.name} is truncated: its video stream ends at {reached_s:.2f} s "
                f"but the file declares {declared_s:.2f} s"
            )


def _measured_fps(pts: list[int | None], time_base: Fraction | None, fps_declared: float | None) -> float:
    """Mean frame rate from the emitted timestamps, or the declared rate when they agree.

    Declared rates lie for sparse / variable-rate files (tree.avi declares 15 fps for 68 frames over
    29.6 s); ``index / fps`` must be a frame's time, which the measured mean rate gives.
    """
    known = [p for p in pts if p is not None]
    measured = None
    if time_base is not None and len(known) >= 2 and len(known) == len(pts):
        span_s = float((max(known) - min(known)) * time_base)
        if span_s > 0:
            measured = (len(known) - 1) / span_s
    if measured is None:
        if fps_declared:
            return fps_declared
        log.warning("no usable frame rate in the file; assuming 25 fps")
        return 25.0
    if fps_declared and abs(measured - fps_declared) <= 0.01 * fps_declared:
        return fps_declared
    return measured


# --------------------------------------------------------------------------------------------------
# A cursor: one open container and decoder, positioned at a frame index.


class _SeekMismatch(Exception):
    """After a seek, the decoder did not reproduce the recorded frame sequence."""


@dataclass
class _Stats:
    """Work counters (benchmarks and tests read them to check that seeking saves work)."""

    decoded: int = 0  # frames pulled from the decoder
    converted: int = 0  # frames converted to RGB
    seeks: int = 0
    restarts: int = 0  # decodes started from the first frame
    seek_fallbacks: int = 0
    max_chunk_frames: int = 0  # largest chunk held by backward iteration

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Cursor:
    """Sequential decoder over one container; ``next_index`` is the index of the next frame out."""

    def __init__(self, path: Path, index: _FrameIndex, stats: _Stats, allow_seek: bool):
        self._path = path
        self._index = index
        self._stats = stats
        self._allow_seek = allow_seek
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pending: av.VideoFrame | None = None  # frame read ahead while locating a seek landing
        self._verify = False  # check each frame's pts against the index (after seeks)
        self.next_index = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._frames = self._pending = None

    def _ensure_open(self) -> None:
        if self._container is None:
            self._container = _open_container(self._path)
            self._stream = self._container.streams[self._index.stream_index]
            _configure(self._stream)

    def _restart(self) -> None:
        self.close()
        self._ensure_open()
        self._frames = _decode_frames(self._container, self._stream, self._path)
        self._verify = self._index.seekable
        self.next_index = 0
        self._stats.restarts += 1

    def _seekable(self) -> bool:
        return self._allow_seek and self._index.seekable

    def _seek(self, keyframe: int, target: int) -> None:
        """Seek near ``keyframe`` and stop on the first frame identified as a keyframe <= target."""
        self._ensure_open()
        index = self._index
        self._container.seek(index.pts[keyframe], backward=True, any_frame=False, stream=self._stream)
        self._stream.codec_context.flush_buffers()
        self._frames = _decode_frames(self._container, self._stream, self._path)
        self._pending = None
        self._stats.seeks += 1
        keyframes = set(index.keyframes)
        for frame in self._frames:
            self._stats.decoded += 1
            found = index.pts_to_index.get(frame.pts) if frame.pts is not None else None
            if found is None:
                continue  # leading frames that belong before the landing point
            if found > target:
                raise _SeekMismatch(f"seek for frame {target} landed at frame {found}")
            if found in keyframes and not frame.is_corrupt:
                self._pending = frame
                self.next_index = found
                self._verify = True
                return
        raise _SeekMismatch(f"seek for frame {target} found no keyframe")

    def _goto(self, target: int) -> None:
        """Position the cursor so that ``next_index <= target`` using the cheapest safe route."""
        k = self._index.keyframes[bisect.bisect_right(self._index.keyframes, target) - 1]
        if self._frames is not None and self.next_index <= target:
            # Ahead of the cursor: keep decoding unless a keyframe lets a seek skip many frames.
            if self._seekable() and k > self.next_index + _SEEK_MIN_GAP:
                self._seek(k, target)
            return
        if self._seekable() and k > 0:
            self._seek(k, target)
        else:
            self._restart()

    def _next_frame(self) -> av.VideoFrame:
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            try:
                frame = next(self._frames)
            except StopIteration:
                raise CorruptVideoError(
                    f"{self._path.name}: decoding ended at frame {self.next_index}, "
                    f"but the first pass found {self._index.n_frames} frames"
                ) from None
            self._stats.decoded += 1
        if self._verify and (
            frame.pts != self._index.pts[self.next_index]
            or frame.is_corrupt != (self.next_index in self._index.corrupt)
        ):
            raise _SeekMismatch(
                f"frame {self.next_index}: pts {frame.pts} != recorded {self._index.pts[self.next_index]}"
            )
        self.next_index += 1
        return frame

    def read(self, wanted: Sequence[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(index, frame)`` for increasing, unique, in-range ``wanted``."""
        for target in wanted:
            while True:
                try:
                    self._goto(target)
                    while self.next_index < target:
                        self._next_frame()
                    frame = self._next_frame()
                    break
                except _SeekMismatch as exc:
                    # Timestamps did not identify frames reliably: never seek in this video again.
                    log.warning("%s: seeking disabled (%s); decoding sequentially", self._path.name, exc)
                    self._index.seekable = False
                    self._stats.seek_fallbacks += 1
                    self._restart()
            yield target, frame


# --------------------------------------------------------------------------------------------------
# The public video types.


def _check_indices(indices: Sequence[int] | np.ndarray, n_frames: int) -> list[int]:
    array = np.asarray(indices)
    if array.ndim != 1:
        raise ValueError(f"frame indices must be a 1-D sequence, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"frame indices must be integers, got dtype {array.dtype}")
    out = [int(i) for i in array]
    bad = [i for i in out if not 0 <= i < n_frames]
    if bad:
        raise IndexError(
            f"frame index {bad[0]} out of range: the video has {n_frames} frames (0..{n_frames - 1})"
        )
    return out


class _VideoBase:
    """What every video offers; subclasses supply ``_read`` and ``_reader``."""

    fps: float
    size: tuple[int, int]
    path: Path | None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def duration(self) -> float:
        """Seconds: frame count / fps."""
        return len(self) / self.fps

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB of the frames at ``indices``, in the order asked (duplicates ok).

        Raises IndexError for an index outside ``0 .. len(self) - 1``.
        """
        wanted = _check_indices(indices, len(self))
        width, height = self.size
        out = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
        slots: dict[int, list[int]] = {}
        for slot, i in enumerate(wanted):
            slots.setdefault(i, []).append(slot)
        for i, rgb in self._read(sorted(slots)):
            for slot in slots[i]:
                out[slot] = rgb
        return out

    def __getitem__(self, index: int) -> np.ndarray:
        """One frame (H, W, 3) uint8 RGB."""
        return self.frames([index])[0]

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1, reverse: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_idx, (H, W, 3) uint8 RGB)`` for ``range(start, stop, step)``.

        ``reverse=True`` yields the *same* frames last to first (backward propagation from a
        keyframe ``k`` is ``iter_frames(0, k, reverse=True)``: k-1, ..., 0). Memory is bounded:
        forward streams one frame at a time; backward decodes chunks of at most ``chunk_bytes``
        and reverses each. Each call decodes independently of :meth:`frames` and of other
        iterators, so they may be interleaved. Cost: a seekable video decodes each chunk from
        the keyframe before it; a video whose timestamps cannot identify frames (``seekable`` is
        False) re-decodes from the first frame for every chunk, so raise ``chunk_bytes`` for
        long ones.
        """
        n_frames = len(self)
        stop = n_frames if stop is None else stop
        if not 0 <= start <= stop <= n_frames:
            raise IndexError(f"iter_frames({start}, {stop}) out of range for a video of {n_frames} frames")
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        wanted = list(range(start, stop, step))
        return self._iter_reverse(wanted) if reverse else self._iter_forward(wanted)

    def _iter_forward(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        with self._reader() as reader:
            yield from reader(wanted)

    def _iter_reverse(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        width, height = self.size
        chunk = max(1, self.chunk_bytes // (width * height * 3))
        with self._reader() as reader:
            end = len(wanted)
            while end > 0:
                begin = max(0, end - chunk)
                frames = list(reader(wanted[begin:end]))
                self._note_chunk(len(frames))
                yield from reversed(frames)
                del frames
                end = begin

    def _note_chunk(self, n: int) -> None:
        pass

    def _read(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def _reader(self) -> AbstractContextManager[_ReadFn]:
        """A context giving a function that yields ``(index, rgb)`` for increasing indices."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> _VideoBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Video(_VideoBase):
    """A video file read lazily and frame-exactly (see the module docstring for how).

    ``len(video)`` frames, ``fps`` (float, mean rate of the emitted frames), ``size`` = (width,
    height), ``duration`` (s), ``path``. Thread-safe: :meth:`frames` calls are serialised on one
    cursor; each :meth:`iter_frames` iteration has its own.
    """

    def __init__(
        self,
        path: str | Path,
        caps: VideoCaps | None = None,
        *,
        seek: bool = True,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        caps = caps or VideoCaps()
        self._path = _check_path(path)
        file_bytes = self._path.stat().st_size
        if caps.max_file_bytes is not None and file_bytes > caps.max_file_bytes:
            raise VideoTooLargeError("max_file_bytes", file_bytes, caps.max_file_bytes, self._path)
        container = _open_container(self._path)
        try:
            stream = _video_stream(container, self._path)
            # Declared size first, so a huge video is refused before any decoding (either way
            # round: the display rotation is known only from the first decoded frame).
            width, height = stream.codec_context.width, stream.codec_context.height
            try:
                caps.check_size(width, height, self._path)
            except VideoTooLargeError as as_stored:
                try:
                    caps.check_size(height, width, self._path)
                except VideoTooLargeError:
                    raise as_stored from None
            _configure(stream)
            self._index = _build_index(container, stream, self._path, caps)
            self.codec = stream.codec_context.name
            self.format = container.format.name
        finally:
            container.close()
        self.path = self._path
        self.fps = self._index.fps
        if self._index.quarter_turns % 2:
            self.size = (self._index.height, self._index.width)
        else:
            self.size = (self._index.width, self._index.height)
        self.chunk_bytes = chunk_bytes
        self._allow_seek = seek
        self._stats = _Stats()
        self._lock = threading.Lock()
        self._cursor: _Cursor | None = None

    def __len__(self) -> int:
        return self._index.n_frames

    def __repr__(self) -> str:
        return (
            f"Video({self.path.name!r}, frames={len(self)}, fps={self.fps:.3f}, "
            f"size={self.size[0]}x{self.size[1]}, codec={self.codec})"
        )

    @property
    def seekable(self) -> bool:
        """Whether reads may seek (timestamps identify frames and no seek has failed verification)."""
        return self._allow_seek and self._index.seekable

    @property
    def stats(self) -> dict[str, int]:
        """Work done so far: frames decoded / converted, seeks, restarts, fallbacks, chunk sizes."""
        return self._stats.as_dict()

    @property
    def keyframes(self) -> list[int]:
        """Indices of frames the decoder flagged as keyframes."""
        return list(self._index.keyframes)

    @property
    def metadata(self) -> dict[str, Any]:
        """Exact facts from the decode pass beside what the container declares."""
        return {
            "path": str(self.path),
            "format": self.format,
            "codec": self.codec,
            "frames": len(self),
            "fps": self.fps,
            "fps_declared": self._index.fps_declared,
            "width": self.size[0],
            "height": self.size[1],
            "rotation": self._index.quarter_turns * 90,
            "duration_s": self.duration,
            "keyframes": len(self._index.keyframes),
            "seekable": self.seekable,
        }

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        self._stats.converted += 1
        index = self._index
        if frame.width != index.width or frame.height != index.height:
            # Mid-stream resolution change: scale to the first frame's size so arrays stack.
            rgb = frame.to_ndarray(format="rgb24", width=index.width, height=index.height)
        else:
            rgb = frame.to_ndarray(format="rgb24")
        if index.quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, index.quarter_turns))
        return rgb

    def _read(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        with self._lock:
            if self._cursor is None:
                self._cursor = _Cursor(self._path, self._index, self._stats, self._allow_seek)
            # Materialise under the lock: the shared cursor must not be advanced by two threads.
            frames = [(i, self._to_rgb(frame)) for i, frame in self._cursor.read(wanted)]
        return iter(frames)

    @contextmanager
    def _reader(self) -> Iterator[_ReadFn]:
        # A private cursor per iteration: iterations and frames() calls never move each other's.
        cursor = _Cursor(self._path, self._index, self._stats, self._allow_seek)
        try:
            yield lambda wanted: ((i, self._to_rgb(frame)) for i, frame in cursor.read(wanted))
        finally:
            cursor.close()

    def _note_chunk(self, n: int) -> None:
        self._stats.max_chunk_frames = max(self._stats.max_chunk_frames, n)

    def close(self) -> None:
        """Release the decoder (iterators in progress keep their own until they end)."""
        with self._lock:
            if self._cursor is not None:
                self._cursor.close()
                self._cursor = None


def open_video(
    path: str | Path,
    caps: VideoCaps | None = None,
    *,
    seek: bool = True,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Video:
    """Open a video file for frame-exact reading.

    One decode pass (no pixel conversion) counts the frames exactly and checks ``caps``. Raises a
    :class:`VideoError` subclass naming the problem: :class:`VideoNotFoundError`,
    :class:`NotAVideoError`, :class:`EmptyVideoError`, :class:`CorruptVideoError`,
    :class:`UnsupportedCodecError`, :class:`VideoTooLargeError`. ``seek=False`` forces purely
    sequential decoding; ``chunk_bytes`` bounds the RGB memory of backward iteration.
    """
    return Video(path, caps, seek=seek, chunk_bytes=chunk_bytes)


class ArrayVideo(_VideoBase):
    """The :class:`Video` interface over an in-memory (N, H, W, 3) uint8 RGB array."""

    def __init__(self, frames: np.ndarray, fps: float, path: str | Path | None = None):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"ArrayVideo needs (N, H, W, 3) frames, got shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise ValueError(f"ArrayVideo needs uint8 frames, got {frames.dtype}")
        if len(frames) == 0:
            raise EmptyVideoError("ArrayVideo got 0 frames")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self._array = frames
        self.fps = float(fps)
        self.size = (int(frames.shape[2]), int(frames.shape[1]))
        self.path = Path(path) if path is not None else None

    def __len__(self) -> int:
        return len(self._array)

    def __repr__(self) -> str:
        return f"ArrayVideo(frames={len(self)}, fps={self.fps:g}, size={self.size[0]}x{self.size[1]})"

    @property
    def array(self) -> np.ndarray:
        """The underlying (N, H, W, 3) array (not a copy)."""
        return self._array

    def _read(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for i in wanted:
            yield i, self._array[i]

    @contextmanager
    def _reader(self) -> Iterator[_ReadFn]:
        yield lambda wanted: ((i, self._array[i].copy()) for i in wanted)


# --------------------------------------------------------------------------------------------------
# Resizing.


def scaled_size(
    width: int,
    height: int,
    max_side: int | None = None,
    short_side: int | None = None,
    allow_upscale: bool = False,
) -> tuple[int, int]:
    """(width, height) after scaling so the longer side is ``max_side`` or the shorter ``short_side``.

    Aspect ratio kept (sides rounded, at least 1 px). Without ``allow_upscale`` a frame already
    within the bound keeps its size.
    """
    if (max_side is None) == (short_side is None):
        raise ValueError("give exactly one of max_side and short_side")
    target = max_side if max_side is not None else short_side
    if target is None or target < 1:
        raise ValueError(f"target side must be >= 1, got {target!r}")
    side = max(width, height) if max_side is not None else min(width, height)
    scale = target / side
    if scale >= 1 and not allow_upscale:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_frame(
    frame: np.ndarray,
    max_side: int | None = None,
    short_side: int | None = None,
    allow_upscale: bool = False,
) -> np.ndarray:
    """Resize an (H, W, C) or (H, W) image, keeping its aspect (see :func:`scaled_size`).

    Area interpolation when shrinking (no aliasing), bilinear when enlarging.
    """
    height, width = frame.shape[:2]
    new_w, new_h = scaled_size(width, height, max_side, short_side, allow_upscale)
    if (new_w, new_h) == (width, height):
        return frame
    interp = cv2.INTER_AREA if new_w < width else cv2.INTER_LINEAR
    return cv2.resize(frame, (new_w, new_h), interpolation=interp)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a (H, W) or (K, H, W) mask (bool or integer ids) to ``size`` = (w, h).

    Nearest keeps labels exact: no blended ids appear at object borders. The dtype is kept.
    """
    width, height = size
    if mask.ndim == 3:
        if len(mask) == 0:
            return np.zeros((0, height, width), dtype=mask.dtype)
        return np.stack([resize_mask(m, size) for m in mask])
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W) or (K, H, W), got shape {mask.shape}")
    if mask.shape == (height, width):
        return mask.copy()
    source = mask.astype(np.uint8) if mask.dtype == bool else mask
    out = cv2.resize(source, (width, height), interpolation=cv2.INTER_NEAREST)
    return out.astype(bool) if mask.dtype == bool else out


# --------------------------------------------------------------------------------------------------
# Writing.


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 20,
    preset: str = "veryfast",
) -> Path:
    """Encode (H, W, 3) uint8 RGB frames to a browser-playable H.264 mp4; returns the path.

    yuv420p needs even sides: an odd width or height is padded by repeating the last column / row
    (so pixel coordinates of the content do not move). ``+faststart`` puts the index first so a
    browser can start playing before the whole file arrives. All frames must share one size.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    first_shape: tuple[int, ...] | None = None
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = None
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
            if first_shape is None:
                first_shape = frame.shape
                height, width = frame.shape[:2]
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = width + width % 2, height + height % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            elif frame.shape != first_shape:
                raise ValueError(f"frame {count} has shape {frame.shape}, the first had {first_shape}")
            if frame.shape[0] % 2 or frame.shape[1] % 2:
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError("write_mp4 got no frames")
        for packet in stream.encode():
            container.mux(packet)
    return path


def davis_palette() -> np.ndarray:
    """(256, 3) uint8 palette of DAVIS / PASCAL VOC annotation PNGs (index = object id).

    Each id's bits are spread over the high bits of R, G and B in turn: 1 = dark red, 2 = dark
    green, 3 = olive, 4 = navy, ...
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        value, r, g, b = label, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[label] = (r, g, b)
    return palette


def write_mask_pngs(directory: str | Path, masks: Iterable[np.ndarray], start: int = 0) -> list[Path]:
    """Write (H, W) masks as ``%05d.png`` palette PNGs (pixel value = object id, DAVIS palette).

    Masks are uint8 object ids (0 = background) or bool (True -> id 1). Numbering starts at
    ``start``. Returns the written paths.
    """
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    palette = davis_palette().tobytes()
    paths: list[Path] = []
    for offset, mask in enumerate(masks):
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask {offset} must be (H, W), got shape {mask.shape}")
        if mask.dtype == bool:
            mask = mask.astype(np.uint8)
        elif mask.dtype != np.uint8:
            if mask.size and (mask.min() < 0 or mask.max() > 255):
                raise ValueError(f"mask {offset}: object ids must lie in 0..255")
            mask = mask.astype(np.uint8)
        height, width = mask.shape
        image = Image.frombytes("P", (width, height), np.ascontiguousarray(mask).tobytes())
        image.putpalette(palette)
        target = directory / f"{start + offset:05d}.png"
        image.save(target)
        paths.append(target)
    return paths


def read_mask_pngs(directory: str | Path) -> np.ndarray:
    """(T, H, W) uint8 object ids from a folder of mask PNGs, in file-name order.

    Palette ('P') and grayscale PNGs give their pixel values; RGB PNGs are mapped back through the
    DAVIS palette (an unknown colour is an error).
    """
    from PIL import Image

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"mask folder not found: {directory}")
    files = sorted(directory.glob("*.png"))
    if not files:
        raise ValueError(f"no PNG masks in {directory}")
    lookup = {tuple(int(c) for c in rgb): label for label, rgb in enumerate(davis_palette())}
    out: list[np.ndarray] = []
    for file in files:
        try:
            image = Image.open(file)
        except (OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{file} is not a readable PNG image ({exc.__class__.__name__})") from exc
        with image:
            if image.mode in ("P", "L", "1"):
                ids = np.array(image if image.mode != "1" else image.convert("L"), dtype=np.uint8)
                if image.mode == "1":
                    ids = (ids > 0).astype(np.uint8)
            else:
                rgb = np.array(image.convert("RGB"))
                colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
                labels = []
                for colour in colours:
                    key = tuple(int(c) for c in colour)
                    if key not in lookup:
                        raise ValueError(f"{file}: colour {key} is not in the DAVIS palette")
                    labels.append(lookup[key])
                ids = np.asarray(labels, dtype=np.uint8)[inverse.reshape(-1)].reshape(rgb.shape[:2])
        if out and ids.shape != out[0].shape:
            raise ValueError(
                f"{directory}: masks differ in size: {file.name} is {ids.shape[1]}x{ids.shape[0]}, "
                f"{files[0].name} is {out[0].shape[1]}x{out[0].shape[0]} (left over from another video?)"
            )
        out.append(ids)
    return np.stack(out)
