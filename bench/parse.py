#!/usr/bin/env python3
"""The `parse` step against hand-written references, in one run.

    python3 bench/parse.py [N] [RUNS]

Builds the release binary and `examples/nginx_plain` (a loop with the same
regex crate and serde_json, same profile), then, RUNS times each (default
5), alternating:

  nginx:  N lines of bench/gen_nginx.py (default 1,000,000) through
          tail (batch) -> parse nginx_combined -> json_encode -> file,
          against nginx_plain on the same file; the outputs must be equal.
  logfmt: the N events of bench/gen_events.py written as logfmt, through
          tail -> parse logfmt -> json_encode -> file, against the same
          events as JSON lines through tail -> json_decode -> json_encode
          -> file: CPU per input byte. Both files hold the same 7 fields
          per event; the logfmt lines are about 17% shorter (no braces,
          commas or quoted keys) and become longer JSON lines, so per input
          byte is the stricter of the two measures for logfmt.
  csv:    the same events as CSV lines (7 columns), through tail -> parse
          csv -> json_encode -> file, per input byte against the JSON lines
          too (reported, no target).

Prints CPU time (user + sys, GNU time) medians and the ratios; with
valgrind installed, also the instructions each runs on N/10 lines
(cachegrind), which a busy machine does not move.
"""
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "tourbillon")
PLAIN = os.path.join(TARGET, "release", "examples", "nginx_plain")


def config(data, step, out):
    return (
        '[log]\nlevel = "error"\n[trains.t]\ncogs = [\n'
        '  { kind = "tail", include = [%r], batch = true },\n  %s,\n'
        '  { kind = "json_encode" },\n  { kind = "file", path = %r },\n]\n' % (data, step, out)
    )


def timed(cmd, out):
    if os.path.exists(out):
        os.remove(out)
    t = out + ".time"
    subprocess.check_call(["/usr/bin/time", "-f", "%U %S", "-o", t] + cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    u, s = open(t).read().split()[-2:]
    return float(u) + float(s)


def instructions(cmd):
    res = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"] + cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    for line in res.stderr.splitlines():
        if "I   refs:" in line or "I refs:" in line:
            return int(line.split(":")[1].replace(",", "").strip())
    sys.exit("no instruction count from valgrind")


def logfmt_value(v):
    s = v if isinstance(v, str) else json.dumps(v)
    if s == "" or any(c in s for c in ' ="\\'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def to_logfmt(src, dst):
    """The JSON events as logfmt lines (flat objects; nested values as JSON text)."""
    with open(src) as f, open(dst, "w") as g:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                g.write("not logfmt at all\n")
                continue
            g.write(" ".join("%s=%s" % (k, logfmt_value(v)) for k, v in e.items()) + "\n")


COLUMNS = ["ts", "host", "src_ip", "level", "msg", "bytes", "id"]


def to_csv(src, dst):
    """The JSON events as CSV lines, COLUMNS in order."""
    with open(src) as f, open(dst, "w", newline="") as g:
        w = csv.writer(g, lineterminator="\n")
        for line in f:
            e = json.loads(line)
            w.writerow([e[k] for k in COLUMNS])


CSV_STEP = '{ kind = "parse", format = "csv", columns = %s }' % json.dumps(COLUMNS)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "tourbillon-cli"], cwd=ROOT)
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "tourbillon-cogs", "--example", "nginx_plain"],
                          cwd=ROOT)
    with tempfile.TemporaryDirectory() as w:
        access = os.path.join(w, "access.log")
        events = os.path.join(w, "events.jsonl")
        logfmt = os.path.join(w, "events.logfmt")
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench", "gen_nginx.py"), str(n), access])
        subprocess.check_call([sys.executable, os.path.join(ROOT, "bench", "gen_events.py"), str(n), events],
                              stderr=subprocess.DEVNULL)
        to_logfmt(events, logfmt)
        csvf = os.path.join(w, "events.csv")
        to_csv(events, csvf)
        jobs = {
            "nginx parse": ([BIN, "run", os.path.join(w, "nginx.toml")], os.path.join(w, "nginx.out")),
            "nginx_plain": ([PLAIN, access, os.path.join(w, "plain.out")], os.path.join(w, "plain.out")),
            "json decode": ([BIN, "run", os.path.join(w, "json.toml")], os.path.join(w, "json.out")),
            "logfmt parse": ([BIN, "run", os.path.join(w, "logfmt.toml")], os.path.join(w, "logfmt.out")),
            "csv parse": ([BIN, "run", os.path.join(w, "csv.toml")], os.path.join(w, "csv.out")),
        }
        with open(os.path.join(w, "nginx.toml"), "w") as f:
            f.write(config(access, '{ kind = "parse", format = "nginx_combined" }', jobs["nginx parse"][1]))
        with open(os.path.join(w, "json.toml"), "w") as f:
            f.write(config(events, '{ kind = "json_decode" }', jobs["json decode"][1]))
        with open(os.path.join(w, "logfmt.toml"), "w") as f:
            f.write(config(logfmt, '{ kind = "parse", format = "logfmt" }', jobs["logfmt parse"][1]))
        with open(os.path.join(w, "csv.toml"), "w") as f:
            f.write(config(csvf, CSV_STEP, jobs["csv parse"][1]))
        cpu = {k: [] for k in jobs}
        for _ in range(runs):
            for k, (cmd, out) in jobs.items():
                cpu[k].append(timed(cmd, out))
            if open(jobs["nginx parse"][1], "rb").read() != open(jobs["nginx_plain"][1], "rb").read():
                sys.exit("parse nginx_combined and nginx_plain wrote different output")
        size = {"nginx parse": os.path.getsize(access), "nginx_plain": os.path.getsize(access),
                "json decode": os.path.getsize(events), "logfmt parse": os.path.getsize(logfmt),
                "csv parse": os.path.getsize(csvf)}
        med = {k: statistics.median(v) for k, v in cpu.items()}
        for k in jobs:
            print("%-13s cpu %.2fs  %.1f ns/byte   (runs: %s)" % (
                k, med[k], 1e9 * med[k] / size[k], " ".join("%.2f" % c for c in cpu[k])))
        print("ratio parse nginx_combined / nginx_plain: cpu %.3f (target <= 1.3)" % (med["nginx parse"] / med["nginx_plain"]))
        print("per byte, logfmt parse / json decode: %.3f (target <= 1.0)" % (
            (med["logfmt parse"] / size["logfmt parse"]) / (med["json decode"] / size["json decode"])))
        print("per byte, csv parse / json decode: %.3f" % (
            (med["csv parse"] / size["csv parse"]) / (med["json decode"] / size["json decode"])))
        if shutil.which("valgrind"):
            small = max(n // 10, 1000)
            for src in [access, events, logfmt, csvf]:
                with open(src) as f, open(src + ".small", "w") as g:
                    for i, line in enumerate(f):
                        if i >= small:
                            break
                        g.write(line)
            counts = {}
            for k, name, src, step in [
                ("nginx parse", "nginx-s.toml", access, '{ kind = "parse", format = "nginx_combined" }'),
                ("json decode", "json-s.toml", events, '{ kind = "json_decode" }'),
                ("logfmt parse", "logfmt-s.toml", logfmt, '{ kind = "parse", format = "logfmt" }'),
                ("csv parse", "csv-s.toml", csvf, CSV_STEP),
            ]:
                conf = os.path.join(w, name)
                with open(conf, "w") as f:
                    f.write(config(src + ".small", step, conf + ".out"))
                counts[k] = instructions([BIN, "run", conf])
            counts["nginx_plain"] = instructions([PLAIN, access + ".small", os.path.join(w, "plain-s.out")])
            json_per_byte = counts["json decode"] / os.path.getsize(events + ".small")
            print("instructions on %d lines: parse nginx / nginx_plain %.3f; per byte, logfmt / json %.3f, "
                  "csv / json %.3f" % (
                      small, counts["nginx parse"] / counts["nginx_plain"],
                      counts["logfmt parse"] / os.path.getsize(logfmt + ".small") / json_per_byte,
                      counts["csv parse"] / os.path.getsize(csvf + ".small") / json_per_byte))


if __name__ == "__main__":
    main()
