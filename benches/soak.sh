#!/usr/bin/env bash
# Soak and fault test: sotto relaying under load to an upstream that
# misbehaves at random.
#
# The upstream (aiosmtpd, written below to a temp file) refuses MAIL, RCPT
# and DATA with 4xx and 5xx, stalls (briefly, or longer than sotto's
# upstream timeouts) and drops connections: at connect, at MAIL, at RCPT and
# after the message arrived but before it is recorded or answered. It
# records a message only when it answers 250 to it (recording comes first,
# then the 250), so a message it has is one it acknowledged.
#
# `target/release/sotto serve` relays to it with short upstream timeouts,
# while CLIENTS concurrent Python smtplib clients send messages for DURATION
# seconds, each with a unique Message-ID, several per connection, 1 to 3
# recipients. Every few seconds it prints the counts so far and sotto's RSS
# (VmRSS). At the end, every message must be either
#   - accepted (250 after DATA) and in the upstream exactly once, with the
#     recipients that were accepted, or
#   - refused to its client with a 4xx/5xx and not in the upstream,
# and no client may be left without an answer. Then sotto gets SIGTERM and
# must exit 0. Prints sent/accepted/delivered/refused and exits 1 on any
# loss, duplicate, refused-but-delivered, unanswered message or unclean
# exit.
#
# Knobs (environment):
#   DURATION  seconds of load                       (default 60)
#   CLIENTS   concurrent client threads              (default 16)
#   SEED      seed for the upstream's faults         (default: random)
#   NO_BUILD  set to 1 to use target/release/sotto as it is
set -euo pipefail

DURATION=${DURATION:-60}
CLIENTS=${CLIENTS:-16}
SEED=${SEED:-$RANDOM}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "soak.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "need python3"
python3 -c 'import aiosmtpd' 2>/dev/null \
    || die "need the Python module aiosmtpd: run tests/run, or pip install aiosmtpd"
[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a positive number of seconds"

if [[ ${NO_BUILD:-} != 1 ]]; then
    cargo build --release --quiet || die "cargo build --release failed"
fi
SOTTO=$PWD/target/release/sotto
[[ -x $SOTTO ]] || die "no $SOTTO (build it, or unset NO_BUILD)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sotto-soak.XXXXXX")
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

read -r SINK_PORT SOTTO_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

# --- the faulty upstream ----------------------------------------------------
cat >"$TMP/upstream.py" <<'PY'
"""A faulty upstream: refuses, stalls and drops at random; records (as JSON
lines: Message-ID and recipients) exactly the messages it answers 250."""
import asyncio, json, random, re, signal, sys

from aiosmtpd.smtp import SMTP

port, log_path, seed, short_max, long_stall = (
    int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
rng = random.Random(seed)
log = open(log_path, "a", buffering=1)
MSGID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]+)>", re.I | re.M)
counts = {}

def fault(stage, table):
    """Picks one of table's (name, weight) or None (behave)."""
    r = rng.random()
    for name, p in table:
        if r < p:
            counts[stage + ":" + name] = counts.get(stage + ":" + name, 0) + 1
            return name
        r -= p
    return None

def drop(server):
    if server.transport is not None:
        server.transport.abort()

class Handler:
    async def handle_MAIL(self, server, session, envelope, address, options):
        f = fault("mail", [("4xx", .02), ("5xx", .01), ("drop", .01), ("stall", .02), ("hang", .005)])
        if f == "4xx": return "451 4.3.0 upstream busy (injected)"
        if f == "5xx": return "550 5.7.1 sender refused (injected)"
        if f == "drop": drop(server); return "421 4.3.0 never sent"
        if f == "stall": await asyncio.sleep(rng.uniform(0.1, short_max))
        if f == "hang":
            await asyncio.sleep(long_stall); drop(server); return "421 4.3.0 never sent"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        f = fault("rcpt", [("4xx", .03), ("5xx", .02), ("drop", .005), ("stall", .02)])
        if f == "4xx": return "450 4.2.1 mailbox busy (injected)"
        if f == "5xx": return "550 5.1.1 no such user (injected)"
        if f == "drop": drop(server); return "421 4.3.0 never sent"
        if f == "stall": await asyncio.sleep(rng.uniform(0.1, short_max))
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        f = fault("data", [("4xx", .03), ("5xx", .02), ("drop", .03), ("stall", .03), ("hang", .01)])
        if f == "4xx": return "451 4.3.0 try again (injected)"
        if f == "5xx": return "554 5.6.0 content refused (injected)"
        # Dropped after the data arrived, before recording or answering.
        if f == "drop": drop(server); return "421 4.3.0 never sent"
        if f == "hang":
            # Longer than sotto waits: it gives up first. Never recorded.
            await asyncio.sleep(long_stall); drop(server); return "421 4.3.0 never sent"
        if f == "stall": await asyncio.sleep(rng.uniform(0.1, short_max))
        if server.transport is None or server.transport.is_closing():
            return "421 4.3.0 gone"
        m = MSGID.search(envelope.original_content)
        mid = m.group(1).decode("ascii", "replace") if m else None
        log.write(json.dumps({"id": mid, "rcpts": envelope.rcpt_tos}) + "\n")
        return "250 2.0.0 OK recorded"

class LongLines(SMTP):
    line_length_limit = 1 << 20

class Drop(asyncio.Protocol):
    def connection_made(self, transport):
        transport.abort()

class Stall(asyncio.Protocol):
    """Accepts, says nothing, and hangs up later."""
    def connection_made(self, transport):
        asyncio.get_running_loop().call_later(long_stall, transport.abort)

async def main():
    handler = Handler()
    def factory():
        f = fault("connect", [("drop", .02), ("stall", .005)])
        if f == "drop": return Drop()
        if f == "stall": return Stall()
        return LongLines(handler, decode_data=False, enable_SMTPUTF8=True,
                         hostname="upstream.test", data_size_limit=None)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", flush=True)
    async with server:
        await stop.wait()
    print("injected faults: " + ", ".join("%s=%d" % kv for kv in sorted(counts.items())),
          file=sys.stderr, flush=True)

asyncio.run(main())
PY

# --- the clients --------------------------------------------------------------
cat >"$TMP/clients.py" <<'PY'
"""CLIENTS threads sending for DURATION seconds; one JSON line per message
with its outcome; progress and sotto's RSS every 5 s."""
import json, random, smtplib, sys, threading, time, uuid

port, duration, clients, sotto_pid, out_path = (
    int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
deadline = time.time() + duration
lock = threading.Lock()
out = open(out_path, "w")
stats = {"sent": 0, "accepted": 0, "refused": 0, "unanswered": 0, "421-at-connect": 0}

def rss(field="VmRSS"):
    try:
        with open("/proc/%s/status" % sotto_pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None

def record(mid, outcome, code, rcpts):
    with lock:
        stats[outcome] += 1
        out.write(json.dumps({"id": mid, "outcome": outcome, "code": code, "rcpts": rcpts}) + "\n")

def message(rng, mid, rcpts):
    lines = ["From: Soak <soak@example.com>", "To: " + ", ".join(rcpts),
             "Subject: soak " + mid, "Date: Tue, 3 Mar 2026 10:00:00 +0000",
             "Message-ID: <%s>" % mid, "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", ""]
    size = rng.choice([500, 2000, 10000, 50000, 120000])
    n = 0
    while n < size:
        line = rng.choice([".dot-stuffed line", "..", "plain text line with some words",
                           "caf\u00e9 \u00fcber na\u00efve", "x" * rng.randint(1, 200)])
        lines.append(line)
        n += len(line) + 2
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")

def worker(wid):
    rng = random.Random(wid * 7919 + int(time.time()))
    while time.time() < deadline:
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=120)
            s.ehlo("client%d.soak.example" % wid)
        except smtplib.SMTPConnectError as e:
            with lock:
                stats["421-at-connect"] += 1
            time.sleep(0.05)
            continue
        except (OSError, smtplib.SMTPException) as e:
            print("client %d: cannot connect: %r" % (wid, e), file=sys.stderr)
            time.sleep(0.1)
            continue
        alive = True
        for _ in range(rng.randint(1, 5)):
            if not alive or time.time() >= deadline:
                break
            mid = "%s@soak.example" % uuid.uuid4()
            rcpts = ["r%d@example.org" % i for i in range(rng.choice([1, 1, 1, 2, 3]))]
            data = message(rng, mid, rcpts)
            with lock:
                stats["sent"] += 1
            try:
                refused = s.sendmail("soak@example.com", rcpts, data)
                record(mid, "accepted", 250, [r for r in rcpts if r not in refused])
            except smtplib.SMTPRecipientsRefused as e:
                codes = sorted({c for c, _ in e.recipients.values()})
                ok = all(400 <= c < 600 for c in codes)
                record(mid, "refused" if ok else "unanswered", codes, [])
                alive = ok and 421 not in codes
            except smtplib.SMTPResponseException as e:
                # Sender refused, DATA refused, or the final reply a 4xx/5xx.
                ok = 400 <= e.smtp_code < 600
                record(mid, "refused" if ok else "unanswered", e.smtp_code, [])
                alive = ok and e.smtp_code != 421
            except (smtplib.SMTPException, OSError) as e:
                # Disconnected or timed out with no reply: the gateway must
                # always answer.
                record(mid, "unanswered", repr(e), [])
                alive = False
        try:
            if alive:
                s.quit()
            else:
                s.close()
        except (smtplib.SMTPException, OSError):
            pass

threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
start = time.time()
for t in threads:
    t.start()
ticks = 0
while any(t.is_alive() for t in threads):
    time.sleep(1)
    ticks += 1
    elapsed = time.time() - start
    if ticks % 5 == 0 or not any(t.is_alive() for t in threads):
        with lock:
            s = dict(stats)
        print("t=%3ds sent=%d accepted=%d refused=%d unanswered=%d sotto VmRSS=%s kB"
              % (elapsed, s["sent"], s["accepted"], s["refused"], s["unanswered"], rss()),
              flush=True)
out.close()
print("sotto peak RSS (VmHWM): %s kB" % rss("VmHWM"), flush=True)
PY

cat >"$TMP/check.py" <<'PY'
"""Compares what the clients were told with what the upstream has."""
import json, sys
from collections import Counter

sent = [json.loads(l) for l in open(sys.argv[1])]
upstream = [json.loads(l) for l in open(sys.argv[2])]
by_id = {m["id"]: m for m in sent}
copies = Counter(u["id"] for u in upstream)
rcpts = {u["id"]: u["rcpts"] for u in upstream}
accepted = [m for m in sent if m["outcome"] == "accepted"]
refused = [m for m in sent if m["outcome"] == "refused"]
unanswered = [m for m in sent if m["outcome"] == "unanswered"]
lost = [m["id"] for m in accepted if copies[m["id"]] == 0]
dups = [i for i, n in copies.items() if n > 1]
both = [m["id"] for m in refused if copies[m["id"]] > 0]
wrong_rcpts = [m["id"] for m in accepted
               if copies[m["id"]] == 1 and sorted(rcpts[m["id"]]) != sorted(m["rcpts"])]
stray = [i for i in copies if i not in by_id]
first = lambda c: c[0] if isinstance(c, list) else c
classes = Counter("%dxx" % (first(m["code"]) // 100) for m in refused)
print("sent=%d accepted=%d delivered=%d refused=%d (4xx=%d 5xx=%d) unanswered=%d"
      % (len(sent), len(accepted), sum(1 for i in copies if i in by_id), len(refused),
         classes["4xx"], classes["5xx"], len(unanswered)))
problems = [("accepted but not delivered (lost)", lost),
            ("delivered more than once (duplicates)", dups),
            ("refused but delivered", both),
            ("delivered to other recipients than accepted", wrong_rcpts),
            ("delivered but never sent", stray),
            ("no 4xx/5xx answer", [m["id"] for m in unanswered])]
bad = False
for what, ids in problems:
    if ids:
        bad = True
        print("FAIL: %d %s, e.g. %s" % (len(ids), what, ids[:3]))
sys.exit(1 if bad else 0)
PY

# --- run ----------------------------------------------------------------------
touch "$TMP/upstream.jsonl"
python3 "$TMP/upstream.py" "$SINK_PORT" "$TMP/upstream.jsonl" "$SEED" 0.8 12 \
    >"$TMP/upstream.out" 2>"$TMP/upstream.err" &
SINK_PID=$!
for _ in $(seq 100); do
    grep -q READY "$TMP/upstream.out" 2>/dev/null && break
    kill -0 "$SINK_PID" 2>/dev/null || { cat "$TMP/upstream.err" >&2; die "the upstream did not start"; }
    sleep 0.1
done
grep -q READY "$TMP/upstream.out" || die "the upstream did not start"

cat >"$TMP/sotto.toml" <<EOF
[smtp]
listen = "127.0.0.1:$SOTTO_PORT"

[lmtp]
listen = ""

[upstream]
address = "127.0.0.1:$SINK_PORT"
pool_size = 8
idle_timeout = "5s"

[timeouts]
command = "60s"
data = "120s"
upstream = "3s"
upstream_data = "8s"
shutdown = "30s"

[keys]
sources = ["dir"]

[redirect]
listen = ""

[admin]
listen = ""

[log]
level = "warn"
EOF
"$SOTTO" check --config "$TMP/sotto.toml" >/dev/null || die "sotto check refused the soak configuration"
"$SOTTO" serve --config "$TMP/sotto.toml" 2>"$TMP/sotto.log" &
SOTTO_PID=$!
for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $SOTTO_PORT), 0.2).close()" \
        2>/dev/null && break
    kill -0 "$SOTTO_PID" 2>/dev/null || { tail -20 "$TMP/sotto.log" >&2; die "sotto did not start"; }
    sleep 0.1
done

echo "soak: ${DURATION}s, $CLIENTS clients, upstream fault seed $SEED"
python3 "$TMP/clients.py" "$SOTTO_PORT" "$DURATION" "$CLIENTS" "$SOTTO_PID" "$TMP/sent.jsonl"

# sotto finishes what is open and exits 0 on SIGTERM.
kill -TERM "$SOTTO_PID"
status=0
wait "$SOTTO_PID" || status=$?
SOTTO_PID=
kill -TERM "$SINK_PID" 2>/dev/null || true
wait "$SINK_PID" 2>/dev/null || true
SINK_PID=
grep "injected faults" "$TMP/upstream.err" || true

result=0
python3 "$TMP/check.py" "$TMP/sent.jsonl" "$TMP/upstream.jsonl" || result=1
if [[ $status -ne 0 ]]; then
    echo "FAIL: sotto exited $status after SIGTERM"
    result=1
fi
if [[ $result -ne 0 ]]; then
    echo "--- sotto log (last 20 lines) ---"
    tail -20 "$TMP/sotto.log"
    exit 1
fi
echo "soak: OK"
