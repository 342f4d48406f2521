#!/usr/bin/env python3
"""The standard job through the `tourbillon` binary (a configuration, not
an example) against the hand-written serde_json loop, in the same run.

    python3 bench/standard.py [N] [RUNS]

Builds, with the workspace's release profile (thin LTO, one codegen
unit), the binary and the examples `plain_loop` (the hand-written loop:
read, parse, drop `level == "debug"`, set `pipeline`, write) and
`json_pipeline` (the same train in Rust). Writes N events (default
1,000,000) with bench/gen_events.py, one bad line in 1,000, then runs the
three RUNS times each (default 5), alternating, and prints the median CPU
time (user + sys, from the kernel's accounting of each child) and its
ratio to the hand-written loop. Checks that the three wrote the same
events (compared as JSON objects: the loop's serde_json sorts keys), and
that the binary and json_pipeline wrote each kept line byte for byte as
it was read with the new field added (key order and number text kept).
With valgrind installed, also the instructions each runs on 100,000
lines (cachegrind), which a busy machine does not move.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "tourbillon")
PLAIN = os.path.join(TARGET, "release", "examples", "plain_loop")
PIPE = os.path.join(TARGET, "release", "examples", "json_pipeline")
GEN = os.path.join(ROOT, "bench", "gen_events.py")

CONFIG = """[log]
level = "warn"
[trains.main]
cogs = [
  {{ kind = "tail", include = [{inp}], batch = true, read_from = "beginning" }},
  {{ kind = "json_decode", on_error = "drop" }},
  {{ kind = "filter", action = "drop", conditions = [{{ field = "level", equals = "debug" }}] }},
  {{ kind = "set", fields = {{ pipeline = "tourbillon" }} }},
  {{ kind = "json_encode" }},
  {{ kind = "file", path = {out} }},
]
"""


def command(kind, work, data, out):
    if kind == "plain":
        return [PLAIN, data, out]
    if kind == "json_pipeline":
        return [PIPE, data, out]
    conf = os.path.join(work, "standard.toml")
    with open(conf, "w") as f:
        f.write(CONFIG.format(inp=json.dumps(data), out=json.dumps(out)))
    return [BIN, "run", "--no-state", conf]


def cpu(cmd, out):
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit("%s failed (%d)" % (" ".join(cmd), status))
    return usage.ru_utime + usage.ru_stime


def events(path):
    with open(path) as f:
        return sorted(json.dumps(json.loads(l), sort_keys=True) for l in f)


def read_lines(path):
    with open(path, "rb") as f:
        return f.read().splitlines()


def spliced(data):
    """What a job that keeps the bytes writes: each kept input line as it
    was, `,"pipeline":"tourbillon"` added before its closing brace."""
    out = []
    for line in read_lines(data):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("level") != "debug":
            out.append(line[:-1] + b',"pipeline":"tourbillon"}')
    return out


def instructions(cmd):
    r = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"] + cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in r.stderr.splitlines():
        if "I" in line and "refs:" in line:
            return int(line.split("refs:")[1].strip().replace(",", ""))
    sys.exit("no instruction count from valgrind:\n" + r.stderr)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    subprocess.check_call(
        ["cargo", "build", "--release", "-q", "-p", "tourbillon-cli", "--bin", "tourbillon"], cwd=ROOT
    )
    subprocess.check_call(
        ["cargo", "build", "--release", "-q", "-p", "tourbillon-cogs", "--example", "plain_loop", "--example", "json_pipeline"],
        cwd=ROOT,
    )
    kinds = ("plain", "json_pipeline", "binary")
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "events.jsonl")
        subprocess.check_call([sys.executable, GEN, str(n), data, "--bad-every", "1000"], stderr=subprocess.DEVNULL)
        outs = {k: os.path.join(work, k + ".out") for k in kinds}
        times = {k: [] for k in kinds}
        for _ in range(runs):
            for k in kinds:
                times[k].append(cpu(command(k, work, data, outs[k]), outs[k]))
        same = events(outs["plain"])
        for k in kinds[1:]:
            if events(outs[k]) != same:
                sys.exit("%s wrote other events than the hand-written loop" % k)
            if spliced(data) != read_lines(outs[k]):
                sys.exit("%s did not write each kept line as it was read with the field added" % k)
        base = statistics.median(times["plain"])
        print("standard job, %d lines (%d bytes), %d runs each, median CPU (user+sys):" % (n, os.path.getsize(data), runs))
        for k in kinds:
            m = statistics.median(times[k])
            print("  %-14s %7.3fs   %.2fx the hand-written loop" % (k, m, m / base))
        if subprocess.run(["sh", "-c", "command -v valgrind"], stdout=subprocess.DEVNULL).returncode == 0:
            small = os.path.join(work, "small.jsonl")
            subprocess.check_call([sys.executable, GEN, "100000", small, "--bad-every", "1000"], stderr=subprocess.DEVNULL)
            counts = {k: instructions(command(k, work, small, outs[k] + ".small")) for k in kinds}
            print("instructions on 100,000 lines:")
            for k in kinds:
                print("  %-14s %13d   %.2fx" % (k, counts[k], counts[k] / counts["plain"]))


if __name__ == "__main__":
    main()
