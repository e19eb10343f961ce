"""A loopback TCP proxy that can simulate a network partition.

Used to expire a session the way it happens in production: the client loses
its connection and cannot reach the server for longer than the session
timeout, so the SERVER expires the session by timeout; when the partition
heals the client reconnects and is told its session has expired.
"""
import os
import select
import sys
import socket
import threading


class PartitionProxy:
    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.blocked = False
        self.lock = threading.Lock()
        self.pairs = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _accept_loop(self):
        while not self.stopped:
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.2)
                if not r:
                    continue
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.blocked:
                    c.close()
                    continue
            try:
                u = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, u))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, c, u):
        socks = [c, u]
        try:
            while not self.stopped:
                r, _, _ = select.select(socks, [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (u if s is c else c).sendall(data)
        except OSError:
            pass
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass

    def partition(self):
        """Cut every connection and refuse new ones until heal()."""
        with self.lock:
            self.blocked = True
            pairs, self.pairs = self.pairs, []
        for c, u in pairs:
            for s in (c, u):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def heal(self):
        with self.lock:
            self.blocked = False

    def stop(self):
        self.stopped = True
        self.partition()
        try:
            self.lsock.close()
        except OSError:
            pass


class ProxyProcess:
    """Runs a PartitionProxy in a child process.

    Needed for zkpython: its synchronous calls keep holding the GIL while the C
    client waits for the server, so an in-process Python proxy thread could
    never forward the reply.
    """

    def __init__(self, upstream_host, upstream_port):
        import subprocess
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), upstream_host, str(upstream_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("port "):
            raise RuntimeError("proxy did not start: %r" % line)
        self.port = int(line.split()[1])

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _cmd(self, c):
        self.proc.stdin.write(c + "\n")
        self.proc.stdin.flush()
        ans = self.proc.stdout.readline().strip()
        if ans != "ok":
            raise RuntimeError("proxy answered %r to %r" % (ans, c))

    def partition(self):
        self._cmd("partition")

    def heal(self):
        self._cmd("heal")

    def stop(self):
        try:
            self._cmd("quit")
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except Exception:
            self.proc.kill()


def _main():
    # child process: proxy to argv[1]:argv[2], commands on stdin, bounded life
    proxy = PartitionProxy(sys.argv[1], int(sys.argv[2]))
    print("port %d" % proxy.port, flush=True)
    threading.Timer(600, lambda: os._exit(0)).start()
    for line in sys.stdin:
        c = line.strip()
        if c == "partition":
            proxy.partition()
        elif c == "heal":
            proxy.heal()
        elif c == "quit":
            print("ok", flush=True)
            break
        print("ok", flush=True)
    proxy.stop()
    os._exit(0)


if __name__ == "__main__":
    _main()
