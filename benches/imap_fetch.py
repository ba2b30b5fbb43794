"""Load for benches/imap.rs: over one IMAP connection (imaplib), APPEND a
message N times to MAILBOX (mode "fill"), or FETCH BODY.PEEK[] of every
message of MAILBOX one UID at a time (mode "fetch"), printing each fetch's
latency in microseconds and the total bytes, or list the whole mailbox
with one `UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)` (mode "list"),
printing the count and the seconds it took.

Usage: imap_fetch.py HOST PORT USER MAILBOX fill|fetch|list [N] < password+message
"""

import imaplib
import sys
import time


def main():
    host, port, user, mailbox, mode = sys.argv[1:6]
    password = sys.stdin.readline().rstrip("\n")
    m = imaplib.IMAP4(host, int(port), timeout=60)
    m.login(user, password)
    if mode == "fill":
        n = int(sys.argv[6])
        message = sys.stdin.buffer.read()
        if mailbox != "INBOX":
            m.create(mailbox)
        for _ in range(n):
            typ, _ = m.append(mailbox, None, None, message)
            assert typ == "OK"
        print("filled", n)
    elif mode == "list":
        m.select(mailbox, readonly=True)
        start = time.perf_counter()
        typ, data = m.uid("FETCH", "1:*", "(FLAGS ENVELOPE RFC822.SIZE)")
        elapsed = time.perf_counter() - start
        assert typ == "OK"
        print(sum(1 for d in data if d and b"ENVELOPE" in (d[0] if isinstance(d, tuple) else d)), elapsed)
    else:
        m.select(mailbox, readonly=True)
        typ, data = m.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        total = 0
        lat = []
        start = time.perf_counter()
        for uid in uids:
            t = time.perf_counter()
            typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
            lat.append((time.perf_counter() - t) * 1e6)
            total += sum(len(d[1]) for d in data if isinstance(d, tuple))
        elapsed = time.perf_counter() - start
        lat.sort()
        print(len(uids), elapsed, lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)], total)
    m.logout()


if __name__ == "__main__":
    main()
