#!/usr/bin/env python3
"""Independent WebSocket peer for LoadKit's interop test (pip install websockets).

Echo server: echoes text and binary; the text "close-me" makes it close with 4000 "TIMEOUT".
Selects subprotocol "chat" when offered. Prints "READY <port>" once listening.
Usage: echo_server.py [port]   (0 = pick a free port)
"""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        if message == "close-me":
            await ws.close(4000, "TIMEOUT")
            return
        await ws.send(message)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with serve(echo, "127.0.0.1", port, subprotocols=["chat"], max_size=4 << 20,
                     compression=None) as server:
        print("READY", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
