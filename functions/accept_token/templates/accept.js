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
