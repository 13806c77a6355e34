"""Validates OCPP 2.1 request and response bodies against the official JSON schemas (PyPI package `ocpp`).

Input: a file of lines "Action<TAB>path-to-json-body"; Action is a request's action name
("Heartbeat": HeartbeatRequest.json) or a schema name ending in Request or Response
("ResetResponse"). Installs `ocpp` and `jsonschema` when
missing. Prints one INVALID line per problem and a final "validated N bad M"; exits 1 on any.
"""
import json
import os
import subprocess
import sys

try:
    import jsonschema
    import ocpp
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "ocpp", "jsonschema"], check=True)
    import jsonschema
    import ocpp

schemas = os.path.join(os.path.dirname(ocpp.__file__), "v21", "schemas")
bad = 0
count = 0
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line:
        continue
    action, path = line.split("\t")
    count += 1
    name = action if action.endswith(("Request", "Response")) else action + "Request"
    schema = json.load(open(os.path.join(schemas, name + ".json")))
    body = json.load(open(path))
    validator = jsonschema.Draft6Validator(schema, format_checker=jsonschema.FormatChecker())
    for e in validator.iter_errors(body):
        bad += 1
        print("INVALID", action, path, e.message)
print("validated", count, "bad", bad)
sys.exit(1 if bad else 0)
