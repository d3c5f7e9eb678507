// The live alarm dashboard: a snapshot over /ws/alarms/, then events; plain JavaScript, no build step.
// The server's protocol is described in gateways/consumers.py.
// Words: the script's own come from Django's JavaScript catalogue (gateways/locale/*/djangojs.po,
// loaded before this file as window.gettext etc.); an alarm's type, severity, meter type and text come
// rendered by the server in every site language (alarm.texts, gateways/events.py), and the page picks its own.
(function () {
  "use strict";

  const root = document.getElementById("alarm-dashboard");
  if (!root) return;
  const gettext = window.gettext;
  const ngettext = window.ngettext;
  const interpolate = window.interpolate;
  // Dates and numbers in the page's language, not the browser's.
  const LANG = document.documentElement.lang || "en";
  const dateTimeFormat = new Intl.DateTimeFormat(LANG, { dateStyle: "short", timeStyle: "short" });
  const timeFormat = new Intl.DateTimeFormat(LANG, { timeStyle: "medium" });
  const noEvents = document.getElementById("no-events");
  const notifyBox = document.getElementById("notify-critical");
  const notifyState = document.getElementById("notify-state");
  // The column headings (translated by the template) label each line of a card on a phone.
  const LABELS = Array.from(root.querySelectorAll("table.alarms thead th")).map(function (th) {
    return th.textContent.trim();
  });
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
    setIndicator("connecting", gettext("Connecting…"));
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
      setIndicator("offline", gettext("No access to alarms"));
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
    setIndicator("offline", interpolate(gettext("Offline · reconnecting in %s s"), [Math.ceil(delay / 1000)]));
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
      truncated.textContent = interpolate(
        gettext("Showing the newest %(shown)s of %(total)s open alarms."),
        { shown: frame.alarms.length, total: frame.total },
        true
      );
      renderAll();
      setIndicator("live", gettext("Live"));
    } else if (frame.type === "events") {
      frame.events.forEach(applyEvent);
      refreshSummary();
    }
  }

  function applyEvent(event) {
    if (event.type === "settlement.generated") {
      const s = event.settlement;
      logEvent("info", interpolate(gettext("Settlement generated: %(property)s, %(utility)s %(start)s to %(end)s"), {
        property: s.property,
        utility: (s.utility_labels && s.utility_labels[LANG]) || s.utility,
        start: formatDay(s.period_start),
        end: formatDay(s.period_end),
      }, true));
      return;
    }
    const alarm = event.alarm;
    const known = alarms.get(alarm.id);
    if (known && known.seq >= alarm.seq) return; // already showing this state or a newer one
    if (event.type === "alarm.cleared") {
      alarms.delete(alarm.id);
      removeRow(alarm.id);
      if (known) {
        logEvent("cleared", alarm.cleared_by
          ? interpolate(gettext("Cleared: %(alarm)s, by %(user)s"), { alarm: describe(alarm), user: alarm.cleared_by }, true)
          : interpolate(gettext("Cleared: %s"), [describe(alarm)]));
      }
      return;
    }
    alarms.set(alarm.id, alarm);
    upsertRow(alarm, event.type === "alarm.raised");
    if (known && (known.assigned_to_id ?? null) !== (alarm.assigned_to_id ?? null)) {
      logEvent("assigned", alarm.assigned_to
        ? interpolate(gettext("Assigned to %(user)s: %(alarm)s"), { alarm: describe(alarm), user: assigneeName(alarm) }, true)
        : interpolate(gettext("No longer assigned: %s"), [describe(alarm)]));
    }
    if (event.type === "alarm.raised") {
      logEvent(alarm.severity, interpolate(gettext("Raised: %s"), [describe(alarm)]));
      if (alarm.severity === "critical") notifyCritical(alarm);
    }
  }

  // The alarm's words in the page's language (the server sends every site language).
  function texts(alarm) {
    const all = alarm.texts || {};
    const mine = all[LANG] || all.en || {};
    return {
      type: mine.type || alarm.type,
      severity: mine.severity || alarm.severity,
      meterType: mine.meter_type || alarm.meter_type,
      message: mine.message || alarm.message,
    };
  }

  function describe(alarm) {
    return texts(alarm).type + " · " + (alarm.property || systemLabel) + " · " + (alarm.meter || alarm.gateway || "—");
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

  function cell(column, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (LABELS[column]) td.dataset.label = LABELS[column];
    if (text !== undefined && text !== null) td.textContent = text;
    return td;
  }

  // One alarm's row (a card on a phone): all its markup is made here.
  function buildRow(alarm, fresh) {
    const words = texts(alarm);
    const tr = document.createElement("tr");
    tr.id = "alarm-" + alarm.id;
    tr.className = alarm.severity + (alarm.acknowledged_at ? " acknowledged" : " unacknowledged") + (fresh ? " fresh" : "");
    tr.dataset.property = String(alarm.property_id);
    tr.dataset.severity = alarm.severity;
    const severity = cell(0, null, "severity " + alarm.severity);
    const badge = document.createElement("span");
    badge.textContent = words.severity;
    severity.appendChild(badge);
    tr.appendChild(severity);
    tr.appendChild(cell(1, alarm.property || systemLabel));
    tr.appendChild(cell(2, alarm.gateway ? alarm.gateway + " (" + alarm.gateway_serial + ")" : "—"));
    tr.appendChild(cell(3, alarm.meter ? alarm.meter + " · " + words.meterType + (alarm.unit ? " · " + alarm.unit : "") : "—"));
    const type = cell(4, words.type);
    const message = document.createElement("span");
    message.className = "alarm-message";
    message.textContent = words.message;
    type.appendChild(message);
    tr.appendChild(type);
    const age = cell(5, formatAge(alarm.raised_at), "num age");
    age.dataset.since = alarm.raised_at;
    age.title = formatDateTime(alarm.raised_at);
    tr.appendChild(age);
    const status = cell(6, null, "status" + (alarm.acknowledged_at ? " acknowledged" : ""));
    status.textContent = alarm.acknowledged_at
      ? interpolate(gettext("Acknowledged by %(user)s, %(when)s"), {
        user: alarm.acknowledged_by || "?",
        when: formatDateTime(alarm.acknowledged_at),
      }, true)
      : gettext("Open");
    if (alarm.assigned_to) {
      // Who is to deal with it (a name, never an address: gateways/events.py), "you" for the viewer.
      const assignee = document.createElement("span");
      assignee.className = "assignee" + (isMine(alarm) ? " mine" : "");
      assignee.textContent = interpolate(gettext("Assigned to %(user)s"), { user: assigneeName(alarm) }, true);
      status.appendChild(assignee);
    }
    tr.appendChild(status);
    const actions = cell(7, null, "actions no-print");
    if (!alarm.acknowledged_at) actions.appendChild(actionButton(gettext("Acknowledge"), "acknowledge", alarm.id));
    actions.appendChild(actionButton(gettext("Clear"), "clear", alarm.id));
    actions.appendChild(detailLink(alarm.id));
    tr.appendChild(actions);
    tr.hidden = !matchesFilters(alarm);
    return tr;
  }

  function isMine(alarm) {
    return alarm.assigned_to_id != null && String(alarm.assigned_to_id) === root.dataset.userId;
  }

  function assigneeName(alarm) {
    return isMine(alarm) ? gettext("you") : alarm.assigned_to;
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
    if (minutes < 1) return gettext("< 1 min");
    if (minutes < 60) return interpolate(gettext("%s min"), [minutes]);
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return interpolate(gettext("%(hours)s h %(minutes)s min"), { hours: hours, minutes: minutes % 60 }, true);
    return interpolate(gettext("%(days)s d %(hours)s h"), { days: Math.floor(hours / 24), hours: hours % 24 }, true);
  }

  function formatDateTime(iso) {
    return dateTimeFormat.format(new Date(iso));
  }

  // A calendar day ("2025-01-01") as the page's language writes it, without a time zone shift.
  function formatDay(isoDay) {
    if (!isoDay) return "";
    const parts = isoDay.split("-").map(Number);
    return new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeZone: "UTC" })
      .format(new Date(Date.UTC(parts[0], parts[1] - 1, parts[2])));
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
    const open = interpolate(ngettext("%s open", "%s open", alarms.size), [alarms.size]);
    openCount.textContent = "(" + (critical
      ? interpolate(ngettext("%(open)s, %(critical)s critical", "%(open)s, %(critical)s critical", critical),
        { open: open, critical: critical }, true)
      : open) + ")";
    shownCount.textContent = shown === alarms.size
      ? ""
      : interpolate(gettext("Showing %(shown)s of %(total)s"), { shown: shown, total: alarms.size }, true);
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
      if (!response.ok) {
        throw new Error(response.status === 404 ? gettext("no such alarm") : interpolate(gettext("HTTP error %s"), [response.status]));
      }
      // Not the JSON answer but a page (the login page): the session ended while this page stayed open.
      if ((response.headers.get("Content-Type") || "").indexOf("application/json") !== 0) {
        throw new Error(gettext("you are no longer logged in; reload the page and log in again"));
      }
      return response.json();
    }).then(function (body) {
      applyActionResult(body.alarm);
    }).catch(function (error) {
      button.disabled = false;
      const failed = button.dataset.action === "clear"
        ? gettext("Could not clear alarm %(id)s: %(error)s")
        : gettext("Could not acknowledge alarm %(id)s: %(error)s");
      // The browser's own failure (no network) speaks English: say it in the page's language.
      const reason = error instanceof TypeError ? gettext("no connection to the server") : error.message;
      logEvent("error", interpolate(failed, { id: id, error: reason }, true));
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
    time.textContent = timeFormat.format(new Date());
    item.appendChild(time);
    item.appendChild(document.createTextNode(text));
    eventLog.insertBefore(item, eventLog.firstChild);
    while (eventLog.children.length > LOG_LENGTH) eventLog.lastChild.remove();
    noEvents.hidden = true;
  }

  // --- opt-in sound and browser notification for new critical alarms ---------------------

  const NOTIFY_KEY = "mbusportal.alarms.notifyCritical";
  let audio = null;

  function notifyWanted() {
    try {
      return localStorage.getItem(NOTIFY_KEY) === "1";
    } catch (error) {
      return false; // storage blocked: the option is then per visit
    }
  }

  function rememberNotify(on) {
    try {
      if (on) localStorage.setItem(NOTIFY_KEY, "1");
      else localStorage.removeItem(NOTIFY_KEY);
    } catch (error) { /* storage blocked */ }
  }

  function showNotifyState() {
    if (!notifyBox.checked) notifyState.textContent = "";
    else if (!("Notification" in window)) notifyState.textContent = gettext("This browser cannot show notifications; sound only.");
    else if (Notification.permission === "denied") notifyState.textContent = gettext("Notifications are blocked for this site; sound only.");
    else notifyState.textContent = "";
  }

  // Browsers start audio only after the user did something on the page: the box's
  // click, or (when it was remembered from an earlier visit) the first click anywhere.
  function unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!audio) audio = new Context();
    if (audio.state === "suspended") audio.resume();
  }

  function beep() {
    if (!audio || audio.state !== "running") return;
    // Three short high tones: no sound file needed.
    [0, 0.25, 0.5].forEach(function (offset) {
      const start = audio.currentTime + offset;
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.type = "square";
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, start);
      gain.gain.exponentialRampToValueAtTime(0.001, start + 0.18);
      tone.connect(gain).connect(audio.destination);
      tone.start(start);
      tone.stop(start + 0.2);
    });
  }

  function notifyCritical(alarm) {
    if (!notifyBox.checked) return;
    beep();
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const words = texts(alarm);
    const note = new Notification(interpolate(gettext("Critical alarm: %s"), [words.type]), {
      body: (alarm.property || systemLabel) + " · " + (alarm.meter || alarm.gateway || "—") + "\n" + words.message,
      tag: "alarm-" + alarm.id,
      lang: LANG,
    });
    note.onclick = function () { window.focus(); note.close(); };
  }

  notifyBox.checked = notifyWanted();
  showNotifyState();
  notifyBox.addEventListener("change", function () {
    rememberNotify(notifyBox.checked);
    if (notifyBox.checked) {
      unlockAudio();
      if ("Notification" in window && Notification.permission === "default") {
        Notification.requestPermission().then(showNotifyState);
      }
    }
    showNotifyState();
  });
  document.addEventListener("click", function () { if (notifyBox.checked) unlockAudio(); });

  propertyFilter.addEventListener("change", applyFilters);
  severityFilter.addEventListener("change", applyFilters);
  // The filters apply as they change; the form is never sent.
  document.getElementById("alarm-filters").addEventListener("submit", function (event) { event.preventDefault(); });
  restoreFilters();
  connect();
})();
