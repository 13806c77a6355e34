#!/usr/bin/env python3
"""A scriptable test CSMS (OCPP 2.1, OCPP-J over WebSocket) built on the PyPI `ocpp` package.

Issue 15's proof against a CSMS nobody on the team wrote: the protocol logic (framing, schema
validation of every CALL the station sends and every answer it gives, error codes) is the `ocpp`
package's (`ocpp.v21.ChargePoint`, official 2.1 JSON schemas); the WebSocket server is the
`websockets` package's. This script only adds the CSMS's policy, a script interface and a record.

Usage:
    python3 Tests/Scripts/ocpp-csms.py --host 127.0.0.1 --port 0 --record events.jsonl \
        [--stations CS-1,CS-2] [--basic-auth CS-1:secret[,CS-2:pw2]] \
        [--tls-cert srv.pem --tls-key srv.key [--tls-client-ca ca.pem]] \
        [--subprotocols ocpp2.1[,ocpp2.0.1]] [--heartbeat 300] \
        [--boot Accepted|Pending|Rejected] [--boot-interval 30] [--deny-tokens T1,T2] \
        [--ping-interval 20] [--call-timeout 30] [--verbose]

Once listening it prints exactly one line `listening HOST:PORT` on stdout. Then it reads one JSON
command per line on stdin and acknowledges each with one line `ok CMD` or `error CMD: reason`
(CMD is "?" when the line is not a JSON object with a known "cmd"). End of stdin: exit 0.

Commands ({"cmd": ...}):
    close                      close every station connection (WebSocket close 1001)
    drop                       abort every station's TCP connection (no close handshake)
    refuse   seconds=S         refuse new connections (HTTP 503, Retry-After) for S s; 0 ends it
    callerror action=A count=N code=C [description=D]
                               answer the next N CALLs of A with a CALLERROR of code C
    silence  action=A count=N  do not answer the next N CALLs of A at all
    respond  action=A payload={...} count=N [validate=false]
                               answer the next N CALLs of A with the default response with
                               `payload` merged over it (dicts merged recursively, a null value
                               removes the key); checked against the schema now unless
                               validate=false (then sent as is, to test the station's checks)
    boot     status=S [interval=N]
                               answer future BootNotifications with S; N is the heartbeat
                               interval when S is Accepted, else the retry interval
    call     action=A payload={...} [station=ID] [validate=false] [timeout=S]
                               send a CALL to the only (or the named) connected station; after
                               `ok call` one more line follows when the answer is in:
                               `response A {json}`, `callerror A CODE`, `invalid A reason`
                               (the answer failed the 2.1 schema), `timeout A` (no answer in
                               time) or `closed A` (the connection ended first)
    quit                       exit 0
Scripted answers (callerror, silence, respond) of one action queue in the order given; each is
used for `count` (default 1) valid CALLs. A CALL that fails the schema is always answered by the
library's own CALLERROR and uses up no scripted answer.

Answers to a station's CALLs (valid against the 2.1 schema, checked by the library before
sending): BootNotification {currentTime, interval, status}, Heartbeat {currentTime}, Authorize
{idTokenInfo.status: Blocked for --deny-tokens, else Accepted}, every other action a station
sends the smallest valid answer ({} where allowed: TransactionEvent, StatusNotification,
MeterValues, NotifyReport, NotifyEvent, SecurityEventNotification, NotifySettlement, ...).
A 2.1 action only a CSMS sends gets NotImplemented, a name outside 2.1 NotSupported.
Basic auth (profiles 1/2): the user must be the station id of the path (OCPP 2.x security).

Lines after `ok call` arrive whenever the station answers, so they may come between a later
command and its acknowledgement: read stdout by the first word. (callerror, silence and respond
take only actions a station sends.)

Record (--record FILE, appended to): JSON lines flushed one by one in the order things happened;
"t" is Unix time in seconds (float). Events:
    {"event":"connect","station","path","subprotocol","client_cn"?,"user"?,"t"}
    {"event":"refused","status","path","station"?,"reason","t"}
    {"event":"disconnect","station","code","reason","by":"csms"|"station","t"}
    {"event":"call","station","id","action","payload","valid","answer":"result"|"error"|"none",
     "response"? (payload sent),"callerror"? {"code","description"},"scripted"?,"error"?,"t"}
        (written before the answer is sent, so a station that has its answer finds it recorded)
    {"event":"response","station","action","id","request","payload"?,"valid","error"?,
     "callerror"? {"code","description","details"},"t"}
    {"event":"malformed","station","raw","error","t"}    a frame the library cannot unpack (a
        CALL whose id is readable is still answered with a CALLERROR; a binary frame closes 1003)
    {"event":"send","station","id","action","payload","t"}   an OCPP 2.1 SEND frame (type 6)
    {"event":"callresulterror","station","id","code","description","t"}   type 5

A refused TLS handshake (profile 3 without a valid client certificate) happens before HTTP and
is not recorded. Exit status 2 with a message on stderr on bad arguments.
"""
import argparse
import asyncio
import base64
import binascii
import copy
import datetime
import http
import importlib.metadata
import json
import logging
import math
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

try:
    import websockets
    from websockets.asyncio.server import serve
    from ocpp.exceptions import (
        NotImplementedError as OCPPNotImplemented,
        NotSupportedError as OCPPNotSupported,
        OCPPError,
    )
    import ocpp.messages
    from ocpp.messages import Call, CallError, CallResult, MessageType, unpack, validate_payload
    from ocpp.v21 import ChargePoint as V21ChargePoint
    from ocpp.v21.enums import Action as V21Action
except ImportError as missing:
    print(f"ocpp-csms: missing Python package: {missing}", file=sys.stderr, flush=True)
    sys.exit(3)

#: The `ocpp` release whose ChargePoint internals (route_message, _handle_call, _call_lock,
#: _get_specific_response, _send) this script extends; another release is used with a warning.
TESTED_OCPP_VERSION = "2.1.0"
#: Subprotocols this CSMS can serve, with the `ocpp` package's version string for each.
KNOWN_SUBPROTOCOLS = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}
#: Boot statuses of RegistrationStatusEnumType.
BOOT_STATUSES = ("Accepted", "Pending", "Rejected")
#: Default heartbeat interval (s) in an Accepted BootNotificationResponse.
DEFAULT_HEARTBEAT_S = 300
#: Default retry interval (s) in a Pending or Rejected BootNotificationResponse.
DEFAULT_BOOT_INTERVAL_S = 30
#: Default WebSocket ping interval (s) of the server; 0 turns pings off.
DEFAULT_PING_INTERVAL_S = 20
#: Default time (s) a `call` command waits for the station's answer.
DEFAULT_CALL_TIMEOUT_S = 30
#: Largest WebSocket message accepted (bytes).
MAX_MESSAGE_BYTES = 1 << 20
#: How much of a malformed frame is kept in the record (characters).
MALFORMED_KEEP_CHARS = 2000
#: Longest reason printed on one stdout line (characters).
MAX_REASON_CHARS = 300
#: Close code for a CSMS-initiated close ("going away").
CLOSE_GOING_AWAY = 1001
#: Close code for a binary frame (OCPP-J frames are text).
CLOSE_UNSUPPORTED_DATA = 1003
#: Close code recorded when no close frame was exchanged.
CLOSE_ABNORMAL = 1006
#: OCPP-J message type numbers the `ocpp` package does not know (2.1 additions).
MESSAGE_TYPE_CALLRESULTERROR = 5
MESSAGE_TYPE_SEND = 6

#: Actions a station sends to a CSMS (OCPP 2.1); each has a default answer. Other 2.1 actions
#: from a station get NotImplemented, names outside 2.1 NotSupported.
STATION_ACTIONS = (
    "Authorize", "BatterySwap", "BootNotification", "ClearedChargingLimit",
    "ClosePeriodicEventStream", "DataTransfer", "FirmwareStatusNotification",
    "Get15118EVCertificate", "GetCertificateChainStatus", "GetCertificateStatus", "Heartbeat",
    "LogStatusNotification", "MeterValues", "NotifyChargingLimit", "NotifyCustomerInformation",
    "NotifyDERAlarm", "NotifyDERStartStop", "NotifyDisplayMessages", "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport", "NotifyPriorityCharging",
    "NotifyReport", "NotifySettlement", "OpenPeriodicEventStream",
    "PublishFirmwareStatusNotification", "PullDynamicScheduleUpdate", "ReportChargingProfiles",
    "ReportDERControl", "ReservationStatusUpdate", "SecurityEventNotification", "SignCertificate",
    "StatusNotification", "TransactionEvent", "VatNumberValidation",
)
KNOWN_ACTIONS = {a.value for a in V21Action}

# Validate on the event loop, not through a thread-pool hop per message: the schema check is
# well under a millisecond, and the hop cost about a third of the calls per second a station
# can drain through this CSMS (measured on loopback: ~1500/s with it, ~2200/s without).
ocpp.messages.ASYNC_VALIDATION = False


def now_iso():
    """UTC now as OCPP's date-time (RFC 3339 with milliseconds and Z)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def jsonable(value):
    """The value as plain JSON data (library error details may hold message objects)."""
    return json.loads(json.dumps(value, default=str))


def reason_of(error):
    """One line saying why the library refused a payload (its cause's first line, bounded)."""
    cause = error.details.get("cause") if isinstance(error.details, dict) else None
    text = f"{error.code}: {cause or error.description}"
    return " ".join(text.splitlines()[0].split())[:MAX_REASON_CHARS]


def merge(base, over):
    """`over` merged into a copy of `base`: dicts recursively, None deletes a key."""
    result = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class Output:
    """stdout (protocol lines) and the record file, each line flushed at once."""

    def __init__(self, record_path):
        self.record_file = open(record_path, "a", encoding="utf-8") if record_path else None

    def say(self, line):
        # One protocol line per answer, whatever a reason contains.
        sys.stdout.write(" ".join(line.splitlines()) + "\n")
        sys.stdout.flush()

    def record(self, event, **fields):
        if self.record_file is None:
            return
        entry = {"event": event, **fields, "t": round(time.time(), 6)}
        self.record_file.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
        self.record_file.flush()


class Script:
    """The CSMS's policy: defaults from the command line, changed by stdin commands."""

    def __init__(self, args):
        self.heartbeat = args.heartbeat
        self.boot_status = args.boot
        self.boot_interval = args.boot_interval
        self.deny_tokens = set(args.deny_tokens)
        self.queues = {}  # action -> list of [kind, remaining, data]
        self.refuse_until = 0.0

    def push(self, action, kind, count, data):
        self.queues.setdefault(action, []).append([kind, count, data])

    def take(self, action):
        """The next scripted answer for `action` as (kind, data), or None."""
        queue = self.queues.get(action)
        if not queue:
            return None
        entry = queue[0]
        entry[1] -= 1
        if entry[1] <= 0:
            queue.pop(0)
        return entry[0], entry[2]

    def refusing(self):
        """Seconds of refusal left (0 when connections are accepted)."""
        return max(0.0, self.refuse_until - time.monotonic())

    def default_response(self, action, payload):
        """A schema-valid answer to a station's CALL (policy of a permissive CSMS)."""
        if action == "BootNotification":
            interval = self.heartbeat if self.boot_status == "Accepted" else self.boot_interval
            return {"currentTime": now_iso(), "interval": interval, "status": self.boot_status}
        if action == "Heartbeat":
            return {"currentTime": now_iso()}
        if action == "Authorize":
            token = (payload.get("idToken") or {}).get("idToken")
            status = "Blocked" if token in self.deny_tokens else "Accepted"
            return {"idTokenInfo": {"status": status}}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        if action in ("Get15118EVCertificate",):
            return {"status": "Failed", "exiResponse": ""}
        if action == "GetCertificateStatus":
            return {"status": "Failed"}
        if action == "GetCertificateChainStatus":
            asked = payload.get("certificateStatusRequests") or []
            return {"certificateStatus": [
                {"source": item.get("source", "OCSP"), "status": "Unknown",
                 "nextUpdate": now_iso(), "certificateHashData": item.get("certificateHashData")}
                for item in asked]}
        if action == "NotifyEVChargingNeeds":
            return {"status": "NoChargingProfile"}
        if action == "PullDynamicScheduleUpdate":
            return {"status": "Rejected"}
        if action in ("NotifyEVChargingSchedule", "OpenPeriodicEventStream", "SignCertificate"):
            return {"status": "Accepted"}
        if action == "VatNumberValidation":
            return {"vatNumber": payload.get("vatNumber", ""), "status": "Accepted"}
        return {}


class Station(V21ChargePoint):
    """One connected station, served by the `ocpp` package's ChargePoint with recording.

    `_handle_call` is replaced so the record sees every CALL and its answer, and scripted
    answers can be given; validation in both directions is still the package's
    `validate_payload`, and the package's CALLERROR for an invalid payload is what is sent.
    """

    def __init__(self, station_id, connection, csms, version):
        super().__init__(station_id, connection, response_timeout=DEFAULT_CALL_TIMEOUT_S)
        self._ocpp_version = version
        self.csms = csms
        self.closed_by_csms = False

    async def route_message(self, raw_msg):
        out = self.csms.out
        if isinstance(raw_msg, bytes):
            # OCPP-J frames are text; a binary frame is closed with "unsupported data".
            out.record("malformed", station=self.id, raw=raw_msg[:MALFORMED_KEEP_CHARS].hex(),
                       error="binary frame")
            self.closed_by_csms = True
            await self._connection.close(CLOSE_UNSUPPORTED_DATA, "OCPP-J frames are text")
            return
        try:
            parsed = json.loads(raw_msg)
        except (TypeError, ValueError):
            parsed = None
        if isinstance(parsed, list) and parsed and parsed[0] == MESSAGE_TYPE_SEND and len(parsed) >= 4:
            out.record("send", station=self.id, id=parsed[1], action=parsed[2], payload=parsed[3])
            return
        if isinstance(parsed, list) and parsed and parsed[0] == MESSAGE_TYPE_CALLRESULTERROR:
            fields = parsed + [None] * 4
            out.record("callresulterror", station=self.id, id=fields[1], code=fields[2],
                       description=fields[3])
            return
        try:
            unpack(raw_msg)
        except OCPPError as error:
            out.record("malformed", station=self.id, raw=str(raw_msg)[:MALFORMED_KEEP_CHARS],
                       error=f"{error.code}: {error.description} {jsonable(error.details)}")
            # A CALL whose id can be read still gets an answer (OCPP-J: the error code of the
            # formation problem); anything else cannot be answered.
            if (isinstance(parsed, list) and len(parsed) >= 2 and parsed[0] == MessageType.Call
                    and isinstance(parsed[1], str)):
                answer = CallError(parsed[1], error.code, error.description, {})
                await self._send(answer.to_json())
            return
        await super().route_message(raw_msg)

    async def _handle_call(self, msg):
        out = self.csms.out
        entry = {"station": self.id, "id": msg.unique_id, "action": msg.action,
                 "payload": msg.payload}
        try:
            if msg.action not in KNOWN_ACTIONS:
                entry["valid"] = False
                raise OCPPNotSupported(details={"cause": f"{msg.action} is not an OCPP 2.1 action"})
            try:
                await validate_payload(msg, self._ocpp_version)
            except OCPPError as error:
                entry["valid"] = False
                raise
            entry["valid"] = True
            if msg.action not in STATION_ACTIONS:
                raise OCPPNotImplemented(details={"cause": f"No handler for {msg.action}"})
        except OCPPError as error:
            answer = msg.create_call_error(error)
            entry.update(answer="error", error=reason_of(error),
                         callerror={"code": answer.error_code,
                                    "description": answer.error_description})
            out.record("call", **entry)
            await self._send(answer.to_json())
            return

        payload = msg.payload if isinstance(msg.payload, dict) else {}
        scripted = self.csms.script.take(msg.action)
        response = self.csms.script.default_response(msg.action, payload)
        check = True
        if scripted is not None:
            kind, data = scripted
            entry["scripted"] = kind
            if kind == "silence":
                entry["answer"] = "none"
                out.record("call", **entry)
                return
            if kind == "callerror":
                answer = CallError(msg.unique_id, data["code"], data["description"], {})
                entry.update(answer="error", callerror={"code": data["code"],
                                                        "description": data["description"]})
                out.record("call", **entry)
                await self._send(answer.to_json())
                return
            response = merge(response, data["payload"])
            check = data["validate"]
        result = msg.create_call_result(response)
        if check:
            try:
                await validate_payload(result, self._ocpp_version)
            except OCPPError as error:
                # Our own answer failed the schema: the package refuses to send it.
                answer = msg.create_call_error(error)
                entry.update(answer="error", error=f"response invalid: {reason_of(error)}",
                             callerror={"code": answer.error_code,
                                        "description": answer.error_description})
                out.record("call", **entry)
                await self._send(answer.to_json())
                return
        entry.update(answer="result", response=response)
        out.record("call", **entry)
        await self._send(result.to_json())

    async def csms_call(self, action, payload, validate, timeout):
        """Send one CALL generically and report its answer (stdout line and record)."""
        out = self.csms.out
        call = Call(str(uuid.uuid4()), action, payload)
        entry = {"station": self.id, "action": action, "id": call.unique_id, "request": payload}
        async with self._call_lock:
            waiter = asyncio.ensure_future(self._get_specific_response(call.unique_id, timeout))
            closed = asyncio.ensure_future(self._connection.wait_closed())
            try:
                await self._send(call.to_json())
                await asyncio.wait([waiter, closed], return_when=asyncio.FIRST_COMPLETED)
            except websockets.ConnectionClosed:
                pass
            finally:
                closed.cancel()
            if not waiter.done():
                waiter.cancel()
                entry.update(valid=False, error="closed")
                out.record("response", **entry)
                out.say(f"closed {action}")
                return
            if waiter.exception() is not None:
                entry.update(valid=False, error="timeout")
                out.record("response", **entry)
                out.say(f"timeout {action}")
                return
            answer = waiter.result()
        if answer.message_type_id == MessageType.CallError:
            entry.update(valid=True, callerror={"code": answer.error_code,
                                                "description": answer.error_description,
                                                "details": jsonable(answer.error_details)})
            out.record("response", **entry)
            out.say(f"callerror {action} {answer.error_code}")
            return
        entry["payload"] = answer.payload
        answer.action = action
        try:
            await validate_payload(answer, self._ocpp_version)
        except OCPPError as error:
            reason = reason_of(error)
            entry.update(valid=False, error=reason)
            out.record("response", **entry)
            out.say(f"invalid {action} {reason}")
            return
        entry["valid"] = True
        out.record("response", **entry)
        out.say(f"response {action} {json.dumps(answer.payload, separators=(',', ':'))}")


class CSMS:
    """The server: handshake policy, station registry, stdin commands."""

    def __init__(self, args):
        self.args = args
        self.out = Output(args.record)
        self.script = Script(args)
        self.stations = []  # connected Station objects, oldest first
        self.credentials = {}
        for pair in args.basic_auth:
            user, password = pair.split(":", 1)
            self.credentials.setdefault(user, set()).add(password)
        self.done = None
        self.tls = make_tls(args)

    # --- handshake ---

    def station_of(self, path):
        segment = urllib.parse.urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
        return urllib.parse.unquote(segment)

    def process_request(self, connection, request):
        station = self.station_of(request.path)
        connection.csms_station = station
        connection.csms_user = None

        def refuse(status, reason, text):
            connection.csms_refusal = reason
            return connection.respond(status, text + "\n")

        left = self.script.refusing()
        if left > 0:
            response = refuse(http.HTTPStatus.SERVICE_UNAVAILABLE, "refusing", "refusing")
            response.headers["Retry-After"] = str(max(1, math.ceil(left)))
            return response
        if not station or (self.args.stations and station not in self.args.stations):
            return refuse(http.HTTPStatus.NOT_FOUND, "unknown station", "unknown station")
        if self.credentials:
            reason = self.check_basic(request.headers.get("Authorization"), station)
            if reason:
                response = refuse(http.HTTPStatus.UNAUTHORIZED, reason, "unauthorized")
                response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
                return response
            connection.csms_user = station
        offered = []
        for header in request.headers.get_all("Sec-WebSocket-Protocol"):
            offered += [p.strip() for p in header.split(",") if p.strip()]
        if not any(p in offered for p in self.args.subprotocols):
            return refuse(http.HTTPStatus.BAD_REQUEST,
                          f"no accepted subprotocol in {offered}", "unsupported subprotocol")
        return None

    def check_basic(self, header, station):
        """None when the Basic credentials are accepted, else why not."""
        if not header:
            return "no credentials"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "not Basic"
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "malformed credentials"
        if not sep or password not in self.credentials.get(user, ()):
            return "wrong credentials"
        if user != station:
            return "user is not the station id"
        return None

    def process_response(self, connection, request, response):
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            reason = getattr(connection, "csms_refusal", None)
            if reason is None:
                reason = str(connection.protocol.handshake_exc or response.reason_phrase)
            self.out.record("refused", status=response.status_code, path=request.path,
                            station=getattr(connection, "csms_station", None), reason=reason)
        return None

    def select_subprotocol(self, connection, offered):
        for protocol in self.args.subprotocols:
            if protocol in offered:
                return protocol
        return None

    # --- connections ---

    async def handler(self, connection):
        station_id = connection.csms_station
        version = KNOWN_SUBPROTOCOLS[connection.subprotocol]
        station = Station(station_id, connection, self, version)
        fields = {"station": station_id, "path": connection.request.path,
                  "subprotocol": connection.subprotocol}
        peercert = connection.transport.get_extra_info("peercert")
        if peercert:
            for rdn in peercert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        fields["client_cn"] = value
        if connection.csms_user:
            fields["user"] = connection.csms_user
        self.stations.append(station)
        self.out.record("connect", **fields)
        try:
            await station.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.stations.remove(station)
            code = connection.close_code if connection.close_code is not None else CLOSE_ABNORMAL
            self.out.record("disconnect", station=station_id, code=code,
                            reason=connection.close_reason or "",
                            by="csms" if station.closed_by_csms else "station")

    # --- commands ---

    def find_station(self, wanted):
        if wanted is not None:
            named = [s for s in self.stations if s.id == wanted]
            if not named:
                raise ValueError(f"station {wanted} not connected")
            return named[-1]
        ids = {s.id for s in self.stations}
        if not ids:
            raise ValueError("no station connected")
        if len(ids) > 1:
            raise ValueError("several stations connected; name one")
        return self.stations[-1]

    async def command(self, line):
        try:
            cmd = json.loads(line)
        except ValueError as error:
            self.out.say(f"error ?: not JSON ({error})")
            return
        if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
            self.out.say("error ?: expected an object with a \"cmd\" string")
            return
        name = cmd["cmd"]
        handler = getattr(self, "cmd_" + name, None)
        if handler is None:
            self.out.say(f"error {name}: unknown command")
            return
        try:
            await handler(cmd)
        except (ValueError, TypeError, KeyError) as error:
            self.out.say(f"error {name}: {error}")

    @staticmethod
    def count_of(cmd):
        count = cmd.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count must be a positive integer")
        return count

    @staticmethod
    def action_of(cmd):
        """The action of a scripted answer: one a station sends (others are never answered)."""
        action = cmd.get("action")
        if action not in STATION_ACTIONS:
            raise ValueError(f"{action!r} is not an OCPP 2.1 action a station sends")
        return action

    async def cmd_close(self, cmd):
        targets = list(self.stations)
        for station in targets:
            station.closed_by_csms = True
        self.out.say("ok close")
        for station in targets:
            asyncio.ensure_future(station._connection.close(CLOSE_GOING_AWAY, "closed by test"))

    async def cmd_drop(self, cmd):
        targets = list(self.stations)
        for station in targets:
            station.closed_by_csms = True
            station._connection.transport.abort()
        self.out.say("ok drop")

    async def cmd_refuse(self, cmd):
        seconds = cmd.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("seconds must be a number >= 0")
        self.script.refuse_until = time.monotonic() + seconds if seconds > 0 else 0.0
        self.out.say("ok refuse")

    async def cmd_callerror(self, cmd):
        action = self.action_of(cmd)
        count = self.count_of(cmd)
        code = cmd.get("code", "InternalError")
        if not isinstance(code, str) or not code:
            raise ValueError("code must be a string")
        description = cmd.get("description", f"scripted {code}")
        self.script.push(action, "callerror", count, {"code": code, "description": description})
        self.out.say("ok callerror")

    async def cmd_silence(self, cmd):
        action = self.action_of(cmd)
        self.script.push(action, "silence", self.count_of(cmd), None)
        self.out.say("ok silence")

    async def cmd_respond(self, cmd):
        action = self.action_of(cmd)
        count = self.count_of(cmd)
        payload = cmd.get("payload", {})
        if not isinstance(payload, dict):
            raise ValueError("payload must be an object")
        validate = cmd.get("validate", True) is not False
        if validate:
            sample = merge(self.script.default_response(action, {}), payload)
            result = CallResult("check", sample, action)
            try:
                await validate_payload(result, KNOWN_SUBPROTOCOLS[self.args.subprotocols[0]])
            except OCPPError as error:
                raise ValueError(f"response fails the schema: {reason_of(error)}")
        self.script.push(action, "respond", count, {"payload": payload, "validate": validate})
        self.out.say("ok respond")

    async def cmd_boot(self, cmd):
        status = cmd.get("status", self.script.boot_status)
        if status not in BOOT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(BOOT_STATUSES)}")
        interval = cmd.get("interval")
        if interval is not None and (not isinstance(interval, int) or interval < 0):
            raise ValueError("interval must be an integer >= 0")
        self.script.boot_status = status
        if interval is not None:
            if status == "Accepted":
                self.script.heartbeat = interval
            else:
                self.script.boot_interval = interval
        self.out.say("ok boot")

    async def cmd_call(self, cmd):
        action = cmd.get("action")
        if not isinstance(action, str) or not action:
            raise ValueError("action must be a string")
        payload = cmd.get("payload", {})
        if not isinstance(payload, dict):
            raise ValueError("payload must be an object")
        validate = cmd.get("validate", True) is not False
        timeout = cmd.get("timeout", self.args.call_timeout)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number")
        station = self.find_station(cmd.get("station"))
        if validate:
            if action not in KNOWN_ACTIONS:
                raise ValueError(f"unknown OCPP 2.1 action {action!r}")
            try:
                await validate_payload(Call("check", action, payload), station._ocpp_version)
            except OCPPError as error:
                raise ValueError(f"request fails the schema: {reason_of(error)}")
        self.out.say("ok call")
        task = asyncio.ensure_future(station.csms_call(action, payload, validate, timeout))
        task.add_done_callback(self.report_failure)

    def report_failure(self, task):
        if not task.cancelled() and task.exception() is not None:
            print(f"ocpp-csms: call failed: {task.exception()!r}", file=sys.stderr, flush=True)

    async def cmd_quit(self, cmd):
        self.out.say("ok quit")
        self.done.set_result(None)

    # --- main ---

    async def run(self):
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        lines = asyncio.Queue()

        def reader():
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        tls = self.tls
        ping = self.args.ping_interval or None
        async with serve(self.handler, self.args.host, self.args.port, ssl=tls,
                         subprotocols=list(self.args.subprotocols),
                         select_subprotocol=self.select_subprotocol,
                         process_request=self.process_request,
                         process_response=self.process_response,
                         ping_interval=ping, max_size=MAX_MESSAGE_BYTES,
                         compression=None) as server:
            host, port = server.sockets[0].getsockname()[:2]
            self.out.say(f"listening {host}:{port}")
            threading.Thread(target=reader, daemon=True).start()

            async def commands():
                while True:
                    line = await lines.get()
                    if line is None:
                        if not self.done.done():
                            self.done.set_result(None)
                        return
                    if line.strip():
                        await self.command(line)

            pump = asyncio.ensure_future(commands())
            await self.done
            pump.cancel()
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass


def make_tls(args):
    """The server's TLS context (profile 2; profile 3 with --tls-client-ca), or None."""
    if not args.tls_cert:
        return None
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP 2.x security: TLS 1.2 or later
    try:
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise OSError(f"cannot load --tls-cert {args.tls_cert} / --tls-key {args.tls_key}: {error}")
    if args.tls_client_ca:
        tls.verify_mode = ssl.CERT_REQUIRED
        try:
            tls.load_verify_locations(args.tls_client_ca)
        except (OSError, ssl.SSLError) as error:
            raise OSError(f"cannot load --tls-client-ca {args.tls_client_ca}: {error}")
    return tls


def parse_args(argv):
    def listed(text):
        return [item.strip() for item in text.split(",") if item.strip()]

    parser = argparse.ArgumentParser(description="Scriptable OCPP 2.1 test CSMS (see header).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", metavar="FILE")
    parser.add_argument("--stations", type=listed, default=[])
    parser.add_argument("--basic-auth", action="append", type=listed, default=[])
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-client-ca")
    parser.add_argument("--subprotocols", type=listed, default=["ocpp2.1"])
    parser.add_argument("--heartbeat", type=int, default=DEFAULT_HEARTBEAT_S)
    parser.add_argument("--boot", choices=BOOT_STATUSES, default="Accepted")
    parser.add_argument("--boot-interval", type=int, default=DEFAULT_BOOT_INTERVAL_S)
    parser.add_argument("--deny-tokens", type=listed, default=[])
    parser.add_argument("--ping-interval", type=float, default=DEFAULT_PING_INTERVAL_S)
    parser.add_argument("--call-timeout", type=float, default=DEFAULT_CALL_TIMEOUT_S)
    parser.add_argument("--verbose", action="store_true", help="log OCPP frames on stderr")
    args = parser.parse_args(argv)
    args.basic_auth = [pair for group in args.basic_auth for pair in group]
    for pair in args.basic_auth:
        if ":" not in pair or not pair.split(":", 1)[0]:
            parser.error(f"--basic-auth wants USER:PASSWORD, got {pair!r}")
    if not args.subprotocols:
        parser.error("--subprotocols is empty")
    for protocol in args.subprotocols:
        if protocol not in KNOWN_SUBPROTOCOLS:
            parser.error(f"unsupported subprotocol {protocol!r} (known: {', '.join(KNOWN_SUBPROTOCOLS)})")
    if not 0 <= args.port <= 65535:
        parser.error("--port out of range")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    if args.heartbeat < 0 or args.boot_interval < 0:
        parser.error("intervals must be >= 0")
    if args.ping_interval < 0 or args.call_timeout <= 0:
        parser.error("--ping-interval must be >= 0 and --call-timeout > 0")
    return args


def main():
    args = parse_args(sys.argv[1:])
    try:
        installed = importlib.metadata.version("ocpp")
    except importlib.metadata.PackageNotFoundError:
        installed = "unknown"
    if installed != TESTED_OCPP_VERSION:
        print(f"ocpp-csms: warning: ocpp {installed} installed, written against "
              f"{TESTED_OCPP_VERSION}", file=sys.stderr, flush=True)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        csms = CSMS(args)
    except OSError as error:
        print(f"ocpp-csms: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        asyncio.run(csms.run())
    except (OSError, ssl.SSLError) as error:
        print(f"ocpp-csms: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
