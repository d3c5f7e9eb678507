// The live alarm dashboard: a snapshot over /ws/alarms/, then events; plain JavaScript, no build step.
// The server's protocol is described in gateways/consumers.py.
(function () {
  "use strict";

  const root = document.getElementById("alarm-dashboard");
  if (!root) return;
  const rowsEl = document.getElementById("alarm-rows");
  const indicator = document.getElementById("connection");
  const propertyFilter = document.getElementById("filter-property");
  const severityFilter = document.getElementById("filter-severity");
  const shownCount = document.getElementById("shown-count");
  const openCount = document.getElementById("open-count");
  const noAlarms = document.getElementById("no-alarms");
  const truncated = document.getElementById("truncated");
  const eventLog = document.getElementById("event-log");
  const csrfToken = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const baseTitle = root.dataset.title;
  // System alarms (about the portal itself) have no property and no gateway.
  const systemLabel = root.dataset.systemLabel;
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
  const QUICK_RECONNECT = new Set([4008, 4009, 4010]); // too slow, missed events, access changed
  const NO_ACCESS = 4403;
  const MAX_BACKOFF_MS = 30000;
  const LOG_LENGTH = 30;
  const ACK_EVERY = 10;
  const ACK_DELAY_MS = 500;

  const alarms = new Map(); // id -> alarm, open alarms only
  let socket = null;
  let framesReceived = 0;
  let framesAcked = 0;
  let ackTimer = null;
  let failures = 0;
  let retryTimer = null;
  let leaving = false;

  // --- connection -----------------------------------------------------------------

  function connect() {
    clearTimeout(retryTimer);
    setIndicator("connecting", "Connecting…");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + root.dataset.wsPath);
    socket = ws;
    framesReceived = 0;
    framesAcked = 0;
    ws.onmessage = function (message) {
      if (socket !== ws) return;
      framesReceived += 1;
      handleFrame(JSON.parse(message.data));
      acknowledge(ws);
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      if (!leaving) scheduleReconnect(event.code);
    };
  }

  // Tell the server we keep up (it drops clients that fall too far behind):
  // after every ACK_EVERY frames, and shortly after the last one otherwise.
  function acknowledge(ws) {
    clearTimeout(ackTimer);
    const send = function () {
      if (ws.readyState !== WebSocket.OPEN || framesAcked === framesReceived) return;
      framesAcked = framesReceived;
      ws.send(JSON.stringify({ type: "ack", frames: framesReceived }));
    };
    if (framesReceived - framesAcked >= ACK_EVERY) send();
    else ackTimer = setTimeout(send, ACK_DELAY_MS);
  }

  function scheduleReconnect(code) {
    if (code === NO_ACCESS) {
      setIndicator("offline", "No access to alarms");
      return;
    }
    let delay;
    if (QUICK_RECONNECT.has(code)) {
      delay = 200;
    } else {
      // Exponential backoff with jitter, so a restarted server is not stormed.
      const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** failures);
      delay = ceiling / 2 + Math.random() * (ceiling / 2);
      failures += 1;
    }
    setIndicator("offline", "Offline · reconnecting in " + Math.ceil(delay / 1000) + " s");
    retryTimer = setTimeout(connect, delay);
  }

  function setIndicator(state, text) {
    indicator.className = "connection " + state;
    indicator.textContent = text;
    indicator.dataset.state = state;
  }

  window.addEventListener("pagehide", function () {
    leaving = true;
    if (socket) socket.close(1000);
  });

  // --- frames and events ----------------------------------------------------------

  function handleFrame(frame) {
    if (frame.type === "snapshot") {
      failures = 0;
      alarms.clear();
      frame.alarms.forEach(function (alarm) { alarms.set(alarm.id, alarm); });
      truncated.hidden = frame.total <= frame.alarms.length;
      truncated.textContent = "Showing the newest " + frame.alarms.length + " of " + frame.total + " open alarms.";
      renderAll();
      setIndicator("live", "Live");
    } else if (frame.type === "events") {
      frame.events.forEach(applyEvent);
      refreshSummary();
    }
  }

  function applyEvent(event) {
    if (event.type === "settlement.generated") {
      const s = event.settlement;
      logEvent("info", "Settlement generated: " + s.property + ", " + s.utility + " " + s.period_start + " to " + s.period_end);
      return;
    }
    const alarm = event.alarm;
    const known = alarms.get(alarm.id);
    if (known && known.seq >= alarm.seq) return; // already showing this state or a newer one
    if (event.type === "alarm.cleared") {
      alarms.delete(alarm.id);
      removeRow(alarm.id);
      if (known) logEvent("cleared", "Cleared: " + describe(alarm) + (alarm.cleared_by ? " by " + alarm.cleared_by : ""));
      return;
    }
    alarms.set(alarm.id, alarm);
    upsertRow(alarm, event.type === "alarm.raised");
    if (event.type === "alarm.raised") logEvent(alarm.severity, "Raised: " + describe(alarm));
  }

  function describe(alarm) {
    return alarm.type_label + " · " + (alarm.property || systemLabel) + " · " + (alarm.meter || alarm.gateway || "—");
  }

  // --- table ----------------------------------------------------------------------

  function renderAll() {
    rowsEl.textContent = "";
    sortedAlarms().forEach(function (alarm) { rowsEl.appendChild(buildRow(alarm, false)); });
    refreshSummary();
  }

  function sortedAlarms() {
    return Array.from(alarms.values()).sort(compareAlarms);
  }

  function compareAlarms(a, b) {
    const bySeverity = (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9);
    return bySeverity || (b.raised_at < a.raised_at ? -1 : b.raised_at > a.raised_at ? 1 : b.id - a.id);
  }

  function upsertRow(alarm, fresh) {
    const row = buildRow(alarm, fresh);
    const old = document.getElementById("alarm-" + alarm.id);
    if (old) old.remove();
    // Insert in order: before the first alarm that sorts after this one.
    const next = sortedAlarms().find(function (other) {
      return compareAlarms(alarm, other) < 0 && document.getElementById("alarm-" + other.id);
    });
    rowsEl.insertBefore(row, next ? document.getElementById("alarm-" + next.id) : null);
  }

  function removeRow(id) {
    const row = document.getElementById("alarm-" + id);
    if (row) row.remove();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined && text !== null) td.textContent = text;
    return td;
  }

  function buildRow(alarm, fresh) {
    const tr = document.createElement("tr");
    tr.id = "alarm-" + alarm.id;
    tr.className = alarm.severity + (fresh ? " fresh" : "");
    tr.dataset.property = String(alarm.property_id);
    tr.dataset.severity = alarm.severity;
    tr.appendChild(cell(alarm.severity_label, "severity " + alarm.severity));
    tr.appendChild(cell(alarm.property || systemLabel));
    tr.appendChild(cell(alarm.gateway ? alarm.gateway + " (" + alarm.gateway_serial + ")" : "—"));
    tr.appendChild(cell(alarm.meter ? alarm.meter + " · " + alarm.meter_type + (alarm.unit ? " · " + alarm.unit : "") : "—"));
    const type = cell(alarm.type_label);
    const message = document.createElement("span");
    message.className = "alarm-message";
    message.textContent = alarm.message;
    type.appendChild(message);
    tr.appendChild(type);
    const age = cell(formatAge(alarm.raised_at), "num age");
    age.dataset.since = alarm.raised_at;
    age.title = new Date(alarm.raised_at).toLocaleString();
    tr.appendChild(age);
    const status = cell(null, "status" + (alarm.acknowledged_at ? " acknowledged" : ""));
    status.textContent = alarm.acknowledged_at
      ? "Acknowledged by " + (alarm.acknowledged_by || "?") + ", " + new Date(alarm.acknowledged_at).toLocaleString()
      : "Open";
    tr.appendChild(status);
    const actions = cell(null, "actions no-print");
    if (!alarm.acknowledged_at) actions.appendChild(actionButton("Acknowledge", "acknowledge", alarm.id));
    actions.appendChild(actionButton("Clear", "clear", alarm.id));
    actions.appendChild(detailLink(alarm.id));
    tr.appendChild(actions);
    tr.hidden = !matchesFilters(alarm);
    return tr;
  }

  function actionButton(label, action, id) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.action = action;
    button.dataset.alarm = String(id);
    return button;
  }

  function formatAge(iso) {
    const minutes = Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 60000));
    if (minutes < 1) return "< 1 min";
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  setInterval(function () {
    rowsEl.querySelectorAll("td.age").forEach(function (td) { td.textContent = formatAge(td.dataset.since); });
  }, 30000);

  // --- filters and counts -----------------------------------------------------------

  function matchesFilters(alarm) {
    return (!propertyFilter.value || String(alarm.property_id) === propertyFilter.value) &&
      (!severityFilter.value || alarm.severity === severityFilter.value);
  }

  function applyFilters() {
    alarms.forEach(function (alarm) {
      const row = document.getElementById("alarm-" + alarm.id);
      if (row) row.hidden = !matchesFilters(alarm);
    });
    const params = new URLSearchParams();
    if (propertyFilter.value) params.set("property", propertyFilter.value);
    if (severityFilter.value) params.set("severity", severityFilter.value);
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    refreshSummary();
  }

  function refreshSummary() {
    let critical = 0;
    let shown = 0;
    alarms.forEach(function (alarm) {
      if (alarm.severity === "critical") critical += 1;
      if (matchesFilters(alarm)) shown += 1;
    });
    document.title = (critical ? "(" + critical + ") " : "") + baseTitle;
    openCount.textContent = "(" + alarms.size + " open" + (critical ? ", " + critical + " critical" : "") + ")";
    shownCount.textContent = shown === alarms.size ? "" : "Showing " + shown + " of " + alarms.size;
    noAlarms.hidden = alarms.size > 0;
  }

  function restoreFilters() {
    const params = new URLSearchParams(location.search);
    [[propertyFilter, "property"], [severityFilter, "severity"]].forEach(function (pair) {
      const value = params.get(pair[1]);
      if (value && Array.from(pair[0].options).some(function (o) { return o.value === value; })) pair[0].value = value;
    });
  }

  // --- acknowledge and clear --------------------------------------------------------

  rowsEl.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = Number(button.dataset.alarm);
    const template = button.dataset.action === "clear" ? root.dataset.clearUrl : root.dataset.acknowledgeUrl;
    const body = new URLSearchParams();
    if (button.dataset.action === "clear") {
      const note = askClearNote();
      if (note === null) return; // cancelled: nothing happens
      body.set("note", note);
    }
    button.disabled = true;
    fetch(template.replace("/0/", "/" + id + "/"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" },
      body: body,
    }).then(function (response) {
      // A refused form (a clear without a note) says why, in the user's language.
      if (response.status === 400) return response.json().then(function (refusal) { throw new Error(refusal.error); });
      if (!response.ok) throw new Error(response.status === 404 ? "no such alarm" : "HTTP " + response.status);
      return response.json();
    }).then(function (body) {
      applyActionResult(body.alarm);
    }).catch(function (error) {
      button.disabled = false;
      logEvent("error", "Could not " + button.dataset.action + " alarm " + id + ": " + error.message);
    });
  });

  // The alarm's own page (history, notes, assignment, the meter), and the note a clear needs: the server
  // refuses a clear without one. The texts come translated from the page (data-detail-label, data-clear-prompt).
  function detailLink(id) {
    const link = document.createElement("a");
    link.href = root.dataset.detailUrl.replace("/0/", "/" + id + "/");
    link.className = "alarm-detail-link";
    link.textContent = root.dataset.detailLabel;
    return link;
  }

  function askClearNote() {
    return window.prompt(root.dataset.clearPrompt, "");
  }

  function applyActionResult(state) {
    // The websocket brings the same change; whichever comes first wins.
    const known = alarms.get(state.id);
    if (!known || known.seq >= state.seq) return;
    if (state.cleared_at) {
      alarms.delete(state.id);
      removeRow(state.id);
    } else {
      const updated = Object.assign({}, known, state);
      alarms.set(state.id, updated);
      upsertRow(updated, false);
    }
    refreshSummary();
  }

  // --- event log ----------------------------------------------------------------------

  function logEvent(kind, text) {
    const item = document.createElement("li");
    item.className = kind;
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString();
    item.appendChild(time);
    item.appendChild(document.createTextNode(text));
    eventLog.insertBefore(item, eventLog.firstChild);
    while (eventLog.children.length > LOG_LENGTH) eventLog.lastChild.remove();
  }

  propertyFilter.addEventListener("change", applyFilters);
  severityFilter.addEventListener("change", applyFilters);
  // The filters apply as they change; the form is never sent.
  document.getElementById("alarm-filters").addEventListener("submit", function (event) { event.preventDefault(); });
  restoreFilters();
  connect();
})();
