#!/usr/bin/env python3
"""Independent WebSocket client for LoadKit's interop test (pip install websockets).

Connects to a LoadKit echo server, checks echoes of text and binary across all length forms,
ping/pong and a close handshake with code and reason. Exit status 0 on success.
Usage: client.py ws://127.0.0.1:PORT/path
"""
import asyncio
import sys

from websockets.asyncio.client import connect


async def main(url):
    async with connect(url, subprotocols=["chat"], max_size=4 << 20, compression=None) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        for n in [0, 1, 125, 126, 127, 65535, 65536, 1 << 20]:
            data = bytes((i * 31 + n) & 0xFF for i in range(n))
            await ws.send(data)
            got = await ws.recv()
            assert got == data, f"binary {n}"
            text = "é" * (n // 2) + ("a" if n % 2 else "")
            await ws.send(text)
            got = await ws.recv()
            assert got == text, f"text {n}"
        # Fragmented message (Python sends an iterable as fragments).
        await ws.send(["frag", "mented", " ü"])
        assert await ws.recv() == "fragmented ü"
        pong = await ws.ping(b"abc")
        await asyncio.wait_for(pong, 5)
        await ws.close(4001, "bye")
        assert ws.close_code == 4001, ws.close_code
    print("OK")


asyncio.run(main(sys.argv[1]))
