"""Every page state in real Chromium (Debian's): accessible (axe-core: no serious or critical
violation), in the reader's language (German left to right, Arabic right to left and mirrored),
branded, inside its CSP, with a margin on a phone, usable at 200% zoom and by keyboard; and the
link email in a 375 px wide client in every language.

The states come from ``local/page_tour.py`` (the tour ``make screenshots`` takes), the renewal's
("Email me a new link" and its answers) included. axe-core is the
npm package pinned in ``tests/e2e/a11y`` (installed with ``npm ci`` by the first test that needs it;
skipped, and said so, where npm is absent).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.page_tour import STATES, Tour
from signin_links.branding import Brand
from signin_links.i18n import LANGUAGES
from signin_links.link_email import EmailTemplates, MintedLink
from tests.e2e.conftest import LocalStackHandle, running_stack
from tests.e2e.npm import npm_ci

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
A11Y = Path(__file__).parent / "a11y"
LOGO_URL = "https://cdn.example.com/acme.svg"
BRAND = {
    "LOCAL_PARAMETER_AcceptAutoSubmit": "false",  # the tour stops on the form
    "LOCAL_PARAMETER_AppName": "Acme",
    "LOCAL_PARAMETER_BrandColor": "#6d28d9",
    "LOCAL_PARAMETER_LogoUrl": LOGO_URL,
    "LOCAL_PARAMETER_SupportUrl": "https://acme.example/help",
    "LOCAL_PARAMETER_SupportEmail": "help@acme.example",
    # Delivery by email stays on (the local default): the dead link's page offers a new link.
}
PHONE = {"width": 390, "height": 844}
ZOOMED = {"width": 640, "height": 400}  # a 1280 px window at 200%


def axe_script() -> Path:
    """axe-core's browser build, installed from tests/e2e/a11y/package-lock.json if needed."""
    script = A11Y / "node_modules" / "axe-core" / "axe.min.js"
    npm_ci(A11Y, script, why="axe-core, tests/e2e/a11y")
    return script


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    with running_stack(tmp_path_factory.mktemp("pages-stack"), env=BRAND) as handle:
        yield handle


@pytest.fixture
def tour(stack: LocalStackHandle) -> Tour:
    tour = Tour.of(stack.state)
    assert tour.logo_url == LOGO_URL and tour.emails is not None
    return tour


def serious_violations(page: Any, script: Path) -> list[str]:
    page.add_script_tag(path=str(script))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
              .map(v => ({id: v.id, impact: v.impact, targets: v.nodes.map(n => n.target.join(" "))}))"""
    )
    return [f"{v['id']} ({v['impact']}) at {v['targets']}" for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("language", ["en", "ar", "ja"])
def test_every_state_passes_axe_core(tour: Tour, browser: Any, language: str) -> None:
    script = axe_script()
    context = tour.context(browser, language, bypass_csp=True)  # axe is injected as an inline script
    found: dict[str, list[str]] = {}

    def check(state: str, page: Any) -> None:
        assert page.locator("html").get_attribute("lang") == language, state
        found[state] = serious_violations(page, script)

    tour.walk(context, check)
    context.close()
    assert list(found) == list(STATES)
    assert found == {state: [] for state in STATES}


def test_no_state_breaks_its_csp_and_the_logo_loads(tour: Tour, browser: Any) -> None:
    context = tour.context(browser, "de")
    refused: list[str] = []
    logos: dict[str, bool] = {}

    def check(state: str, page: Any) -> None:
        logo = page.locator("header.brand img")
        logos[state] = bool(logo.evaluate("img => img.complete && img.naturalWidth > 0"))
        assert logo.get_attribute("alt") == "Acme", state

    def watch(page: Any) -> None:
        page.on("console", lambda message: refused.append(message.text) if "Content Security" in message.text else None)

    context.on("page", watch)
    tour.walk(context, check)
    context.close()
    assert refused == []
    assert logos == dict.fromkeys(STATES, True)


def box(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.locator(selector).first.bounding_box()
    return found


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_on_a_phone_the_card_keeps_a_margin_on_each_side(tour: Tour, browser: Any) -> None:
    context = tour.context(browser, "fr", viewport=PHONE, is_mobile=True, device_scale_factor=3, has_touch=True)
    margins: dict[str, tuple[float, float]] = {}

    def check(state: str, page: Any) -> None:
        card = box(page, "main")
        margins[state] = (card["x"], PHONE["width"] - card["x"] - card["width"])
        assert no_horizontal_scroll(page), state

    tour.walk(context, check)
    context.close()
    assert list(margins) == list(STATES)
    assert all(left >= 12 and right >= 12 for left, right in margins.values()), margins


def test_at_200_percent_zoom_everything_fits_and_the_buttons_are_on_screen(tour: Tour, browser: Any) -> None:
    context = tour.context(browser, "de", viewport=ZOOMED, device_scale_factor=2)
    checked: list[str] = []

    def check(state: str, page: Any) -> None:
        assert no_horizontal_scroll(page), state
        for button in page.locator("button").all():
            if button.is_visible():
                edge = button.bounding_box()
                assert edge["x"] >= 0 and edge["x"] + edge["width"] <= ZOOMED["width"], (state, edge)
        checked.append(state)

    tour.walk(context, check)
    context.close()
    assert checked == list(STATES)


def test_the_button_is_reached_by_keyboard_with_a_visible_focus_and_signs_in(
    tour: Tour, browser: Any, stack: LocalStackHandle
) -> None:
    context = tour.context(browser, "en")
    page = context.new_page()
    minted = tour.mint("user_keyboard")
    page.goto(minted["url"])
    page.keyboard.press("Tab")
    focused = page.evaluate(
        """() => { const e = document.activeElement, s = getComputedStyle(e);
                   return {id: e.id, style: s.outlineStyle, width: parseFloat(s.outlineWidth),
                           color: s.outlineColor}; }"""
    )
    assert focused["id"] == "sign-in"
    assert focused["style"] != "none" and focused["width"] >= 2, focused
    assert focused["color"] == "rgb(109, 40, 217)"  # the brand colour: 7.1:1 against the white card
    assert page.locator("#status").get_attribute("aria-live") == "polite"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.locator("#user-id").wait_for()
    assert page.locator("#status").get_attribute("role") == "status"
    assert stack.status(minted["id"]) == "accepted"
    context.close()


@pytest.mark.parametrize(("language", "direction"), [("de", "ltr"), ("ar", "rtl")])
def test_the_page_is_written_and_laid_out_in_the_reader_s_direction(
    tour: Tour, browser: Any, language: str, direction: str
) -> None:
    context = tour.context(browser, language)
    page = context.new_page()
    page.goto(tour.mint("user_dir")["url"])
    assert page.locator("html").get_attribute("dir") == direction
    assert page.locator("main").evaluate("m => getComputedStyle(m).direction") == direction
    heading = page.locator("h1").evaluate(
        """h => { const r = document.createRange(); r.selectNodeContents(h); const t = r.getBoundingClientRect(),
                  c = h.getBoundingClientRect(); return {left: t.left - c.left, right: c.right - t.right}; }"""
    )
    start, end = (heading["left"], heading["right"]) if direction == "ltr" else (heading["right"], heading["left"])
    assert start < 1 < end, heading  # the text starts on the reader's side: the layout is mirrored in Arabic
    expected = {"de": "Anmelden", "ar": "تسجيل الدخول"}[language]
    assert page.locator("h1").inner_text() == expected
    assert page.locator("#sign-in").inner_text() == expected
    context.close()


EMAIL_LINK = "https://links.example.com/accept-token?token=" + "eyJhbGciOiJFZERTQSJ9." + "x" * 300


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_email_renders_in_a_375_px_client(browser: Any, language: str, tmp_path: Path) -> None:
    templates = EmailTemplates.load(
        ROOT / "functions" / "send_link_email" / "templates",
        brand=Brand(app_name="Acme", color="#6d28d9", logo_url=LOGO_URL),
    )
    email = templates.render(
        MintedLink(
            "sit_1", "user_1", EMAIL_LINK, "t", 1_900_000_000_000, "wave", {"locale": language, "first_name": "Ada"}
        )
    )
    context = browser.new_context(viewport={"width": 375, "height": 700})
    context.route(
        LOGO_URL,
        lambda route: route.fulfill(
            content_type="image/svg+xml", body="<svg xmlns='http://www.w3.org/2000/svg' width='120' height='40'/>"
        ),
    )
    page = context.new_page()
    page.set_content(email.html, wait_until="load")
    assert no_horizontal_scroll(page)
    button = box(page, f'a[href="{EMAIL_LINK}"]')
    assert button["x"] >= 8 and button["x"] + button["width"] <= 375 - 8, button
    link_text = box(page, "p[dir=ltr]")
    assert link_text["x"] + link_text["width"] <= 375, link_text
    shot = tmp_path / f"email-{language}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(shot.read_bytes()[16:20], "big") == 375  # the PNG's width
    context.close()


@pytest.mark.parametrize("language", ["en", "ar"])
def test_the_accept_confirmation_page_passes_axe_core(browser: Any, language: str) -> None:
    """The AcceptConfirmation state (a link that waits for a click: tests/e2e/test_browser_confirmation.py
    drives it on a stack) rendered as the function renders it, with the brand, through axe-core."""
    from signin_links.i18n import language as lang_of
    from signin_links.pages import Pages

    pages = Pages(ROOT / "functions" / "accept_token" / "templates", auto_submit=False,
                  brand=Brand(app_name="Acme", color="#6d28d9", logo_url=LOGO_URL))  # fmt: skip
    page_answer = pages.accept("eyJ.eyJ.x", lang_of(language), csrf_token="t", cookies=[], confirm_as="user_ada")
    context = browser.new_context(bypass_csp=True)
    context.route(
        LOGO_URL,
        lambda route: route.fulfill(
            content_type="image/svg+xml", body="<svg xmlns='http://www.w3.org/2000/svg' width='120' height='40'/>"
        ),
    )
    page = context.new_page()
    page.set_content(str(page_answer.body), wait_until="load")
    assert page.locator("#link-user").inner_text() == "user_ada"
    assert serious_violations(page, axe_script()) == []
    context.close()
