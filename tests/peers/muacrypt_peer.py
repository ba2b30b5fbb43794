#!/usr/bin/env python3
"""The correspondent for tests/autocrypt_interop.rs: muacrypt (PyPI,
https://muacrypt.readthedocs.io), an Autocrypt Level 1 implementation that
shares no code with sotto, driven through its own account API (the calls
its `muacrypt` command line makes).

    init BASEDIR EMAIL         make the account; prints its key's fingerprint
    outgoing BASEDIR [--encrypt] [--protect-subject]
                               stdin message -> stdout, as process-outgoing
                               (Autocrypt header; with --encrypt, PGP/MIME
                               signed and encrypted to the learned key)
    incoming BASEDIR           stdin message -> process-incoming; prints JSON
                               of what it learned
    recommend BASEDIR ADDR     the Autocrypt UI recommendation for ADDR
    open BASEDIR               stdin PGP/MIME message -> process-incoming, then
                               gpg --decrypt on muacrypt's own keyring; prints
                               JSON {"plaintext", "text", "subject", "goodsig",
                               "signer" (primary key), "signing_key", "learned"
                               (peer state of the sender), "incoming_error"
                               (null if process-incoming went through),
                               "gossip", "status" (gpg's status lines)}

muacrypt 0.9.1 cannot make its own key with GnuPG >= 2.2 (it parses
`--gen-key` output that changed), so `init` generates an Ed25519/Curve25519
key in the account's keyring (BASEDIR/gpg/default), protected with the
passphrase muacrypt always uses ("123"), and hands it over as --use-key does.

muacrypt copies every header but the content ones to the outside of what it
encrypts (Autocrypt Level 1 asks nothing more), so its Subject would travel
in clear. --protect-subject uses muacrypt's own plugin hook
`process_before_encryption` to put Subject/From/To into the encrypted part
(protected-headers="v1") and sets the outer Subject to "...", as Autocrypt
clients that protect headers do.

`open` reads gpg's status lines itself (muacrypt's gpg binary, keyring and
passphrase): muacrypt's BinGPG decodes gpg's stderr as UTF-8, and the status
lines carry the binary salt notation Sequoia (sotto) puts in signatures.
"""

import argparse
import email
import email.parser
import json
import os
import re
import subprocess
import sys

try:
    import muacrypt  # noqa: F401
    from muacrypt import mime
    from muacrypt.account import AccountManager
    from muacrypt.bingpg import InvocationFailure
    from muacrypt.cmdline import make_plugin_manager
    from muacrypt.hookspec import hookimpl
except ImportError as e:
    sys.exit(
        "muacrypt_peer.py: the Python package `muacrypt` is missing or broken "
        f"({e}): pip install muacrypt (tests/run installs it; on Python >= 3.12 "
        "it also needs setuptools for distutils)"
    )

PASSPHRASE = "123"  # muacrypt's fixed passphrase for its own keys
ACCOUNT = "default"


class ProtectSubject:
    """Header protection through muacrypt's plugin hook: the real headers go
    into the payload muacrypt encrypts."""

    def __init__(self, msg):
        self.msg = msg

    @hookimpl
    def process_before_encryption(self, sender_addr, sender_keyhandle,
                                  recipient2keydata, payload_msg, _account):
        for name in ("Subject", "From", "To"):
            if self.msg[name] is not None:
                payload_msg[name] = self.msg[name]
        payload_msg.set_param("protected-headers", "v1")


def manager(basedir, plugins=()):
    pm = make_plugin_manager()
    for p in plugins:
        pm.register(p)
    return AccountManager(basedir, pm)


def account(basedir, plugins=()):
    return manager(basedir, plugins).get_account(ACCOUNT)


def gpg(home, *args, stdin=None):
    out = subprocess.run(
        ["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode",
         "loopback", "--passphrase", PASSPHRASE, *args],
        input=stdin, capture_output=True,
    )
    if out.returncode != 0:
        sys.exit(f"muacrypt_peer.py: gpg {' '.join(args)}: {out.stderr.decode()}")
    return out.stdout.decode()


def cmd_init(a):
    home = os.path.join(a.basedir, "gpg", ACCOUNT)
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    gpg(home, "--quick-gen-key", a.email, "ed25519", "sign", "never")
    listing = gpg(home, "--with-colons", "--list-secret-keys", a.email)
    fpr = next(l.split(":")[9] for l in listing.splitlines() if l.startswith("fpr:"))
    gpg(home, "--quick-add-key", fpr, "cv25519", "encr", "never")
    am = manager(a.basedir)
    am.add_account(ACCOUNT, email_regex="^" + re.escape(a.email.lower()) + "$",
                   keyhandle=fpr, gpgbin="gpg", gpgmode="own")
    am.mod_account(ACCOUNT, prefer_encrypt="mutual")
    print(fpr)


def cmd_outgoing(a):
    msg = email.parser.BytesParser().parse(sys.stdin.buffer)
    plugins = [ProtectSubject(msg)] if a.protect_subject else []
    if a.encrypt:
        msg["ENCRYPT"] = "yes"
    r = account(a.basedir, plugins).process_outgoing(msg)
    out = r.msg
    if a.protect_subject and mime.is_encrypted(out) and out["Subject"] is not None:
        out.replace_header("Subject", "...")
    sys.stdout.write(out.as_string() + "\n")


def learned(acct, r, sender):
    ps = r.peerstate if r is not None else acct.get_peerstate(sender)
    pah = r.pah if r is not None else None
    return {
        "addr": ps.addr,
        "keyhandle": ps.public_keyhandle or None,
        "prefer_encrypt": ps.prefer_encrypt,
        "error": pah.error if pah is not None else None,
    }


def cmd_incoming(a):
    msg = mime.parse_message_from_file(sys.stdin)
    acct = account(a.basedir)
    r = acct.process_incoming(msg, ignore_existing=False)
    print(json.dumps(learned(acct, r, mime.parse_email_addr(msg["From"]))))


def cmd_recommend(a):
    print(account(a.basedir).get_recommendation([a.addr]).ui_recommendation())


def cmd_open(a):
    msg = mime.parse_message_from_file(sys.stdin)
    acct = account(a.basedir)
    sender = mime.parse_email_addr(msg["From"])
    try:
        # Learns the Autocrypt header first, then decrypts for gossip.
        r = acct.process_incoming(msg, ignore_existing=False)
        processed = None
    except InvocationFailure as e:
        r = None  # gpg refused the decryption; the header was learned already
        processed = f"gpg failed in process-incoming (exit {e.ret}): {e.err}"
    if not mime.is_encrypted(msg):
        sys.exit("muacrypt_peer.py open: not a PGP/MIME encrypted message")
    data = msg.get_payload()[1].get_payload()
    if isinstance(data, str):
        data = data.encode("ascii")
    # gpg as muacrypt runs it (its binary, its keyring, its passphrase), with
    # the status lines muacrypt does not ask for; stderr is not always UTF-8.
    g = acct.bingpg
    run = subprocess.run(
        [g.gpgpath, "--batch", *g._homedirflags, *g._nopassphrase,
         "--status-fd", "2", "--decrypt"],
        input=data, capture_output=True, env={**os.environ, "LANG": "C", "LC_ALL": "C"})
    out, err = run.stdout, run.stderr.decode("utf-8", "replace")
    status = [l[len("[GNUPG:] "):] for l in err.splitlines() if l.startswith("[GNUPG:] ")]
    kinds = {l.split()[0] for l in status if l.split()}
    validsig = next((l.split() for l in status if l.startswith("VALIDSIG ")), None)
    goodsig = "GOODSIG" in kinds and validsig is not None and not kinds & {"BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG"}
    inner = email.message_from_bytes(out or b"")
    text = None
    for part in inner.walk():
        if part.get_content_type() == "text/plain":
            text = (part.get_payload(decode=True) or b"").decode(part.get_content_charset() or "utf-8", "replace")
            break
    print(json.dumps({
        "plaintext": (out or b"").decode("utf-8", "replace"),
        "text": text,
        "subject": inner["Subject"],
        "goodsig": goodsig,
        "signer": (validsig[10] if len(validsig) > 10 else validsig[1]) if validsig else None,
        "signing_key": validsig[1] if validsig else None,
        "learned": learned(acct, r, sender),
        "incoming_error": processed,
        "gossip": sorted(r.gossip_pahs) if r is not None else [],
        "status": "\n".join(status),
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("init")
    s.add_argument("basedir")
    s.add_argument("email")
    s.set_defaults(run=cmd_init)
    s = sub.add_parser("outgoing")
    s.add_argument("basedir")
    s.add_argument("--encrypt", action="store_true")
    s.add_argument("--protect-subject", action="store_true")
    s.set_defaults(run=cmd_outgoing)
    s = sub.add_parser("incoming")
    s.add_argument("basedir")
    s.set_defaults(run=cmd_incoming)
    s = sub.add_parser("recommend")
    s.add_argument("basedir")
    s.add_argument("addr")
    s.set_defaults(run=cmd_recommend)
    s = sub.add_parser("open")
    s.add_argument("basedir")
    s.set_defaults(run=cmd_open)
    a = p.parse_args()
    a.run(a)


if __name__ == "__main__":
    main()
