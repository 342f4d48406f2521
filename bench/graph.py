#!/usr/bin/env python3
"""What a graph costs: fan-out and a junction against one straight train,
and the memory of a graph with a stalled branch, in one run.

    python3 bench/graph.py [N] [RUNS]

Builds the release binary, writes N events with bench/gen_events.py
(default 1,000,000, a malformed line every 1000), then runs `tourbillon run`
on three configurations of the standard job (parse, drop level == debug,
add a field, write JSON lines), RUNS times each (default 5), alternating:

  one:      one train: tail (batch) -> json_decode -> filter -> set -> json_encode -> file
  junction: the same cut in two: [parse] tail .. set; [out] inputs = ["parse"]: json_encode -> file
  fanout:   [parse] as above; [a] and [b] both read it: json_encode -> file each
  encoded:  [parse] encodes too; [a] and [b] both read it: file each

With valgrind installed, also the instructions each runs on 100000 lines
(cachegrind), as ratios to `one`: figures a busy machine does not move.

Prints the CPU time (user + sys) and peak RSS medians of each and the
ratios to `one`, and checks that every output holds the
same lines. Needs GNU time (/usr/bin/time).

Then the stalled branch: [parse] read by [a] (a file) and by [b], a
`connect` drain to a loopback server that accepts and never reads. Branch b
stalls once the socket buffers are full; its input queue fills to its
capacity and the tail stops reading. Prints the peak RSS after the stall
with queue = 64, 1024 and 16384, the lines branch a got by then (the
supply slowed, so not all), and the RSS of the `one` job for scale.
"""
import os
import shutil
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

PARSE = """
  { kind = "json_decode" },
  { kind = "filter", action = "drop", conditions = [{ field = "level", equals = "debug" }] },
  { kind = "set", fields = { pipeline = "bench" } },
"""
ENCODE = '  { kind = "json_encode" },\n'
OUTPUTS = {
    "one": [".one"],
    "junction": [".junction"],
    "fanout": [".fanout-a", ".fanout-b"],
    "encoded": [".encoded-a", ".encoded-b"],
}


def drain(path):
    return '  { kind = "file", path = %r },\n' % path


def config(kind, data, out):
    head = '[log]\nlevel = "error"\n'
    tail = '  { kind = "tail", include = [%r], batch = true },' % data
    if kind == "one":
        return head + "[trains.main]\ncogs = [\n%s%s%s%s]\n" % (tail, PARSE, ENCODE, drain(out + ".one"))
    parse = "[trains.parse]\ncogs = [\n%s%s]\n" % (tail, PARSE)
    if kind == "encoded":
        parse = "[trains.parse]\ncogs = [\n%s%s%s]\n" % (tail, PARSE, ENCODE)
        return head + parse + "".join(
            '[trains.%s]\ninputs = ["parse"]\ncogs = [\n%s]\n' % (b, drain(out + ".encoded-" + b)) for b in "ab"
        )
    if kind == "junction":
        return head + parse + '[trains.out]\ninputs = ["parse"]\ncogs = [\n%s%s]\n' % (ENCODE, drain(out + ".junction"))
    return head + parse + "".join(
        '[trains.%s]\ninputs = ["parse"]\ncogs = [\n%s%s]\n' % (b, ENCODE, drain(out + ".fanout-" + b)) for b in "ab"
    )


def run(conf):
    """Runs the binary on `conf`; returns (cpu seconds, peak RSS KiB, user,
    sys), as GNU time reads them (a child's own peak, not the forking
    Python's)."""
    out = conf + ".time"
    subprocess.check_call(
        ["/usr/bin/time", "-f", "%U %S %M", "-o", out, BIN, "run", conf], stdout=subprocess.DEVNULL
    )
    user, system, rss = open(out).read().split()[-3:]
    return float(user) + float(system), int(rss), float(user), float(system)


def instructions(conf):
    """Instructions the binary runs on `conf`, counted by valgrind's
    cachegrind: the same on a busy machine as on a quiet one."""
    res = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", BIN, "run", conf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    for line in res.stderr.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.split(":")[1].replace(",", "").strip())
    sys.exit("no instruction count from valgrind")


def hwm(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stalled(work, data, queue):
    """Peak RSS (KiB) with one branch stalled on a socket nobody reads, and
    the lines the other branch got meanwhile."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    out = os.path.join(work, "stalled-%d" % queue)
    conf = os.path.join(work, "stalled-%d.toml" % queue)
    with open(conf, "w") as f:
        f.write(
            '[log]\nlevel = "error"\n[trains.parse]\ncogs = [\n  { kind = "tail", include = [%r] },%s]\n'
            '[trains.a]\ninputs = ["parse"]\ncogs = [\n%s%s]\n'
            '[trains.b]\ninputs = ["parse"]\nqueue = %d\ncogs = [\n%s  { kind = "connect", connect = "127.0.0.1:%d" },\n]\n'
            % (data, PARSE, ENCODE, drain(out), queue, ENCODE, server.getsockname()[1])
        )
    proc = subprocess.Popen([BIN, "run", conf], stdout=subprocess.DEVNULL)
    # Until branch a stops growing: the supply has stalled.
    last, same = -1, 0
    while same < 10:
        time.sleep(0.2)
        try:
            size = os.path.getsize(out)
        except OSError:
            size = 0
        same = same + 1 if size == last else 0
        last = size
    peak = hwm(proc.pid)
    proc.kill()
    proc.wait()
    server.close()
    with open(out, "rb") as f:
        lines = f.read().count(b"\n")
    return peak, lines


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "tourbillon-cli"], cwd=ROOT)
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "in.jsonl")
        subprocess.check_call([sys.executable, GEN, str(n), data, "--bad-every", "1000"], stderr=subprocess.DEVNULL)
        print("input: %d lines, %d bytes" % (n, os.path.getsize(data)))
        out = os.path.join(work, "out")
        kinds = ["one", "junction", "fanout", "encoded"]
        figures = {k: [] for k in kinds}
        for k in kinds:
            with open(os.path.join(work, k + ".toml"), "w") as f:
                f.write(config(k, data, out))
        for _ in range(runs):
            for k in kinds:
                for suffix in OUTPUTS[k]:
                    if os.path.exists(out + suffix):
                        os.remove(out + suffix)
                figures[k].append(run(os.path.join(work, k + ".toml")))
            ref = open(out + ".one", "rb").read()
            for suffix in sum((OUTPUTS[k] for k in kinds[1:]), []):
                if open(out + suffix, "rb").read() != ref:
                    sys.exit("output %s differs from the straight train's" % suffix)
        med = {}
        for k in kinds:
            cpu = statistics.median(f[0] for f in figures[k])
            rss = statistics.median(f[1] for f in figures[k])
            user = statistics.median(f[2] for f in figures[k])
            system = statistics.median(f[3] for f in figures[k])
            med[k] = cpu
            print(
                "%-9s cpu %.2fs (user %.2f, sys %.2f)  peak RSS %d KiB   (cpu runs: %s)"
                % (k, cpu, user, system, rss, " ".join("%.2f" % f[0] for f in figures[k]))
            )
        print(
            "ratio junction/one: cpu %.3f (target <= 1.05)   fanout/one: cpu %.3f (target <= 1.3)   encoded/one: cpu %.3f"
            % (med["junction"] / med["one"], med["fanout"] / med["one"], med["encoded"] / med["one"])
        )
        if shutil.which("valgrind"):
            small = os.path.join(work, "small.jsonl")
            subprocess.check_call([sys.executable, GEN, "100000", small, "--bad-every", "1000"], stderr=subprocess.DEVNULL)
            counts = {}
            for k in kinds:
                conf = os.path.join(work, k + "-small.toml")
                with open(conf, "w") as f:
                    f.write(config(k, small, out + "-small"))
                counts[k] = instructions(conf)
            print(
                "instructions on 100000 lines: %s"
                % "  ".join("%s %.3fx" % (k, counts[k] / counts["one"]) for k in kinds)
            )
        print("a branch stalled on a socket nobody reads (branch a: a file; the tail follows, no batch):")
        for queue in [64, 1024, 16384]:
            peak, lines = stalled(work, data, queue)
            print("  queue %5d: peak RSS %6d KiB, branch a got %d of %d lines" % (queue, peak, lines, n))


if __name__ == "__main__":
    main()
