#!/usr/bin/env python3
"""Normalise a raw zkCli transcript (stdin) so it can be diffed against a golden file.

Only values that legitimately differ between runs are replaced:

* ``ctime = ...`` / ``mtime = ...``: a date within +-15 minutes of now becomes
  ``<TIME>``; the epoch (``Thu Jan 01 00:00:00 UTC 1970``, the root node's
  times) is kept verbatim; any other date becomes ``<BAD-TIME ...>`` so the
  diff fails.
* ``ephemeralOwner = 0x...``: ``0x0`` is kept; any other value is a session
  id and becomes ``<SESSION-n>``, numbered in order of first appearance (the
  same session always gets the same label, so "the ephemeral belongs to the
  client that created it" is still checked).
* Lines starting with ``SLF4J:`` (client-side logging noise) are dropped.
* After ``$ quit``, the client's own goodbye (blank lines, ``WATCHER::`` and
  ``WatchedEvent state:Closed type:None path:null``) is dropped: zkCli's event
  thread prints it while the JVM exits, so it is sometimes cut short or missing
  (seen once in fresh-clone CI), and it says nothing about the server. Any
  other line after a quit is kept.

With ``--relative N`` (used only with ZKCLI_RELATIVE_ZXIDS=1, against a
server that is not fresh) every non-zero cZxid/mZxid/pZxid is shifted down by
N, and the root node's pZxid and cversion (shown by ``ls -s /``), which depend
on the server's whole history, become ``<ROOT-HISTORY>``.  The golden file is
passed through ``--relative 0`` so both sides are masked the same way.
"""
import re
import sys
import time
from datetime import datetime, timezone

TIME_RE = re.compile(r"^(ctime|mtime) = (.*)$")
OWNER_RE = re.compile(r"^ephemeralOwner = (0x[0-9a-fA-F]+)$")
ZXID_RE = re.compile(r"^(cZxid|mZxid|pZxid) = (0x[0-9a-fA-F]+)$")
EPOCH = "Thu Jan 01 00:00:00 UTC 1970"
QUIT_NOISE = ("", "WATCHER::", "WatchedEvent state:Closed type:None path:null")


def parse_java_date(s):
    # java.util.Date.toString(): "Sun Nov 22 00:25:21 UTC 2026" (TZ forced to UTC)
    try:
        return datetime.strptime(s, "%a %b %d %H:%M:%S UTC %Y").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def main():
    offset = 0
    relative = False
    if len(sys.argv) == 3 and sys.argv[1] == "--relative":
        offset = int(sys.argv[2], 0)
        relative = True
    last_cmd = None
    sessions = {}
    now = time.time()
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if line.startswith("SLF4J:"):
            continue
        if re.match(r"^\[[A-Z]\] ", line):
            last_cmd = line[4:]
        elif last_cmd == "$ quit" and line in QUIT_NOISE:
            continue
        if relative and last_cmd == "$ ls -s /" and re.match(r"^(pZxid|cversion) = ", line):
            print(line.split(" = ")[0] + " = <ROOT-HISTORY>")
            continue
        m = TIME_RE.match(line)
        if m:
            val = m.group(2)
            if val not in (EPOCH, "<TIME>"):
                d = parse_java_date(val)
                if d is not None and abs(d.timestamp() - now) < 15 * 60:
                    val = "<TIME>"
                else:
                    val = "<BAD-TIME %s>" % val
            line = "%s = %s" % (m.group(1), val)
        m = OWNER_RE.match(line)
        if m and int(m.group(1), 16) != 0:
            sid = int(m.group(1), 16)
            if sid not in sessions:
                sessions[sid] = "<SESSION-%d>" % (len(sessions) + 1)
            line = "ephemeralOwner = " + sessions[sid]
        m = ZXID_RE.match(line)
        if m and relative:
            z = int(m.group(2), 16)
            if z != 0:
                z -= offset
            line = "%s = 0x%x" % (m.group(1), z)
        print(line)


if __name__ == "__main__":
    main()
