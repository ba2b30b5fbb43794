#!/usr/bin/env bash
# Relay throughput benchmark.
#
# Compares, in the same run, Postfix's smtp-source talking to smtp-sink
# directly ("direct") with smtp-source -> sotto -> smtp-sink, for each
# session count: sotto relaying as is ("sotto"), and sotto encrypting every
# message to the recipient's Curve25519 key ("encrypt"). Prints msgs/s for
# each, the ratios to direct, the CPU time each sotto spent per message (from
# /proc/<pid>/stat, utime + stime, beside smtp-sink's own per message on the
# direct path), and sotto's peak RSS (VmHWM); then the rate of
# `gpg --encrypt` spawned once per message (how script-based gateways work).
# Targets: sotto >= 0.70 of direct with 20 sessions; encrypt >= 0.50 of
# direct with 20 sessions and >= 10x the gpg-per-message rate. On a shared
# 2-core machine the CPU time per message is the stable figure; the rate
# ratios swing with whatever else runs. The target lines are informational; the script fails only if something breaks (a
# tool exits non-zero, a message is lost, sotto does not exit cleanly).
#
# Knobs (environment):
#   MESSAGES  messages per measured run        (default 2000)
#   SIZE      message size in bytes            (default 10240)
#   SESSIONS  session counts to measure        (default "1 20")
#   ROUNDS    runs per path and count, best kept (default 3)
#   WARMUP    messages sent per path before measuring (default 200)
#   SLOW      seconds; a run slower than this is not repeated (default 10),
#             which bounds the runtime when one path is badly slow
#   GPG_MESSAGES  messages for the gpg-per-message baseline (default 200)
#   PROFILE   set to 1: record the encrypting sotto with `perf record -e
#             cpu-clock -g` during its first run at the last session count,
#             and print where its CPU time went (symbols, self time)
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
GPG_MESSAGES=${GPG_MESSAGES:-200}
TARGET=0.70
TARGET_ENC=0.50

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
command -v gpg >/dev/null || die "need gpg (Debian package gnupg) for the recipient key and the baseline"

cargo build --release --quiet
SOTTO=$PWD/target/release/sotto

# --- scratch space and cleanup ---------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sotto-bench.XXXXXX")
SINK_PID= SOTTO_PID= ENC_PID=
cleanup() {
    for pid in $SOTTO_PID $ENC_PID $SINK_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three free loopback ports (bound to port 0, then released).
read -r SINK_PORT SOTTO_PORT ENC_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
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
[redirect]
listen = ""
[upstream]
address = "127.0.0.1:$SINK_PORT"
pool_size = 64
[limits]
max_connections = 256
[keys]
sources = ["dir"]
dir = "$TMP/keys"
[policy]
dir = "$TMP/policy-plain"
[log]
level = "warn"
EOF
# The recipient's key: Ed25519 primary, Curve25519 encryption subkey (gpg).
export GNUPGHOME=$TMP/gnupg
mkdir -m 700 "$GNUPGHOME" "$TMP/keys" "$TMP/policy-plain" "$TMP/policy-encrypt"
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'Sink <sink@example.org>' ed25519 sign 1y 2>/dev/null
FPR=$(gpg --with-colons --list-keys sink@example.org | awk -F: '/^fpr/ { print $10; exit }')
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-add-key "$FPR" cv25519 encr 1y
gpg -q --armor --export sink@example.org >"$TMP/keys/sink.asc"
printf '[defaults]\nencrypt = "never"\n' >"$TMP/policy-plain/00.toml"
printf '[defaults]\nencrypt = "required"\n' >"$TMP/policy-encrypt/00.toml"
sed -e "s/$SOTTO_PORT/$ENC_PORT/" -e "s/policy-plain/policy-encrypt/" "$TMP/sotto.toml" >"$TMP/encrypt.toml"

RUST_LOG= "$SOTTO" serve --config "$TMP/sotto.toml" 2>"$TMP/sotto.log" &
SOTTO_PID=$!
RUST_LOG= "$SOTTO" serve --config "$TMP/encrypt.toml" 2>"$TMP/encrypt.log" &
ENC_PID=$!
wait_port "$SOTTO_PORT" "$SOTTO_PID" || die "sotto did not start: $(cat "$TMP/sotto.log")"
wait_port "$ENC_PORT" "$ENC_PID" || die "sotto (encrypting) did not start: $(cat "$TMP/encrypt.log")"

# --- one run -------------------------------------------------------------------
# CPU time (user + system) process $1 has used so far, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# run PORT SESSIONS COUNT PID: sends COUNT messages with smtp-source, checks
# the sink got them all, prints the elapsed seconds and the CPU microseconds
# process PID used per message.
run() {
    local port=$1 sess=$2 count=$3 pid=$4 before after t0 t1 c0 c1
    before=$(sink_count)
    c0=$(cpu_ticks "$pid")
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
    c1=$(cpu_ticks "$pid")
    awk -v a="$t0" -v b="$t1" -v c="$((c1 - c0))" -v t="$TICK" -v n="$count" \
        'BEGIN { printf "%.6f %.0f\n", b - a, c * 1e6 / t / n }'
}

rss_mb() { awk '/^VmHWM:/ { printf "%.1f MB", $2 / 1024 }' "/proc/$1/status"; }

# Warm-up: page in both paths and fill sotto's upstream pool.
run "$SINK_PORT" 20 "$WARMUP" "$SINK_PID" >/dev/null
run "$SOTTO_PORT" 20 "$WARMUP" "$SOTTO_PID" >/dev/null
run "$ENC_PORT" 20 "$WARMUP" "$ENC_PID" >/dev/null

echo "smtp-source -> sotto -> smtp-sink vs smtp-source -> smtp-sink"
echo "$MESSAGES messages of $SIZE bytes per run, best of $ROUNDS runs per path ($(nproc) CPUs)"
echo
printf '%8s  %12s  %11s  %6s  %13s  %6s  %9s  %9s  %9s  %s\n' sessions "direct msg/s" "sotto msg/s" ratio "encrypt msg/s" ratio "sink µs" "sotto µs" "encr. µs" "peak RSS"
ratio20= enc20= enc_rate20=
min() { awk -v a="${1:-inf}" -v b="$2" 'BEGIN { print (a == "inf" || b < a) ? b : a }'; }
for sess in $SESSIONS; do
    best_direct= best_sotto= best_enc= note=
    cpu_sink= cpu_sotto= cpu_enc=
    # Alternate the paths so drift on the machine hits them alike.
    for round in $(seq "$ROUNDS"); do
        read -r d cd < <(run "$SINK_PORT" "$sess" "$MESSAGES" "$SINK_PID")
        read -r s cs < <(run "$SOTTO_PORT" "$sess" "$MESSAGES" "$SOTTO_PID")
        profiling=
        if [[ ${PROFILE:-} == 1 && $round == 1 && $sess == "${SESSIONS##* }" ]]; then
            command -v perf >/dev/null || die "PROFILE=1 needs perf (Debian package linux-perf)"
            perf record -q -e cpu-clock -F 1999 -g -p "$ENC_PID" -o "$TMP/perf.data" 2>"$TMP/perf.err" &
            profiling=$!
            sleep 0.5
        fi
        read -r e ce < <(run "$ENC_PORT" "$sess" "$MESSAGES" "$ENC_PID")
        if [[ -n $profiling ]]; then
            kill -INT "$profiling"
            wait "$profiling" || true
        fi
        best_direct=$(min "$best_direct" "$d")
        best_sotto=$(min "$best_sotto" "$s")
        best_enc=$(min "$best_enc" "$e")
        # CPU per message: the lowest of the rounds (the least disturbed).
        [[ -n $d && -n $s && -n $e ]] || die "a measured run failed (see above)"
        cpu_sink=$(min "$cpu_sink" "$cd")
        cpu_sotto=$(min "$cpu_sotto" "$cs")
        cpu_enc=$(min "$cpu_enc" "$ce")
        if ((round < ROUNDS)) && awk -v a="$d" -v b="$s" -v c="$e" -v m="$SLOW" 'BEGIN { exit !(a > m || b > m || c > m) }'; then
            note="  (best of $round: a run took over ${SLOW}s)"
            break
        fi
    done
    read -r rd rs ratio re rencr < <(awk -v n="$MESSAGES" -v d="$best_direct" -v s="$best_sotto" -v e="$best_enc" \
        'BEGIN { printf "%.0f %.0f %.2f %.0f %.2f\n", n / d, n / s, d / s, n / e, d / e }')
    rss="$(rss_mb "$SOTTO_PID") / $(rss_mb "$ENC_PID")"
    printf '%8s  %12s  %11s  %6s  %13s  %6s  %9s  %9s  %9s  %s%s\n' "$sess" "$rd" "$rs" "$ratio" "$re" "$rencr" "$cpu_sink" "$cpu_sotto" "$cpu_enc" "$rss" "$note"
    if [[ $sess == 20 ]]; then ratio20=$ratio enc20=$rencr enc_rate20=$re; fi
done
echo "(µs: CPU time per message, user + system, lowest of the rounds: smtp-sink on the direct"
echo " path, the relaying sotto, the encrypting sotto; peak RSS: relaying sotto / encrypting sotto)"
echo

if [[ -s $TMP/perf.data ]]; then
    echo "where the encrypting sotto's CPU time went (perf, self time, top 40 symbols):"
    # (head closes the pipe early: not a failure of the script.)
    perf report -i "$TMP/perf.data" --no-children --stdio --sort symbol 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | sed -E 's/[ -]+$//' | head -n 40 || true
    echo
fi

# The script-gateway baseline: one gpg process per message, same size.
head -c "$SIZE" /dev/urandom | base64 -w 76 | head -c "$SIZE" >"$TMP/body.txt"
t0=$(date +%s.%N)
for _ in $(seq "$GPG_MESSAGES"); do
    gpg -q --batch --trust-model always --armor --encrypt -r sink@example.org <"$TMP/body.txt" >/dev/null \
        || die "gpg --encrypt failed"
done
t1=$(date +%s.%N)
gpg_rate=$(awk -v n="$GPG_MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "gpg --encrypt spawned per message: $gpg_rate msg/s ($GPG_MESSAGES messages, encryption only, no SMTP)"
echo

# Peak RSS is read above, before stopping sotto; now stop both and expect exit 0.
stop() { # stop PID LOG NAME
    kill -TERM "$1"
    local rc=0
    wait "$1" || rc=$?
    ((rc == 0)) || die "$3 exited $rc on SIGTERM: $(tail -n 20 "$2")"
    if [[ -s $2 ]]; then
        echo "$3 logged (warn and above):"
        sed 's/^/  /' "$2" | tail -n 20
        echo
    fi
}
stop "$SOTTO_PID" "$TMP/sotto.log" "sotto"; SOTTO_PID=
stop "$ENC_PID" "$TMP/encrypt.log" "sotto (encrypting)"; ENC_PID=

if [[ -z $ratio20 ]]; then
    echo "target: not checked (20 sessions not in SESSIONS=\"$SESSIONS\")"
elif awk -v r="$ratio20" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'; then
    echo "target met: sotto relays at $ratio20 of the direct rate with 20 sessions (target >= $TARGET)"
else
    echo "target NOT met: sotto relays at $ratio20 of the direct rate with 20 sessions (target >= $TARGET)"
fi
if [[ -n $enc20 ]]; then
    times=$(awk -v e="$enc_rate20" -v g="$gpg_rate" 'BEGIN { printf "%.1f", e / g }')
    met=$(awk -v r="$enc20" -v t="$TARGET_ENC" -v x="$times" 'BEGIN { print (r >= t && x >= 10) ? "met" : "NOT met" }')
    echo "target $met: encrypting sotto at $enc20 of the direct rate with 20 sessions (target >= $TARGET_ENC), ${times}x gpg per message (target >= 10x)"
fi
