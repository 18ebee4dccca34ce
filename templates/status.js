// The status page's script: it filters as you type and turns the pages through the paged API
// (/api/v1/connections?limit=N&cursor=C&state=&label=&q=), and every few seconds asks only for
// what changed (?changed_since=TOKEN): a row it has is replaced by name, a row that moved is
// put in its place, a row that left is taken out, and the totals are the server's. A token the
// server did not issue (a restart, another replica) answers 410: the page then reloads its
// page in full. A row's details (the hint, the probe times, the 30-day strip, the state
// changes) are fetched when opened. Text is only ever set with textContent: nothing from
// Jira or the configuration becomes markup here. Without this script the page is complete as
// the server rendered it: the form filters and the links page on the server.
(function () {
  "use strict";
  var body = document.body;
  var period = Math.max(1, Number(body.dataset.refresh) || 15) * 1000;
  var asOf = document.getElementById("as-of");
  var note = document.getElementById("refresh-note");
  var stale = document.getElementById("stale");
  var pause = document.getElementById("pause");
  var tbody = document.getElementById("rows");
  var pager = document.getElementById("pager");
  var form = document.getElementById("filters");
  var DAYS = 30;
  var SYMBOLS = { valid: "✔", invalid: "✖", expired: "◷", locked: "⊠", forbidden: "⊘", unknown: "?" };
  var RANKS = { locked: 0, expired: 1, invalid: 2, forbidden: 3, unknown: 4, valid: 6 };
  var WORST = ["locked", "expired", "invalid", "forbidden", "valid"];
  var view = {
    limit: Number(pager.dataset.limit) || 50,
    pageRows: Number(pager.dataset.pageRows) || 50,
    cursor: pager.dataset.cursor || "",
    next: pager.dataset.next || "",
    offset: Math.max(0, (Number(pager.dataset.from) || 1) - 1),
    changes: pager.dataset.changes,
    generation: 0,
  };
  var refreshParam = new URLSearchParams(location.search).get("refresh");
  var paused = false;
  var failing = false;
  var answeredAt = new Date(asOf.getAttribute("datetime"));

  function span(seconds) {
    var s = Math.abs(Math.round(seconds));
    if (s >= 2 * 86400) return Math.floor(s / 86400) + " days";
    if (s >= 7200) return Math.floor(s / 3600) + " h";
    if (s >= 120) return Math.floor(s / 60) + " min";
    return s + " s";
  }
  function relative(iso, now) {
    var delta = (new Date(iso) - now) / 1000;
    if (Math.round(delta) === 0) return "now";
    return delta > 0 ? "in " + span(delta) : span(delta) + " ago";
  }
  function countdown(at, never, now) {
    if (at) {
      var delta = (new Date(at) - now) / 1000;
      return delta > 0 ? "in " + span(delta) : "expired " + span(delta) + " ago";
    }
    return never ? "never" : "unknown";
  }
  function utc(date) {
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }
  function el(tag, attributes, text) {
    var element = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { element.setAttribute(name, attributes[name]); });
    if (text !== undefined) element.textContent = text;
    return element;
  }
  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  // The server's order: worst first, then by name (code point order, as Rust compares).
  function rankOf(c) {
    return c.state === "valid" && c.rotation_due ? 5 : RANKS[c.state];
  }
  function compareNames(a, b) {
    var x = Array.from(a), y = Array.from(b);
    for (var i = 0; i < Math.min(x.length, y.length); i++) {
      var d = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (d) return d;
    }
    return x.length - y.length;
  }
  function compareKeys(a, b) {
    return a.rank !== b.rank ? a.rank - b.rank : compareNames(a.name, b.name);
  }
  function keyOfRow(row) {
    return { rank: Number(row.dataset.rank), name: row.dataset.connection };
  }
  function keyOfCursor(cursor) {
    var dot = cursor.indexOf(".");
    return { rank: Number(cursor.slice(0, dot)), name: cursor.slice(dot + 1) };
  }
  function rows() {
    return Array.prototype.slice.call(tbody.querySelectorAll("tr[data-connection]"));
  }

  function account(c) {
    if (c.account) return c.account;
    if (c.login_account) return c.login_account.slice(c.login_account.indexOf(" ") + 1);
    return "-";
  }
  function notes(c) {
    var found = [];
    if (c.never_expires === true) found.push("policy: the token never expires; create tokens with an expiry");
    if (c.expiry_note) found.push("expiry: " + c.expiry_note);
    if (c.login_account && c.shares_login_with) {
      found.push(c.shares_login_with.length
        ? "login account: " + c.login_account + ", shared with " + c.shares_login_with.join(", ")
        : "login account: " + c.login_account);
    }
    if (c.reason === null && c.owned_by_replica !== undefined) {
      found.push("owned by replica " + c.owned_by_replica + ": it probes this login account, this replica does not");
    }
    return found;
  }
  function pendingText(c, now) {
    return c.pending_reason
      ? "pending: " + c.pending_reason + " since " + relative(c.pending_since, now).replace(/ ago$/, "") + ", to be confirmed"
      : "";
  }
  function nextText(c, now) {
    if (c.paused) return "stopped (" + c.paused + ")";
    return c.next_probe_at ? relative(c.next_probe_at, now) : "-";
  }

  // The row of connection c, as the server renders it (page/row.rs, templates/status.html).
  function buildRow(c, now) {
    var reason = c.reason || "not probed yet";
    var row = el("tr", { "data-connection": c.name, "data-state": c.state, "data-reason": reason, "data-rank": String(rankOf(c)) });
    var name = el("td", { "data-label": "Connection" });
    name.appendChild(el("strong", {}, c.name));
    row.appendChild(name);
    row.appendChild(el("td", { "data-label": "Product" }, c.product + " " + c.kind + " / " + c.auth));
    row.appendChild(el("td", { "data-label": "Account", class: "account", title: account(c) }, account(c)));
    var state = el("td", { "data-label": "State" });
    state.appendChild(el("span", { class: "badge s-" + c.state, "data-field": "badge" }, SYMBOLS[c.state] + " " + c.state));
    var pending = el("div", { class: "pending", "data-field": "pending" }, pendingText(c, now));
    pending.hidden = !pending.textContent;
    state.appendChild(pending);
    row.appendChild(state);
    var why = el("td", { "data-label": "Reason" });
    why.appendChild(el("code", { "data-field": "reason" }, reason));
    row.appendChild(why);
    var expires = el("td", { "data-label": "Expires", "data-field": "expires", "data-at": c.expires_at || "", "data-never": String(c.never_expires === true) },
      countdown(c.expires_at, c.never_expires === true, now));
    if (c.expires_at) expires.title = c.expires_at;
    if (c.expiry_source) {
      expires.appendChild(document.createTextNode(" "));
      expires.appendChild(el("span", { class: "muted" }, "(" + c.expiry_source + ")"));
    }
    if (c.rotation_due) {
      expires.appendChild(document.createTextNode(" "));
      expires.appendChild(el("span", { class: "rot-due" }, "↻ rotation due"));
    }
    row.appendChild(expires);
    var cell = el("td", { "data-label": "Details" });
    var details = el("details");
    var summary = el("summary", {}, "Details");
    summary.appendChild(el("span", { class: "visually-hidden" }, " of " + c.name));
    details.appendChild(summary);
    var more = el("div", { class: "more" });
    var hint = el("div", { class: "hint", "data-field": "hint" }, c.hint || "");
    hint.hidden = !c.hint;
    more.appendChild(hint);
    notes(c).forEach(function (text) { more.appendChild(el("div", { class: "hint" }, text)); });
    var times = el("div", { class: "times" }, "Last probe: ");
    times.appendChild(el("span", { "data-field": "last", "data-at": c.last_probe_at || "" }, c.last_probe_at ? relative(c.last_probe_at, now) : "never"));
    times.appendChild(document.createTextNode(" · Next probe: "));
    times.appendChild(el("span", { "data-field": "next", "data-at": c.next_probe_at || "", "data-paused": c.paused || "" }, nextText(c, now)));
    more.appendChild(times);
    var labels = Object.keys(c.labels || {});
    if (labels.length) {
      var list = el("div", { class: "labels" });
      labels.forEach(function (key) {
        list.appendChild(el("span", { class: "label" }, key + "=" + c.labels[key]));
        list.appendChild(document.createTextNode(" "));
      });
      more.appendChild(list);
    }
    more.appendChild(el("div", { class: "strip-head" }, "Last " + DAYS + " days"));
    more.appendChild(el("div", { class: "strip", "data-field": "strip", role: "img", "aria-label": "last " + DAYS + " days: loading" }));
    more.appendChild(el("div", { class: "changes-head", "data-field": "changes-head" }, "State changes"));
    more.appendChild(el("ol", { "data-field": "transitions" }));
    details.appendChild(more);
    cell.appendChild(details);
    row.appendChild(cell);
    return row;
  }

  // The 30-day strip, as page/timeline.rs draws it: each UTC day the worst verdict it saw.
  function drawStrip(strip, transitions, current, now) {
    var changes = transitions.slice().reverse(); // oldest first
    var today = new Date(now); today.setUTCHours(0, 0, 0, 0);
    var counts = {}, order = [];
    strip.replaceChildren();
    for (var back = DAYS - 1; back >= 0; back--) {
      var start = new Date(today.getTime() - back * 86400000);
      var end = new Date(start.getTime() + 86400000);
      var before = changes.filter(function (t) { return new Date(t.at) < start; });
      var seen = [before.length ? before[before.length - 1].to : changes.length ? changes[0].from : current];
      changes.forEach(function (t) { var at = new Date(t.at); if (at >= start && at < end) seen.push(t.to); });
      var state = WORST.find(function (s) { return seen.indexOf(s) !== -1; }) || "unknown";
      if (!counts[state]) { counts[state] = 0; order.push(state); }
      counts[state] += 1;
      strip.appendChild(el("span", { class: "d s-" + state, title: start.toISOString().slice(0, 10) + ": " + state }));
    }
    strip.setAttribute("aria-label", "last " + DAYS + " days: " + order.map(function (s) { return counts[s] + " " + s; }).join(", "));
  }

  // Opened details show the connection as it is now: its probe times, hint and history.
  function openDetails(row) {
    var name = row.dataset.connection;
    var base = "/api/v1/connections/" + encodeURIComponent(name);
    Promise.all([
      fetch(base, { cache: "no-store" }).then(function (r) { return r.ok ? r.json() : null; }),
      fetch(base + "/history", { cache: "no-store" }).then(function (r) { return r.ok ? r.json() : null; }),
    ]).then(function (answers) {
      var c = answers[0], history = answers[1], now = new Date();
      if (c) {
        var last = field(row, "last"), next = field(row, "next"), hint = field(row, "hint");
        last.dataset.at = c.last_probe_at || "";
        setText(last, c.last_probe_at ? relative(c.last_probe_at, now) : "never");
        setText(next, nextText(c, now));
        setText(hint, c.hint || "");
        hint.hidden = !c.hint;
      }
      if (history) {
        var list = field(row, "transitions");
        list.replaceChildren();
        history.transitions.forEach(function (change) {
          var item = el("li");
          item.appendChild(el("time", { datetime: change.at }, utc(new Date(change.at))));
          item.appendChild(document.createTextNode(": " + change.from + " → " + change.to + " (" + change.reason + ")"));
          list.appendChild(item);
        });
        setText(field(row, "changes-head"), "State changes (" + history.transitions.length + ")");
        drawStrip(field(row, "strip"), history.transitions, row.dataset.state, now);
      }
    }).catch(function () { /* what the row shows stays */ });
  }
  tbody.addEventListener("toggle", function (event) {
    if (event.target.open) openDetails(event.target.closest("tr"));
  }, true);

  function setTotals(answer) {
    document.querySelectorAll("[data-summary-state]").forEach(function (tile) {
      setText(tile.querySelector(".n"), String(answer.totals[tile.dataset.summaryState] || 0));
    });
    var rot = document.querySelector("[data-summary-rotation-due]");
    rot.dataset.summaryRotationDue = String(answer.rotation_due);
    setText(rot.querySelector(".n"), String(answer.rotation_due));
  }
  function setPager() {
    var count = rows().length;
    setText(document.getElementById("page-rows"), count ? "Rows " + (view.offset + 1) + "–" + (view.offset + count) : "No rows");
    var first = document.getElementById("first-page");
    var next = document.getElementById("next-page");
    first.hidden = !view.cursor;
    first.href = link("");
    next.hidden = !view.next;
    next.href = link(view.next);
  }
  function setEmpty() {
    var empty = tbody.querySelector("tr.empty");
    if (rows().length) {
      if (empty) empty.remove();
    } else if (!empty) {
      empty = el("tr", { class: "empty" });
      empty.appendChild(el("td", { colspan: "7" }, "No connection matches the filters."));
      tbody.appendChild(empty);
    }
  }

  function filters() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) { if (value !== "") params.append(name, value); });
    return params;
  }
  // The server's address of the page after `cursor`, which works without this script too.
  function link(cursor, keepRefresh) {
    var params = filters();
    if (view.limit !== view.pageRows) params.set("limit", String(view.limit));
    if (cursor) params.set("cursor", cursor);
    if (keepRefresh && refreshParam) params.set("refresh", refreshParam);
    var query = params.toString();
    return "/" + (query ? "?" + query : "");
  }
  function api(params) {
    return fetch("/api/v1/connections?" + params.toString(), { cache: "no-store" });
  }

  function answered(now) {
    answeredAt = now;
    asOf.setAttribute("datetime", now.toISOString());
    setText(asOf, utc(now));
    if (failing) {
      failing = false;
      stale.hidden = true;
      setText(stale, "");
    }
  }
  function notAnswering() {
    failing = true;
    stale.hidden = false;
    setText(stale, "credwatch is not answering: what you see is as of " + utc(answeredAt) + ".");
  }

  // Loads the page after `cursor` ("" for the first) in full, as the server orders it.
  function loadPage(cursor, offset) {
    var generation = ++view.generation;
    var params = filters();
    // The filters the rows on screen were chosen by: a refresh asks with these, not with
    // what the form holds while a person is still typing.
    view.filters = params.toString();
    params.set("limit", String(view.limit));
    if (cursor) params.set("cursor", cursor);
    return api(params)
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (answer) {
        if (generation !== view.generation) return; // a newer request replaced this one
        var now = new Date();
        var fresh = answer.connections.map(function (c) { return buildRow(c, now); });
        tbody.replaceChildren.apply(tbody, fresh);
        view.cursor = cursor;
        view.offset = offset;
        view.next = answer.next || "";
        view.changes = answer.changes;
        setTotals(answer);
        setEmpty();
        setPager();
        history.replaceState(null, "", link(cursor, true));
        answered(now);
      });
  }

  // Applies what changed: each changed row leaves its place and comes back where it now
  // belongs (if that is on this page), removed rows leave, and the page keeps its size.
  function applyChanges(answer) {
    var now = new Date();
    var byName = {};
    rows().forEach(function (row) { byName[row.dataset.connection] = row; });
    answer.removed.forEach(function (name) { if (byName[name]) byName[name].remove(); });
    var start = view.cursor ? keyOfCursor(view.cursor) : null;
    var end = view.next ? keyOfCursor(view.next) : null;
    answer.connections.forEach(function (c) {
      var old = byName[c.name];
      // Open details stay open across the row's rebuild (and fetch what they show afresh).
      var open = old && old.querySelector("details[open]") !== null;
      if (old) old.remove();
      var key = { rank: rankOf(c), name: c.name };
      if ((start && compareKeys(key, start) <= 0) || (end && compareKeys(key, end) > 0)) return;
      var row = buildRow(c, now);
      var details = open ? row.querySelector("details") : null;
      if (details) details.open = true;
      var after = rows().find(function (other) { return compareKeys(keyOfRow(other), key) > 0; });
      tbody.insertBefore(row, after || null);
    });
    var shown = rows();
    shown.slice(view.limit).forEach(function (row) { row.remove(); });
    if (shown.length > view.limit) {
      var last = keyOfRow(shown[view.limit - 1]);
      view.next = last.rank + "." + last.name;
    }
    view.changes = answer.changes;
    setTotals(answer);
    if (shown.length < view.limit && view.next) return loadPage(view.cursor, view.offset);
    setEmpty();
    setPager();
    answered(now);
  }

  function refreshCountdowns() {
    var now = new Date();
    rows().forEach(function (row) {
      var cell = field(row, "expires");
      var first = cell.firstChild;
      var text = countdown(cell.dataset.at, cell.dataset.never === "true", now);
      if (first && first.nodeType === Node.TEXT_NODE && first.nodeValue !== text) first.nodeValue = text;
    });
  }

  function refresh() {
    if (paused) return;
    updateOrgs().catch(function () { /* the connections' refresh says when credwatch stops answering */ });
    var generation = view.generation;
    var params = new URLSearchParams(view.filters !== undefined ? view.filters : filters().toString());
    params.set("changed_since", view.changes);
    api(params)
      .then(function (response) {
        if (generation !== view.generation) return null;
        if (response.status === 410) return loadPage(view.cursor, view.offset).then(function () { return null; });
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (answer) {
        if (answer && generation === view.generation) return applyChanges(answer);
      })
      .then(refreshCountdowns)
      .catch(notAnswering);
  }

  function updateOrgs() {
    if (!document.getElementById("orgs")) return Promise.resolve();
    return fetch("/api/v1/orgs", { cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (orgs) {
        var now = new Date();
        orgs.forEach(function (org) {
          var row = document.querySelector('#orgs tr[data-org="' + CSS.escape(org.name) + '"]');
          if (!row) return;
          var key = field(row, "key");
          key.className = "badge s-" + org.api_key_state;
          setText(key, SYMBOLS[org.api_key_state] + " " + org.api_key_state);
          setText(field(row, "listed"), org.last_list_success_at ? relative(org.last_list_success_at, now) : "not yet");
          var error = field(row, "error");
          setText(error, org.last_error || "");
          error.hidden = !org.last_error;
          ["allowed", "blocked", "expired", "expiring_7d", "expiring_30d", "unused"].forEach(function (name) {
            setText(field(row, name), org.tokens ? String(org.tokens[name]) : "-");
          });
        });
      });
  }

  // Filters answer as you type: the server's first page of what matches.
  var typing = null;
  function filterNow() {
    window.clearTimeout(typing);
    typing = window.setTimeout(function () { loadPage("", 0).catch(notAnswering); }, 60);
  }
  ["filter-state", "filter-product", "filter-team", "filter-text"].forEach(function (id) {
    var input = document.getElementById(id);
    input.addEventListener("input", filterNow);
    input.addEventListener("change", filterNow);
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    loadPage("", 0).catch(notAnswering);
  });
  document.getElementById("next-page").addEventListener("click", function (event) {
    event.preventDefault();
    loadPage(view.next, view.offset + rows().length).then(function () { window.scrollTo(0, 0); }).catch(notAnswering);
  });
  document.getElementById("first-page").addEventListener("click", function (event) {
    event.preventDefault();
    loadPage("", 0).catch(notAnswering);
  });

  pause.hidden = false;
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    setText(pause, paused ? "Resume updates" : "Pause updates");
    setText(note, paused ? "Updates are paused." : "Updated every " + period / 1000 + " s.");
    if (!paused) refresh();
  });
  setText(note, "Updated every " + period / 1000 + " s.");
  window.setInterval(refresh, period);
})();
