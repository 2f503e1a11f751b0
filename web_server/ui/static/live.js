// Live pages: follow the console's event streams and update what the page shows without
// reloading. Loaded as a file: the Content-Security-Policy allows no inline script.
//
// - An order's page (#live, data-order-id): its status, filled quantity, average price, fees,
//   taxes, fills and timeline, from the order event stream (/ui/events).
// - The orders list (#live-orders): each row (tr[data-order-id]) gets its status, filled
//   quantity and average price; on the first page, a new order is added at the top once the
//   server says it matches the list's filters (data-row-url, a row of HTML or 204).
// - Token badges: any element carrying data-live-token="<account id>" is redrawn with the
//   account's token state from the token stream, whose address an element of the page carries
//   in data-live-tokens-url (/ui/events/tokens).
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var TYPES = ["accepted", "submitted", "rejected", "partially_filled", "filled",
    "cancel_requested", "cancelled", "expired", "unknown", "reconciled", "fill"];
  var OPEN = ["PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING", "UNKNOWN"];

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

  function follow(url, types, handler) {
    var source = new EventSource(url);
    source.onopen = function () { if (state) { state.textContent = "Live: updates arrive without reloading."; } };
    source.onerror = function () { if (state) { state.textContent = "Live updates paused; reconnecting\u2026"; } };
    types.forEach(function (type) { source.addEventListener(type, handler); });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // -- an order's page
  var root = document.getElementById("live");
  var orderId = root && root.getAttribute("data-order-id");
  var currency = root ? root.getAttribute("data-currency") || "" : "";
  var seen = {};
  document.querySelectorAll("#timeline-body tr[data-event-id]").forEach(function (row) {
    seen[row.getAttribute("data-event-id")] = true;
  });

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

  if (root && orderId) { follow(root.getAttribute("data-events-url"), TYPES, apply); }

  // -- the orders list
  var list = document.getElementById("live-orders");
  var body = document.getElementById("orders-body");
  var asked = {};
  var ZERO = "00000000-0000-0000-0000-000000000000";

  function updateRow(row, order) {
    var rowCurrency = row.getAttribute("data-currency") || "";
    var status = row.querySelector("[data-live=status]");
    if (order.status && status) {
      var badge = document.createElement("span");
      badge.className = "status status-" + order.status.toLowerCase();
      badge.textContent = order.status;
      status.textContent = "";
      status.appendChild(badge);
    }
    var filled = row.querySelector("[data-live=filled]");
    if (filled && order.filled_quantity !== undefined) { filled.textContent = number(order.filled_quantity); }
    var average = row.querySelector("[data-live=average]");
    if (average && order.average_fill_price) { average.textContent = money(order.average_fill_price, rowCurrency); }
  }
  var since = list ? Date.parse(list.getAttribute("data-since") || "") : NaN;
  // Rows are asked for one at a time, in the events' order (so they stack newest on top), and
  // at most a page of them: past that, a burst of new orders is for a reload to show.
  var MAX_ADDED = 50;
  var added = 0;
  var queue = [];
  var busy = false;
  function addRow(data) {
    var template = list.getAttribute("data-row-url");
    var order = data.order || {};
    // Only orders created since the page was drawn: an older one belongs further down.
    if (!template || !(Date.parse(order.created_at) >= since)) { return; }
    // Asked again when the status changes: a status filter may match it only now.
    if (asked[data.order_id] === order.status) { return; }
    asked[data.order_id] = order.status;
    queue.push({ id: data.order_id, url: template.replace(ZERO, data.order_id) });
    pump();
  }
  function insert(html) {
    var holder = document.createElement("tbody");
    holder.innerHTML = html.trim();  // the server's own template, escaped by Jinja
    var row = holder.querySelector("tr");
    if (!row) { return; }
    // An event that came while the row was on its way asked for it again: the later answer is
    // the fresher one.
    var older = body.querySelector('tr[data-order-id="' + row.getAttribute("data-order-id") + '"]');
    if (older) { body.replaceChild(row, older); return; }
    body.insertBefore(row, body.firstChild);
    added += 1;
    var table = document.getElementById("orders-table");
    if (table) { table.hidden = false; }
    var none = document.getElementById("no-orders");
    if (none) { none.hidden = true; }
  }
  function pump() {
    if (busy || !queue.length) { return; }
    if (added >= MAX_ADDED) {
      queue = [];
      if (state) { state.textContent = "More new orders arrived: reload to see them all."; }
      return;
    }
    busy = true;
    var next = queue.shift();
    fetch(next.url, { credentials: "same-origin" })
      .then(function (response) { return response.status === 200 ? response.text() : ""; })
      .then(function (html) { if (html) { insert(html); } })
      .catch(function () { delete asked[next.id]; })  // the order's next event asks again
      .then(function () { busy = false; pump(); });
  }
  function applyToList(event) {
    var data = JSON.parse(event.data);
    var row = body.querySelector('tr[data-order-id="' + data.order_id + '"]');
    if (row) { updateRow(row, data.order || {}); } else { addRow(data); }
  }
  if (list && body) { follow(list.getAttribute("data-events-url"), TYPES, applyToList); }

  // -- token badges
  var badges = document.querySelectorAll("[data-live-token]");
  var tokens = document.querySelector("[data-live-tokens-url]");
  function applyToken(event) {
    var token = JSON.parse(event.data);
    document.querySelectorAll('[data-live-token="' + token.account_id + '"]').forEach(function (holder) {
      var badge = document.createElement("span");
      badge.className = "badge badge-" + token.state;
      badge.title = "Token " + token.state;
      badge.textContent = token.state;
      holder.textContent = "";
      holder.appendChild(badge);
      holder.setAttribute("data-token-state", token.state);
      if (token.last_error) {
        var error = document.createElement("small");
        error.className = "token-error";
        error.textContent = "last error: " + token.last_error;
        holder.appendChild(document.createTextNode(" "));
        holder.appendChild(error);
      }
    });
  }
  if (badges.length && tokens) { follow(tokens.getAttribute("data-live-tokens-url"), ["token"], applyToken); }
})();
