#!/usr/bin/env python3
"""Measures a following pipeline from the outside; used by bench/tail.sh.

  tail_follow.py latency PIPELINE N INTERVAL_MS
      Runs `PIPELINE --follow IN -`, appends N events to IN one every
      INTERVAL_MS, and reads them back from the pipeline's stdout. Each
      event carries the CLOCK_MONOTONIC time it was written at; the latency
      is the time from the write to the line read back. Prints
      `latency_ms median=.. p99=.. max=.. n=..`.

  tail_follow.py rate PIPELINE RATE SECONDS
      Runs `PIPELINE --follow IN OUT` (OUT a file), appends events at RATE
      per second for SECONDS, and prints the CPU time the pipeline used per
      event: `cpu_per_event_us=.. rate=.. events=..`.

  tail_follow.py rate-rsyslog RSYSLOGD RATE SECONDS
      The same with rsyslogd (imfile in inotify mode, omfile), passing the
      lines through unchanged: less work than the JSON pipeline does.

  tail_follow.py idle PIPELINE FILES SECONDS
      Follows FILES quiet files (a glob) and prints the CPU the pipeline
      used while nothing happened: `idle_cpu_percent=.. files=.. open_fds=..`.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start(pipeline, pattern, out):
    proc = subprocess.Popen([pipeline, "--follow", pattern, out], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    return proc


def event(i, sent):
    return json.dumps({"ts": "2026-11-22T10:00:00.000Z", "host": "h1", "level": "info",
                       "msg": "request served", "id": i, "sent": sent},
                      separators=(",", ":")).encode() + b"\n"


def wait_ready(proc, fd, probe_id=-1):
    """Appends probe events until one comes back: the pipeline is following."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        os.write(fd, event(probe_id, 0))
        line = proc.stdout.readline()
        if line and json.loads(line).get("id") == probe_id:
            return
    raise SystemExit("the pipeline did not start")


def latency(pipeline, n, interval_ms):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "in.jsonl")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        proc = start(pipeline, path, "-")
        wait_ready(proc, fd)
        got = {}

        def reader():
            while len(got) < n:
                line = proc.stdout.readline()
                now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                if not line:
                    return
                ev = json.loads(line)
                if ev.get("id", -1) >= 0:
                    got[ev["id"]] = now - ev["sent"]

        t = threading.Thread(target=reader)
        t.start()
        for i in range(n):
            os.write(fd, event(i, time.clock_gettime_ns(time.CLOCK_MONOTONIC)))
            time.sleep(interval_ms / 1000)
        t.join(timeout=10)
        proc.terminate()
        proc.wait()
        os.close(fd)
    lat = sorted(v / 1e6 for v in got.values())
    if len(lat) < n:
        raise SystemExit("only %d of %d events came back" % (len(lat), n))
    print("latency_ms median=%.3f p99=%.3f max=%.3f n=%d" % (
        lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1], lat[-1], len(lat)))


RSYSLOG_CONF = """
global(workDirectory="{d}/work")
module(load="imfile" mode="inotify")
input(type="imfile" file="{d}/in.jsonl" tag="app" ruleset="out")
template(name="raw" type="string" string="%msg%\\n")
ruleset(name="out") {{ action(type="omfile" file="{d}/out.jsonl" template="raw") }}
"""


def start_writer_to_file(kind, pipeline, d):
    """Starts the program under test following d/in.jsonl into d/out.jsonl."""
    path, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
    if kind == "rsyslog":
        os.mkdir(os.path.join(d, "work"))
        conf = os.path.join(d, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(RSYSLOG_CONF.format(d=d))
        return subprocess.Popen([pipeline, "-n", "-f", conf, "-i", os.path.join(d, "pid")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.Popen([pipeline, "--follow", path, out], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def lines_in(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def rate(kind, pipeline, per_second, seconds):
    with tempfile.TemporaryDirectory() as d:
        path, out = os.path.join(d, "in.jsonl"), os.path.join(d, "out.jsonl")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        proc = start_writer_to_file(kind, pipeline, d)
        deadline = time.monotonic() + 20
        while lines_in(out) == 0:
            if time.monotonic() > deadline:
                raise SystemExit("%s did not start" % pipeline)
            os.write(fd, event(-1, 0))
            time.sleep(0.2)
        time.sleep(0.5)
        probes = lines_in(out)
        before = cpu_seconds(proc.pid)
        total = per_second * seconds
        begin = time.monotonic()
        for i in range(total):
            os.write(fd, event(i, 0))
            due = begin + (i + 1) / per_second
            pause = due - time.monotonic()
            if pause > 0.001:
                time.sleep(pause)
        deadline = time.monotonic() + 20
        while lines_in(out) < probes + total and time.monotonic() < deadline:
            time.sleep(0.05)
        used = cpu_seconds(proc.pid) - before
        got = lines_in(out) - probes
        proc.terminate()
        proc.wait()
        os.close(fd)
    print("%s: cpu_per_event_us=%.2f rate=%d events=%d delivered=%d" % (
        kind, used / total * 1e6, per_second, total, got))


def idle(pipeline, files, seconds):
    with tempfile.TemporaryDirectory() as d:
        for i in range(files):
            with open(os.path.join(d, "f%04d.log" % i), "wb") as f:
                f.write(event(i, 0))
        proc = start(pipeline, os.path.join(d, "*.log"), "/dev/null")
        time.sleep(3)
        fds = len(os.listdir("/proc/%d/fd" % proc.pid))
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        used = cpu_seconds(proc.pid) - before
        proc.terminate()
        proc.wait()
    print("idle_cpu_percent=%.3f files=%d open_fds=%d over=%ds" % (used / seconds * 100, files, fds, seconds))


def main():
    mode = sys.argv[1]
    if mode == "latency":
        latency(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "rate":
        rate("tourbillon", sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "rate-rsyslog":
        rate("rsyslog", sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "idle":
        idle(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
