// The status page's refresh in place: every few seconds the page reads /api/v1/connections and
// updates the rows it shows, without a reload (a screen reader keeps its place, the scroll
// position and open details stay). Text is only ever set with textContent: nothing from Jira
// or the configuration becomes markup here. Without this script the page is complete as the
// server rendered it, and the filter form works as a plain GET form.
(function () {
  "use strict";
  var body = document.body;
  var period = Math.max(1, Number(body.dataset.refresh) || 15) * 1000;
  var asOf = document.getElementById("as-of");
  var note = document.getElementById("refresh-note");
  var stale = document.getElementById("stale");
  var pause = document.getElementById("pause");
  var paused = false;
  var answeredAt = new Date(asOf.getAttribute("datetime"));
  var failing = false;
  var SYMBOLS = { valid: "✔", invalid: "✖", expired: "◷", locked: "⊠", forbidden: "⊘", unknown: "?" };

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
  function countdown(cell, now) {
    var at = cell.dataset.at;
    if (at) {
      var delta = (new Date(at) - now) / 1000;
      return delta > 0 ? "in " + span(delta) : "expired " + span(delta) + " ago";
    }
    return cell.dataset.never === "true" ? "never" : "unknown";
  }
  function utc(date) {
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }
  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }
  // The first text node of the expiry cell is the countdown; the source and the rotation
  // mark after it are rendered by the server and change only with a new page.
  function setLeadingText(cell, text) {
    var first = cell.firstChild;
    if (first && first.nodeType === Node.TEXT_NODE) {
      if (first.nodeValue !== text) first.nodeValue = text;
    } else {
      cell.insertBefore(document.createTextNode(text), first);
    }
  }

  function applyFilters() {
    var state = document.getElementById("filter-state").value;
    var team = document.getElementById("filter-team").value;
    var text = document.getElementById("filter-text").value.trim().toLowerCase();
    document.querySelectorAll("#rows tr[data-connection]").forEach(function (row) {
      var shown = (!state || row.dataset.state === state) &&
        (!team || row.dataset.team === team) &&
        (!text || row.dataset.text.indexOf(text) !== -1);
      row.hidden = !shown;
    });
  }

  function redrawHistory(row, name) {
    fetch("/api/v1/connections/" + encodeURIComponent(name) + "/history", { cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (history) {
        if (!history) return;
        var list = field(row, "transitions");
        list.replaceChildren();
        history.transitions.forEach(function (change) {
          var item = document.createElement("li");
          var time = document.createElement("time");
          time.setAttribute("datetime", change.at);
          time.textContent = utc(new Date(change.at));
          item.appendChild(time);
          item.appendChild(document.createTextNode(": " + change.from + " → " + change.to + " (" + change.reason + ")"));
          list.appendChild(item);
        });
        var summary = row.querySelector("details summary");
        setText(summary, "State changes (" + history.transitions.length + ")");
        var today = row.querySelector('[data-field="strip"] .d:last-child');
        if (today) {
          // Today's cell shows the worst verdict of the day, as the server draws it.
          var worst = ["locked", "expired", "invalid", "forbidden", "valid"];
          var start = new Date(); start.setUTCHours(0, 0, 0, 0);
          var seen = [row.dataset.state];
          history.transitions.forEach(function (change) {
            if (new Date(change.at) >= start) { seen.push(change.to); seen.push(change.from); }
          });
          var state = worst.find(function (s) { return seen.indexOf(s) !== -1; }) || "unknown";
          today.className = "d s-" + state;
          today.title = today.title.replace(/: .*$/, ": " + state);
        }
      })
      .catch(function () { /* the next refresh tries again */ });
  }

  function update(connections, now) {
    var rows = {};
    document.querySelectorAll("#rows tr[data-connection]").forEach(function (row) {
      rows[row.dataset.connection] = row;
    });
    var names = connections.map(function (c) { return c.name; });
    var known = Object.keys(rows);
    if (names.length !== known.length || names.some(function (n) { return !rows[n]; })) {
      // Connections were added or removed (a reload): take the server's rendering.
      return fetch(location.pathname + location.search, { cache: "no-store" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          document.querySelector("main").replaceWith(fresh.querySelector("main"));
          bindFilters();
          applyFilters();
        });
    }
    var counts = {};
    var rotationDue = 0;
    connections.forEach(function (c) {
      var row = rows[c.name];
      counts[c.state] = (counts[c.state] || 0) + 1;
      if (c.rotation_due) rotationDue += 1;
      var changed = row.dataset.state !== c.state;
      row.dataset.state = c.state;
      row.dataset.reason = c.reason || "not probed yet";
      var badge = field(row, "badge");
      badge.className = "badge s-" + c.state;
      setText(badge, SYMBOLS[c.state] + " " + c.state);
      setText(field(row, "reason"), c.reason || "not probed yet");
      var hint = field(row, "hint");
      setText(hint, c.hint || "");
      hint.hidden = !c.hint;
      var pending = field(row, "pending");
      var pendingText = c.pending_reason
        ? "pending: " + c.pending_reason + " since " + relative(c.pending_since, now).replace(/^in /, "") + ", to be confirmed"
        : "";
      setText(pending, pendingText);
      pending.hidden = !pendingText;
      var expires = field(row, "expires");
      expires.dataset.at = c.expires_at || "";
      expires.dataset.never = c.never_expires === true ? "true" : "false";
      setLeadingText(expires, countdown(expires, now));
      var last = field(row, "last");
      last.dataset.at = c.last_probe_at || "";
      setText(last, c.last_probe_at ? relative(c.last_probe_at, now) : "never");
      var next = field(row, "next");
      next.dataset.at = c.next_probe_at || "";
      next.dataset.paused = c.paused || "";
      setText(next, c.paused ? "stopped (" + c.paused + ")" : c.next_probe_at ? relative(c.next_probe_at, now) : "-");
      if (changed) redrawHistory(row, c.name);
    });
    document.querySelectorAll("[data-summary-state]").forEach(function (tile) {
      setText(tile.querySelector(".n"), String(counts[tile.dataset.summaryState] || 0));
    });
    var rot = document.querySelector("[data-summary-rotation-due]");
    if (rot) {
      rot.dataset.summaryRotationDue = String(rotationDue);
      setText(rot.querySelector(".n"), String(rotationDue));
    }
    applyFilters();
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

  function refresh() {
    if (paused) return;
    updateOrgs().catch(function () { /* the connections' refresh says when credwatch stops answering */ });
    fetch("/api/v1/connections", { cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (connections) {
        var now = new Date();
        return Promise.resolve(update(connections, now)).then(function () {
          answeredAt = now;
          asOf.setAttribute("datetime", now.toISOString());
          setText(asOf, utc(now));
          if (failing) {
            failing = false;
            stale.hidden = true;
            setText(stale, "");
          }
        });
      })
      .catch(function () {
        failing = true;
        stale.hidden = false;
        setText(stale, "credwatch is not answering: what you see is as of " + utc(answeredAt) + ".");
      });
  }

  function bindFilters() {
    ["filter-state", "filter-team", "filter-text"].forEach(function (id) {
      var input = document.getElementById(id);
      input.addEventListener("input", applyFilters);
      input.addEventListener("change", applyFilters);
    });
  }

  pause.hidden = false;
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    setText(pause, paused ? "Resume updates" : "Pause updates");
    setText(note, paused ? "Updates are paused." : "Updated every " + period / 1000 + " s.");
    if (!paused) refresh();
  });
  setText(note, "Updated every " + period / 1000 + " s.");
  bindFilters();
  window.setInterval(refresh, period);
})();
