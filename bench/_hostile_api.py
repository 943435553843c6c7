"""A hostile WaveSpeed for bench/hostile.py, in its own process so its CPU is not the client's.

    python bench/_hostile_api.py PORT_FILE [--big-bytes N]

Result polls of ``hung-*`` never answer; ``huge`` streams a JSON-looking body of ``--big-bytes``;
``bomb`` answers a gzip body that expands to ``--big-bytes``; any other id answers "processing" and
has its poll time recorded. ``GET /_stats`` answers ``{"polls": {id: [monotonic times]}, "hits": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import zlib
from collections import Counter
from pathlib import Path

from aiohttp import web

CHUNK = 1 << 20


def gzip_bomb(expanded: int) -> bytes:
    """A gzip stream of ``{"code": 200, "message": "000…`` expanding to ``expanded`` bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    parts = [packer.compress(b'{"code": 200, "message": "')]
    zeros = b"0" * CHUNK
    for _ in range(expanded // CHUNK):
        parts.append(packer.compress(zeros))
    parts.append(packer.flush())
    return b"".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port_file")
    parser.add_argument("--big-bytes", type=int, default=1536 * CHUNK)
    args = parser.parse_args()
    bomb = gzip_bomb(args.big_bytes)
    polls: dict[str, list[float]] = {}
    hits: Counter[str] = Counter()

    async def result(request: web.Request) -> web.StreamResponse:
        prediction_id = request.match_info["id"]
        hits[prediction_id.split("-")[0]] += 1
        if prediction_id.startswith("hung"):
            await asyncio.sleep(3600)
        if prediction_id == "bomb":
            return web.Response(body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        if prediction_id == "huge":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            block, sent = b"x" * CHUNK, 0
            try:
                await response.write(b'{"code": 200, "message": "')
                while sent < args.big_bytes:
                    await response.write(block)
                    sent += CHUNK
                await response.write(b'"}')
            except ConnectionError:
                pass
            return response
        polls.setdefault(prediction_id, []).append(time.monotonic())
        data = {"id": prediction_id, "model": "m/x", "status": "processing", "outputs": []}
        return web.json_response({"code": 200, "message": "success", "data": data})

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.json_response({"polls": polls, "hits": hits, "now": time.monotonic()})

    async def reset(request: web.Request) -> web.StreamResponse:
        polls.clear()
        hits.clear()
        return web.json_response({})

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/api/v3/predictions/{id}/result", result)
        app.router.add_get("/_stats", stats)
        app.router.add_post("/_reset", reset)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
        Path(args.port_file).write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
