#!/usr/bin/env python3
"""The WebSocket interop peer for Tests/WebSocketTests/InteropTests.swift: the real `websockets`
library (PyPI) as an OCPP-J-like server on loopback. Prints its port on stdout, then serves:

- /ocpp/unknown: refused with 404; /ocpp/locked: 401 (Basic credentials wrong) with Retry-After;
  /ocpp/CP-1 needs Basic CP-1:secret, subprotocol ocpp2.1 (ocpp2.0.1 if that is all that is offered).
- On connect it pings (payload b"srv-ping") and requires the pong.
- Text "close:<code>": closes with that code and reason "bye".
- Any other text or binary: echoed back in three fragments, with a ping before it.
Exit 3 when `websockets` is missing, so the test can say why it skipped.
"""
import asyncio
import base64
import http
import sys

try:
    import websockets
    from websockets.asyncio.server import serve
except ImportError:
    print("websockets-missing", flush=True)
    sys.exit(3)


def process_request(connection, request):
    if request.path == "/ocpp/unknown":
        return connection.respond(http.HTTPStatus.NOT_FOUND, "no such station\n")
    expected = "Basic " + base64.b64encode(b"CP-1:secret").decode()
    if request.path == "/ocpp/locked" or request.headers.get("Authorization") != expected:
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "credentials\n")
        response.headers["Retry-After"] = "30"
        return response
    return None


def fragments(message):
    n = len(message)
    return [message[: n // 3], message[n // 3 : 2 * n // 3], message[2 * n // 3 :]]


async def handler(ws):
    await (await ws.ping(b"srv-ping"))
    async for message in ws:
        if isinstance(message, str) and message.startswith("close:"):
            await ws.close(int(message[6:]), "bye")
            return
        await ws.ping(b"between")
        await ws.send(fragments(message))


async def main():
    async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.1", "ocpp2.0.1"],
                     process_request=process_request, max_size=2**20, compression=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


asyncio.run(main())
