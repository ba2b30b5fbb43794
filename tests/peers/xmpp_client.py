#!/usr/bin/env python3
"""An XMPP client for sotto's tests, built on slixmpp.

It connects to --host/--port (plain TCP by default; --starttls requires
STARTTLS, --direct-tls speaks TLS from the first byte as in XEP-0368),
logs in as --jid with --password (--mech forces one SASL mechanism, e.g.
SCRAM-SHA-1 or PLAIN), optionally enables carbons (--carbons) and stream
management (--sm), sends initial presence (unless --no-presence), then runs
a script: a JSON list of steps, given with --script JSON (or --script - to
read it from standard input). Steps:

  {"op": "send", "to": JID, "body": TEXT, "type": "chat", "id": ID,
   "extra": [XML, ...]}        a message; "extra" children are appended
  {"op": "raw", "xml": XML}    any stanza, parsed (default namespace
                               jabber:client) and sent as a stanza, so
                               stream management counts it
  {"op": "wait", "count": N, "any": false, "timeout": SECONDS}
                               until N more messages arrived since the
                               previous wait: messages with a <body> (or
                               carbons of one); "any": true counts every
                               <message> stanza except MAM results
  {"op": "mam", "with": JID}   query the own archive (all pages); "with"
                               is optional
  {"op": "publish", "node": NODE, "id": ID, "xml": PAYLOAD,
   "access_model": "open"}     publish one PEP item (access_model optional)
  {"op": "fetch", "jid": JID, "node": NODE}
                               fetch a PEP node's items (jid optional: own)
  {"op": "iq", "xml": XML}     send an iq, print whatever answers it
  {"op": "ping"}               a XEP-0199 round trip to the server

Everything it sees is printed as one JSON object per line on standard output,
with an "event" key: features (each <stream:features>, raw XML), session
(bound JID, SASL mechanism, TLS version), sm_enabled, carbons_enabled,
ready (logged in, features enabled, initial presence sent and then a ping
answered, so the server routes messages to this resource from now on),
message (from, to, type, id, body, carbon, and the whole stanza's XML),
sent, mam (results: archive id, stamp, the stored message's XML), published,
items, iq, pong, done; and error (kind, message) before a non-zero exit:
2 for an authentication failure, 3 for a timeout, 1 for anything else.
The XML printed is slixmpp's serialisation of what it parsed: the same
elements, attributes and text as on the wire, but namespace declarations,
attribute order and quoting may differ (--verbose logs the traffic).
Before leaving it does one ping round trip, so the server has handled every
stanza sent. Every wait is bounded by --timeout (default 20 s).
"""
import argparse
import asyncio
import json
import logging
import ssl
import sys
import uuid
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import tostring
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"
NS_DELAY = "urn:xmpp:delay"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"


def emit(event, **fields):
    fields = {"event": event, **fields}
    sys.stdout.write(json.dumps(fields, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def xml_of(elem):
    return tostring(elem, top_level=True)


def parse(text, ns=NS_CLIENT):
    """One element from text, unprefixed elements in namespace `ns`."""
    wrapper = ET.fromstring("<w xmlns='%s'>%s</w>" % (ns, text))
    if len(wrapper) != 1:
        raise Fatal("script", "expected exactly one XML element: %r" % text)
    return wrapper[0]


class Fatal(Exception):
    CODES = {"auth": 2, "timeout": 3}

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        plain = not (args.starttls or args.direct_tls)
        super().__init__(
            args.jid,
            args.password,
            sasl_mech=args.mech,
            plugin_config={
                # Only for plain TCP to a loopback server (Prosody behind sotto).
                "feature_mechanisms": {
                    "unencrypted_plain": plain,
                    "unencrypted_scram": plain,
                }
            },
        )
        self.args = args
        self.enable_direct_tls = args.direct_tls
        self.enable_starttls = args.starttls
        self.enable_plaintext = plain
        if args.cafile:
            self.ca_certs = args.cafile
        if args.insecure:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        if args.carbons:
            self.register_plugin("xep_0280")
        if args.sm:
            self.register_plugin("xep_0198")
        self.register_plugin("xep_0199")

        loop = asyncio.get_running_loop()
        self.fatal = loop.create_future()
        self.started = loop.create_future()
        self.sm_on = loop.create_future()
        self.mam_sink = {}
        self.counted = 0
        self.counted_any = 0
        self.arrival = asyncio.Event()
        self.seen_features = 0

        self.register_handler(
            Callback(
                "test features",
                MatchXPath("{%s}features" % NS_STREAM),
                self.on_features,
                instream=True,
            )
        )
        self.register_handler(
            Callback("test messages", MatchXPath("{%s}message" % NS_CLIENT), self.on_message)
        )
        self.add_event_handler("session_start", self.on_session)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", self.on_no_mechanism)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("sm_enabled", self.on_sm_enabled)
        self.add_event_handler("sm_failed", self.on_sm_failed)

    # -- failures --------------------------------------------------------

    def fail(self, kind, message):
        if not self.fatal.done():
            self.fatal.set_exception(Fatal(kind, message))

    def on_failed_auth(self, failure):
        text = failure["text"] if failure is not None else ""
        cond = failure["condition"] if failure is not None else "unknown"
        self.fail("auth", "authentication failed: %s %s" % (cond, text))

    def on_no_mechanism(self, _event):
        offered = sorted(self.plugin["feature_mechanisms"].mech_list)
        self.fail("auth", "no usable SASL mechanism among those offered: %s" % " ".join(offered))

    def on_connection_failed(self, err):
        self.fail("connect", "cannot connect to %s:%s: %s" % (self.args.host, self.args.port, err))

    def on_stream_error(self, err):
        self.fail("stream", "stream error: %s %s" % (err["condition"], err["text"]))

    def on_disconnected(self, reason):
        self.fail("disconnected", "the server closed the connection: %s" % (reason or ""))

    def on_sm_failed(self, stanza):
        self.fail("sm", "stream management refused: %s" % stanza)

    def on_sm_enabled(self, stanza):
        emit("sm_enabled", id=stanza["id"] or None, resume=bool(stanza["resume"]))
        if not self.sm_on.done():
            self.sm_on.set_result(True)

    # -- the stream ------------------------------------------------------

    def tls_version(self):
        sock = self.socket
        if isinstance(sock, (ssl.SSLSocket, ssl.SSLObject)):
            return sock.version()
        if self.transport is not None:
            obj = self.transport.get_extra_info("ssl_object")
            if obj is not None:
                return obj.version()
        return None

    def on_features(self, features):
        self.seen_features += 1
        emit("features", tls=self.tls_version(), xml=xml_of(features.xml))
        if (
            self.args.starttls
            and self.seen_features == 1
            and self.tls_version() is None
            and features.xml.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
        ):
            self.fail("tls", "the server did not offer STARTTLS")

    def on_session(self, _event):
        mech = self.plugin["feature_mechanisms"].mech
        emit(
            "session",
            jid=str(self.boundjid),
            mechanism=mech.name if mech is not None else None,
            tls=self.tls_version(),
        )
        if not self.started.done():
            self.started.set_result(True)

    def on_message(self, msg):
        x = msg.xml
        if x.find("{%s}result" % NS_MAM) is not None:
            self.on_mam_result(x)
            return
        inner, carbon = x, None
        for kind in ("received", "sent"):
            fwd = x.find("{%s}%s/{%s}forwarded/{%s}message" % (NS_CARBONS, kind, NS_FORWARD, NS_CLIENT))
            if fwd is not None:
                inner, carbon = fwd, kind
        body = inner.find("{%s}body" % NS_CLIENT)
        error = x.find("{%s}error" % NS_CLIENT)
        fields = dict(
            **{"from": inner.get("from"), "to": inner.get("to")},
            type=inner.get("type", "normal"),
            id=inner.get("id"),
            body=body.text if body is not None else None,
            carbon=carbon,
            xml=xml_of(x),
        )
        if error is not None:
            fields["error"] = [c.tag.split("}")[-1] for c in error]
        emit("message", **fields)
        self.counted_any += 1
        if body is not None:
            self.counted += 1
        self.arrival.set()

    def on_mam_result(self, x):
        res = x.find("{%s}result" % NS_MAM)
        sink = self.mam_sink.get(res.get("queryid"))
        if sink is None:
            return
        fwd = res.find("{%s}forwarded" % NS_FORWARD)
        stored = fwd.find("{%s}message" % NS_CLIENT) if fwd is not None else None
        delay = fwd.find("{%s}delay" % NS_DELAY) if fwd is not None else None
        sink.append(
            {
                "id": res.get("id"),
                "stamp": delay.get("stamp") if delay is not None else None,
                "xml": xml_of(stored) if stored is not None else None,
            }
        )

    # -- waiting ---------------------------------------------------------

    async def until(self, awaitable, what, timeout=None):
        """awaitable's result, unless a fatal error or the timeout comes first."""
        timeout = timeout or self.args.timeout
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task, self.fatal}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self.fatal in done:
            task.cancel()
            self.fatal.result()  # raises
        if task not in done:
            task.cancel()
            raise Fatal("timeout", "no %s within %ss" % (what, timeout))
        return task.result()

    async def iq(self, elem, what):
        iq = self._build_stanza(elem, NS_CLIENT)
        if not iq["id"]:
            iq["id"] = self.new_id()
        try:
            return await self.until(iq.send(timeout=self.args.timeout), what), None
        except IqError as e:
            return None, e.iq
        except IqTimeout:
            raise Fatal("timeout", "no answer to %s within %ss" % (what, self.args.timeout))

    # -- steps -------------------------------------------------------------

    async def step(self, s):
        op = s.get("op")
        if op == "send":
            msg = self.make_message(mto=s["to"], mbody=s.get("body"), mtype=s.get("type", "chat"))
            msg["id"] = s.get("id") or self.new_id()
            for extra in s.get("extra", []):
                msg.xml.append(parse(extra))
            msg.send()
            emit("sent", to=s["to"], id=msg["id"], xml=str(msg))
        elif op == "raw":
            stanza = self._build_stanza(parse(s["xml"]), NS_CLIENT)
            stanza.send()
            emit("sent", to=stanza["to"] and str(stanza["to"]), id=stanza["id"] or None, xml=str(stanza))
        elif op == "wait":
            want = int(s.get("count", 1))
            attr = "counted_any" if s.get("any") else "counted"
            base = getattr(self, "_base_" + attr, 0)

            async def arrived():
                while getattr(self, attr) - base < want:
                    self.arrival.clear()
                    await self.arrival.wait()

            await self.until(arrived(), "%d message(s)" % want, s.get("timeout"))
            setattr(self, "_base_" + attr, base + want)
        elif op == "mam":
            await self.mam(s.get("with"))
        elif op == "publish":
            await self.publish(s)
        elif op == "fetch":
            await self.fetch(s.get("jid"), s["node"])
        elif op == "iq":
            ok, err = await self.iq(parse(s["xml"]), "iq")
            answer = ok if ok is not None else err
            emit("iq", type=answer["type"], xml=str(answer))
        elif op == "ping":
            await self.ping()
        else:
            raise Fatal("script", "unknown step %r" % (s,))

    async def ping(self):
        elem = parse("<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % self.boundjid.domain)
        ok, err = await self.iq(elem, "ping answer")
        emit("pong", type="result" if ok is not None else "error")

    async def mam(self, with_jid):
        results, after = [], None
        while True:
            qid = uuid.uuid4().hex
            self.mam_sink[qid] = results
            query = "<query xmlns='%s' queryid='%s'>" % (NS_MAM, qid)
            if with_jid:
                query += (
                    "<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'>"
                    "<value>%s</value></field><field var='with'><value>%s</value></field></x>"
                    % (NS_DATA, NS_MAM, esc(with_jid))
                )
            query += "<set xmlns='%s'><max>100</max>%s</set></query>" % (
                NS_RSM,
                "<after>%s</after>" % esc(after) if after else "",
            )
            ok, err = await self.iq(parse("<iq type='set'>%s</iq>" % query), "MAM answer")
            del self.mam_sink[qid]
            if ok is None:
                raise Fatal("mam", "archive query refused: %s" % err)
            fin = ok.xml.find("{%s}fin" % NS_MAM)
            last = fin.find("{%s}set/{%s}last" % (NS_RSM, NS_RSM)) if fin is not None else None
            if fin is None or fin.get("complete") == "true" or last is None or not last.text:
                break
            after = last.text
        emit("mam", count=len(results), results=results)

    async def publish(self, s):
        options = ""
        if s.get("access_model"):
            options = (
                "<publish-options><x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'>"
                "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
                "<field var='pubsub#access_model'><value>%s</value></field></x></publish-options>"
                % (NS_DATA, esc(s["access_model"]))
            )
        item_id = s.get("id")
        iq = parse(
            "<iq type='set'><pubsub xmlns='%s'><publish node='%s'><item%s/></publish>%s</pubsub></iq>"
            % (NS_PUBSUB, esc(s["node"]), " id='%s'" % esc(item_id) if item_id else "", options)
        )
        iq.find(".//{%s}item" % NS_PUBSUB).append(parse(s["xml"], ns=""))
        ok, err = await self.iq(iq, "publish answer")
        if ok is None:
            raise Fatal("pubsub", "publish refused: %s" % err)
        emit("published", node=s["node"], id=item_id, xml=str(ok))

    async def fetch(self, jid, node):
        to = " to='%s'" % esc(jid) if jid else ""
        iq = parse("<iq type='get'%s><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>" % (to, NS_PUBSUB, esc(node)))
        ok, err = await self.iq(iq, "items")
        if ok is None:
            emit("items", jid=jid, node=node, error=str(err), items=[])
            return
        items = [
            {"id": it.get("id"), "xml": "".join(xml_of(c) for c in it)}
            for it in ok.xml.iterfind(".//{%s}items/{%s}item" % (NS_PUBSUB, NS_PUBSUB))
        ]
        emit("items", jid=jid, node=node, items=items)


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;").replace('"', "&quot;")


async def run(args, script):
    c = Client(args)
    try:
        c.connect(args.host, args.port)
        await c.until(c.started, "session (login)")
        if args.sm:
            await c.until(c.sm_on, "stream management")
        if args.carbons:
            await c.until(c.plugin["xep_0280"].enable(), "carbons")
            emit("carbons_enabled")
        if not args.no_presence:
            c.send_presence()
            await c.ping()  # the server has seen the presence
        emit("ready")
        for s in script:
            await c.step(s)
        await c.ping()
        emit("done")
        return 0
    except Fatal as e:
        emit("error", kind=e.kind, message=e.message)
        print("xmpp_client: %s" % e.message, file=sys.stderr)
        return Fatal.CODES.get(e.kind, 1)
    finally:
        c.del_event_handler("disconnected", c.on_disconnected)
        try:
            await asyncio.wait_for(c.disconnect(wait=2), timeout=5)
        except Exception:
            c.abort()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true", help="require STARTTLS (default: plain TCP, no TLS)")
    tls.add_argument("--direct-tls", action="store_true", help="TLS from the first byte (XEP-0368)")
    p.add_argument("--cafile", help="trust this CA (PEM) for the server's certificate")
    p.add_argument("--insecure", action="store_true", help="accept any certificate")
    p.add_argument("--mech", help="the only SASL mechanism to use, e.g. SCRAM-SHA-1 or PLAIN")
    p.add_argument("--carbons", action="store_true", help="enable message carbons (XEP-0280)")
    p.add_argument("--sm", action="store_true", help="require stream management (XEP-0198)")
    p.add_argument("--no-presence", action="store_true", help="send no initial presence")
    p.add_argument("--timeout", type=float, default=20.0, help="bound on every wait, seconds")
    p.add_argument("--script", default="[]", help="JSON list of steps, or - for standard input")
    p.add_argument("--verbose", action="store_true", help="slixmpp's debug log (the XML) on stderr")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL, stream=sys.stderr)
    try:
        script = json.loads(sys.stdin.read() if args.script == "-" else args.script)
        if not isinstance(script, list):
            raise ValueError("the script must be a JSON list")
    except ValueError as e:
        emit("error", kind="script", message=str(e))
        return 1
    return asyncio.run(run(args, script))


if __name__ == "__main__":
    sys.exit(main())
