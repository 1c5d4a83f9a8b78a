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
 */
(function () {
  "use strict";
  if (window.SigninLinks) {
    return;
  }
  var current = document.currentScript;
  var here = new URL(current && current.src ? current.src : "session.js", window.location.href);
  var root = here.origin + here.pathname.replace(/\/session\.js$/, "");
  var MARGIN_S = 10; /* refresh this long before the token expires */
  var state = { token: null, exp: 0, session: null, timer: null, pending: null };
  var listeners = [];

  function nowS() {
    return Date.now() / 1000;
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

  function schedule() {
    if (state.timer) {
      clearTimeout(state.timer);
    }
    state.timer = null;
    if (!state.token) {
      return;
    }
    var wait = Math.max(1, state.exp - nowS() - MARGIN_S);
    state.timer = setTimeout(function () {
      refresh().catch(function () {
        /* offline: the next getToken() tries again */
      });
    }, wait * 1000);
  }

  function setToken(jwt) {
    var payload = jwt ? claims(jwt) : null;
    var before = state.session && state.session.id;
    if (!payload) {
      state.token = null;
      state.exp = 0;
      state.session = null;
      api.session = null;
    } else {
      state.token = jwt;
      state.exp = payload.exp;
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
    if (!skipCache && state.token && state.exp - nowS() > MARGIN_S) {
      return Promise.resolve(state.token);
    }
    return refresh();
  }

  var api = {
    session: null,
    load: function () {
      return refresh().then(function () {
        return api.session;
      });
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
