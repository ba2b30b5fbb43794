#!/usr/bin/env bash
# Postfix after-queue benchmark: what sotto costs behind a real Postfix.
#
# Runs a private Postfix (its own config, queue and data directories in a
# tempdir, listening on free 127.0.0.1 ports only) that relays every message
# to Postfix's smtp-sink (relayhost), and measures in the same run, rounds
# alternating between them:
#
#   postfix alone             smtp-source -> smtpd (no content_filter) -> smtp-sink
#   postfix + sotto           smtp-source -> smtpd -> queue -> lmtp -> sotto
#                             -> re-injection smtpd -> queue -> smtp -> smtp-sink
#                             (sotto relays as is: policy encrypt = "never")
#   postfix + sotto encrypting  the same, through a second sotto whose policy
#                             is encrypt = "required", every message encrypted
#                             to the recipient's Curve25519 key
#
# The Postfix side is deploy/postfix/after-queue/{main.cf,master.cf} as
# shipped, only the ports changed (as tests/postfix.rs does). main.cf's
# content_filter points at the relaying sotto; the three configurations are
# three public smtpd listeners of the same instance, the first with
# `-o content_filter=` and the third with `-o content_filter=` pointing at the
# encrypting sotto, so nothing is reloaded between runs.
#
# Throughput is messages fully delivered to the sink per second, timed from
# the start of smtp-source until the sink's counter has them all (smtp-source
# returning only means Postfix has queued them; that rate is shown too).
# Every run must deliver exactly its messages, the queue must then be empty,
# Postfix must bounce nothing, and sotto must have passed on (and, for the
# encrypting one, encrypted) every message it got; otherwise the script
# fails. Needs root (Postfix's master runs as root).
#
# Knobs (environment):
#   MESSAGES  messages per measured run             (default 1000)
#   SIZE      message size in bytes                 (default 10240)
#   SESSIONS  parallel smtp-source sessions         (default 10)
#   ROUNDS    runs per configuration, best kept     (default 2)
#   WARMUP    messages per configuration before measuring (default 100)
#   TIMEOUT   seconds a run may take to be delivered (default 60)
set -euo pipefail

MESSAGES=${MESSAGES:-1000}
SIZE=${SIZE:-10240}
SESSIONS=${SESSIONS:-10}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-100}
TIMEOUT=${TIMEOUT:-60}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "postfix.sh: $*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------
[[ $(id -u) -eq 0 ]] \
    || die "needs root: it starts a private Postfix, whose master runs as root (try: sudo $0)"
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
have_postfix() {
    [[ -x $SOURCE && -x $SINK ]] && command -v postfix >/dev/null \
        && command -v postconf >/dev/null && command -v postqueue >/dev/null \
        && id postfix >/dev/null 2>&1
}
if ! have_postfix; then
    if command -v apt-get >/dev/null; then
        echo "installing postfix..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null \
            || die "apt-get install postfix failed; install the Debian package 'postfix'"
    fi
    have_postfix || die "need postfix, postconf, postqueue, $SOURCE and $SINK and the postfix user: install the Debian package 'postfix'"
fi
command -v python3 >/dev/null || die "need python3 (to pick free ports)"
command -v gpg >/dev/null || die "need gpg (Debian package gnupg) for the recipient's key"

cargo build --release --quiet
SOTTO=$PWD/target/release/sotto

# --- scratch space and cleanup ---------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sotto-postfix-bench.XXXXXX")
CONF=$TMP/etc
SINK_PID= PLAIN_PID= ENC_PID= WAIT_PID= POSTFIX_UP=
cleanup() {
    if [[ -n $POSTFIX_UP ]]; then
        # `postfix stop` waits up to 5s for the master, then kills it.
        postfix -c "$CONF" stop >/dev/null 2>&1 || postfix -c "$CONF" abort >/dev/null 2>&1 || true
    fi
    for pid in $WAIT_PID $PLAIN_PID $ENC_PID $SINK_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ ! -d $TMP/gnupg ]] || GNUPGHOME=$TMP/gnupg gpgconf --kill gpg-agent 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports (bound to port 0 together, then released).
read -r SINK_PORT PUB_ALONE PUB_SOTTO PUB_ENC REINJECT LMTP_PLAIN LMTP_ENC < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

# Waits until something listens on 127.0.0.1:$1 (or the process $2, if
# given, died).
wait_port() {
    for _ in $(seq 200); do
        [[ -z ${2:-} ]] || kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

now() { date +%s.%N; }

# --- the sink ----------------------------------------------------------------
# -c writes a running "sess=N quit=N mesg=N" counter (CR-terminated) to
# stdout; smtp-sink refuses to run as root without -u.
"$SINK" -c -u nobody "127.0.0.1:$SINK_PORT" 1024 >"$TMP/sink.count" 2>"$TMP/sink.err" &
SINK_PID=$!
wait_port "$SINK_PORT" "$SINK_PID" || die "smtp-sink did not start: $(cat "$TMP/sink.err")"

# Messages the sink has received so far (the last complete counter record;
# a record still being written can only read low, never high).
sink_count() {
    local last
    last=$(tail -c 200 "$TMP/sink.count" | tr '\r' '\n' \
        | grep -E '^sess=[0-9]+ quit=[0-9]+ mesg=[0-9]+$' | tail -n1 || true)
    last=${last##*mesg=}
    echo "${last:-0}"
}

# --- keys, policies and the two sottos ---------------------------------------
export GNUPGHOME=$TMP/gnupg
mkdir -m 700 "$GNUPGHOME"
mkdir "$TMP/keys" "$TMP/policy-plain" "$TMP/policy-encrypt"
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'Sink <sink@example.org>' ed25519 sign 1y 2>/dev/null
FPR=$(gpg --with-colons --list-keys sink@example.org 2>/dev/null | awk -F: '/^fpr/ { print $10; exit }')
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-add-key "$FPR" cv25519 encr 1y 2>/dev/null
gpg -q --armor --export sink@example.org >"$TMP/keys/sink.asc"
printf '[defaults]\nencrypt = "never"\n' >"$TMP/policy-plain/00.toml"
printf '[defaults]\nencrypt = "required"\n' >"$TMP/policy-encrypt/00.toml"

# One info line per transaction (event="message") and per encryption
# (event="encrypt"), so the end can check that sotto saw every message;
# everything else at warn.
sotto_conf() { # sotto_conf LMTP_PORT POLICY_DIR
    cat <<EOF
[smtp]
listen = ""
[lmtp]
listen = "127.0.0.1:$1"
[admin]
listen = ""
[redirect]
listen = ""
[upstream]
address = "127.0.0.1:$REINJECT"
[keys]
sources = ["dir"]
dir = "$TMP/keys"
[policy]
dir = "$2"
[log]
level = "warn,sotto::smtp::data=info,sotto::transform=info"
EOF
}
sotto_conf "$LMTP_PLAIN" "$TMP/policy-plain" >"$TMP/plain.toml"
sotto_conf "$LMTP_ENC" "$TMP/policy-encrypt" >"$TMP/encrypt.toml"
for c in plain encrypt; do
    "$SOTTO" check --config "$TMP/$c.toml" >"$TMP/check.out" 2>&1 \
        || die "sotto check $c.toml: $(cat "$TMP/check.out")"
done
env -u RUST_LOG "$SOTTO" serve --config "$TMP/plain.toml" 2>"$TMP/plain.log" &
PLAIN_PID=$!
env -u RUST_LOG "$SOTTO" serve --config "$TMP/encrypt.toml" 2>"$TMP/encrypt.log" &
ENC_PID=$!
wait_port "$LMTP_PLAIN" "$PLAIN_PID" || die "sotto did not start: $(cat "$TMP/plain.log")"
wait_port "$LMTP_ENC" "$ENC_PID" || die "sotto (encrypting) did not start: $(cat "$TMP/encrypt.log")"

# --- Postfix -------------------------------------------------------------------
# Postfix wants its directories owned by root and not writable by others
# (mktemp -d makes 0700: open it for the postfix user).
chmod 755 "$TMP"
mkdir -m 755 "$CONF" "$TMP/spool"
mkdir "$TMP/data"
chown postfix: "$TMP/data"

# `subst TEXT FROM TO`: FROM must be in TEXT, so a changed recipe fails here
# instead of measuring something else.
subst() {
    [[ $1 == *"$2"* ]] || die "the recipe no longer contains '$2'"
    printf '%s\n' "${1//"$2"/"$3"}"
}
RECIPE=deploy/postfix/after-queue
recipe_main=$(subst "$(cat "$RECIPE/main.cf")" "lmtp:[127.0.0.1]:10024" "lmtp:[127.0.0.1]:$LMTP_PLAIN")
recipe_master=$(subst "$(cat "$RECIPE/master.cf")" "127.0.0.1:10026 inet" "127.0.0.1:$REINJECT inet")

# The base is tests/postfix.rs's: own directories, loopback only, no local
# delivery, relaying for 127.0.0.0/8, everything to the sink.
cat >"$CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $TMP/spool
data_directory = $TMP/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.sotto.test
mydomain = sotto.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtputf8_enable = yes
biff = no
notify_classes =
maillog_file = $TMP/maillog
maillog_file_prefixes = $TMP
relayhost = [127.0.0.1]:$SINK_PORT

# --- $RECIPE/main.cf, content_filter to the relaying sotto:
$recipe_main
EOF
cat >"$CONF/master.cf" <<EOF
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd

# postfix alone: no content filter.
127.0.0.1:$PUB_ALONE inet n - n - - smtpd
    -o syslog_name=postfix/alone
    -o content_filter=
# postfix + sotto: main.cf's content_filter (the recipe's).
127.0.0.1:$PUB_SOTTO inet n - n - - smtpd
    -o syslog_name=postfix/sotto
# postfix + sotto encrypting: the same, to the encrypting sotto.
127.0.0.1:$PUB_ENC inet n - n - - smtpd
    -o syslog_name=postfix/encrypt
    -o content_filter=lmtp:[127.0.0.1]:$LMTP_ENC

# --- $RECIPE/master.cf:
$recipe_master
EOF

# Every parameter must be one Postfix knows (a typo is a warning here);
# `check` also creates the queue directories.
for args in -n -M; do
    postconf -c "$CONF" "$args" >/dev/null 2>"$TMP/postconf.err" && [[ ! -s $TMP/postconf.err ]] \
        || die "postconf $args: $(cat "$TMP/postconf.err")"
done
postfix -c "$CONF" check >"$TMP/pf.out" 2>&1 || die "postfix check: $(cat "$TMP/pf.out")"
postfix -c "$CONF" start >"$TMP/pf.out" 2>&1 || die "postfix start: $(cat "$TMP/pf.out")"
POSTFIX_UP=1
for p in $PUB_ALONE $PUB_SOTTO $PUB_ENC $REINJECT; do
    wait_port "$p" || die "Postfix does not listen on 127.0.0.1:$p: $(tail -n 20 "$TMP/maillog" 2>/dev/null)"
done

# Messages in Postfix's queue (any queue).
queue_len() {
    local q
    q=$(postqueue -c "$CONF" -j) || die "postqueue -j failed"
    grep -c . <<<"$q" || true
}

fail_run() { # fail_run WHAT
    echo "postfix.sh: $1" >&2
    echo "--- postqueue -p:" >&2
    postqueue -c "$CONF" -p | tail -n 30 >&2 || true
    echo "--- maillog, last 30 lines:" >&2
    tail -n 30 "$TMP/maillog" >&2 || true
    exit 1
}

# --- one run -------------------------------------------------------------------
# Waits (in the background, while smtp-source runs) until the sink's counter
# reaches TARGET, then prints the time (same clock as `date +%s.%N`) and the
# count, or "timeout COUNT". One Python process reading the counter's tail
# every 5 ms: polling from bash would fork several processes per check, which
# costs CPU the measured paths need on a small machine. Touches READY once
# it watches.
cat >"$TMP/wait_sink.py" <<'EOF'
import os, re, sys, time
path, target, timeout, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
record = re.compile(rb"mesg=(\d+)\r")  # complete records only
end = time.time() + timeout
n = 0
with open(path, "rb") as f:
    open(ready, "w").close()
    while True:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 200))
        found = record.findall(f.read())
        if found:
            n = int(found[-1])
        if n >= target:
            print(f"{time.time():.6f} {n}")
            break
        if time.time() > end:
            print(f"timeout {n}")
            break
        time.sleep(0.005)
EOF

# run NAME PORT COUNT: sends COUNT messages through the listener on PORT,
# waits until the sink has them all and the queue is empty; sets RUN_Q and
# RUN_D to the seconds until queued (smtp-source done) and until delivered.
# (Not run in a subshell: it counts what was sent, and fails the script.)
SENT_ALONE=0 SENT_SOTTO=0 SENT_ENC=0
run() {
    local name=$1 port=$2 count=$3 before after t0 tq td
    before=$(sink_count)
    rm -f "$TMP/wait.ready"
    python3 "$TMP/wait_sink.py" "$TMP/sink.count" $((before + count)) "$TIMEOUT" "$TMP/wait.ready" >"$TMP/wait.out" &
    WAIT_PID=$!
    until [[ -e $TMP/wait.ready ]]; do
        kill -0 "$WAIT_PID" 2>/dev/null || die "the sink watcher did not start"
        sleep 0.01
    done
    t0=$(now)
    "$SOURCE" -s "$SESSIONS" -m "$count" -l "$SIZE" \
        -f bench@example.com -t sink@example.org "127.0.0.1:$port" 2>"$TMP/source.err" \
        || fail_run "smtp-source to $name failed: $(cat "$TMP/source.err")"
    tq=$(now)
    wait "$WAIT_PID" || die "the sink watcher failed"
    WAIT_PID=
    read -r td after <"$TMP/wait.out"
    [[ $td != timeout ]] \
        || fail_run "$name: the sink got $((after - before)) of $count messages within ${TIMEOUT}s"
    # The original leaves the queue once delivered (after sotto's answer);
    # allow a moment for the last ones.
    for _ in $(seq 100); do
        (($(queue_len) == 0)) && break
        sleep 0.05
    done
    (($(queue_len) == 0)) || fail_run "$name: the queue is not empty after delivery"
    after=$(sink_count)
    ((after - before == count)) \
        || fail_run "$name: the sink got $((after - before)) messages, expected $count"
    case $name in
        alone) SENT_ALONE=$((SENT_ALONE + count)) ;;
        sotto) SENT_SOTTO=$((SENT_SOTTO + count)) ;;
        encrypt) SENT_ENC=$((SENT_ENC + count)) ;;
    esac
    RUN_Q=$(awk -v a="$t0" -v q="$tq" 'BEGIN { printf "%.6f", q - a }')
    RUN_D=$(awk -v a="$t0" -v d="$td" 'BEGIN { printf "%.6f", d - a }')
}

rss_mb() { awk '/^VmHWM:/ { printf "%.1f MB", $2 / 1024 }' "/proc/$1/status"; }

declare -A PORT=([alone]=$PUB_ALONE [sotto]=$PUB_SOTTO [encrypt]=$PUB_ENC)
CONFIGS=(alone sotto encrypt)

# Other work on the machine skews the numbers (everything here shares the
# same CPUs): the share of CPU time used over one second while all of ours
# is idle, before and after the measured runs.
busy_pct() {
    local a b
    a=$(head -n1 /proc/stat)
    sleep 1
    b=$(head -n1 /proc/stat)
    # cpu user nice system idle iowait irq softirq steal ...: idle + iowait are idle.
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); t = 0
        for (i = 2; i <= n; i++) t += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.0f", (t > 0 ? 100 * (t - idle) / t : 0) }'
}
BUSY_BEFORE=$(busy_pct)

# Warm-up: start Postfix's processes, sotto's pools, key loading.
for c in "${CONFIGS[@]}"; do
    run "$c" "${PORT[$c]}" "$WARMUP"
done

declare -A BEST_Q BEST_D
min() { awk -v a="${1:-inf}" -v b="$2" 'BEGIN { print (a == "inf" || b < a) ? b : a }'; }
for _ in $(seq "$ROUNDS"); do
    # Alternate the configurations so drift on the machine hits them alike.
    for c in "${CONFIGS[@]}"; do
        run "$c" "${PORT[$c]}" "$MESSAGES"
        BEST_Q[$c]=$(min "${BEST_Q[$c]:-}" "$RUN_Q")
        BEST_D[$c]=$(min "${BEST_D[$c]:-}" "$RUN_D")
    done
done

BUSY_AFTER=$(busy_pct)

# Peak RSS now, before sotto stops.
RSS_PLAIN=$(rss_mb "$PLAIN_PID")
RSS_ENC=$(rss_mb "$ENC_PID")

# --- checks ----------------------------------------------------------------------
# Postfix: nothing bounced (a bounce would go to the sink and be counted),
# nothing left in the queue.
sleep 0.5
(($(queue_len) == 0)) || fail_run "the queue is not empty at the end"
bounced=$(grep -c 'status=bounced' "$TMP/maillog" || true)
deferred=$(grep -c 'status=deferred' "$TMP/maillog" || true)
((bounced == 0)) || fail_run "Postfix bounced $bounced message(s)"
total=$((SENT_ALONE + SENT_SOTTO + SENT_ENC))
got=$(sink_count)
((got == total)) || fail_run "the sink holds $got messages, $total were sent"

# sotto: stop it (expect exit 0 on SIGTERM), then check that it passed on
# every message it was handed with 250 (its one transaction log line per
# message), and encrypted each in the encrypting one.
stop() { # stop PID LOG NAME
    kill -TERM "$1"
    local rc=0
    wait "$1" || rc=$?
    ((rc == 0)) || die "$3 exited $rc on SIGTERM: $(tail -n 20 "$2")"
}
stop "$PLAIN_PID" "$TMP/plain.log" "sotto"; PLAIN_PID=
stop "$ENC_PID" "$TMP/encrypt.log" "sotto (encrypting)"; ENC_PID=
count_in() { grep -E "$1" "$2" | grep -cE "$3" || true; }
# (The reply is logged as code=250 or, per LMTP recipient, replies=250 ...)
accepted=' (code|replies)="?250[ ",]'
relayed_plain=$(count_in 'event="?message' "$TMP/plain.log" "$accepted")
relayed_enc=$(count_in 'event="?message' "$TMP/encrypt.log" "$accepted")
encrypted=$(count_in 'event="?encrypt' "$TMP/encrypt.log" 'result="?ok')
encrypted_plain=$(count_in 'event="?encrypt' "$TMP/plain.log" 'result="?ok')
((relayed_plain == SENT_SOTTO && encrypted_plain == 0)) \
    || fail_run "sotto relayed $relayed_plain (encrypted $encrypted_plain) of $SENT_SOTTO messages, expected all, none encrypted"
((relayed_enc == SENT_ENC && encrypted == SENT_ENC)) \
    || fail_run "encrypting sotto relayed $relayed_enc and encrypted $encrypted of $SENT_ENC messages"

# --- report ----------------------------------------------------------------------
echo "smtp-source -> Postfix [-> sotto (LMTP) -> Postfix] -> smtp-sink, after-queue recipe"
echo "$MESSAGES messages of $SIZE bytes per run, $SESSIONS sessions, best of $ROUNDS runs ($(nproc) CPUs, Postfix $(postconf -h mail_version))"
echo
printf '%-28s  %12s  %6s  %14s  %s\n' config "msgs/s" ratio "queued msgs/s" "sotto peak RSS"
for c in "${CONFIGS[@]}"; do
    case $c in
        alone) label="postfix alone" rss="-" ;;
        sotto) label="postfix + sotto" rss=$RSS_PLAIN ;;
        encrypt) label="postfix + sotto encrypting" rss=$RSS_ENC ;;
    esac
    read -r rate ratio qrate < <(awk -v n="$MESSAGES" -v d="${BEST_D[$c]}" -v a="${BEST_D[alone]}" -v q="${BEST_Q[$c]}" \
        'BEGIN { printf "%.0f %.2f %.0f\n", n / d, a / d, n / q }')
    printf '%-28s  %12s  %6s  %14s  %s\n' "$label" "$rate" "$ratio" "$qrate" "$rss"
done
echo "(msgs/s: delivered to the sink, from smtp-source's start; queued: smtp-source's own rate, Postfix having queued them)"
if ((BUSY_BEFORE > 10 || BUSY_AFTER > 10)); then
    echo "note: other work used ${BUSY_BEFORE}% of the CPUs before the runs and ${BUSY_AFTER}% after: the numbers are noisy"
fi
echo
echo "checked: $total messages delivered ($WARMUP warm-up per config), queue empty, $bounced bounced, $deferred deferral(s);"
echo "         sotto relayed $relayed_plain, encrypting sotto relayed and encrypted $encrypted"
warnings=$(grep -E 'warning:|fatal:|panic:|error:' "$TMP/maillog" || true)
if [[ -n $warnings ]]; then
    echo "Postfix logged $(grep -c . <<<"$warnings") warning(s)/error(s), last 10:"
    tail -n 10 <<<"$warnings" | sed 's/^/  /'
fi
if ((deferred > 0)); then
    echo "Postfix deferred $deferred delivery attempt(s), last 5:"
    grep 'status=deferred' "$TMP/maillog" | tail -n 5 | sed 's/^/  /'
fi
for c in plain encrypt; do
    other=$(grep -vE 'event="?(message|encrypt)' "$TMP/$c.log" | grep -E 'WARN|ERROR' || true)
    if [[ -n $other ]]; then
        echo "sotto ($([[ $c == plain ]] && echo relaying || echo encrypting)) logged $(grep -c . <<<"$other") warning(s)/error(s), last 10:"
        tail -n 10 <<<"$other" | sed 's/^/  /'
    fi
done
