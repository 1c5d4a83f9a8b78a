(function () {
  "use strict";
  var form = document.getElementById("accept");
  if (!form) {
    return;
  }
  var input = form.elements.namedItem("token");
  var status = document.getElementById("status");
  var button = document.getElementById("sign-in");
  if (!input.value && window.location.hash) {
    var token = new URLSearchParams(window.location.hash.slice(1)).get("token");
    if (token) {
      input.value = token;
    }
  }
  if (!input.value) {
    return; /* "No token provided." stays on the page */
  }
  /* The confirmation page (AcceptConfirmation) of a #token= link: name the link's user (its uid claim). */
  var who = document.getElementById("link-user");
  if (who && !who.textContent) {
    try {
      var part = input.value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) {
        part += "=";
      }
      var uid = JSON.parse(atob(part)).uid;
      who.textContent = typeof uid === "string" ? uid : "";
    } catch (error) {
      /* not a readable token: the server says so when the form is sent */
    }
  }
  form.hidden = false;
  function working() {
    status.textContent = form.getAttribute("data-working");
    button.disabled = true;
  }
  form.addEventListener("submit", working);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      button.disabled = false; /* back from the page cache: let the user click again */
    }
  });
  if (form.getAttribute("data-auto-submit") === "true") {
    working();
    form.submit();
  }
})();
