"""A scripted IMAP client (Python's imaplib) for sotto's IMAP proxy tests.

Usage: imap_client.py HOST PORT USER [--tls CAFILE | --starttls CAFILE | --auth MECH] < script.json
The password (with --auth XOAUTH2 or OAUTHBEARER: the bearer token) comes
as the first line of stdin, the JSON script after it:
a list of steps, each {"op": "capability" | "append" | "fetch" | "uids" |
"select" | "create" | "raw", ...}. Prints one JSON object per step on stdout; message bytes in base64.
"""

import base64
import imaplib
import json
import ssl
import sys


def main():
    host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 5 else None
    password = sys.stdin.readline().rstrip("\n")
    steps = json.loads(sys.stdin.read())
    if mode == "--tls":
        ctx = ssl.create_default_context(cafile=sys.argv[5])
        m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=20)
    else:
        m = imaplib.IMAP4(host, port, timeout=20)
    out = {"greeting_caps": sorted(m.capabilities)}
    if mode == "--starttls":
        ctx = ssl.create_default_context(cafile=sys.argv[5])
        m.starttls(ssl_context=ctx)
        out["after_starttls_caps"] = sorted(m.capabilities)
    print(json.dumps(out), flush=True)
    if mode == "--auth" and sys.argv[5] == "XOAUTH2":
        msg = f"user={user}\x01auth=Bearer {password}\x01\x01".encode()
        typ, _ = m.authenticate("XOAUTH2", lambda _: msg)
    elif mode == "--auth" and sys.argv[5] == "OAUTHBEARER":
        msg = f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {password}\x01\x01".encode()
        typ, _ = m.authenticate("OAUTHBEARER", lambda _: msg)
    else:
        typ, _ = m.login(user, password)
    print(json.dumps({"op": "login", "status": typ}), flush=True)
    m.select("INBOX")
    for step in steps:
        op = step["op"]
        if op == "capability":
            typ, data = m.capability()
            print(json.dumps({"op": op, "caps": data[0].decode().split()}), flush=True)
        elif op == "append":
            msg = base64.b64decode(step["message"])
            typ, data = m.append(step.get("mailbox", "INBOX"), step.get("flags", "(\\Seen)"), None, msg)
            print(json.dumps({"op": op, "status": typ, "data": [d.decode() if isinstance(d, bytes) else str(d) for d in data]}), flush=True)
        elif op == "fetch":
            typ, data = m.uid("FETCH", step["uid"], step.get("items", "(RFC822.SIZE BODY.PEEK[])"))
            parts = []
            for d in data:
                if isinstance(d, tuple):
                    parts.append({"meta": d[0].decode(errors="replace"), "body": base64.b64encode(d[1]).decode()})
                elif d is not None:
                    parts.append({"meta": d.decode(errors="replace")})
            print(json.dumps({"op": op, "status": typ, "parts": parts}), flush=True)
        elif op == "idle":
            # imaplib (3.11) has no IDLE: the dialogue by hand. Prints
            # "idling" once the server accepted, then the first untagged
            # line it pushes (e.g. "* 2 EXISTS"), then the end.
            tag = m._new_tag()
            m.send(tag + b" IDLE\r\n")
            cont = m.readline()
            print(json.dumps({"op": "idling", "line": cont.decode(errors="replace").strip()}), flush=True)
            pushed = m.readline().decode(errors="replace").strip()
            m.send(b"DONE\r\n")
            done = m.readline().decode(errors="replace").strip()
            while not done.startswith(tag.decode()):
                done = m.readline().decode(errors="replace").strip()
            print(json.dumps({"op": op, "pushed": pushed, "done": done}), flush=True)
        elif op == "select":
            typ, data = m.select(step["mailbox"])
            print(json.dumps({"op": op, "status": typ}), flush=True)
        elif op == "create":
            typ, data = m.create(step["mailbox"])
            print(json.dumps({"op": op, "status": typ}), flush=True)
        elif op == "raw":
            # The FETCH response as it came on the wire (imaplib splits it
            # at literals and drops line ends: put back), in base64.
            typ, data = m.uid("FETCH", step["uid"], step["items"])
            raw = b""
            for d in data:
                if isinstance(d, tuple):
                    raw += d[0] + b"\r\n" + d[1]
                elif d is not None:
                    raw += d + b"\r\n"
            print(json.dumps({"op": op, "status": typ, "raw": base64.b64encode(raw).decode()}), flush=True)
        elif op == "uids":
            typ, data = m.uid("SEARCH", None, "ALL")
            print(json.dumps({"op": op, "uids": data[0].decode().split()}), flush=True)
    m.logout()


if __name__ == "__main__":
    main()
