#!/usr/bin/env python3
"""A WebSocket client driven line by line, for Tests/CloudSimTests/OCPPJBindingTests.swift: the
real `websockets` library (PyPI) as the station in front of cloud-sim's OCPP-J binding.

Prints "ready", then reads one JSON command per line on stdin and answers each with one JSON
line on stdout:
  {"op":"connect","port":N,"path":"/ocpp/CS-1","subprotocols":[...],"headers":[[name,value],...]}
      -> {"ok":true,"subprotocol":"ocpp2.1"} | {"ok":false,"status":404,"body":"..."} | {"ok":false,"error":"..."}
  {"op":"send","text":"..."}            -> {"ok":true} | {"ok":false,"error":"..."}
  {"op":"recv","timeout":S}             -> {"ok":true,"text":"..."} | {"ok":false,"timeout":true}
                                           | {"ok":false,"closed":true,"code":C,"reason":"..."} (C null: no close frame)
  {"op":"close","code":C,"reason":"..."} -> {"ok":true,"code":C} (the code of the server's echo)
Exit 3 when `websockets` is missing, so the test can say why it skipped.
"""
import json
import sys

try:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect
except ImportError:
    print("websockets-missing", flush=True)
    sys.exit(3)


def closed(e):
    frame = e.rcvd
    return {"ok": False, "closed": True, "code": frame.code if frame else None, "reason": frame.reason if frame else ""}


def main():
    ws = None
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "connect":
                try:
                    ws = connect("ws://127.0.0.1:%d%s" % (cmd["port"], cmd["path"]),
                                 subprotocols=cmd.get("subprotocols", ["ocpp2.1"]),
                                 additional_headers=[tuple(h) for h in cmd.get("headers", [])],
                                 compression=None, open_timeout=5, close_timeout=5, max_size=2**20)
                    reply = {"ok": True, "subprotocol": ws.subprotocol}
                except InvalidStatus as e:
                    reply = {"ok": False, "status": e.response.status_code,
                             "body": e.response.body.decode("utf-8", "replace") if e.response.body else ""}
            elif op == "send":
                ws.send(cmd["text"])
                reply = {"ok": True}
            elif op == "recv":
                try:
                    message = ws.recv(timeout=cmd.get("timeout", 5))
                    reply = {"ok": True, "text": message} if isinstance(message, str) else {"ok": True, "binary": message.hex()}
                except TimeoutError:
                    reply = {"ok": False, "timeout": True}
            elif op == "close":
                ws.close(cmd.get("code", 1000), cmd.get("reason", ""))
                reply = {"ok": True, "code": ws.close_rcvd.code if ws.close_rcvd else None}
            else:
                reply = {"ok": False, "error": "unknown op " + op}
        except ConnectionClosed as e:
            reply = closed(e)
        except Exception as e:
            reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(reply), flush=True)


main()
