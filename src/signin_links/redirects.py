"""Redirect URLs and origins, read once, strictly, into the ASCII form that is checked, signed and sent.

A link's redirect is checked against the allow-list at mint, carried inside the signed token, checked
again at accept and finally written into a ``Location`` header. Those must all be the same string,
and one that HTTP can carry, so every URL goes through :func:`canonical_url` first:

* ``urllib.parse.urlsplit`` reads it; whatever it refuses (a bracket out of place, an IPv6 literal
  that never closes, a host that NFKC-normalises into a delimiter such as the fullwidth solidus
  U+FF0F) or a port that is not a number from 0 to 65535 is a :class:`UrlError`, never a
  ``ValueError`` from deep inside a check;
* scheme ``http`` or ``https``; a host; no user info (no ``@`` at all before the host); no control,
  separator (space) or unpaired surrogate characters anywhere;
* the host is an IPv6 literal (checked with ``ipaddress``, no zone id), or a name turned into ASCII
  with IDNA (Python's ``idna`` codec, IDNA 2003: it maps fullwidth letters and full stops to ASCII,
  as browsers do) that must then be a valid host name: labels of 1 to 63 letters, digits and
  hyphens, at most 253 characters. It is lowercased. The allow-list is checked on this final ASCII
  host, never on the text that was sent;
* the port is kept unless it is the scheme's default (``https://a.example:443/`` is
  ``https://a.example/``);
* in path, query and fragment every character RFC 3986 does not allow there (non-ASCII as UTF-8,
  ``"<>\\^`{|}``, ``[`` ``]``) is percent-encoded; an existing ``%XX`` is kept as it is (never
  encoded twice) and a ``%`` that starts no escape becomes ``%25``.

``canonical_url`` is idempotent: the canonical form of a canonical URL is itself, so a token minted
with it and checked again at accept keeps its redirect byte for byte.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, urlsplit

SCHEMES = {"http": 80, "https": 443}  # scheme -> default port
MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What urlsplit tolerates but a browser reads differently (``https://a[::1]/``, ``https://[::1]x/``).
_NETLOC = re.compile(r"\[[^\[\]@]+\](?::[0-9]*)?|[^\[\]@]+")
# RFC 3986 pchar, "/" and "?" (path, query, fragment), besides the unreserved characters ``quote``
# always keeps; "%" is kept because every "%" left starts an escape.
_SAFE = "!$&'()*+,;=:@/?%"


class UrlError(ValueError):
    """Not an http(s) URL this service can check, sign and send; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CanonicalUrl(NamedTuple):
    origin: str  # scheme://host[:port], ASCII, lowercase, no default port
    rest: str  # path, ?query and #fragment, percent-encoded ASCII

    @property
    def url(self) -> str:
        return self.origin + self.rest


def _host(hostname: str, bracketed: bool) -> str:
    if bracketed:
        import ipaddress  # rare: not on every cold start

        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise UrlError("the host is not a valid IPv6 address") from None
        if address.scope_id:
            raise UrlError("the host has an IPv6 zone id")
        return f"[{address.compressed}]"
    if hostname.isascii():  # what the codec would return; the common case imports no IDNA tables
        ascii_host = hostname.lower()
    else:
        try:
            ascii_host = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UrlError("the host is not a valid host name") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > MAX_HOST_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlError("the host is not a valid host name")
    return ascii_host


def _encode(part: str) -> str:
    try:
        return quote(_LONE_PERCENT.sub("%25", part), safe=_SAFE)
    except UnicodeEncodeError:  # an unpaired surrogate (already refused by isprintable; kept as a guard)
        raise UrlError("the URL is not valid Unicode") from None


def parse(url: str) -> CanonicalUrl:
    """``url`` as its canonical origin and rest; :class:`UrlError` for anything else."""
    if not isinstance(url, str) or not url:
        raise UrlError("the URL is empty or not a string")
    if not url.isprintable() or " " in url:
        raise UrlError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        netloc = parts.netloc
        hostname = parts.hostname
        port = parts.port
    except ValueError:  # brackets, NFKC delimiters in the host, a port that is not a number
        raise UrlError("the URL cannot be parsed (host or port)") from None
    if scheme not in SCHEMES:
        raise UrlError("the scheme is not http or https")
    if not hostname:
        raise UrlError("the URL has no host")
    if "@" in netloc:
        raise UrlError("the URL carries user info")
    if "%" in hostname or not _NETLOC.fullmatch(netloc):
        raise UrlError("the host is not a valid host name")
    host = _host(hostname, bracketed=netloc.startswith("["))
    origin = f"{scheme}://{host}" if port is None or port == SCHEMES[scheme] else f"{scheme}://{host}:{port}"
    rest = _encode(parts.path)
    if parts.query:
        rest += "?" + _encode(parts.query)
    if parts.fragment:
        rest += "#" + _encode(parts.fragment)
    return CanonicalUrl(origin, rest)


def canonical_url(url: str) -> str:
    """The ASCII URL that is checked, signed and sent for ``url`` (see the module's docstring)."""
    return parse(url).url


def origin_of(url: str) -> str:
    """The canonical origin of ``url`` (``scheme://host[:port]``); :class:`UrlError` if malformed."""
    return parse(url).origin
