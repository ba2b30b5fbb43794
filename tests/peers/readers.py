#!/usr/bin/env python3
"""Reads a calendar, vCard file or CSV table the way independent programs
do (icalendar and vobject from PyPI, Python's csv module) and prints what
they read as JSON, for tests/attachments.rs.

    readers.py ics FILE...    -> per file [{"comp", "name", "kind", "value", "params"}]
    readers.py vcard FILE...  -> per file [{"card", "group", "name", "kind", "value", "params"}]
    readers.py csv FILE...    -> per file [[cell, ...], ...]

kind says how the value is read: "text" (unescaped text), "uri", "html"
(an HTML document in a text value), "list" (value is a list of texts) or
"other" (dates, numbers, binary data: compared as written). A parse error
exits non-zero with the reason: the file does not import.
"""
import base64
import csv
import io
import json
import sys

TEXT_ESCAPES = {"\\\\": "\\", "\\;": ";", "\\,": ",", "\\n": "\n", "\\N": "\n", "\\:": ":"}


def unescape(raw):
    """RFC 5545 3.3.11 / RFC 6350 3.4 TEXT unescaping (and Apple's \\:)."""
    out, i = [], 0
    while i < len(raw):
        pair = raw[i : i + 2]
        if pair in TEXT_ESCAPES:
            out.append(TEXT_ESCAPES[pair])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def read_ics(data):
    import icalendar

    cal = icalendar.Calendar.from_ical(data)
    out = []
    for comp in cal.walk():
        for name, val in comp.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            params = {k: str(v) for k, v in dict(getattr(val, "params", {}) or {}).items()}
            kind = type(val).__name__
            if kind == "vText":
                entry = ("text", str(val))
            elif kind in ("vUri", "vCalAddress"):
                entry = ("uri", str(val))
            elif kind == "vCategory":
                entry = ("list", [str(c) for c in val.cats])
            elif kind == "vUnknown":
                # Not typed by icalendar (X- properties): TEXT by RFC 5545 3.8.8.
                text = unescape(val.to_ical().decode())
                html = params.get("FMTTYPE", "").lower() == "text/html"
                entry = ("html" if html else "text", text)
            else:
                raw = val.to_ical()
                entry = ("other", raw.decode() if isinstance(raw, bytes) else str(raw))
            out.append(
                {"comp": comp.name, "name": name, "kind": entry[0], "value": entry[1], "params": params}
            )
    return out


URI_PROPERTIES = {"URL", "PHOTO", "LOGO", "SOUND", "SOURCE", "KEY", "X-SOCIALPROFILE", "FBURL", "CALURI"}


def read_vcard(data):
    import vobject

    out = []
    for n, card in enumerate(vobject.readComponents(data.decode("utf-8"))):
        for line in card.getChildren():
            value = line.value
            params = {k: ",".join(v) for k, v in line.params.items()}
            if isinstance(value, bytes):
                kind, value = "other", base64.b64encode(value).decode()
            elif not isinstance(value, str):
                kind, value = "other", str(value)
            elif line.name in URI_PROPERTIES:
                # vobject leaves URIs as written; Apple writes `https\://`.
                kind, value = "uri", unescape(value)
            else:
                kind = "text"
            out.append(
                {"card": n, "group": line.group, "name": line.name, "kind": kind, "value": value, "params": params}
            )
    if not out:
        raise ValueError("no vCard in the file")
    return out


def read_csv(data):
    text = data.decode("utf-8")
    delimiter = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t").delimiter
    return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]


def main():
    what, paths = sys.argv[1], sys.argv[2:]
    results = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        try:
            results.append({"ics": read_ics, "vcard": read_vcard, "csv": read_csv}[what](data))
        except Exception as e:  # noqa: BLE001 - any failure means "does not import"
            print(f"{what}: {path} does not import: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(1)
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
