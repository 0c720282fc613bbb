"""Callback ack-latency prober for the bridge benchmark, in its own process.

Reads WECOM_TOKEN and WECOM_ENCODING_AES_KEY from the environment. Sends signed, encrypted
single-chat callbacks at a steady rate and records the time to
WeCom's HTTP 200, until terminated; then writes the latencies (seconds) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bot.wecom.crypto import WeComCrypto


async def probe(args: argparse.Namespace, stop: asyncio.Event) -> list[float]:
    """One callback every 1/rate seconds; each latency is one callback's ack time."""
    crypto = WeComCrypto(os.environ["WECOM_TOKEN"], os.environ["WECOM_ENCODING_AES_KEY"], "")
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        async def one(k: int) -> None:
            message = {"msgid": secrets.token_hex(12), "chattype": "single",
                       "from": {"userid": f"probe{k % 50}"}, "msgtype": "text",
                       "response_url": f"{args.reply_base}/cgi-bin/aibot/response?response_code=x",
                       "text": {"content": "你好"}}
            sealed = crypto.seal(json.dumps(message, ensure_ascii=False))
            query = urlencode({"msg_signature": sealed.msg_signature,
                               "timestamp": sealed.timestamp, "nonce": sealed.nonce})
            t0 = time.perf_counter()
            async with session.post(f"{args.bridge}/wecom/aibot?{query}",
                                    json={"encrypt": sealed.encrypt}) as r:
                await r.read()
                if r.status == 200:
                    latencies.append(time.perf_counter() - t0)

        tasks: set[asyncio.Task[None]] = set()
        k = 0
        while not stop.is_set():
            task = asyncio.create_task(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


def main(argv: list[str] | None = None) -> int:
    """Probe until SIGTERM, then write the latencies."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--reply-base", required=True)
    parser.add_argument("--rate", type=float, default=16.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    async def run() -> list[float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await probe(args, stop)

    args.out.write_text(json.dumps(asyncio.run(run())), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
