"""Validates OCPP-J 2.1 RPC frames the daemon sends, with the PyPI package `ocpp`.

Input: a file with one frame (JSON text) per line. CALLs are unpacked by `ocpp.messages.unpack`
and their payloads validated against the 2.1 schemas; CALLERRORs are unpacked and their code must
be one the `ocpp` package knows; CALLRESULTERRORs (type 5, new in 2.1, unknown to the package)
are checked for the same shape. Ids at most 36 characters, descriptions at most 255.
Prints one INVALID line per problem and a final "validated N bad M"; exits 1 on any.
"""
import json
import sys

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, _validate_payload, unpack

# The codes of OCPP-J 2.x's error table: the package's own, plus the two of the table it has no
# exception class for (it raises UnknownCallErrorCodeError on them).
CODES = {e.code for e in OCPPError.__subclasses__()} | {"RpcFrameworkError", "MessageTypeNotSupported"}

bad = 0
count = 0


def problem(line, why):
    global bad
    bad += 1
    print("INVALID", why, line[:200])


for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line:
        continue
    count += 1
    try:
        frame = json.loads(line)
        if not isinstance(frame, list) or not frame or not isinstance(frame[1], str) or not 1 <= len(frame[1]) <= 36:
            problem(line, "not a frame with an id of 1 to 36 characters")
            continue
        if frame[0] == 5:
            if len(frame) != 5 or not isinstance(frame[2], str) or not isinstance(frame[3], str) or not isinstance(frame[4], dict):
                problem(line, "CALLRESULTERROR shape")
            elif frame[2] not in CODES:
                problem(line, "unknown error code")
            elif len(frame[3]) > 255:
                problem(line, "description over 255")
            continue
        msg = unpack(line)
        if isinstance(msg, Call):
            _validate_payload(msg, "2.1")
        elif isinstance(msg, CallError):
            if msg.error_code not in CODES:
                problem(line, "unknown error code")
            elif not isinstance(msg.error_details, dict) or len(msg.error_description) > 255 or len(frame) != 5:
                problem(line, "CALLERROR shape")
        else:
            problem(line, "unexpected message type")
    except Exception as e:
        problem(line, "%s: %s" % (type(e).__name__, e))
print("validated", count, "bad", bad)
sys.exit(1 if bad else 0)
