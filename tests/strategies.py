"""Hypothesis generators of hostile input shared by the unit and robustness tests.

They reach the shapes that break URL and number parsers: bracketed hosts and IPv6 literals
(closed, unclosed, misplaced), non-ASCII and fullwidth characters (U+FF0F, U+FF20, U+3002, U+FF41),
ports that are not numbers or out of range, user info, lone ``%`` and escapes, backslashes,
unpaired surrogates, and huge numbers.
"""

from __future__ import annotations

from hypothesis import strategies as st

# Characters that browsers and Python's URL and IDNA code treat specially.
TRICKY_CHARS = (
    "/\\@:[]%?#.;,~_-+ \t\n\x00\x7f"
    "\uff0f\uff20\uff1a\uff3b\uff3d\u3002\uff0e\uff61\uff03\uff1f"  # fullwidth / @ : [ ] and full stops, # ?
    "\uff41\uff50\u0430\u00e9\u00df\u0131\u0661\u00b2\u200b\u00ad\u00a0\u2028\u3000\ufffd"
    "\ud800\udfff"  # unpaired surrogates
)
tricky_text = st.text(st.sampled_from(TRICKY_CHARS) | st.characters(), max_size=12)

ALLOWED_HOSTS = ["app.example.com", "APP.example.com", "127.0.0.1", "café.example", "xn--caf-dma.example"]
hosts = (
    st.sampled_from(ALLOWED_HOSTS)
    | st.sampled_from(ALLOWED_HOSTS).map(
        # fullwidth letters, or a fullwidth delimiter somewhere in the host
        lambda host: "".join(chr(ord(ch) + 0xFEE0) if "a" <= ch <= "z" else ch for ch in host)
    )
    | st.tuples(st.sampled_from(ALLOWED_HOSTS), st.sampled_from(TRICKY_CHARS), st.sampled_from(ALLOWED_HOSTS)).map(
        "".join
    )
    | st.sampled_from(["[::1]", "[0:0::1]", "[::1", "::1]", "[x", "[fe80::1%25eth0]", "[v1.x]", "a[::1]", "[::1]x"])
    | st.ip_addresses(v=6).map(lambda address: f"[{address}]")
    | st.ip_addresses(v=4).map(str)
    | tricky_text
)
ports = (
    st.none()
    | st.integers(min_value=-1, max_value=70000).map(str)
    | st.integers(min_value=10**18, max_value=10**40).map(str)
    | st.sampled_from(["", "443", "0443", "3000", "x", "+1", "\u0661", "\u00b2", "443:443", " 1"])
    | tricky_text
)
userinfo = st.none() | st.sampled_from(["", "user", "user:pw", "evil.com\\", "a@b"]) | tricky_text
schemes = st.sampled_from(["https", "http", "HTTPS", "ftp", "javascript", "", "https:"])
separators = st.sampled_from(["://", "://", ":/", ":", "//", ":\\\\", ":///"])


@st.composite
def _assembled_urls(draw: st.DrawFn) -> str:
    url = draw(schemes) + draw(separators)
    info = draw(userinfo)
    if info is not None:
        url += info + "@"
    url += draw(hosts)
    port = draw(ports)
    if port is not None:
        url += ":" + port
    url += draw(st.sampled_from(["", "/", "/welcome", "/café", "/%C3%A9", "/100%", "/a/../b"])) + draw(
        st.sampled_from(["", "/"]) | tricky_text
    )
    if draw(st.booleans()):
        url += "?" + draw(st.sampled_from(["", "q=1", "q=é&r=%zz"]) | tricky_text)
    if draw(st.booleans()):
        url += "#" + draw(st.sampled_from(["", "top", "節"]) | tricky_text)
    return url


redirect_urls = (
    _assembled_urls()
    | st.sampled_from(
        [
            "https://app.example.com/welcome",
            "https://[x/",
            "https://app.example.com]/",
            "http://[::1",
            "https://app.example.com\uff0fevil.com/",
            "https://app.example.com/café",
            "https://app.example.com:99999/",
        ]
    )
    | st.text(max_size=60)
)

# JSON values of every type (for a field that expects one type), huge numbers included.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([10**30, -(10**30), 2**63, 2**64 + 1])
    | st.floats()
    | st.text(max_size=40)
    | tricky_text
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
)
