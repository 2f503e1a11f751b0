// Live order page: follows the console's event stream (/ui/events) and updates the order's
// status, filled quantity, fills and timeline without reloading. Loaded as a file: the
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || !window.EventSource) { return; }
  var orderId = root.getAttribute("data-order-id");
  var currency = root.getAttribute("data-currency") || "";
  var state = document.getElementById("live-state");
  var TYPES = ["accepted", "submitted", "rejected", "partially_filled", "filled",
    "cancel_requested", "cancelled", "expired", "unknown", "reconciled", "fill"];
  var OPEN = ["PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING", "UNKNOWN"];
  var seen = {};
  document.querySelectorAll("#timeline-body tr[data-event-id]").forEach(function (row) {
    seen[row.getAttribute("data-event-id")] = true;
  });

  function grouped(text) {
    var parts = String(text).split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    if (parts.length > 1) {
      parts[1] = parts[1].replace(/0+$/, "");
      if (!parts[1]) { parts.pop(); }
    }
    return parts.join(".");
  }
  function number(value) { return value === null || value === undefined ? "\u2014" : grouped(value); }
  function money(value, code) {
    if (value === null || value === undefined) { return "\u2014"; }
    var text = code === "KRW" ? String(Math.round(Number(value))) : String(value);
    return grouped(text) + (code ? " " + code : "");
  }
  var seoul = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  function timeCell(iso) {
    var cell = document.createElement("td");
    var moment = new Date(iso);
    var time = document.createElement("time");
    time.setAttribute("datetime", moment.toISOString());
    time.setAttribute("title", moment.toISOString().replace("T", " ").slice(0, 19) + " UTC");
    time.textContent = seoul.format(moment) + " KST";
    cell.appendChild(time);
    return cell;
  }
  function cell(text, tag, klass) {
    var element = document.createElement(tag || "td");
    element.textContent = text;
    if (klass) { element.className = klass; }
    return element;
  }
  function setText(id, text) {
    var element = document.getElementById(id);
    if (element) { element.textContent = text; }
  }

  function apply(event) {
    var data = JSON.parse(event.data);
    if (data.order_id !== orderId || seen[String(data.id)]) { return; }
    seen[String(data.id)] = true;
    var order = data.order || {};
    if (order.status) {
      var badge = document.getElementById("order-status");
      if (badge) {
        badge.textContent = order.status;
        badge.className = "status status-" + order.status.toLowerCase();
      }
      setText("order-status-text", order.status);
      if (OPEN.indexOf(order.status) < 0) {
        var actions = document.getElementById("actions");
        if (actions) { actions.hidden = true; }
      }
    }
    if (order.filled_quantity !== undefined) { setText("order-filled", number(order.filled_quantity)); }
    if (order.average_fill_price) { setText("order-average", money(order.average_fill_price, currency)); }
    var charges = order.fee_currency || currency;
    if (order.fee_total !== undefined) { setText("order-fees", money(order.fee_total, charges)); }
    if (order.tax_total !== undefined) { setText("order-taxes", money(order.tax_total, charges)); }
    var timeline = document.getElementById("timeline-body");
    if (timeline) {
      var row = document.createElement("tr");
      row.setAttribute("data-event-id", String(data.id));
      row.appendChild(cell(String(data.id)));
      row.appendChild(timeCell(data.ts));
      var kind = cell(data.type, "th");
      kind.setAttribute("scope", "row");
      row.appendChild(kind);
      row.appendChild(cell(order.status || ""));
      row.appendChild(cell(number(order.filled_quantity), "td", "num"));
      row.appendChild(cell(data.fill ? number(data.fill.quantity) + " @ " + money(data.fill.price, currency) : ""));
      timeline.appendChild(row);
      var none = document.getElementById("no-events");
      if (none) { none.hidden = true; }
    }
    var fills = document.getElementById("fills-body");
    if (data.fill && fills) {
      var fill = document.createElement("tr");
      fill.appendChild(timeCell(data.fill.ts || data.ts));
      fill.appendChild(cell(number(data.fill.quantity), "td", "num"));
      fill.appendChild(cell(money(data.fill.price, currency), "td", "num"));
      fill.appendChild(cell(money(data.fill.fee, charges), "td", "num"));
      fill.appendChild(cell(money(data.fill.tax, charges), "td", "num"));
      fill.appendChild(cell(data.fill.broker_fill_id || ""));
      fills.appendChild(fill);
      var noFills = document.getElementById("no-fills");
      if (noFills) { noFills.hidden = true; }
    }
  }

  var source = new EventSource(root.getAttribute("data-events-url"));
  source.onopen = function () { if (state) { state.textContent = "Live: updates arrive without reloading."; } };
  source.onerror = function () { if (state) { state.textContent = "Live updates paused; reconnecting\u2026"; } };
  TYPES.forEach(function (type) { source.addEventListener(type, apply); });
  window.addEventListener("pagehide", function () { source.close(); });
})();
