"""Every word a person reads on the pages and in the emails, in English (the source language).

Each text is a gettext message id: ``i18n.Language.text`` looks it up in the reader's catalogue
(``locale/<ll_CC>/LC_MESSAGES/signin_links.po``). ``make catalogues`` extracts them from this
module (the ``N_`` calls) into ``locale/signin_links.pot`` and merges them into every language;
``tests/unit/test_catalogues.py`` fails while a language lacks one, or while a translation's
``{placeholders}`` differ from the English ones. The /v1 API's error messages are not here: they
stay English, as Clerk's.
"""

from __future__ import annotations


def N_(message: str) -> str:  # gettext's name for "mark for translation"
    """Marks ``message`` for extraction; the translation happens when a page or email is rendered."""
    return message


# --- The accept page ------------------------------------------------------------------------------
SIGN_IN = N_("Sign in")
# Translators: {button} is the text of the button, "Sign in" translated.
SELECT_TO_CONTINUE = N_("Select \u201c{button}\u201d to continue.")
NO_TOKEN = N_("No token provided.")
NO_TOKEN_HINT = N_("Open the whole link from your email in this browser.")
SIGNING_IN = N_("Signing you in...")
SIGNED_IN = N_("Signed in")
# Translators: {user_id} is the id of the account, such as user_2x9Ab.
SIGNED_IN_AS = N_("Signed in as {user_id}")
CONTINUE = N_("Continue")
# Translators: {title} is the page's own title, {app_name} the application's name.
TITLE_WITH_APP = N_("{title} \u2013 {app_name}")
LOGO = N_("Logo")
ERROR_CODE = N_("Error code:")

# --- Another user is signed in here ------------------------------------------------------------------
SWITCH_ACCOUNTS = N_("Switch accounts?")
# Translators: both placeholders are account ids, shown in bold.
SWITCH_WHO = N_("This browser is signed in as {signed_in_user}. This link signs in {link_user}.")
# Translators: {signed_in_user} is the account id that stays signed in.
SWITCH_WARNING = N_(
    "Continue only if you asked for this link. Otherwise close this page: you stay signed in as {signed_in_user}."
)
# Translators: the button; {link_user} is the account id the link signs in.
SIGN_IN_AS = N_("Sign in as {link_user}")

# --- AcceptConfirmation: a link that waits for a click ---------------------------------------------
# Translators: {link_user} is the account id the link signs in, shown in bold.
CONFIRM_SIGN_IN_WHO = N_("This link signs you in as {link_user}.")
CONFIRM_SIGN_IN_WARNING = N_("Continue only if you asked for this link.")

# --- Sign-out ---------------------------------------------------------------------------------------
SIGN_OUT = N_("Sign out")
SIGN_OUT_QUESTION = N_("Sign out of this browser?")
SIGNED_OUT = N_("Signed out")
SIGNED_OUT_STATUS = N_("You are signed out.")

# --- Dead links and other errors ------------------------------------------------------------------
LINK_INVALID = N_("This sign-in link is not valid")
LINK_INVALID_WHY = N_(
    "The link is incomplete or was not issued by this site. Make sure you opened the whole link from the email."
)
LINK_REDIRECT_NOT_ALLOWED_WHY = N_("This link leads to a destination that is no longer allowed.")
LINK_EXPIRED = N_("This sign-in link has expired")
LINK_EXPIRED_WHY = N_("Sign-in links only work for a limited time, and this one is past it.")
LINK_USED = N_("This sign-in link was already used")
LINK_USED_WHY = N_("Each sign-in link works once, and this one has already signed someone in.")
LINK_REVOKED = N_("This sign-in link was cancelled")
LINK_REVOKED_WHY = N_("The site that sent this link has withdrawn it.")
ASK_FOR_NEW_LINK = N_("Ask for a new sign-in link.")
REQUEST_REFUSED = N_("Request refused")
REQUEST_REFUSED_WHY = N_("This request came from another site that is not allowed to make it.")
REQUEST_INVALID = N_("Something is wrong with this request")
REQUEST_INVALID_WHY = N_("The page could not read what was sent. Open the link from your email again.")
PAGE_NOT_FOUND = N_("Page not found")
PAGE_NOT_FOUND_WHY = N_("There is nothing at this address.")
UNAVAILABLE = N_("Temporarily unavailable")
UNAVAILABLE_WHY = N_("The service could not finish your request just now.")
TRY_AGAIN = N_("Please try again in a moment.")
# Translators: the text of a link to the application's help page.
CONTACT_SUPPORT = N_("Contact support")
# Translators: {support} is a link: "Contact support" or an email address.
NEED_HELP = N_("Need help? {support}")

# --- A way back from a dead link ------------------------------------------------------------------
EMAIL_NEW_LINK = N_("Email me a new link")
NEW_LINK_SENDING = N_("A new link is on its way")
NEW_LINK_SENDING_WHY = N_(
    "If this link was sent to you by email, a new one is going to the same address. It can take a few minutes."
)
NEW_LINK_SENT = N_("A new link was already sent")
NEW_LINK_SENT_WHY = N_("A new link for this one has already been sent. Check your inbox and your spam folder.")
NEW_LINK_REQUESTED = N_("Your request was passed on")
# Translators: {app_name} is the application's name, or "the site" (also translated) without one.
NEW_LINK_REQUESTED_WHY = N_("If this link was sent to you, {app_name} can send you a new one.")
THE_SITE = N_("the site")

# --- The link email ------------------------------------------------------------------------------
EMAIL_SUBJECT = N_("Your sign-in link")
# Translators: {app_name} is the application's name.
EMAIL_SUBJECT_WITH_APP = N_("Your sign-in link for {app_name}")
# Translators: {name} is the reader's first name.
EMAIL_GREETING_NAME = N_("Hello {name},")
EMAIL_GREETING = N_("Hello,")
EMAIL_INTRO = N_("Sign in with one click:")
# Translators: {app_name} is the application's name.
EMAIL_INTRO_WITH_APP = N_("Sign in to {app_name} with one click:")
EMAIL_INTRO_RENEWED = N_("Here is the new sign-in link you asked for. Sign in with one click:")
EMAIL_PASTE = N_("Or paste this link into your browser:")
# Translators: {expires_at} is a date and time such as 2026-12-01 14:00 UTC.
EMAIL_EXPIRY = N_("The link works once and expires on {expires_at}.")
EMAIL_IGNORE = N_("If you did not ask for it, you can ignore this email.")
