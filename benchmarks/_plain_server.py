"""The reference ceiling: a minimal plain-aiohttp SSE server sending llama.cpp frames, nothing else.

No scripts, no faults, no JSON encoding per request: the frames are made once
and written in 32 KiB pieces. What an aiohttp server can do at best.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket

from aiohttp import web

_FRAMES = [
    b"data: "
    + json.dumps(
        {
            "index": 0,
            "content": f" w{i % 97}",
            "tokens": [100 + i % 97],
            "stop": False,
            "id_slot": 0,
            "tokens_predicted": i + 1,
            "tokens_evaluated": 4,
        },
        separators=(",", ":"),
    ).encode()
    + b"\n\n"
    for i in range(100_000)
]
_FINAL = b'data: {"index":0,"content":"","tokens":[],"stop":true,"stop_type":"limit"}\n\n'


async def completion(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    count = int(body.get("n_predict", 16))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for start in range(0, count, 200):
        await response.write(b"".join(_FRAMES[start : min(count, start + 200)]))
    await response.write(_FINAL)
    await response.write_eof()
    return response


async def main() -> None:
    app = web.Application()
    app.router.add_post("/completion", completion)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
