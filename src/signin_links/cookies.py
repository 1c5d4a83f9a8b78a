"""The names of the cookies the service sets, and which refresh cookie a deployment uses.

Constants only (no imports): ``http.py`` builds the cookies, ``wire.py`` reads them, and the mint
function, which imports ``http.py``, pulls in nothing more (no PyJWT, no cryptography).

* ``__session``: Clerk's name for the short-lived session JWT (kept: Clerk's SDKs read it).
* ``__Host-refresh`` when ``SessionCookieDomain`` is empty: ``Secure``, ``Path=/``, no ``Domain``,
  so no other host (a sibling subdomain) can set, overwrite or shadow it (cookie tossing).
  ``__Secure-refresh`` when ``SessionCookieDomain`` is set: a server-rendered app on that domain
  must receive it, which ``__Host-`` forbids; ``Secure`` still keeps plain-HTTP hosts out.
* ``__refresh``: the name earlier versions used, never read any more; cleared on sign-out and on a
  refused refresh so that browsers drop it.
* ``__Host-csrf``: the nonce the accept function's forms are bound to (``csrf.py``).
"""

from __future__ import annotations

SESSION = "__session"
REFRESH_HOST_ONLY = "__Host-refresh"
REFRESH_DOMAIN = "__Secure-refresh"
LEGACY_REFRESH = "__refresh"
REFRESH_NAMES = (REFRESH_HOST_ONLY, REFRESH_DOMAIN, LEGACY_REFRESH)  # every name a refresh cookie had
CSRF = "__Host-csrf"
CSRF_LIFETIME_SECONDS = 3600  # a form left open longer must be reloaded (browsers without Fetch Metadata)


def refresh_cookie_name(cookie_domain: str) -> str:
    """The refresh cookie's name for a ``SessionCookieDomain`` (empty: host-only)."""
    return REFRESH_DOMAIN if cookie_domain else REFRESH_HOST_ONLY
