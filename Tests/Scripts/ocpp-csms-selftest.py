#!/usr/bin/env python3
"""Self-test of Tests/Scripts/ocpp-csms.py: starts it as a child process and drives it over loopback
with a station built on the same PyPI `ocpp` package (`ocpp.v21.ChargePoint`, which validates
every frame it sends and receives against the 2.1 schemas) and `websockets` as the client.

Covers: BootNotification (Accepted with the configured interval, Pending by command), Authorize
accepted and denied, a schema-invalid CALL answered by the library's CALLERROR, TransactionEvent
with a scripted CALLERROR then success and a scripted totalCost, silence, scripted answers queued
in order (and one sent unvalidated), the `call` command (answered, answered invalidly, answered
with a CALLERROR, unanswered, cut off by a drop), refusals (unknown station 404, subprotocol 400,
refuse 503 with Retry-After then accept), ocpp2.0.1 fallback, close (1001) and drop (1006),
command errors, end of stdin → exit 0, bad arguments → non-zero exit; raw frames (unknown
actions, SEND, formation errors, binary), quit; security profile 2 (TLS server certificate from
a throwaway CA made with the `openssl` CLI, Basic auth wrong → 401, right → connected) and
profile 3 (client certificate required, its CN recorded).

Prints PASS/FAIL per case; exits 1 on any failure. Run: python3 Tests/Scripts/ocpp-csms-selftest.py
"""
import asyncio
import base64
import json
import logging
import os
import ssl
import subprocess
import sys
import tempfile
import time

import websockets
from websockets.asyncio.client import connect
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ocpp-csms.py")
#: Seconds to wait for any single line, record entry or answer.
STEP_TIMEOUT_S = 5
#: Whole-run budget (s); the brief asks for under 60.
TOTAL_BUDGET_S = 55

failures = []


def report(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


class Station(ChargePoint):
    """The test station: answers some CSMS requests well, one invalidly, one with an error."""

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, **kwargs):
        return call_result.GetTransactionStatus(messages_in_queue=False, ongoing_indicator=True)

    @on("GetVariables", skip_schema_validation=True)
    def on_get_variables(self, **kwargs):
        # Deliberately not schema-valid (an item without the required fields).
        return call_result.GetVariables(get_variable_result=[{"bogus": 1}])

    @on("Reset")
    def on_reset(self, **kwargs):
        raise RuntimeError("this station does not reset")


class CSMSProcess:
    """ocpp-csms.py as a child: its stdout lines, its stdin commands, its record file."""

    def __init__(self, tmp, name):
        self.record = os.path.join(tmp, name + ".jsonl")
        self.proc = None
        self.port = None

    async def start(self, *args):
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, SCRIPT, "--host", "127.0.0.1", "--port", "0", "--record", self.record,
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        line = await self.line()
        assert line.startswith("listening 127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])

    async def line(self, timeout=STEP_TIMEOUT_S):
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        return raw.decode().rstrip("\n")

    async def send(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def cmd(self, obj):
        await self.send(obj)
        return await self.line()

    def events(self, event=None):
        with open(self.record, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
        return [e for e in entries if event is None or e["event"] == event]

    async def wait_event(self, predicate, timeout=STEP_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events() if predicate(e)]
            if found:
                return found[-1]
            await asyncio.sleep(0.05)
        return None

    async def stop(self):
        """Close stdin (the documented way to end it) and return the exit status."""
        if self.proc.returncode is None:
            self.proc.stdin.close()
        try:
            return await asyncio.wait_for(self.proc.wait(), STEP_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None


async def open_station(port, station_id, *, subprotocols=("ocpp2.1",), auth=None, tls=None,
                       scheme="ws"):
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    ws = await connect(f"{scheme}://127.0.0.1:{port}/ocpp/{station_id}",
                       subprotocols=list(subprotocols), additional_headers=headers, ssl=tls,
                       open_timeout=STEP_TIMEOUT_S)
    station = Station(station_id, ws, response_timeout=STEP_TIMEOUT_S)
    task = asyncio.ensure_future(station.start())
    return ws, station, task


async def shut(ws, task):
    await ws.close()
    task.cancel()


async def refused_status(port, station_id, **kwargs):
    """The HTTP status of a refused handshake (None if it was accepted)."""
    try:
        ws, _, task = await open_station(port, station_id, **kwargs)
    except websockets.InvalidStatus as refusal:
        return refusal.response.status_code, refusal.response.headers
    await shut(ws, task)
    return None, None


def boot_request():
    return call.BootNotification(
        charging_station={"model": "PB-1", "vendor_name": "paybridge"}, reason="PowerUp")


def tx_event(seq, event_type="Updated"):
    return call.TransactionEvent(
        event_type=event_type, timestamp="2026-12-05T19:00:00.000Z",
        trigger_reason="MeterValuePeriodic", seq_no=seq, transaction_info={"transaction_id": "TX-1"})


async def case(name, coroutine):
    try:
        await coroutine
    except Exception as error:  # a case that raises fails, the run goes on
        report(name, False, f"{type(error).__name__}: {error}")


# --- server A: plain ws, the protocol behaviour ---

async def protocol_cases(tmp):
    csms = CSMSProcess(tmp, "main")
    await csms.start("--stations", "CS-1,CS-2", "--deny-tokens", "BAD,WORSE", "--heartbeat", "42",
                     "--subprotocols", "ocpp2.1,ocpp2.0.1", "--boot-interval", "7")
    ws, st, task = await open_station(csms.port, "CS-1")

    async def boot():
        answer = await st.call(boot_request())
        ok = answer.status == "Accepted" and answer.interval == 42
        connect_event = (csms.events("connect") or [{}])[0]
        ok = ok and connect_event.get("station") == "CS-1" and connect_event.get("subprotocol") == "ocpp2.1"
        rec = csms.events("call")[-1]
        ok = ok and rec["action"] == "BootNotification" and rec["valid"] and rec["answer"] == "result"
        report("boot accepted with --heartbeat interval, connect and call recorded", ok,
               f"{answer} {connect_event} {rec}")
        ack = await csms.cmd({"cmd": "boot", "status": "Pending", "interval": 9})
        pending = await st.call(boot_request())
        await csms.cmd({"cmd": "boot", "status": "Accepted"})
        again = await st.call(boot_request())
        report("boot command: Pending with interval, then Accepted again",
               ack == "ok boot" and pending.status == "Pending" and pending.interval == 9
               and again.status == "Accepted" and again.interval == 42, f"{ack} {pending} {again}")
    await case("boot", boot())

    async def authorize():
        good = await st.call(call.Authorize(id_token={"id_token": "GOOD", "type": "ISO14443"}))
        bad = await st.call(call.Authorize(id_token={"id_token": "WORSE", "type": "ISO14443"}))
        report("authorize accepted / denied by --deny-tokens",
               good.id_token_info["status"] == "Accepted" and bad.id_token_info["status"] == "Blocked",
               f"{good} {bad}")
    await case("authorize", authorize())

    async def invalid_call():
        try:
            await st.call(call.Authorize(id_token={"id_token": "X"}), suppress=False,
                          skip_schema_validation=True)
            report("schema-invalid CALL answered with the library's CALLERROR", False, "no error")
            return
        except OCPPError as error:
            code = error.code
        rec = csms.events("call")[-1]
        report("schema-invalid CALL answered with the library's CALLERROR, recorded valid=false",
               code in ("ProtocolError", "FormationViolation", "OccurrenceConstraintViolation")
               and rec["valid"] is False and rec["answer"] == "error"
               and rec["callerror"]["code"] == code, f"{code} {rec}")
    await case("invalid call", invalid_call())

    async def transaction_errors():
        ack = await csms.cmd({"cmd": "callerror", "action": "TransactionEvent", "count": 1,
                              "code": "InternalError"})
        try:
            await st.call(tx_event(0, "Started"), suppress=False)
            first = None
        except OCPPError as error:
            first = error.code
        ack2 = await csms.cmd({"cmd": "respond", "action": "TransactionEvent",
                               "payload": {"totalCost": 1.5, "transactionLimit": {"maxCost": 20}}})
        second = await st.call(tx_event(0, "Started"), suppress=False)
        third = await st.call(tx_event(1), suppress=False)
        recs = [e for e in csms.events("call") if e["action"] == "TransactionEvent"][-3:]
        report("TransactionEvent: scripted CALLERROR, then scripted totalCost, then default {}",
               ack == "ok callerror" and first == "InternalError" and ack2 == "ok respond"
               and second.total_cost == 1.5 and second.transaction_limit == {"max_cost": 20}
               and third.total_cost is None
               and [r["answer"] for r in recs] == ["error", "result", "result"]
               and recs[0].get("scripted") == "callerror" and recs[1]["response"]["totalCost"] == 1.5,
               f"{ack} {first} {ack2} {second} {third} {recs}")
    await case("transaction errors", transaction_errors())

    async def silence():
        ack = await csms.cmd({"cmd": "silence", "action": "Heartbeat", "count": 1})
        st._response_timeout = 1
        try:
            await st.call(call.Heartbeat())
            silent = False
        except asyncio.TimeoutError:
            silent = True
        st._response_timeout = STEP_TIMEOUT_S
        answered = await st.call(call.Heartbeat())
        rec = [e for e in csms.events("call") if e["action"] == "Heartbeat"][0]
        report("silence: the next Heartbeat unanswered, the one after answered",
               ack == "ok silence" and silent and answered.current_time.endswith("Z")
               and rec["answer"] == "none", f"{ack} {silent} {answered} {rec}")
    await case("silence", silence())

    async def script_queue():
        acks = [await csms.cmd({"cmd": "silence", "action": "StatusNotification"}),
                await csms.cmd({"cmd": "callerror", "action": "StatusNotification",
                                "code": "SecurityError"}),
                await csms.cmd({"cmd": "respond", "action": "StatusNotification", "count": 2,
                                "payload": {"customData": {"vendorId": "test"}}}),
                await csms.cmd({"cmd": "respond", "action": "Heartbeat", "validate": False,
                                "payload": {"currentTime": 5}})]
        outcomes = []
        st._response_timeout = 1
        for _ in range(5):
            try:
                answer = await st.call(call.StatusNotification(
                    timestamp="2026-12-05T19:00:00Z", connector_status="Available", evse_id=1,
                    connector_id=1), suppress=False)
                outcomes.append(("result", answer.custom_data))
            except asyncio.TimeoutError:
                outcomes.append(("none", None))
            except OCPPError as error:
                outcomes.append(("error", error.code))
        st._response_timeout = STEP_TIMEOUT_S
        try:
            await st.call(call.Heartbeat())
            heartbeat = "accepted"
        except OCPPError as error:
            heartbeat = error.code  # the station's library refuses the invalid answer
        report("scripted answers queue in order; validate=false sends an invalid answer as is",
               acks == ["ok silence", "ok callerror", "ok respond", "ok respond"]
               and outcomes == [("none", None), ("error", "SecurityError"),
                                ("result", {"vendor_id": "test"}), ("result", {"vendor_id": "test"}),
                                ("result", None)]
               and heartbeat == "TypeConstraintViolation", f"{acks} {outcomes} {heartbeat}")
    await case("script queue", script_queue())

    async def csms_calls():
        ack = await csms.cmd({"cmd": "call", "action": "GetTransactionStatus", "payload": {}})
        line = await csms.line()
        ok = ack == "ok call" and line.startswith("response GetTransactionStatus ")
        ok = ok and json.loads(line.split(" ", 2)[2]) == {"messagesInQueue": False, "ongoingIndicator": True}
        rec = csms.events("response")[-1]
        ok = ok and rec["action"] == "GetTransactionStatus" and rec["valid"] is True
        report("call command: GetTransactionStatus answered, printed and recorded", ok, f"{ack} {line} {rec}")

        await csms.cmd({"cmd": "call", "action": "GetVariables", "payload": {"getVariableData": [
            {"component": {"name": "PaymentCtrlr"}, "variable": {"name": "Enabled"}}]}})
        line = await csms.line()
        rec = csms.events("response")[-1]
        report("call command: a schema-invalid answer reported invalid",
               line.startswith("invalid GetVariables ") and rec["valid"] is False, f"{line} {rec}")

        await csms.cmd({"cmd": "call", "action": "Reset", "payload": {"type": "Immediate"}})
        line = await csms.line()
        rec = csms.events("response")[-1]
        report("call command: a CALLERROR answer reported with its code",
               line == "callerror Reset InternalError" and rec["callerror"]["code"] == "InternalError",
               f"{line} {rec}")

        await csms.cmd({"cmd": "call", "action": "UnlockConnector",
                        "payload": {"evseId": 1, "connectorId": 1}, "timeout": 1})
        line = await csms.line()
        report("call command: no answer in time reported as timeout", line == "timeout UnlockConnector", line)

        bad = await csms.cmd({"cmd": "call", "action": "Reset", "payload": {"type": "Sometime"}})
        unknown = await csms.cmd({"cmd": "call", "action": "NoSuchAction", "payload": {}})
        nobody = await csms.cmd({"cmd": "call", "action": "Reset", "payload": {"type": "Immediate"},
                                 "station": "CS-9"})
        report("call command: invalid request, unknown action, absent station refused",
               bad.startswith("error call: request fails the schema")
               and unknown.startswith("error call: unknown OCPP 2.1 action")
               and nobody == "error call: station CS-9 not connected", f"{bad} | {unknown} | {nobody}")
    await case("csms calls", csms_calls())

    async def command_errors():
        lines = [await csms.cmd("not json"), await csms.cmd({"cmd": "fly"}),
                 await csms.cmd({"cmd": "callerror", "action": "Nope", "count": 1}),
                 await csms.cmd({"cmd": "silence", "action": "Heartbeat", "count": 0}),
                 await csms.cmd({"cmd": "respond", "action": "TransactionEvent",
                                 "payload": {"totalCost": "free"}})]
        report("bad commands answered with error lines",
               lines[0].startswith("error ?:") and lines[1] == "error fly: unknown command"
               and all(l.startswith(p) for l, p in zip(lines[2:], ("error callerror:", "error silence:",
                                                                    "error respond:"))), str(lines))
    await case("command errors", command_errors())

    async def raw_frames():
        raw = await connect(f"ws://127.0.0.1:{csms.port}/ocpp/CS-2", subprotocols=["ocpp2.1"],
                            open_timeout=STEP_TIMEOUT_S)
        answers = []
        for frame in ('[2,"m1","Reset",{"type":"Immediate"}]', '[2,"m2","Fly",{}]',
                      '[6,"m3","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":'
                      '"2026-12-05T19:00:00Z","data":[]}]', '[2,"m4"]', 'not json',
                      '[2,"m5","Heartbeat",{}]'):
            await raw.send(frame)
        while len(answers) < 4:
            answers.append(json.loads(await asyncio.wait_for(raw.recv(), STEP_TIMEOUT_S)))
        codes = [(a[0], a[1], a[2] if a[0] == 4 else None) for a in answers]
        await raw.send(b"\x00binary")
        try:
            await asyncio.wait_for(raw.recv(), STEP_TIMEOUT_S)
        except websockets.ConnectionClosed:
            pass
        sends = [e for e in csms.events("send") if e["id"] == "m3"]
        malformed = [e for e in csms.events("malformed") if e["station"] == "CS-2"]
        report("raw frames: NotImplemented, NotSupported, SEND recorded unanswered, "
               "formation errors, binary closes 1003",
               codes == [(4, "m1", "NotImplemented"), (4, "m2", "NotSupported"),
                         (4, "m4", "ProtocolError"), (3, "m5", None)]
               and len(sends) == 1 and len(malformed) == 3 and raw.close_code == 1003,
               f"{codes} {sends} {malformed} {raw.close_code}")
    await case("raw frames", raw_frames())

    async def refusals():
        status404, _ = await refused_status(csms.port, "CS-7")
        status400, _ = await refused_status(csms.port, "CS-2", subprotocols=("ocpp1.6",))
        refused = csms.events("refused")
        report("unknown station → 404, no common subprotocol → 400, both recorded",
               status404 == 404 and status400 == 400
               and [r["status"] for r in refused[-2:]] == [404, 400]
               and refused[-2]["station"] == "CS-7", f"{status404} {status400} {refused}")

        ws2, st2, task2 = await open_station(csms.port, "CS-2", subprotocols=("ocpp2.0.1",))
        st2._ocpp_version = "2.0.1"
        answer = await st2.call(boot_request())
        con = [e for e in csms.events("connect") if e["station"] == "CS-2"][-1]
        await shut(ws2, task2)
        report("ocpp2.0.1 accepted where configured", con["subprotocol"] == "ocpp2.0.1"
               and ws2.subprotocol == "ocpp2.0.1" and answer.status == "Accepted", f"{con} {answer}")

        ack = await csms.cmd({"cmd": "refuse", "seconds": 30})
        status503, headers = await refused_status(csms.port, "CS-2")
        ack0 = await csms.cmd({"cmd": "refuse", "seconds": 0})
        status_after, _ = await refused_status(csms.port, "CS-2")
        rec = csms.events("refused")[-1]
        report("refuse: 503 with Retry-After while refusing, accepted after refuse 0",
               ack == "ok refuse" and status503 == 503 and headers.get("Retry-After") == "30"
               and ack0 == "ok refuse" and status_after is None and rec["status"] == 503,
               f"{ack} {status503} {dict(headers or {})} {status_after} {rec}")
    await case("refusals", refusals())

    async def close_and_drop():
        nonlocal ws, st, task
        ack = await csms.cmd({"cmd": "close"})
        try:
            await asyncio.wait_for(task, STEP_TIMEOUT_S)
        except websockets.ConnectionClosed:
            pass
        rec = await csms.wait_event(lambda e: e["event"] == "disconnect" and e["station"] == "CS-1")
        report("close: the station sees close 1001, disconnect recorded",
               ack == "ok close" and ws.close_code == 1001 and rec is not None
               and rec["code"] == 1001 and rec["by"] == "csms", f"{ack} {ws.close_code} {rec}")

        ws, st, task = await open_station(csms.port, "CS-1")
        await st.call(boot_request())
        # A request the station leaves unanswered, then the drop: the call reports `closed`.
        pending = await csms.cmd({"cmd": "call", "action": "UnlockConnector",
                                  "payload": {"evseId": 1, "connectorId": 1}, "timeout": 10})
        await csms.send({"cmd": "drop"})
        lines = sorted([await csms.line(), await csms.line()])
        ack = "ok drop" if lines == ["closed UnlockConnector", "ok drop"] else f"{pending} {lines}"
        try:
            await asyncio.wait_for(task, STEP_TIMEOUT_S)
        except websockets.ConnectionClosed:
            pass
        recs = await csms.wait_event(lambda e: e["event"] == "disconnect" and e["code"] == 1006)
        report("drop: TCP aborted without close handshake (1006 on both sides), "
               "the pending call reported closed",
               ack == "ok drop" and ws.close_code == 1006 and recs is not None and recs["by"] == "csms",
               f"{ack} {ws.close_code} {recs}")
    await case("close and drop", close_and_drop())

    async def end_of_input():
        status = await csms.stop()
        report("end of stdin → exit 0", status == 0, f"exit {status}")
    await case("end of input", end_of_input())


# --- servers B and C: security profiles 2 and 3 ---

def make_pki(tmp):
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    def leaf(name, cn, usage, san=None):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
               f"extendedKeyUsage={usage}", "subjectKeyIdentifier=hash",
               "authorityKeyIdentifier=keyid,issuer"]
        if san:
            ext.append(f"subjectAltName={san}")
        with open(os.path.join(tmp, f"{name}.ext"), "w") as f:
            f.write("\n".join(ext) + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", f"{name}.pem", "-extfile", f"{name}.ext")

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=paybridge test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaf("server", "localhost", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    leaf("client", "CS-TLS", "clientAuth")
    return {name: os.path.join(tmp, name) for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def client_tls(pki, with_cert):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki["ca.pem"])
    if with_cert:
        context.load_cert_chain(pki["client.pem"], pki["client.key"])
    return context


async def profile2_cases(tmp, pki):
    csms = CSMSProcess(tmp, "profile2")
    await csms.start("--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"],
                     "--basic-auth", "CS-1:secret,CS-2:other", "--basic-auth", "CS-3:third")
    tls = client_tls(pki, with_cert=False)
    wrong, _ = await refused_status(csms.port, "CS-1", scheme="wss", tls=tls, auth="CS-1:guess")
    missing, _ = await refused_status(csms.port, "CS-1", scheme="wss", tls=tls)
    borrowed, _ = await refused_status(csms.port, "CS-1", scheme="wss", tls=tls, auth="CS-2:other")
    refused = csms.events("refused")
    report("profile 2: wrong, missing and another station's Basic credentials → 401, recorded",
           (wrong, missing, borrowed) == (401, 401, 401) and len(refused) == 3
           and all(r["status"] == 401 for r in refused), f"{wrong} {missing} {borrowed} {refused}")

    ws, st, task = await open_station(csms.port, "CS-3", scheme="wss", tls=tls, auth="CS-3:third")
    answer = await st.call(boot_request())
    await shut(ws, task)
    con = csms.events("connect")[-1]
    report("profile 2: wss with the server verified against the throwaway CA, right password",
           answer.status == "Accepted" and con["station"] == "CS-3" and con.get("user") == "CS-3"
           and "client_cn" not in con, f"{answer} {con}")
    ack = await csms.cmd({"cmd": "quit"})
    report("profile 2: quit command → ok quit, exit 0", ack == "ok quit" and await csms.stop() == 0, ack)


async def profile3_cases(tmp, pki):
    csms = CSMSProcess(tmp, "profile3")
    await csms.start("--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"],
                     "--tls-client-ca", pki["ca.pem"])
    ws, st, task = await open_station(csms.port, "CS-TLS", scheme="wss", tls=client_tls(pki, True))
    answer = await st.call(boot_request())
    await shut(ws, task)
    con = csms.events("connect")[-1]
    report("profile 3: client certificate accepted, its CN recorded",
           answer.status == "Accepted" and con.get("client_cn") == "CS-TLS", f"{answer} {con}")
    try:
        ws, st, task = await open_station(csms.port, "CS-TLS", scheme="wss", tls=client_tls(pki, False))
        await st.call(boot_request())
        await shut(ws, task)
        without = "connected"
    except (OSError, ssl.SSLError, websockets.WebSocketException, asyncio.TimeoutError) as error:
        without = type(error).__name__
    report("profile 3: no client certificate → no connection",
           without != "connected" and len(csms.events("connect")) == 1, without)
    report("profile 3: server ends on end of stdin", await csms.stop() == 0)


def bad_arguments():
    for args in (["--tls-cert", "x.pem"], ["--subprotocols", "ocpp1.6"], ["--basic-auth", "nocolon"],
                 ["--boot", "Maybe"]):
        run = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=STEP_TIMEOUT_S * 2)
        if run.returncode == 0 or not run.stderr.strip() or run.stdout:
            report("bad arguments → non-zero exit with a message", False, f"{args}: {run}")
            return
    report("bad arguments → non-zero exit with a message", True)


async def main():
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)  # the station's expected errors
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ocpp-csms-selftest-") as tmp:
        await protocol_cases(tmp)
        try:
            pki = make_pki(tmp)
        except (OSError, subprocess.CalledProcessError) as error:
            report("throwaway CA made with openssl", False, str(error))
            pki = None
        if pki:
            await case("profile 2", profile2_cases(tmp, pki))
            await case("profile 3", profile3_cases(tmp, pki))
        bad_arguments()
    elapsed = time.monotonic() - started
    report(f"finished within {TOTAL_BUDGET_S} s ({elapsed:.1f} s)", elapsed < TOTAL_BUDGET_S)
    print(f"{'FAIL' if failures else 'PASS'}: {len(failures)} failure(s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(asyncio.wait_for(main(), TOTAL_BUDGET_S + 5)))
