"""Command line: ``python -m airflow_wavespeed.emulator --port 8765 [--api-key KEY] [knobs...]``.

Every EmulatorConfig field is a flag (``processing_polls`` -> ``--processing-polls``), so an emulator
in another process (a demo, a benchmark, an Airflow triggerer) can start with any latency or fault
profile and be re-tuned later through ``POST /_emulator/config``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from airflow_wavespeed.emulator.config import EmulatorConfig, coerce_field, field_types
from airflow_wavespeed.emulator.server import create_app
from airflow_wavespeed.emulator.state import EmulatorState

_HELP: dict[str, str] = {
    "processing_polls": "result GETs answered 'processing' before the one that completes",
    "processing_seconds": "minimum seconds from creation to completion",
    "scale": "output size factor (1.0 = real sizes such as 1024x1024)",
    "balance": "USD answered by GET /api/v3/balance; each completed prediction lowers it by its price",
    "price_usd": "USD quoted for GPT Image 2 Edit and unlisted models not in --model-prices (listed: base_price)",
    "model_prices": "per-model prices, 'model=USD,model=USD' ('model=none': no price for it)",
    "sync_timeout_seconds": "how long a sync-mode POST waits before answering code 5004",
    "sync_timeout_http_status": "the HTTP status of that code-5004 answer (200, or e.g. 504)",
    "max_upload_bytes": "upload size limit (413 past it)",
    "large_output_bytes": "pad output files to this many bytes, streamed; an MP4 with a trailing free box (0 = off)",
    "output_url_extensions": "output URLs end in their extension (--no-output-url-extensions: /outputs/ID/0)",
    "output_content_type": "serve every output with this Content-Type (default: the true one)",
    "media_latency_factors": "processing_seconds times this per media made, 'image=1,audio=2,3d=3,video=4'",
    "price_endpoints": "price quotes that answer, 'price,pricing' (the other answers 404)",
    "price_discount_rate": "discount_rate of POST /api/v3/model/price; the billed price is lowered by it",
    "base64_data_uri_prefix": "prefix base64 outputs with data:image/...;base64,",
    "fetch_timeout_seconds": "timeout for fetching input image URLs",
    "public_base_url": "base of the URLs handed out (default: from the request's Host header)",
    "seed": "seed of the fault generator, for reproducible runs",
    "fail_rate": "fraction of predictions that fail",
    "submit_429_count": "the next N submits answer 429",
    "submit_429_rate": "fraction of submits answering 429",
    "retry_after": "Retry-After header value on 429s ('none' omits it)",
    "unavailable_retry_after": "Retry-After header value on 503s (default: none)",
    "poll_5xx_rate": "fraction of result GETs answering 500/502/503/504",
    "poll_429_rate": "fraction of result GETs answering 429",
    "malformed_rate": "fraction of result GETs answering a malformed 200",
    "drop_rate": "fraction of result GETs whose connection is dropped",
    "submit_drop_rate": "fraction of submits that create the prediction, then drop the connection",
    "submit_5xx_rate": "fraction of submits that create the prediction, then answer 500",
    "slow_rate": "fraction of result GETs delayed by --slow-seconds",
    "slow_seconds": "delay of slow result GETs",
    "slow_submit_seconds": "how long a submit whose prompt holds [slow-submit] answers after creating it",
    "upload_5xx_rate": "fraction of uploads answering 503",
    "sync_504_rate": "fraction of sync-mode submits answering a gateway 504",
}


def _field_parser(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return coerce_field(name, text, from_text=True)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


def build_parser() -> argparse.ArgumentParser:
    """Server flags plus one flag per EmulatorConfig field."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_wavespeed.emulator",
        description="Local emulator of the WaveSpeed v3 REST API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("WAVESPEED_EMULATOR_API_KEY"),
        help="accept only this bearer key (default: $WAVESPEED_EMULATOR_API_KEY, else any non-empty key)",
    )
    parser.add_argument("--access-log", action="store_true", help="log each request to stderr")
    defaults = EmulatorConfig()
    knobs = parser.add_argument_group("emulator config (also changeable at runtime: POST /_emulator/config)")
    for name, annotation in field_types().items():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        help_text = f"{_HELP.get(name, name)} (default: {default})"
        if annotation is bool:
            knobs.add_argument(
                flag, dest=name, default=default, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            knobs.add_argument(flag, dest=name, default=default, type=_field_parser(name), help=help_text)
    return parser


async def serve(
    host: str, port: int, api_key: str | None, config: EmulatorConfig, access_log: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM, announcing the URL on stdout once the port is bound."""
    state = EmulatorState(config, api_key)
    runner = web.AppRunner(
        create_app(state=state),
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        shutdown_timeout=0.5,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        ports = sorted({address[1] for address in runner.addresses if isinstance(address, tuple)})
        state.bound_ports.update(ports)
        shown_host = f"[{host}]" if ":" in host else host
        print(f"WaveSpeed emulator listening on http://{shown_host}:{ports[0]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt still works
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = EmulatorConfig(**{name: getattr(args, name) for name in field_types()})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.api_key, config, args.access_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
