#!/usr/bin/env python3
"""ej.py: queries on the broker's audit log (JSON Lines) and status JSON.

  ej.py count AUDIT [KEY=VAL | KEY!=VAL]...  number of events matching all
  ej.py show AUDIT [filters]...              the matching lines
  ej.py values AUDIT KEY [filters]...        KEY of each matching event, in
                                             order, one a line
  ej.py validate AUDIT                       every line is an event of the
                                             contract; problems on stdout, exit 1
  ej.py get JSONFILE dotted.path             a value: strings raw, else JSON
  ej.py top JSONFILE SUBSTRING PROTO         count of the top_denied entry whose
                                             destination contains SUBSTRING
                                             (0 when none)
VAL is compared with the value as text: null -> "null", numbers as digits.
"""
import json
import sys


def text(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def events(path):
    out = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append((n, line.rstrip("\n"), json.loads(line)))
                    except ValueError:
                        out.append((n, line.rstrip("\n"), None))
    except FileNotFoundError:
        pass
    return out


def match(ev, filters):
    if ev is None:
        return False
    for f in filters:
        if "!=" in f:
            k, v = f.split("!=", 1)
            if text(ev.get(k, "<absent>")) == v:
                return False
        else:
            k, v = f.split("=", 1)
            if text(ev.get(k, "<absent>")) != v:
                return False
    return True


KEYS = {
    "time": (str,), "pid": (int,), "uid": (int,), "exe": (str, type(None)),
    "op": (str,), "name": (str, type(None)), "addr": (str, type(None)),
    "port": (int,), "proto": (str,), "action": (str,), "rule": (str,),
    "errno": (str, type(None)),
}


def validate(path):
    bad = 0
    for n, line, ev in events(path):
        why = None
        if not isinstance(ev, dict):
            why = "not a JSON object"
        else:
            for k, types in KEYS.items():
                if k not in ev:
                    why = "missing key %s" % k
                    break
                if not isinstance(ev[k], types) or isinstance(ev[k], bool):
                    why = "key %s has type %s" % (k, type(ev[k]).__name__)
                    break
            if why is None:
                if ev["op"] not in ("resolve", "connect", "send", "close"):
                    why = "op %r" % ev["op"]
                elif ev["proto"] not in ("tcp", "udp", "any"):
                    why = "proto %r" % ev["proto"]
                elif ev["action"] not in ("allow", "deny", "rewrite"):
                    why = "action %r" % ev["action"]
                elif ev["action"] == "deny" and ev["errno"] is None:
                    why = "deny without errno"
                elif ev["action"] == "allow" and ev["errno"] is not None:
                    why = "allow with errno"
                elif ev["op"] != "resolve" and ev["addr"] is None and ev["name"] is None:
                    why = "%s with neither addr nor name" % ev["op"]
                elif ev["action"] == "rewrite" and ev["op"] in ("connect", "close") and not (
                        isinstance(ev.get("transport"), str) and isinstance(ev.get("upstream"), str)):
                    why = "rewritten %s without transport and upstream" % ev["op"]
                elif ev["op"] == "close" and not all(
                        isinstance(ev.get(k), int) for k in ("bytes_sent", "bytes_received")):
                    why = "close without byte counts"
        if why:
            bad += 1
            print("line %d: %s: %s" % (n, why, line))
    return 1 if bad else 0


def get(path, dotted):
    with open(path) as f:
        v = json.load(f)
    for part in dotted.split("."):
        if isinstance(v, list):
            v = v[int(part)]
        elif isinstance(v, dict) and part in v:
            v = v[part]
        else:
            print("<absent>")
            return 1
    print(v if isinstance(v, str) else json.dumps(v))
    return 0


def top(path, sub, proto):
    with open(path) as f:
        v = json.load(f)
    total = 0
    for e in v.get("top_denied") or []:
        if sub in text(e.get("destination")) and text(e.get("proto")) == proto:
            total += int(e.get("count", 0))
    print(total)
    return 0


cmd = sys.argv[1]
if cmd == "count":
    print(sum(1 for _, _, ev in events(sys.argv[2]) if match(ev, sys.argv[3:])))
elif cmd == "show":
    for _, line, ev in events(sys.argv[2]):
        if match(ev, sys.argv[3:]):
            print(line)
elif cmd == "values":
    for _, _, ev in events(sys.argv[2]):
        if match(ev, sys.argv[4:]):
            print(text(ev.get(sys.argv[3], "<absent>")))
elif cmd == "validate":
    sys.exit(validate(sys.argv[2]))
elif cmd == "get":
    sys.exit(get(sys.argv[2], sys.argv[3]))
elif cmd == "top":
    sys.exit(top(sys.argv[2], sys.argv[3], sys.argv[4]))
else:
    sys.exit("ej.py: unknown command " + cmd)
