// Account page: the page shows the stored holdings snapshot at once; this script then asks the
// gateway to read the broker (POST .../holdings/refresh, the form's own CSRF token) and puts the
// answer in place of #holdings-body, so the page never waits on a slow broker. The "Refresh
// from the broker" button does the same without reloading. Loaded as a file: the
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var form = document.getElementById("holdings-refresh");
  var body = document.getElementById("holdings-body");
  var status = document.getElementById("holdings-status");
  if (!form || !body || !window.fetch) { return; }
  var button = form.querySelector("button[type=submit]");
  // Longer than the broker's timeout and a token issuance together; the request is bounded on
  // the server too, this only stops the page from showing "Refreshing…" forever.
  var LIMIT_MS = 60000;
  var running = false;

  function say(text) { if (status) { status.textContent = text; } }

  function refresh() {
    if (running) { return; }
    running = true;
    if (button) { button.disabled = true; }
    say("Refreshing from the broker\u2026");
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, LIMIT_MS) : null;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      // A redirect means the session ended (the login page): never put that in the table.
      if (response.redirected) { throw new Error("signed out: reload the page"); }
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      body.innerHTML = html;
      body.setAttribute("data-refreshed", "yes");
      var failed = body.querySelector(".broker-error");
      say(failed ? "The broker could not be read: showing the stored snapshot." : "Up to date.");
    }).catch(function (error) {
      say("Refresh failed (" + (error && error.name === "AbortError" ? "no answer" : error.message) +
        "): showing the stored snapshot.");
    }).then(function () {
      if (timer) { clearTimeout(timer); }
      running = false;
      if (button) { button.disabled = false; }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    refresh();
  });
  refresh();
}());
