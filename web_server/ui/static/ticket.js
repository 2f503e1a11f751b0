// Order ticket: suggests symbols as the operator types (the stocks master for a securities
// account, the exchange's markets for a crypto one) and shows the price tick of the symbol at the
// limit price typed. Loaded as a file: the Content-Security-Policy allows no inline script.
// Without it the form still works: "Check the tick" asks the server the same question.
(function () {
  "use strict";
  var form = document.getElementById("ticket");
  if (!form || !window.fetch) { return; }
  var symbol = form.querySelector("input[name=symbol]");
  var price = form.querySelector("input[name=limit_price]");
  var options = document.getElementById("symbol-options");
  var name = document.getElementById("symbol-name");
  var hint = document.getElementById("tick-hint");
  var known = {};
  var searchTimer = null;
  var tickTimer = null;
  var searched = null;

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .catch(function () { return null; });
  }
  function address(base, params) {
    var query = Object.keys(params).map(function (key) {
      return encodeURIComponent(key) + "=" + encodeURIComponent(params[key]);
    }).join("&");
    return base + (base.indexOf("?") < 0 ? "?" : "&") + query;
  }
  function grouped(text) {
    var parts = String(text).split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return parts.join(".");
  }

  function showName() {
    var found = known[symbol.value.trim().toUpperCase()];
    if (name) {
      name.textContent = found ? found.name + " \u00b7 " + found.market +
        (found.tradable ? "" : " \u00b7 not tradable") : "";
    }
  }
  function suggest() {
    var query = symbol.value.trim();
    if (!query || query === searched) { showName(); return; }
    searched = query;
    getJSON(address(form.getAttribute("data-symbols-url"), { q: query })).then(function (body) {
      if (!body || query !== searched) { return; }
      options.textContent = "";
      body.symbols.forEach(function (item) {
        known[item.symbol] = item;
        var option = document.createElement("option");
        option.value = item.symbol;
        option.textContent = item.name + " (" + item.market + ")";
        option.label = item.name + " (" + item.market + ")";
        options.appendChild(option);
      });
      showName();
    });
  }
  function showTick() {
    var code = symbol.value.trim().toUpperCase();
    var limit = price ? price.value.trim() : "";
    if (!code || !/^[0-9]+(\.[0-9]+)?$/.test(limit)) {
      if (hint) { hint.hidden = true; hint.textContent = ""; }
      return;
    }
    getJSON(address(form.getAttribute("data-symbols-url"), { q: code, price: limit }))
      .then(function (body) {
        // A slower answer to an older question must not overwrite a newer one.
        if (!hint || !body || code !== symbol.value.trim().toUpperCase() ||
            limit !== price.value.trim()) { return; }
        var tick = body.tick;
        if (tick === null) {
          hint.textContent = "No tick known for " + code + ".";
        } else {
          hint.textContent = "Tick of " + tick.symbol + " at " + grouped(tick.price) + ": " +
            grouped(tick.tick) + (tick.on_tick ? " (on the tick)" : " (NOT on the tick)");
        }
        hint.hidden = false;
      });
  }
  function later(which, action) {
    if (which === "search") {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(action, 150);
    } else {
      clearTimeout(tickTimer);
      tickTimer = setTimeout(action, 200);
    }
  }

  symbol.addEventListener("input", function () {
    later("search", suggest);
    later("tick", showTick);
  });
  symbol.addEventListener("change", function () { showName(); showTick(); });
  if (price) { price.addEventListener("input", function () { later("tick", showTick); }); }
})();
