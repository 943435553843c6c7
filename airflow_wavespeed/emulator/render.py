"""What a prediction's output is, by the kind of its model: an image, an MP4, an MP3 or WAV, a GLB, text.

Runs in a worker thread (the state hands :func:`render` to the loop's executor), never on the loop.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from airflow_wavespeed.emulator import catalog, images, media
from airflow_wavespeed.media.types import ACCEPTED

#: A prompt holding one of these is answered with that file instead (to test that a client refuses it).
HOSTILE_OUTPUTS: dict[str, tuple[bytes, str, str]] = {
    "[html-output]": (b"<!doctype html><html><body><script>alert(1)</script></body></html>", "html", "text/html"),
    "[svg-output]": (
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "svg", "image/svg+xml"
    ),
}
_TEXT_PER_SECOND = 15  # characters of speech per second, for a TTS clip's length
_RESOLUTION_SHORT_SIDE = {"480p": 480, "720p": 720, "1080p": 1080, "2k": 1440, "4k": 2160}


@dataclass
class Job:
    """Everything a render needs, copied from the prediction (the thread touches nothing shared)."""

    kind: str
    prompt: str
    params: dict[str, Any]
    aspect_ratio: str | None
    output_format: str
    scale: float
    images: list[bytes] = field(default_factory=list)
    #: Fetched video and audio inputs, by their media.
    media_inputs: dict[str, list[bytes]] = field(default_factory=dict)


@dataclass
class Output:
    """A rendered output: bytes with their extension and Content-Type, or a text answer."""

    data: bytes
    ext: str
    content_type: str
    text: str | None = None


def _typed(data: bytes, ext: str) -> Output:
    return Output(data, ext, ACCEPTED[ext].content_type)


def render(job: Job) -> Output:
    """The output of one prediction."""
    for marker, (data, ext, content_type) in HOSTILE_OUTPUTS.items():
        if marker in job.prompt:
            return Output(data, ext, content_type)
    made = catalog.media_of(job.kind)
    if made == "video":
        return _typed(_video(job), "mp4")
    if made == "audio":
        return _audio(job)
    if made == "3d":
        return _typed(media.encode_glb(images.prompt_colour(job.prompt or "3d")), "glb")
    if made == "text":
        answer = f"Emulated answer to: {job.prompt}"
        return Output(answer.encode("utf-8"), "txt", ACCEPTED["txt"].content_type, text=answer)
    return _image(job)


def _image(job: Job) -> Output:
    fmt = job.output_format
    if job.kind == "text-to-image" or not job.images:
        data = images.render_generated(job.prompt, job.aspect_ratio or "1:1", job.scale, fmt)
    else:
        data = images.render_edit(job.images, job.prompt, job.aspect_ratio, job.scale, fmt)
    return Output(data, fmt, images.CONTENT_TYPES[fmt])  # ``0.jpeg``, as the emulator always named it


def _seconds(job: Job, default: float = 5.0) -> float:
    value = job.params.get("duration")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return default
    return float(value)


def _video_size(job: Job, shape: tuple[int, int] | None) -> tuple[int, int]:
    """A real model's size (short side by its resolution, 480p by default) times the scale, even."""
    short = _RESOLUTION_SHORT_SIDE.get(
        str(job.params.get("resolution") or job.params.get("target_resolution") or "480p"), 480
    )
    width, height = shape if shape else (16, 9)
    size_input = re.fullmatch(r"(\d+)\*(\d+)", str(job.params.get("size", "")))
    if size_input and not shape:  # Wan's "832*480"
        width, height = int(size_input[1]), int(size_input[2])
    elif job.aspect_ratio and not shape:
        width, height = (int(part) for part in job.aspect_ratio.split(":"))
    long = round(short * max(width, height) / min(width, height))
    size = (long, short) if width >= height else (short, long)
    return media.even_size(round(size[0] * job.scale), round(size[1] * job.scale))


def _video(job: Job) -> bytes:
    videos, audios = job.media_inputs.get("video", []), job.media_inputs.get("audio", [])
    seconds = _seconds(job)
    if audios:  # lip sync: as long as the speech
        seconds = media.audio_seconds(audios[0]) or seconds
    count = media.frame_count(seconds)
    if videos:  # video-to-video: the input's frames, resized (an upscaler) and captioned
        frames = media.decode_frames(videos[0], count)
        size = _video_size(job, frames[0].size)
        return media.encode_mp4(frames, size)
    if job.images:  # image-to-video, lip sync from a portrait: a slow zoom into the input
        still = images.open_rgb(job.images[0])
        size = _video_size(job, still.size)
        if job.prompt:
            still = still.resize(size)
            images.draw_banner(still, job.prompt)
        sound = audios[0] if audios else None
        return media.encode_mp4(media.zoom_frames(still, size, count), size, sound=sound)
    from PIL import Image

    size = _video_size(job, None)
    still = Image.open(io.BytesIO(images.render_generated(job.prompt, "1:1", 1.0, "png"))).resize(size)
    return media.encode_mp4(media.pan_frames(still, count), size)


def _audio(job: Job) -> Output:
    text = job.params.get("text")
    if isinstance(text, str):  # speech: as long as the text would take to say, at the asked speed
        speed = job.params.get("speed")
        speed = float(speed) if isinstance(speed, (int, float)) and speed > 0 else 1.0
        seconds = max(0.5, len(text) / _TEXT_PER_SECOND / speed)
        return _typed(media.encode_mp3(media.tone(seconds, media.SPEECH_RATE, chirp=False), media.SPEECH_RATE), "mp3")
    rate = job.params.get("sample_rate")
    rate = rate if isinstance(rate, int) and 8000 <= rate <= 48000 else media.MUSIC_RATE
    length_ms = job.params.get("music_length_ms")
    seconds = length_ms / 1000 if isinstance(length_ms, (int, float)) and length_ms > 0 else _seconds(job, 3.0)
    return _typed(media.encode_wav(media.tone(seconds, rate, chirp=True), rate), "wav")
