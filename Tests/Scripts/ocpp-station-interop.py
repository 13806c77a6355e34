#!/usr/bin/env python3
"""The PyPI `ocpp` package's OCPP 2.1 ChargePoint as a station in front of cloud-sim's OCPP-J
binding, for Tests/CloudSimTests/OCPPJBindingTests.swift. Every request it sends and every
answer it gets is validated against the official 2.1 JSON schemas by the package itself.

usage: ocpp-station-interop.py PORT STATION
cloud-sim is expected to run with `--refuse-card 4242 Blocked --fail5xx TransactionEvent 1`.
Prints one JSON line per step ({"step":…, …}) and "done" at the end; exits 1 on the first
failed expectation, 3 when `ocpp` or `websockets` is missing.
"""
import asyncio
import json
import sys

try:
    import websockets
    from ocpp.exceptions import InternalError
    from ocpp.v21 import ChargePoint, call
except ImportError as e:
    print("missing", e, flush=True)
    sys.exit(3)

TIME = "2026-11-25T10:00:00.000Z"


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def expect(condition, what):
    if not condition:
        print("FAILED", what, flush=True)
        sys.exit(1)


def card(last4):
    return {"id_token": "PSP-77", "type": "DirectPayment",
            "additional_info": [{"additional_id_token": last4, "type": "CardLast4Digits"}]}


def transaction(event, seq, trigger):
    return call.TransactionEvent(event_type=event, seq_no=seq, timestamp=TIME, trigger_reason=trigger,
                                 transaction_info={"transaction_id": "tx-interop-1"}, evse={"id": 1, "connector_id": 1})


async def main(port, station):
    async with websockets.connect("ws://127.0.0.1:%d/ocpp/%s" % (port, station), subprotocols=["ocpp2.1"]) as ws:
        expect(ws.subprotocol == "ocpp2.1", "subprotocol ocpp2.1, got %r" % ws.subprotocol)
        cp = ChargePoint(station, ws, response_timeout=5)
        reader = asyncio.ensure_future(cp.start())

        boot = await cp.call(call.BootNotification(charging_station={"model": "P68", "vendor_name": "paybridge"}, reason="PowerUp"),
                             suppress=False)
        say("boot", status=boot.status, interval=boot.interval, current_time=boot.current_time)
        expect(boot.status == "Accepted" and boot.interval == 300, "boot Accepted 300")

        accepted = await cp.call(call.Authorize(id_token=card("1111")), suppress=False)
        say("authorize", status=accepted.id_token_info["status"])
        expect(accepted.id_token_info["status"] == "Accepted", "card 1111 accepted")
        blocked = await cp.call(call.Authorize(id_token=card("4242")), suppress=False)
        say("authorize", status=blocked.id_token_info["status"])
        expect(blocked.id_token_info["status"] == "Blocked", "card 4242 blocked")

        # The scripted fail5xx: an InternalError CALLERROR, then the retry with the same id is processed.
        try:
            await cp.call(transaction("Started", 0, "Authorized"), suppress=False, unique_id="tx-started-1")
            expect(False, "the first TransactionEvent fails with InternalError")
        except InternalError as e:
            say("transaction", error="InternalError", description=e.description)
        started = await cp.call(transaction("Started", 0, "Authorized"), suppress=False, unique_id="tx-started-1")
        say("transaction", event="Started", answer=started.__dict__ and {k: v for k, v in started.__dict__.items() if v is not None})
        # The same id once more: a retry of a processed message, answered again.
        await cp.call(transaction("Started", 0, "Authorized"), suppress=False, unique_id="tx-started-1")
        ended = await cp.call(transaction("Ended", 1, "StopAuthorized"), suppress=False)
        say("transaction", event="Ended", ok=ended is not None)

        await cp.call(call.StatusNotification(timestamp=TIME, connector_status="Available", evse_id=1, connector_id=1), suppress=False)
        settled = await cp.call(call.NotifySettlement(psp_ref="PSP-77", settlement_amount=12.34, settlement_time=TIME, status="Settled",
                                                      transaction_id="tx-interop-1"), suppress=False)
        say("settlement", ok=settled is not None)
        beat = await cp.call(call.Heartbeat(), suppress=False)
        say("heartbeat", current_time=beat.current_time)
        reader.cancel()
    print("done", flush=True)


asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
