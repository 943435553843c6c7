"""Real, playable files for the emulator's video, audio and 3D models, made with real encoders.

Video is H.264 in MP4 (yuv420p, even dimensions, ``+faststart`` so a browser plays it while it loads),
encoded by PyAV, whose wheel carries FFmpeg with libx264 and libmp3lame. Speech is MP3 (libmp3lame),
music is WAV (the standard library's ``wave``), both real samples: a tone, a chirp. 3D is a GLB 2.0 cube
written by hand (a GLB is a 12-byte header, a JSON chunk and a BIN chunk; no library is needed for one
mesh). PyAV and Pillow are imported inside the functions: importing the emulator stays cheap. numpy is
not needed: frames come from Pillow images, samples from ``array``.
"""

from __future__ import annotations

import array
import io
import json
import math
import os
import struct
import tempfile
import wave
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: Frames per second of emulated videos: few frames, so a long clip still encodes in a moment.
VIDEO_FPS = 8
#: The longest clip or sound the emulator renders, whatever the inputs ask (seconds).
MAX_SECONDS = 10.0
SPEECH_RATE = 24000
MUSIC_RATE = 22050


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264 in yuv420p needs even dimensions; at least 16 px a side."""
    return max(16, width - width % 2), max(16, height - height % 2)


def encode_mp4(
    frames: Iterable[PILImage.Image], size: tuple[int, int], fps: int = VIDEO_FPS, *, sound: bytes | None = None
) -> bytes:
    """H.264 MP4 of the frames (resized to ``size``, which must be even), moov atom first; with ``sound``
    (an audio file, a lip-sync model's input) its samples as an AAC track."""
    import av

    width, height = size
    with tempfile.TemporaryDirectory(prefix="wavespeed-emulator-") as folder:
        # +faststart rewrites the file in a second pass by name: it cannot write to a BytesIO.
        path = os.path.join(folder, "out.mp4")
        with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "ultrafast", "crf": "30"}
            source = av.open(io.BytesIO(sound), mode="r") if sound is not None else None
            try:
                # Every stream is added before the first packet: the muxer writes its header then.
                track = None
                if source is not None:
                    track = container.add_stream("aac", rate=source.streams.audio[0].codec_context.sample_rate)
                    track.layout = "mono"
                for image in frames:
                    if image.size != size:
                        image = image.resize(size)
                    frame = av.VideoFrame.from_image(image.convert("RGB"))  # type: ignore[no-untyped-call]
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))
                if source is not None and track is not None:
                    for samples in source.decode(audio=0):
                        samples.pts = None
                        container.mux(track.encode(samples))
                    container.mux(track.encode(None))
            finally:
                if source is not None:
                    source.close()
        with open(path, "rb") as handle:
            return handle.read()


def frame_count(seconds: float, fps: int = VIDEO_FPS) -> int:
    """How many frames a clip of ``seconds`` (capped at :data:`MAX_SECONDS`) gets."""
    return max(2, round(min(max(seconds, 0.5), MAX_SECONDS) * fps))


def zoom_frames(still: PILImage.Image, size: tuple[int, int], count: int) -> Iterable[PILImage.Image]:
    """A slow zoom into a still: what the emulator's image-to-video models answer."""
    from PIL import Image, ImageOps

    base = ImageOps.fit(still, size, method=Image.Resampling.BILINEAR)
    width, height = size
    for index in range(count):
        zoom = 1.0 + 0.25 * index / max(1, count - 1)
        crop_w, crop_h = width / zoom, height / zoom
        left, top = (width - crop_w) / 2, (height - crop_h) / 2
        yield base.resize(size, Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))


def pan_frames(still: PILImage.Image, count: int) -> Iterable[PILImage.Image]:
    """A still scrolled sideways frame by frame: what text-to-video models answer."""
    from PIL import ImageChops

    step = max(1, still.width // max(1, count))
    for index in range(count):
        yield ImageChops.offset(still, index * step, 0)


def decode_frames(data: bytes, limit: int) -> list[PILImage.Image]:
    """The first ``limit`` frames of a video, as RGB images (video-to-video and lip-sync inputs)."""
    import av

    frames: list[PILImage.Image] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_image())  # type: ignore[no-untyped-call]
            if len(frames) >= limit:
                break
    if not frames:
        raise ValueError("the video has no frames")
    return frames


def audio_seconds(data: bytes) -> float:
    """Duration of an audio input, from its container (0 when it says none)."""
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        return container.duration / 1_000_000 if container.duration else 0.0


def tone(seconds: float, rate: int, *, chirp: bool) -> array.array[int]:
    """16-bit mono samples: a warbling voice-like tone, or (``chirp``) a rising sweep with a beat."""
    count = max(1, round(min(max(seconds, 0.2), MAX_SECONDS) * rate))
    samples = array.array("h", bytes(2 * count))
    phase = 0.0
    for index in range(count):
        t = index / rate
        if chirp:
            frequency = 220.0 * 2 ** ((t % 2.0) / 2.0)  # an octave up every two seconds, repeated
            envelope = 0.55 + 0.45 * math.cos(2 * math.pi * 2.0 * t)  # a 120 bpm pulse
        else:
            frequency = 180.0 + 40.0 * math.sin(2 * math.pi * 3.0 * t)  # syllable-like wobble
            envelope = 0.5 + 0.5 * abs(math.sin(2 * math.pi * 2.5 * t))
        phase += 2 * math.pi * frequency / rate
        samples[index] = int(9000 * envelope * math.sin(phase))
    return samples


def encode_mp3(samples: array.array[int], rate: int) -> bytes:
    """MP3 (libmp3lame) of 16-bit mono samples."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        step = 4096
        for start in range(0, len(samples), step):
            chunk = samples[start : start + step]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk))
            frame.sample_rate = rate
            frame.pts = start
            frame.planes[0].update(chunk.tobytes())
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def encode_wav(samples: array.array[int], rate: int) -> bytes:
    """PCM WAV of 16-bit mono samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def encode_glb(colour: tuple[int, int, int], generator: str = "WaveSpeed emulator") -> bytes:
    """A GLB 2.0 file of a unit cube (8 positions, 12 triangles) in ``colour``."""
    corners = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]  # fmt: skip
    positions = b"".join(struct.pack("<3f", *corner) for corner in corners)
    indices = b"".join(struct.pack("<3H", *face) for face in faces)
    binary = positions + indices  # 96 + 72 bytes: both multiples of 4
    document = {
        "asset": {"version": "2.0", "generator": generator},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "cube"}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*(c / 255 for c in colour), 1.0]}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(corners), "type": "VEC3",
             "min": [-0.5, -0.5, -0.5], "max": [0.5, 0.5, 0.5]},
            {"bufferView": 1, "componentType": 5123, "count": 3 * len(faces), "type": "SCALAR"},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": 34962},
            {"buffer": 0, "byteOffset": len(positions), "byteLength": len(indices), "target": 34963},
        ],
        "buffers": [{"byteLength": len(binary)}],
    }  # fmt: skip
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned; JSON pads with spaces
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(text), b"JSON"),
            text,
            struct.pack("<I4s", len(binary), b"BIN\x00"),
            binary,
        ]
    )


def mp4_free_box(size: int) -> bytes:
    """The 8-byte header of an ISO-BMFF ``free`` box of ``size`` bytes in all (players skip it), so a
    padded MP4 stays a valid MP4; sizes past 4 GiB use the 64-bit form (16-byte header)."""
    if size < 2**32:
        return struct.pack(">I4s", size, b"free")
    return struct.pack(">I4sQ", 1, b"free", size)
