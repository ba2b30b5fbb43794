#!/usr/bin/env python3
"""An upstream SMTP server for sotto's tests, built on aiosmtpd.

It records every message it accepts as NNNNNN.eml (the exact bytes after
dot-unstuffing) and NNNNNN.json (envelope) in --dir, and can be told to
misbehave: refuse given recipients, refuse MAIL or DATA, or drop the
connection after the data arrived without answering.

Prints "READY <port>" on stdout once it listens on 127.0.0.1.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult


class LongLineSMTP(SMTP):
    # Real MTAs take data lines longer than RFC 5321's 1000 octets (Postfix
    # by default); the tests check such lines arrive intact.
    line_length_limit = 1 << 20


class Recorder:
    def __init__(self, args):
        self.args = args
        self.count = 0
        self.reject = {}
        for spec in args.reject_rcpt:
            addr, reply = spec.split("=", 1)
            self.reject[addr.lower()] = reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.args.mail_reply:
            return self.args.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.reject.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.drop_after_data:
            server.transport.abort()
            return "451 4.3.0 never sent"
        if self.args.data_reply:
            return self.args.data_reply
        if self.args.delay:
            await asyncio.sleep(self.args.delay)
        self.count += 1
        base = os.path.join(self.args.dir, "%06d" % self.count)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        meta = {
            "from": envelope.mail_from,
            "rcpts": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK queued as %06d" % self.count


async def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", required=True)
    p.add_argument("--reject-rcpt", action="append", default=[], metavar="ADDR=REPLY")
    p.add_argument("--mail-reply")
    p.add_argument("--data-reply")
    p.add_argument("--drop-after-data", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--tls-cert", help="PEM certificate: offer STARTTLS (required)")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    p.add_argument("--auth", metavar="USER:PASS", help="require AUTH with these credentials")
    args = p.parse_args()
    handler = Recorder(args)
    loop = asyncio.get_running_loop()
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (getattr(auth_data, "login", None) == user.encode()
                  and getattr(auth_data, "password", None) == password.encode())
            return AuthResult(success=ok, handled=False)

        kwargs.update(auth_required=True, authenticator=authenticator,
                      auth_require_tls=bool(ctx) and not args.implicit_tls)

    def factory():
        starttls = ctx if (ctx and not args.implicit_tls) else None
        return LongLineSMTP(handler, enable_SMTPUTF8=True, decode_data=False,
                    hostname="sink.test", data_size_limit=None,
                    tls_context=starttls, require_starttls=bool(starttls), **kwargs)

    server = await loop.create_server(
        factory, "127.0.0.1", 0, ssl=ctx if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
