"""Tiny test runner shared by zkpython_test.py and kazoo_test.py.

Runs the given test functions in order, prints one PASS/FAIL line per test
(with the traceback of failures), a closing "N passed, N failed" line, and
exits 1 if anything failed.  A watchdog ends the process (exit 3) if the whole
suite exceeds its time budget, so a hung client library can never hang CI.
"""
import os
import socket
import sys
import threading
import time
import traceback


class Waiter:
    """Collects events from callback threads; wait_for() blocks (bounded)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.events = []

    def __call__(self, *args):
        with self.cv:
            self.events.append(args if len(args) != 1 else args[0])
            self.cv.notify_all()

    def wait_for(self, pred, timeout=10.0, what="event"):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                found = [e for e in self.events if pred(e)]
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %.1fs waiting for %s; events so far: %r"
                                         % (timeout, what, self.events))
                self.cv.wait(left)

    def snapshot(self):
        with self.cv:
            return list(self.events)

    def clear(self):
        with self.cv:
            self.events.clear()


def four_letter(port, word, host="127.0.0.1"):
    """A four-letter word's answer from the server on `port` ("" if it does not answer)."""
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
    except OSError:
        return ""
    return out.decode(errors="replace")


def srvr_mode(port):
    """The member's `Mode:` from srvr, or None if it does not answer or does not serve."""
    for line in four_letter(port, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[6:]
    return None


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def run(name, tests, budget_seconds=240, setup=None, teardown=None):
    def watchdog():
        sys.stdout.write("%s: WATCHDOG: suite exceeded %ds, aborting\n" % (name, budget_seconds))
        sys.stdout.write("0 passed, 1 failed\n")
        sys.stdout.flush()
        os._exit(3)

    timer = threading.Timer(budget_seconds, watchdog)
    timer.daemon = True
    timer.start()
    passed = failed = 0
    if setup is not None:
        try:
            setup()
        except Exception:
            print("%s: FAIL setup" % name)
            traceback.print_exc(file=sys.stdout)
            print("0 passed, %d failed" % len(tests))
            sys.stdout.flush()
            os._exit(1)
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
        except Exception:
            failed += 1
            print("%s: FAIL %s (%.2fs)" % (name, t.__name__, time.monotonic() - t0))
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("%s: PASS %s (%.2fs)" % (name, t.__name__, time.monotonic() - t0))
        sys.stdout.flush()
    if teardown is not None:
        try:
            teardown()
        except Exception:
            traceback.print_exc(file=sys.stdout)
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    timer.cancel()
    # os._exit: client libraries may leave non-daemon threads behind
    os._exit(1 if failed else 0)
