#!/usr/bin/env python3
"""Writes the benchmarks' workload: a file of JSON event lines, the same
file for the same arguments.

    python3 bench/gen_events.py N OUT [--seed S] [--bad-every K]

N lines go to OUT (replaced if it exists), one compact JSON object each:

    {"ts":"2026-11-22T00:00:01.234Z","host":"h7","src_ip":"192.0.2.41",
     "level":"info","msg":"request served","bytes":5120,"id":1234}

`level` is "debug" on about one line in ten (the events a pipeline drops),
otherwise "info", "warning" or "error"; `src_ip` is an address of the
documentation ranges (for the anonymizer). With --bad-every K, line K, 2K,
3K... is not an event but a line a decoder must reject, in turn: JSON cut
short, invalid UTF-8 inside a string, an empty line. The counts go to
standard error as `good=G debug=D bad=B`.
"""
import argparse
import json
import random
import sys

# Weights: about 10% debug.
LEVELS = (("info", 55), ("warning", 25), ("error", 10), ("debug", 10))
MESSAGES = (
    "request served",
    "cache miss",
    "user login ok",
    "user login failed",
    "upstream timed out",
    "connection reset by peer",
    "disk usage above threshold",
    "rate limit exceeded",
)
NETS = ("192.0.2", "198.51.100", "203.0.113")
BAD_LINES = (
    b'{"ts":"2026-11-22T00:00:00.000Z","host":"h3","level":"inf\n',
    b'{"host":"h5","msg":"not \xc3\x28 utf-8 \xff"}\n',
    b"\n",
)


def timestamp(ms: int) -> str:
    """The time `ms` milliseconds after 2026-11-22T00:00:00Z (within a day)."""
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return "2026-11-22T%02d:%02d:%02d.%03dZ" % (h % 24, m, s, ms)


def main() -> int:
    ap = argparse.ArgumentParser(description="Write N JSON event lines to OUT.")
    ap.add_argument("n", type=int, help="lines to write")
    ap.add_argument("out", help="file to write (replaced)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the choices (default 1)")
    ap.add_argument("--bad-every", type=int, default=0, metavar="K", help="make every K-th line bad (default 0: none)")
    args = ap.parse_args()
    if args.n < 0 or args.bad_every < 0:
        ap.error("N and K must not be negative")
    rng = random.Random(args.seed)
    names = [name for name, _ in LEVELS]
    weights = [w for _, w in LEVELS]
    good = debug = bad = 0
    with open(args.out, "wb") as out:
        for i in range(1, args.n + 1):
            if args.bad_every and i % args.bad_every == 0:
                out.write(BAD_LINES[bad % len(BAD_LINES)])
                bad += 1
                continue
            level = rng.choices(names, weights)[0]
            event = {
                "ts": timestamp(i * 7),
                "host": "h%d" % rng.randrange(50),
                "src_ip": "%s.%d" % (rng.choice(NETS), rng.randrange(1, 255)),
                "level": level,
                "msg": rng.choice(MESSAGES),
                "bytes": rng.randrange(50, 200000),
                "id": i,
            }
            out.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            good += 1
            debug += level == "debug"
    print("good=%d debug=%d bad=%d" % (good, debug, bad), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
