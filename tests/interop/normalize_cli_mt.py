#!/usr/bin/env python3
"""Normalise a cli_mt transcript (stdin) for diffing against expected/cli_mt.txt.

* ``time = N msec`` lines (cli_mt's own latency print; for `get` it is even
  uninitialised garbage) become ``time = <N> msec``.
* ``Got a new session id: 0x...`` becomes ``Got a new session id: <SESSION>``.
* ``ctime = <date>`` / ``mtime=<date>`` (C ctime_r() format, TZ=UTC): a date
  within +-15 minutes of now becomes ``<TIME>``; the epoch is kept; anything
  else becomes ``<BAD-TIME ...>``.
* ``czxid=``/``mzxid=`` values (hex, no 0x) become ``<Z1>``, ``<Z2>``, ... by
  rank (Z1 = the smallest non-zero zxid in the transcript), so equalities and
  order (czxid == mzxid after a create, a later create has a larger zxid, a
  set changes mzxid) are still checked but the server's history is not.
  Zero is kept.
* ``ephemeralOwner = <hex>``: 0 is kept, other values become ``<OWNER-n>``.
* Consecutive tab-indented child names following ``PATH: rc = 0`` of an ls/ls2
  are sorted (getChildren order is unspecified: Apache ZooKeeper returns hash
  order).
"""
import re
import sys
import time
from datetime import datetime, timezone

EPOCH = "Thu Jan  1 00:00:00 1970"


def norm_time(val, now):
    if val in (EPOCH, "<TIME>"):
        return val
    try:
        d = datetime.strptime(val, "%a %b %d %H:%M:%S %Y").replace(tzinfo=timezone.utc)
    except ValueError:
        return "<BAD-TIME %s>" % val
    if abs(d.timestamp() - now) < 15 * 60:
        return "<TIME>"
    return "<BAD-TIME %s>" % val


def main():
    now = time.time()
    owners = {}

    lines = sys.stdin.read().splitlines()
    allz = sorted({int(m.group(1), 16) for m in
                   (re.match(r"^\t(?:czxid|mzxid)=([0-9a-f]+)$", x) for x in lines) if m} - {0})
    zx = {z: "<Z%d>" % (i + 1) for i, z in enumerate(allz)}

    def zlabel(v):
        return "0" if int(v, 16) == 0 else zx[int(v, 16)]

    out = []
    children = None  # collecting an ls listing
    for line in lines:
        if children is not None:
            if line.startswith("\t") and "=" not in line:
                children.append(line)
                continue
            out.extend(sorted(children))
            children = None
        line = re.sub(r"^time = -?\d+ msec$", "time = <N> msec", line)
        line = re.sub(r"^Got a new session id: 0x[0-9a-f]+$", "Got a new session id: <SESSION>", line)
        m = re.match(r"^\tctime = (.*)$", line)
        if m:
            line = "\tctime = " + norm_time(m.group(1), now)
        m = re.match(r"^\tmtime=(.*)$", line)
        if m:
            line = "\tmtime=" + norm_time(m.group(1), now)
        m = re.match(r"^\t(czxid|mzxid)=([0-9a-f]+)$", line)
        if m:
            line = "\t%s=%s" % (m.group(1), zlabel(m.group(2)))
        m = re.match(r"^\tephemeralOwner = ([0-9a-f]+)$", line)
        if m and int(m.group(1), 16) != 0:
            v = m.group(1)
            if v not in owners:
                owners[v] = "<OWNER-%d>" % (len(owners) + 1)
            line = "\tephemeralOwner = " + owners[v]
        out.append(line)
        if re.match(r"^/\S*: rc = 0$", line):
            children = []
    if children:
        out.extend(sorted(children))
    print("\n".join(out))


if __name__ == "__main__":
    main()
