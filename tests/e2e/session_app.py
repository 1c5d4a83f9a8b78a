"""An application that signs in with ``session.js``, on its own origin, and the local stack it uses.

The application origin (``http://127.0.0.1:<port>``) hosts the seed's own accept page ported to
``session.js`` (``/accept-token``) and an application page (``/app``). Ports do not change the site,
so that origin is *same-site* with the stack (``http://127.0.0.1:<other port>``): SameSite=Lax
cookies flow with a credentialed ``fetch``, and the stack allows the origin through
``LOCAL_PARAMETER_AllowedRedirectOrigins``. Session tokens live ``TOKEN_LIFETIME_S`` on this stack
(``LOCAL_PARAMETER_SessionTokenLifetimeSeconds``).

``app_site`` and ``stack`` are module-scoped fixtures: a test module binds them
(``app_site = session_app.app_site``) and gets its own origin and stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.sites import Site

TOKEN_LIFETIME_S = 12

# The seed's own accept page (Clerk's docs: signIn.create with the ticket, then setActive), ported:
# only the import changed (a script tag and window.SigninLinks instead of @clerk's hooks).
SEED_PAGE = """<!doctype html><title>Accept</title>
<script src="{stack}/session.js"></script>
<p id="status">working</p>
<script>
(async () => {{
  const {{ signIn, setActive }} = window.SigninLinks;
  const ticket = new URL(window.location.href).searchParams.get("token");
  const status = document.getElementById("status");
  try {{
    const signInAttempt = await signIn.create({{ strategy: "ticket", ticket }});
    if (signInAttempt.status === "complete") {{
      await setActive({{ session: signInAttempt.createdSessionId }});
      status.textContent = "signed-in:" + signInAttempt.createdSessionId;
    }}
  }} catch (error) {{
    status.textContent = "error:" + error.status + ":" + error.code;
  }}
}})();
</script>"""

# An application page: shows who is signed in, follows session changes, signs out with a button.
APP_PAGE = """<!doctype html><title>App</title>
<script src="{stack}/session.js"></script>
<p id="who">loading</p><button id="out">Sign out</button>
<script>
const who = document.getElementById("who");
const show = (session) => {{ who.textContent = session ? "session:" + session.id : "signed-out"; }};
SigninLinks.addListener(({{ session }}) => show(session));
SigninLinks.load().then(show);
document.getElementById("out").addEventListener("click", () => SigninLinks.signOut());
</script>"""


@pytest.fixture(scope="module")
def app_site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture(scope="module")
def stack(app_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    env = {
        "LOCAL_PARAMETER_AllowedRedirectOrigins": app_site.origin,
        "LOCAL_PARAMETER_SessionTokenLifetimeSeconds": str(TOKEN_LIFETIME_S),
    }
    with running_stack(tmp_path_factory.mktemp("sessions-browser-stack"), env=env) as handle:
        app_site.pages["/accept-token"] = lambda query: SEED_PAGE.format(stack=handle.base_url)
        app_site.pages["/app"] = lambda query: APP_PAGE.format(stack=handle.base_url)
        yield handle


def sign_in_on_the_apps_page(context: Any, stack: LocalStackHandle, app_site: Site, user_id: str) -> str:
    """Open a fresh link on the application's accept page; the session id it signed in to."""
    minted = stack.mint(user_id)
    page = context.new_page()
    page.goto(f"{app_site.origin}/accept-token?token={minted['token']}")
    page.wait_for_function("document.getElementById('status').textContent !== 'working'")
    status = page.locator("#status").inner_text()
    assert status.startswith("signed-in:sess_"), status
    assert stack.status(minted["id"]) == "accepted"
    page.close()
    return status.split(":", 1)[1]
