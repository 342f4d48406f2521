#!/bin/sh
# The tail pipeline against a hand-written serde_json loop, and following.
#
#   bench/tail.sh [LINES]        (default 1000000; run from anywhere)
#
# 1. json_pipeline vs plain_loop on LINES lines of bench/gen_events.py output:
#    wall time (and CPU time, and peak RSS) of each, alternating, 5 runs,
#    medians and their ratio. The same events checked (as JSON objects:
#    json_pipeline keeps the input's key order, plain_loop sorts keys).
# 2. --follow to stdout: latency from an append to the line read back,
#    1000 appends 3 ms apart (median, p99).
# 3. CPU per event at 1,000 and 10,000 appends/s (and rsyslogd's, if it
#    is installed: imfile in inotify mode, lines passed through unchanged).
# 4. Idle CPU while following 1000 quiet files.
#
# Needs python3 and GNU time (/usr/bin/time). Run it on a quiet machine:
# anything compiling meanwhile shows in the figures.
set -eu
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
RUNS=5
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p tourbillon-cogs --example json_pipeline --example plain_loop
PIPE=$TARGET/release/examples/json_pipeline
PLAIN=$TARGET/release/examples/plain_loop

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 bench/gen_events.py "$LINES" "$WORK/in.jsonl" --bad-every 1000 2>/dev/null
echo "input: $LINES lines, $(wc -c <"$WORK/in.jsonl") bytes"

# One timed run: prints "wall cpu rss_kb".
timed() {
    rm -f "$WORK/out"
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" "$WORK/in.jsonl" "$WORK/out" 2>/dev/null
    awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$WORK/time"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The same events in both files, compared as JSON objects: json_pipeline
# keeps each line's key order, plain_loop's serde_json map sorts the keys.
same_events() {
    python3 -c 'import json, sys
def events(p):
    with open(p) as f:
        return [json.dumps(json.loads(l), sort_keys=True) for l in f]
sys.exit(events(sys.argv[1]) != events(sys.argv[2]))' "$1" "$2"
}

: >"$WORK/plain"
: >"$WORK/pipe"
i=0
while [ $i -lt $RUNS ]; do
    timed "$PLAIN" >>"$WORK/plain"
    cp "$WORK/out" "$WORK/plain.out"
    timed "$PIPE" >>"$WORK/pipe"
    same_events "$WORK/out" "$WORK/plain.out" || { echo "json_pipeline and plain_loop wrote different events" >&2; exit 1; }
    i=$((i + 1))
done
for f in plain pipe; do
    eval "${f}_wall=\$(cut -d' ' -f1 <\"\$WORK/$f\" | median)"
    eval "${f}_cpu=\$(cut -d' ' -f2 <\"\$WORK/$f\" | median)"
    eval "${f}_rss=\$(cut -d' ' -f3 <\"\$WORK/$f\" | median)"
done
echo "plain_loop:    wall ${plain_wall}s  cpu ${plain_cpu}s  peak RSS ${plain_rss} KiB   (runs: $(cut -d' ' -f1 "$WORK/plain" | tr '\n' ' '))"
echo "json_pipeline: wall ${pipe_wall}s  cpu ${pipe_cpu}s  peak RSS ${pipe_rss} KiB   (runs: $(cut -d' ' -f1 "$WORK/pipe" | tr '\n' ' '))"
awk -v a="$pipe_wall" -v b="$plain_wall" -v c="$pipe_cpu" -v d="$plain_cpu" \
    'BEGIN { printf "ratio json_pipeline / plain_loop: wall %.3f  cpu %.3f  (target: cpu <= 0.5)\n", a / b, c / d }'

python3 bench/tail_follow.py latency "$PIPE" 1000 3
for rate in 1000 10000; do
    python3 bench/tail_follow.py rate "$PIPE" $rate 5
    # rsyslog's imfile (inotify mode), passing lines through: for comparison.
    if command -v rsyslogd >/dev/null 2>&1; then
        python3 bench/tail_follow.py rate-rsyslog "$(command -v rsyslogd)" $rate 5
    fi
done
python3 bench/tail_follow.py idle "$PIPE" 1000 10
