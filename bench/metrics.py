#!/usr/bin/env python3
"""What `[api]` costs: the standard job with and without /metrics served
and scraped every 100 ms, and how long a scrape takes with 1,000 followed
files.

    python3 bench/metrics.py [N] [RUNS]

Builds the release binary, writes N events with bench/gen_events.py
(default 1,000,000), then runs the standard job (tail (batch) ->
json_decode -> filter drop level == debug -> set -> json_encode -> file)
RUNS times each way (default 5), alternating: `plain`, and `api` with
`[api] listen` and a scraper hitting /metrics every 100 ms. Prints the
CPU time (user + sys) medians and their ratio; with valgrind installed,
also the instructions each runs on 100,000 lines (cachegrind), which a busy
machine does not move.

Then 1,000 files followed by one tail (not batch, so it keeps running):
the time of 200 scrapes of /metrics (connect, render, read), median and
max. The endpoint is served by a thread of its own: the loop takes no
part in a scrape, so this is what a scrape costs, not a stall of the loop;
the loop's turns per second idle and while scraped are printed too.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = os.path.join(ROOT, "bench", "gen_events.py")
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "tourbillon")

JOB = """[trains.main]
cogs = [
  { kind = "tail", include = [%r], batch = true },
  { kind = "json_decode" },
  { kind = "filter", action = "drop", conditions = [{ field = "level", equals = "debug" }] },
  { kind = "set", fields = { pipeline = "bench" } },
  { kind = "json_encode" },
  { kind = "file", path = %r },
]
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path="/metrics"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("GET %s HTTP/1.0\r\n\r\n" % path).encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode()


def config(work, data, api):
    out = os.path.join(work, "out-%s" % ("api" if api else "plain"))
    if os.path.exists(out):
        os.remove(out)
    head = '[log]\nlevel = "error"\n'
    port = None
    if api:
        port = free_port()
        head += '[api]\nlisten = "127.0.0.1:%d"\n' % port
    conf = os.path.join(work, "%s.toml" % ("api" if api else "plain"))
    with open(conf, "w") as f:
        f.write(head + JOB % (data, out))
    return conf, port


def scraper(port, stop):
    while not stop.is_set():
        try:
            get(port)
        except OSError:
            pass
        stop.wait(0.1)


def run(conf, port, prefix=()):
    """CPU seconds (user + sys) of the binary on `conf`, scraped every 100 ms if `port`."""
    stop = threading.Event()
    if port:
        threading.Thread(target=scraper, args=(port, stop), daemon=True).start()
    t = conf + ".time"
    res = subprocess.run(
        list(prefix) + ["/usr/bin/time", "-f", "%U %S", "-o", t, BIN, "run", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    stop.set()
    user, system = open(t).read().split()[-2:]
    return float(user) + float(system), res.stderr


def instructions(conf, port):
    stop = threading.Event()
    if port:
        threading.Thread(target=scraper, args=(port, stop), daemon=True).start()
    res = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", BIN, "run", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    stop.set()
    for line in res.stderr.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.split(":")[1].replace(",", "").strip())
    sys.exit("no instruction count from valgrind")


def value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def many_files(work):
    d = os.path.join(work, "many")
    os.makedirs(d, exist_ok=True)
    for i in range(1000):
        with open(os.path.join(d, "f%04d.log" % i), "w") as f:
            f.write('{"n":%d}\n' % i)
    port = free_port()
    conf = os.path.join(work, "many.toml")
    with open(conf, "w") as f:
        f.write(
            '[log]\nlevel = "error"\n[api]\nlisten = "127.0.0.1:%d"\n[trains.t]\ncogs = [\n'
            '  { kind = "tail", include = [%r], max_open_files = 2000 },\n  { kind = "file", path = %r },\n]\n'
            % (port, os.path.join(d, "*.log"), os.path.join(work, "many-out"))
        )
    proc = subprocess.Popen([BIN, "run", conf], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                text = get(port)
                if value(text, "tourbillon_tail_files_followed{train=\"t\",cog=\"0\",kind=\"tail\"}") == 1000:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("1,000 files not followed within 30 s")
            time.sleep(0.1)
        lags = text.count("tourbillon_tail_lag_bytes{")
        t0 = value(get(port), "tourbillon_loop_turns_total")
        time.sleep(2)
        t1 = value(get(port), "tourbillon_loop_turns_total")
        took = []
        for _ in range(200):
            a = time.perf_counter()
            get(port)
            took.append(time.perf_counter() - a)
        t2 = value(get(port), "tourbillon_loop_turns_total")
        span = sum(took)
        return lags, len(text), statistics.median(took), max(took), (t1 - t0) / 2, (t2 - t1) / span
    finally:
        proc.terminate()
        proc.wait()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "tourbillon-cli"], cwd=ROOT)
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "events.jsonl")
        subprocess.check_call([sys.executable, GEN, str(n), data], stderr=subprocess.DEVNULL)
        cpu = {"plain": [], "api": []}
        for _ in range(runs):
            for kind in ("plain", "api"):
                conf, port = config(work, data, kind == "api")
                cpu[kind].append(run(conf, port)[0])
        p, a = statistics.median(cpu["plain"]), statistics.median(cpu["api"])
        print("standard job, %d events, %d runs each (median CPU user+sys):" % (n, runs))
        print("  plain %.3fs   api+scrape/100ms %.3fs   ratio %.3f" % (p, a, a / p))
        if subprocess.run(["sh", "-c", "command -v valgrind"], stdout=subprocess.DEVNULL).returncode == 0:
            small = os.path.join(work, "small.jsonl")
            subprocess.check_call([sys.executable, GEN, "100000", small], stderr=subprocess.DEVNULL)
            ip = instructions(*config(work, small, False))
            ia = instructions(*config(work, small, True))
            print("  instructions on 100,000 lines: plain %d   api %d   ratio %.4f" % (ip, ia, ia / ip))
        else:
            print("  (valgrind not installed: no instruction counts)")
        lags, size, med, worst, idle_turns, scraped_turns = many_files(work)
        print("1,000 followed files: /metrics is %d bytes with %d lag samples" % (size, lags))
        print("  scrape (connect, render, read): median %.3f ms, max %.3f ms over 200" % (med * 1e3, worst * 1e3))
        print("  loop turns/s idle %.1f, while scraped back to back %.1f (the loop takes no part)" % (idle_turns, scraped_turns))


if __name__ == "__main__":
    main()
