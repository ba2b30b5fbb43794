#!/usr/bin/env bash
# Relay throughput benchmark.
#
# Compares, in the same run, Postfix's smtp-source talking to smtp-sink
# directly ("direct") with smtp-source -> sotto -> smtp-sink ("sotto"), for
# each session count, and prints msgs/s for both, the ratio sotto/direct and
# sotto's peak RSS (VmHWM). Target: ratio >= 0.70 with 20 sessions. The
# target line is informational; the script fails only if something breaks
# (a tool exits non-zero, a message is lost, sotto does not exit cleanly).
#
# Knobs (environment):
#   MESSAGES  messages per measured run        (default 2000)
#   SIZE      message size in bytes            (default 10240)
#   SESSIONS  session counts to measure        (default "1 20")
#   ROUNDS    runs per path and count, best kept (default 3)
#   WARMUP    messages sent per path before measuring (default 200)
#   SLOW      seconds; a run slower than this is not repeated (default 10),
#             which bounds the runtime when one path is badly slow
#
# smtp-source opens one connection per message (its default), so both paths
# pay connection setup; sotto keeps a pool of upstream connections.
set -euo pipefail

MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-10240}
SESSIONS=${SESSIONS:-"1 20"}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-200}
SLOW=${SLOW:-10}
TARGET=0.70

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "relay.sh: $*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
if [[ ! -x $SOURCE || ! -x $SINK ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing postfix (for smtp-source/smtp-sink)..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null \
            || die "apt-get install postfix failed"
    fi
    [[ -x $SOURCE && -x $SINK ]] \
        || die "need $SOURCE and $SINK: install the Debian package 'postfix'"
fi
command -v python3 >/dev/null || die "need python3 (to pick free ports)"

cargo build --release --quiet
SOTTO=$PWD/target/release/sotto

# --- scratch space and cleanup ---------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sotto-bench.XXXXXX")
SINK_PID= SOTTO_PID=
cleanup() {
    for pid in $SOTTO_PID $SINK_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two free loopback ports (bound to port 0, then released).
read -r SINK_PORT SOTTO_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

# Waits until something listens on 127.0.0.1:$1 (or the process $2 died).
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# --- the sink ----------------------------------------------------------------
# -c writes a running "sess=N quit=N mesg=N" counter (CR-separated) to stdout,
# which is how we check that every message arrived. smtp-sink refuses to run
# as root without -u. Backlog 1024 so bursts of connections are not dropped.
sink_args=(-c)
[[ $(id -u) -eq 0 ]] && sink_args+=(-u nobody)
"$SINK" "${sink_args[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$TMP/sink.count" 2>"$TMP/sink.err" &
SINK_PID=$!
wait_port "$SINK_PORT" "$SINK_PID" || die "smtp-sink did not start: $(cat "$TMP/sink.err")"

# Messages the sink has received so far.
sink_count() {
    local last
    last=$(tr '\r' '\n' <"$TMP/sink.count" | grep mesg= | tail -n1 || true)
    last=${last##*mesg=}
    echo "${last:-0}"
}

# --- sotto -------------------------------------------------------------------
cat >"$TMP/sotto.toml" <<EOF
[smtp]
listen = "127.0.0.1:$SOTTO_PORT"
[lmtp]
listen = ""
[admin]
listen = ""
[upstream]
address = "127.0.0.1:$SINK_PORT"
pool_size = 64
[limits]
max_connections = 256
[log]
level = "warn"
EOF
RUST_LOG= "$SOTTO" serve --config "$TMP/sotto.toml" 2>"$TMP/sotto.log" &
SOTTO_PID=$!
wait_port "$SOTTO_PORT" "$SOTTO_PID" || die "sotto did not start: $(cat "$TMP/sotto.log")"

# --- one run -------------------------------------------------------------------
# run PORT SESSIONS COUNT: sends COUNT messages with smtp-source, checks the
# sink got them all, prints the elapsed seconds.
run() {
    local port=$1 sess=$2 count=$3 before after t0 t1
    before=$(sink_count)
    t0=$(date +%s.%N)
    "$SOURCE" -s "$sess" -m "$count" -l "$SIZE" \
        -f bench@example.com -t sink@example.org "127.0.0.1:$port" 2>"$TMP/source.err" \
        || die "smtp-source to port $port failed: $(cat "$TMP/source.err")"
    t1=$(date +%s.%N)
    # The sink counts before it answers, so the counter is normally current;
    # allow a moment for the write to land anyway.
    for _ in $(seq 40); do
        after=$(sink_count)
        ((after - before >= count)) && break
        sleep 0.05
    done
    ((after - before == count)) \
        || die "sink received $((after - before)) of $count messages (port $port)"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

rss_mb() { awk '/^VmHWM:/ { printf "%.1f MB", $2 / 1024 }' "/proc/$SOTTO_PID/status"; }

# Warm-up: page in both paths and fill sotto's upstream pool.
run "$SINK_PORT" 20 "$WARMUP" >/dev/null
run "$SOTTO_PORT" 20 "$WARMUP" >/dev/null

echo "smtp-source -> sotto -> smtp-sink vs smtp-source -> smtp-sink"
echo "$MESSAGES messages of $SIZE bytes per run, best of $ROUNDS runs per path ($(nproc) CPUs)"
echo
printf '%8s  %12s  %11s  %6s  %14s\n' sessions "direct msg/s" "sotto msg/s" ratio "sotto peak RSS"
ratio20=
for sess in $SESSIONS; do
    best_direct= best_sotto= note=
    # Alternate the two paths so drift on the machine hits both alike.
    for round in $(seq "$ROUNDS"); do
        d=$(run "$SINK_PORT" "$sess" "$MESSAGES")
        s=$(run "$SOTTO_PORT" "$sess" "$MESSAGES")
        best_direct=$(awk -v a="${best_direct:-inf}" -v b="$d" 'BEGIN { print (a == "inf" || b < a) ? b : a }')
        best_sotto=$(awk -v a="${best_sotto:-inf}" -v b="$s" 'BEGIN { print (a == "inf" || b < a) ? b : a }')
        if ((round < ROUNDS)) && awk -v a="$d" -v b="$s" -v m="$SLOW" 'BEGIN { exit !(a > m || b > m) }'; then
            note="  (best of $round: a run took over ${SLOW}s)"
            break
        fi
    done
    read -r rd rs ratio < <(awk -v n="$MESSAGES" -v d="$best_direct" -v s="$best_sotto" \
        'BEGIN { printf "%.0f %.0f %.2f\n", n / d, n / s, d / s }')
    printf '%8s  %12s  %11s  %6s  %14s%s\n' "$sess" "$rd" "$rs" "$ratio" "$(rss_mb)" "$note"
    [[ $sess == 20 ]] && ratio20=$ratio
done
echo

# Peak RSS is read above, before stopping sotto; now stop it and expect exit 0.
kill -TERM "$SOTTO_PID"
rc=0; wait "$SOTTO_PID" || rc=$?
SOTTO_PID=
((rc == 0)) || die "sotto exited $rc on SIGTERM: $(tail -n 20 "$TMP/sotto.log")"
if [[ -s $TMP/sotto.log ]]; then
    echo "sotto logged (warn and above):"
    sed 's/^/  /' "$TMP/sotto.log" | tail -n 20
    echo
fi

if [[ -z $ratio20 ]]; then
    echo "target: not checked (20 sessions not in SESSIONS=\"$SESSIONS\")"
elif awk -v r="$ratio20" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'; then
    echo "target met: sotto relays at $ratio20 of the direct rate with 20 sessions (target >= $TARGET)"
else
    echo "target NOT met: sotto relays at $ratio20 of the direct rate with 20 sessions (target >= $TARGET)"
fi
