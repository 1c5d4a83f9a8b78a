/* signin-links session.js: include it from the accept domain on your own pages:
 *   <script src="https://login.example.com/session.js"></script>
 * It keeps the short-lived __session token fresh (POST /session/refresh with the HttpOnly
 * __refresh cookie), and offers the shapes of Clerk's browser SDK that an accept page uses:
 *   const { signIn, setActive } = window.SigninLinks;
 *   const attempt = await signIn.create({ strategy: "ticket", ticket });
 *   if (attempt.status === "complete") await setActive({ session: attempt.createdSessionId });
 *   const jwt = await SigninLinks.session.getToken();   // send it to your backend
 *   await SigninLinks.signOut({ redirectUrl: "https://app.example.com/" });
 * No eval, no inline styles, no DOM writes: it runs under a strict Content-Security-Policy
 * (script-src listing this file's origin, connect-src listing it too).
 *
 * What an open tab costs (docs/capacity.md): a visible tab refreshes once per token, shortly
 * before it expires (one POST /session/refresh every ~54 s with the default 60 s token); a hidden
 * tab (Page Visibility API) refreshes nothing: it refreshes when it becomes visible again, and only
 * if its token is expired or about to be. load() in a hidden tab waits until the tab is shown;
 * getToken() there answers the token it holds while that token is valid. Timing is measured on
 * this tab's clock from the moment a token arrives (its exp - iat), so a skewed clock changes nothing.
 */
(function () {
  "use strict";
  if (window.SigninLinks) {
    return;
  }
  var current = document.currentScript;
  var here = new URL(current && current.src ? current.src : "session.js", window.location.href);
  var root = here.origin + here.pathname.replace(/\/session\.js$/, "");
  var MARGIN_S = 5; /* refresh at most this long before a token expires (a tenth of its life if shorter) */
  var MAX_RETRY_S = 30; /* a failed refresh (429, 5xx, offline) is retried, backing off up to this */
  var state = {
    token: null,
    staleAt: 0 /* this tab's clock, ms: refresh from here on */,
    expiresAt: 0 /* this tab's clock, ms: the token is no longer valid */,
    session: null,
    timer: null,
    pending: null,
    failures: 0,
  };
  var listeners = [];
  var waitingToBeShown = []; /* load() calls made while the tab was hidden */

  function hidden() {
    return document.visibilityState === "hidden";
  }

  function claims(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) {
        part += "=";
      }
      return JSON.parse(atob(part));
    } catch (error) {
      return null;
    }
  }

  function ClerkAPIError(status, body) {
    var first = body && body.errors && body.errors[0];
    var error = new Error(first ? first.long_message || first.message : "HTTP " + status);
    error.name = "ClerkAPIResponseError";
    error.status = status;
    error.errors = (body && body.errors) || [];
    error.code = first ? first.code : null;
    return error;
  }

  function post(path, body) {
    return fetch(root + path, {
      method: "POST",
      credentials: "include",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return null;
        })
        .then(function (data) {
          return { status: response.status, body: data };
        });
    });
  }

  function notify() {
    listeners.slice().forEach(function (listener) {
      try {
        listener({ session: api.session });
      } catch (error) {
        /* a listener's error is its own */
      }
    });
  }

  function stopTimer() {
    if (state.timer) {
      clearTimeout(state.timer);
    }
    state.timer = null;
  }

  /* The next background refresh, in a visible tab only: at the token's staleAt, or after a
   * failure's backoff. A hidden tab has no timer at all; becoming visible starts it again. */
  function schedule(delayMs) {
    stopTimer();
    if (!state.token || hidden()) {
      return;
    }
    var wait = delayMs === undefined ? state.staleAt - Date.now() : delayMs;
    state.timer = setTimeout(function () {
      state.timer = null;
      backgroundRefresh();
    }, Math.max(0, wait));
  }

  function backgroundRefresh() {
    if (hidden()) {
      return;
    }
    refresh().then(
      function () {
        state.failures = 0;
      },
      function () {
        /* throttled (429), failing (5xx) or offline: try again later, backing off with jitter, so
         * that a wave of tabs does not retry in step; the session itself lives on (its refresh
         * cookie), only this tab's token is late */
        state.failures += 1;
        var backoffS = Math.min(MAX_RETRY_S, Math.pow(2, state.failures));
        schedule(backoffS * (0.5 + Math.random() / 2) * 1000);
      },
    );
  }

  function setToken(jwt) {
    var payload = jwt ? claims(jwt) : null;
    var before = state.session && state.session.id;
    if (!payload || typeof payload.exp !== "number") {
      state.token = null;
      state.staleAt = 0;
      state.expiresAt = 0;
      state.session = null;
      api.session = null;
    } else {
      var now = Date.now();
      var lifetimeS = typeof payload.iat === "number" ? payload.exp - payload.iat : payload.exp - now / 1000;
      var marginS = Math.min(MARGIN_S, lifetimeS / 10);
      state.token = jwt;
      state.expiresAt = now + lifetimeS * 1000;
      /* between 1 and 1.5 margins before expiry: tabs signed in together drift apart */
      state.staleAt = state.expiresAt - marginS * (1 + Math.random() / 2) * 1000;
      if (!state.session || state.session.id !== payload.sid) {
        state.session = { id: payload.sid, userId: payload.sub, getToken: getToken };
      }
      api.session = state.session;
    }
    schedule();
    if ((state.session && state.session.id) !== before) {
      notify();
    }
  }

  function refresh() {
    if (!state.pending) {
      state.pending = post("/session/refresh")
        .then(function (answer) {
          if (answer.status === 200 && answer.body && answer.body.jwt) {
            setToken(answer.body.jwt);
            return state.token;
          }
          if (answer.status === 401) {
            setToken(null); /* signed out, revoked, expired: the cookies are gone too */
            return null;
          }
          throw ClerkAPIError(answer.status, answer.body);
        })
        .finally(function () {
          state.pending = null;
        });
    }
    return state.pending;
  }

  function getToken(options) {
    var skipCache = options && options.skipCache;
    var now = Date.now();
    /* hidden: the token it holds while valid (the refresh waits for the tab to be shown) */
    var limit = hidden() ? state.expiresAt : state.staleAt;
    if (!skipCache && state.token && now < limit) {
      return Promise.resolve(state.token);
    }
    return refresh();
  }

  function load() {
    return refresh().then(function () {
      return api.session;
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (hidden()) {
      stopTimer();
      return;
    }
    if (waitingToBeShown.length) {
      var waiting = waitingToBeShown;
      waitingToBeShown = [];
      load().then(
        function (session) {
          waiting.forEach(function (pair) {
            pair[0](session);
          });
        },
        function (error) {
          waiting.forEach(function (pair) {
            pair[1](error);
          });
        },
      );
      return;
    }
    if (state.token && Date.now() >= state.staleAt) {
      backgroundRefresh();
    } else {
      schedule();
    }
  });

  var api = {
    session: null,
    /* The session from the refresh cookie; a hidden tab asks when it is shown. */
    load: function () {
      if (hidden()) {
        return new Promise(function (resolve, reject) {
          waitingToBeShown.push([resolve, reject]);
        });
      }
      return load();
    },
    getToken: getToken,
    signIn: {
      /* Clerk's signIn.create({strategy: "ticket", ticket}): redeems the link from this page
       * (a credentialed CORS POST /accept-token from an allowed origin). */
      create: function (params) {
        if (!params || params.strategy !== "ticket" || typeof params.ticket !== "string") {
          return Promise.reject(new Error('signIn.create supports {strategy: "ticket", ticket: "..."}'));
        }
        var body = { token: params.ticket };
        if (params.confirmSwitchUser) {
          body.confirm = "switch_user";
        }
        return post("/accept-token", body).then(function (answer) {
          if (answer.status !== 200 || !answer.body) {
            throw ClerkAPIError(answer.status, answer.body);
          }
          setToken(answer.body.session_token);
          return {
            status: answer.body.status,
            createdSessionId: answer.body.created_session_id,
            userId: answer.body.user_id,
            redirectUrl: answer.body.redirect_url,
          };
        });
      },
    },
    /* Clerk's setActive({session}): the cookies already hold the session; keep its token fresh. */
    setActive: function (params) {
      var id = params && (typeof params.session === "string" ? params.session : params.session && params.session.id);
      if (id && state.session && state.session.id === id) {
        schedule();
        return Promise.resolve();
      }
      return refresh().then(function () {});
    },
    signOut: function (options) {
      var redirectUrl = options && options.redirectUrl;
      var body = redirectUrl ? { redirect_url: redirectUrl } : {};
      return post("/sign-out", body).then(function (answer) {
        if (answer.status !== 200) {
          throw ClerkAPIError(answer.status, answer.body);
        }
        setToken(null);
        if (redirectUrl) {
          window.location.assign(redirectUrl);
        }
      });
    },
    addListener: function (listener) {
      listeners.push(listener);
      return function () {
        listeners = listeners.filter(function (item) {
          return item !== listener;
        });
      };
    },
  };
  window.SigninLinks = api;
})();
