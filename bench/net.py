#!/usr/bin/env python3
"""Socket pipeline against the same pipeline on a file, in one run.

    python3 bench/net.py [N] [RUNS]

Builds the release binary, writes N events with bench/gen_events.py
(default 1,000,000), then runs `tourbillon run` on two configurations, RUNS
times each (default 3), alternating:

  tcp:  listen (TCP) -> json_decode -> anonymize src_ip -> json_encode -> connect (TCP)
        fed by a sender socket, read by a sink socket (both in this script);
  file: tail (batch) -> json_decode -> anonymize src_ip -> json_encode -> file.

Prints events/s and peak RSS (VmHWM, sampled) for each, with medians,
and the tcp/file ratio of the medians.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = os.path.join(ROOT, "bench", "gen_events.py")
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "tourbillon")

STEPS = """
  { kind = "json_decode" },
  { kind = "anonymize", fields = ["src_ip"] },
  { kind = "json_encode" },
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def hwm(pid):
    """The process's peak resident set (VmHWM), KiB, or 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Peak(threading.Thread):
    """Samples VmHWM every 5 ms until the process exits; VmHWM only grows."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False
        self.start()

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, hwm(self.pid))
            time.sleep(0.005)


def wait_rusage(proc, peak):
    peak.peak = max(peak.peak, hwm(proc.pid))
    proc.wait()
    peak.stop = True
    return peak.peak


def run_file(d, data, n):
    out = os.path.join(d, "out.jsonl")
    if os.path.exists(out):
        os.remove(out)
    cfg = os.path.join(d, "file.toml")
    with open(cfg, "w") as f:
        f.write('[log]\nlevel = "warn"\n[trains.file]\ncogs = [\n  { kind = "tail", include = [%r], batch = true },%s'
                '  { kind = "file", path = %r },\n]\n' % (data, STEPS, out))
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "run", cfg])
    peak = Peak(p.pid)
    rss = wait_rusage(p, peak)
    secs = time.perf_counter() - t0
    with open(out, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    assert p.returncode == 0 and lines == n, (p.returncode, lines)
    return n / secs, rss


def run_tcp(d, data, n):
    in_port, out_port = free_port(), free_port()
    sink = socket.socket()
    sink.bind(("127.0.0.1", out_port))
    sink.listen(1)
    cfg = os.path.join(d, "tcp.toml")
    with open(cfg, "w") as f:
        f.write('[log]\nlevel = "warn"\n[trains.tcp]\ncogs = [\n  { kind = "listen", listen = "127.0.0.1:%d" },%s'
                '  { kind = "connect", connect = "127.0.0.1:%d" },\n]\n' % (in_port, STEPS, out_port))
    got = [0]

    def drain():
        c, _ = sink.accept()
        while got[0] < n:
            b = c.recv(1 << 20)
            if not b:
                break
            got[0] += b.count(b"\n")
        c.close()

    t = threading.Thread(target=drain)
    t.start()
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "run", cfg])
    peak = Peak(p.pid)
    for _ in range(500):
        try:
            s = socket.create_connection(("127.0.0.1", in_port))
            break
        except OSError:
            time.sleep(0.01)
    with open(data, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            s.sendall(b)
    s.close()
    t.join()
    secs = time.perf_counter() - t0
    peak.peak = max(peak.peak, hwm(p.pid))
    p.send_signal(signal.SIGTERM)
    rss = wait_rusage(p, peak)
    assert got[0] == n, got[0]
    return n / secs, rss


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "tourbillon"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "events.jsonl")
        subprocess.run([sys.executable, GEN, str(n), data], check=True, stderr=subprocess.DEVNULL)
        res = {"tcp": [], "file": []}
        for _ in range(runs):
            res["file"].append(run_file(d, data, n))
            res["tcp"].append(run_tcp(d, data, n))
        for k in ("file", "tcp"):
            rates = [r for r, _ in res[k]]
            rss = [m for _, m in res[k]]
            print("%-4s events/s: %s  median %.0f; peak RSS KiB: %s" % (
                k, " ".join("%.0f" % r for r in rates), median(rates), " ".join(str(m) for m in rss)))
        print("tcp/file throughput ratio (medians): %.2f" % (
            median([r for r, _ in res["tcp"]]) / median([r for r, _ in res["file"]])))


if __name__ == "__main__":
    main()
