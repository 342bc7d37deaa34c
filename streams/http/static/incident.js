// The incident page: one incident from the JSON API, kept current by the live stream, run from
// here with the API's own commands. Every piece of text is set as text (textContent, append of
// strings), never parsed as markup.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ID = (() => {
    const raw = location.pathname.replace(/^.*\/incidents\//, "").replace(/\/+$/, "");
    try { return decodeURIComponent(raw); } catch (e) { return raw; }  // a stray "%"
  })();
  // The worker may be served under a path (a reverse proxy's /ops/warroom/): every URL is
  // taken from where this page is, never from the host's root.
  const BASE = location.pathname.replace(/\/incidents\/[^/]*\/?$/, "");
  const API = `${BASE}/api/incidents/${encodeURIComponent(ID)}`;
  const TOKEN_KEY = "warroom.token";
  // The status each lifecycle button usually follows: that button is the page's primary one.
  const NEXT = { triggered: "acknowledge", acknowledged: "mitigate", mitigated: "resolve", resolved: "reopen" };
  // As responders.mttr defines them: detect, restore and resolve from impact start,
  // acknowledge from the incident's opening.
  const STAGES = [
    ["detect", "impact_started_at", "detected_at"],
    ["acknowledge", "opened_at", "acknowledged_at"],
    ["restore", "impact_started_at", "mitigated_at"],
    ["resolve", "impact_started_at", "resolved_at"],
  ];
  const SYMBOL = { done: "\u2713", failed: "\u2717", pending: "\u25CB" };
  // The newest events shown at first; "Show all" shows the rest.
  const SHOWN = 300;
  const state = { incident: null, events: new Map(), board: null, chartUrl: null, chartSeq: -1, showAll: false,
                  silences: new Map() };

  // An element with properties and children (strings become text nodes).
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child != null && child !== "") node.append(child);
    return node;
  }

  function span(seconds) {
    const s = Math.max(0, seconds);
    if (s < 60) return Math.floor(s) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  const between = (from, to) => span((Date.parse(to) - Date.parse(from)) / 1000);
  function clock(iso) {
    const d = new Date(iso), today = d.toDateString() === new Date().toDateString();
    const hms = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return today ? hms : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hms;
  }

  function say(kind, text) {
    const line = $("message");
    line.dataset.kind = kind;
    line.textContent = text;
  }

  // ---- the header ---------------------------------------------------------------------------
  function renderIncident() {
    const i = state.incident;
    if (!i) return;
    document.title = `${i.severity} ${i.title} - warroom`;
    $("incident-id").textContent = i.id;
    $("title").textContent = i.title;
    $("severity").textContent = i.severity;
    $("severity").className = `sev ${i.severity}`;
    $("status").textContent = i.status;
    $("status").dataset.status = i.status;
    $("commander").textContent = (i.roles && i.roles.commander) || "none yet";
    $("service").textContent = i.team ? `${i.service} (team ${i.team})` : i.service;
    if (document.activeElement !== $("severity-choice")) $("severity-choice").value = i.severity;
    $("roles").replaceChildren(...Object.entries(i.roles || {}).map(([role, person]) =>
      el("li", {}, el("span", { class: "by", text: `${role.replaceAll("_", " ")}: ` }), person)));
    if (!Object.keys(i.roles || {}).length) $("roles").append(el("li", { class: "empty", text: "Nobody assigned yet." }));
    renderPages();
    document.querySelectorAll("button[data-action]").forEach((b) => {
      b.classList.toggle("primary", NEXT[i.status] === b.dataset.action);
    });
    renderClock();
  }

  // Whether an active "until resolved" silence holds this incident's pages, and whose.
  function renderPages() {
    const held = [...state.silences.values()].find((s) => s.state === "active" && s.until_resolved === ID);
    $("pages").textContent = held ? `held until resolved (${held.created_by}: ${held.comment})` : "sent";
    $("pages").dataset.held = held ? "yes" : "no";
  }

  function putSilence(s) {
    if (s.until_resolved !== ID) return;
    if (s.state === "active" || s.state === "pending") state.silences.set(s.id, s);
    else state.silences.delete(s.id);
  }

  // Time since impact and the MTT* so far, every second: a stage not reached yet counts on.
  function renderClock() {
    const i = state.incident;
    if (!i) return;
    const now = new Date().toISOString();
    $("impact-for").textContent = i.mitigated_at
      ? `${between(i.impact_started_at, i.mitigated_at)}, restored`
      : between(i.impact_started_at, now);
    for (const [stage, from, to] of STAGES) {
      const cell = document.querySelector(`[data-stage="${stage}"] dd`);
      if (i[to]) cell.textContent = between(i[from], i[to]);
      else if (i.status === "resolved") cell.textContent = "-";
      else cell.textContent = `${between(i[from], now)} so far`;
    }
  }

  // ---- the timeline -------------------------------------------------------------------------
  function num(v) { return typeof v === "number" ? String(Math.round(v * 1000) / 1000) : String(v ?? "?"); }

  // What an event says, in words (as the review's timeline says it).
  function details(e) {
    const d = e.data || {};
    if (e.kind === "opened") {
      const inc = d.incident || {}, det = d.detection || {};
      let text = `${inc.severity || ""}: ${inc.title || ""}`;
      if (det.signal) text += `; ${det.signal} score ${num(det.score)}`;
      return text;
    }
    if (e.kind === "detection_attached") return `${d.signal ?? "?"} score ${num(d.score)}`;
    if (e.kind === "paged" || e.kind === "escalated") return `step ${d.step ?? "?"}: ${(d.recipients || []).join(", ")}`;
    if (e.kind === "task_done") {
      const said = d.text || d.result;
      return `${d.phase}/${d.task_id}: ${d.outcome || "done"}${said ? ` - ${said}` : ""}`;
    }
    const parts = [];
    if (d.role && d.person) parts.push(`${d.role}: ${d.person}${d.previous ? ` (from ${d.previous})` : ""}`);
    if ("from" in d && "to" in d) parts.push(`${d.from} -> ${d.to}`);
    if (d.text) parts.push(String(d.text));
    if (parts.length) return parts.join("; ");
    return Object.entries(d).filter(([, v]) => ["string", "number"].includes(typeof v))
      .map(([k, v]) => `${k}=${v}`).sort().join(", ");
  }

  function renderTimeline() {
    const all = [...state.events.values()].sort((a, b) => b.seq - a.seq);
    const events = state.showAll ? all : all.slice(0, SHOWN);
    $("show-all").hidden = events.length === all.length;
    $("show-all").textContent = `Show all ${all.length} events`;
    $("timeline").replaceChildren(...events.map((e) => el("li", { dataset: { kind: e.kind, seq: e.seq } },
      el("time", { datetime: e.at, title: new Date(e.at).toString(), text: clock(e.at) }),
      el("span", { class: "what" },
        el("span", { class: "kind", text: e.kind.replaceAll("_", " ") }), " ",
        el("span", { class: "by", text: `by ${e.actor}` }),
        el("span", { class: "detail", text: details(e) })))));
    $("timeline-count").textContent = all.length ? `(${all.length})` : "";
  }

  // ---- the runbook --------------------------------------------------------------------------
  function taskItem(phase, t, resolved) {
    const key = `${phase}/${t.id}`;
    const current = (state.incident && state.incident.tasks && state.incident.tasks[key]) || t.state;
    const item = el("li", { dataset: { task: key, state: current } },
      el("div", { class: "task-head" },
        el("span", { class: `state ${current}` }, el("span", { "aria-hidden": "true", text: SYMBOL[current] || "\u2022" }), ` ${current}`),
        el("span", { class: "task-title", text: t.title }),
        el("span", { class: "owner", text: [String(t.owner_role || "").replaceAll("_", " "), t.kind === "automated" ? "automated" : ""].filter(Boolean).join(" \u00B7 ") })),
      current !== "pending" && t.actor ? el("span", { class: "task-detail", text: `by ${t.actor}${t.detail ? ": " + t.detail : ""}` }) : null);
    if (current !== "done" && !resolved && (t.kind !== "automated" || current === "failed")) {
      const note = el("input", { type: "text", autocomplete: "off", "aria-label": `Note for: ${t.title}`, placeholder: "note (optional)" });
      const form = el("form", { class: "tick" }, note,
        el("button", { type: "submit", dataset: { complete: t.id }, text: "Mark done", "aria-label": `Mark done: ${t.title}` }));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const text = note.value.trim();
        write(`${API}/tasks/${encodeURIComponent(t.id)}`, text ? { text } : {}, `Task ${t.id}`)
          .then((ok) => { if (ok) note.value = ""; });
      });
      item.append(form);
    }
    item.dataset.sig = JSON.stringify([current, t.actor, t.detail, resolved]);
    return item;
  }

  // Re-rendered on every change, keeping the items that did not change (and with them a note
  // being typed and the keyboard focus).
  function renderTasks() {
    const board = state.board;
    if (!board) return;
    if (!board.phases.length) {
      $("runbook-title").textContent = "No runbook is attached to this incident.";
      $("tasks").replaceChildren();
      return;
    }
    $("runbook-title").textContent = board.title || board.runbook || "Runbook";
    const focused = document.activeElement;
    const old = new Map([...$("tasks").querySelectorAll("li[data-task]")].map((li) => [li.dataset.task, li]));
    const resolved = state.incident && state.incident.status === "resolved";
    const phases = board.phases.map((p) => {
      const items = p.tasks.map((t) => {
        const fresh = taskItem(p.phase, t, resolved), kept = old.get(fresh.dataset.task);
        return kept && kept.dataset.sig === fresh.dataset.sig ? kept : fresh;
      });
      const done = items.filter((li) => li.dataset.state === "done").length;
      return el("div", { class: "phase", dataset: { phase: p.phase } },
        el("h3", {}, p.phase, " ", el("span", { class: "count", text: `${done}/${items.length}` })),
        el("ul", { class: "tasks" }, ...items));
    });
    $("tasks").replaceChildren(...phases);
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
  }

  // A live ``task_done``: who completed the task, and the note or result they left.
  function noteTask(e) {
    const board = state.board;
    const phase = board && board.phases.find((p) => p.phase === e.data.phase);
    const task = phase && phase.tasks.find((t) => t.id === e.data.task_id);
    if (!task) return false;
    Object.assign(task, { state: e.data.outcome || "done", actor: e.actor, at: e.at, detail: e.data.result || e.data.text || null });
    return true;
  }

  // ---- the signal chart (the review's) ------------------------------------------------------
  // The chart changes with the events that move its series or its shading, and only then.
  const CHARTED = new Set(["opened", "detection_attached", "mitigated", "reopened"]);
  async function loadChart() {
    const seq = Math.max(0, ...[...state.events.values()].filter((e) => CHARTED.has(e.kind)).map((e) => e.seq));
    if (seq === state.chartSeq) return;
    state.chartSeq = seq;
    const img = $("chart-img"), caption = $("chart-caption");
    try {
      const r = await fetch(`${API}/review.svg`, { headers: auth() });
      if (!r.ok) {
        img.hidden = true;
        caption.textContent = await errorText(r);
        return;
      }
      const url = URL.createObjectURL(await r.blob());
      if (state.chartUrl) URL.revokeObjectURL(state.chartUrl);
      state.chartUrl = url;
      img.src = url;
      img.alt = `The signal of ${state.incident ? state.incident.title : ID}, with the impact window shaded`;
      img.hidden = false;
      caption.textContent = "Shaded: the impact until service was restored. Lines: impact start and detection.";
    } catch (e) {
      state.chartSeq = -1;  // try again with the next change or reconnection
      caption.textContent = `Could not load the chart: ${e.message}`;
    }
  }

  // ---- reading ------------------------------------------------------------------------------
  async function errorText(r) {
    try {
      const body = await r.json();
      if (body && typeof body.error === "string") return body.error;
    } catch (e) { /* not JSON: say the status */ }
    return `HTTP ${r.status}`;
  }

  // Reads are open by default; where a deployment makes them private, the saved token opens them.
  function auth() {
    const token = localStorage.getItem(TOKEN_KEY);
    return token ? { "Authorization": `Bearer ${token}` } : {};
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: auth() });
    if (r.status === 401 || r.status === 403) showToken(false);
    if (!r.ok) throw new Error(await errorText(r));
    return r.json();
  }

  function putIncident(i) {
    // Keep the newer copy: a snapshot fetched before a live update must not undo it.
    if (!state.incident || (i.last_seq ?? 0) >= (state.incident.last_seq ?? 0)) state.incident = i;
  }

  async function load() {
    const [incident, timeline, board, silences] = await Promise.all([
      getJSON(API), getJSON(`${API}/timeline`), getJSON(`${API}/tasks`),
      getJSON(`${BASE}/api/silences?state=active&state=pending`),
    ]);
    state.silences.clear();
    silences.silences.forEach(putSilence);
    putIncident(incident);
    timeline.events.forEach((e) => state.events.set(e.seq, e));
    if (!state.board || board.last_seq >= state.board.last_seq) state.board = board;
    renderIncident(); renderTimeline(); renderTasks();
    loadChart();
  }

  function reload() {
    return load().catch((e) => say("error", e.message));
  }

  // Events arrive in order; a gap means the stream dropped some (a slow reader): read again.
  function addEvent(e) {
    const known = Math.max(0, ...state.events.keys());
    state.events.set(e.seq, e);
    if (known && e.seq > known + 1 && !state.events.has(e.seq - 1)) reload();
  }

  // Live messages come in bursts: draw once per frame, whatever changed.
  const dirty = new Set();
  function later(render) {
    if (!dirty.size) requestAnimationFrame(() => { const todo = [...dirty]; dirty.clear(); todo.forEach((f) => f()); });
    dirty.add(render);
  }

  function connect() {
    const source = new EventSource(`${BASE}/api/stream`);
    let hellos = 0;
    source.addEventListener("hello", () => {
      $("conn").className = "live";
      $("conn").lastChild.textContent = "live";
      if (hellos++ > 0) reload();  // what happened while disconnected is not replayed
    });
    source.onerror = () => { $("conn").className = ""; $("conn").lastChild.textContent = "reconnecting"; };
    source.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (!msg.data) return;
      if (msg.kind === "silence" && msg.data.until_resolved === ID) {
        putSilence(msg.data);
        later(renderPages);
      }
      if (msg.kind === "incident" && msg.data.id === ID) {
        const before = state.incident && state.incident.status;
        putIncident(msg.data);
        later(renderIncident);
        if (before === "resolved" || state.incident.status === "resolved") later(renderTasks);
      } else if (msg.kind === "event" && msg.data.incident_id === ID) {
        addEvent(msg.data);
        later(renderTimeline);
        if (msg.data.kind === "task_done" && !noteTask(msg.data)) reload();
        else if (msg.data.kind === "runbook_attached") reload();
        later(renderTasks);
        if (CHARTED.has(msg.data.kind)) loadChart();
      }
    };
  }

  // ---- writing ------------------------------------------------------------------------------
  function showToken(saved) {
    $("token-form").hidden = saved;
    $("token-saved").hidden = !saved;
  }

  // Requests on their way: the same request again (a double click) is not sent twice.
  const inFlight = new Set();

  // POST ``body`` with the saved token; the server's answer, or null after saying why not.
  async function write(url, body, what) {
    const request = `${url} ${JSON.stringify(body)}`;
    if (inFlight.has(request)) return null;
    inFlight.add(request);
    try {
      return await send(url, body, what);
    } finally {
      inFlight.delete(request);
    }
  }

  async function send(url, body, what) {
    const token = localStorage.getItem(TOKEN_KEY);
    if (!token) {
      showToken(false);
      say("error", "Writes need an API token: save one first.");
      $("token").focus();
      return null;
    }
    $("actions").setAttribute("aria-busy", "true");
    let r;
    try {
      r = await fetch(url, {
        method: "POST",
        headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      say("error", `${what}: the worker did not answer (${e.message})`);
      return null;
    } finally {
      $("actions").removeAttribute("aria-busy");
    }
    if (!r.ok) {
      say("error", await errorText(r));
      if (r.status === 401) {  // a wrong or revoked token: ask for another
        localStorage.removeItem(TOKEN_KEY);
        showToken(false);
      }
      return null;
    }
    say("ok", `${what}: accepted`);
    setTimeout(reload, 2000);  // in case the live stream is served by another worker
    return r.json().catch(() => ({}));
  }

  function onSubmit(id, handler) {
    $(id).addEventListener("submit", (ev) => { ev.preventDefault(); handler(); });
  }

  function wire() {
    showToken(Boolean(localStorage.getItem(TOKEN_KEY)));
    $("show-all").addEventListener("click", () => { state.showAll = true; renderTimeline(); });
    onSubmit("token-form", () => {
      const token = $("token").value.trim();
      if (!token) return;
      if (!/^[\x21-\x7e]+$/.test(token)) {  // what an Authorization header can carry
        say("error", "A token is printable ASCII, without spaces: check what was pasted.");
        $("token").focus();
        return;
      }
      localStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      showToken(true);
      say("ok", "Token saved in this browser.");
    });
    $("forget-token").addEventListener("click", () => {
      localStorage.removeItem(TOKEN_KEY);
      showToken(false);
      say("ok", "Token forgotten.");
      $("token").focus();
    });
    document.querySelectorAll("button[data-action]").forEach((button) => {
      button.addEventListener("click", () => {
        const action = button.dataset.action;
        write(`${API}/${action}`, {}, action[0].toUpperCase() + action.slice(1));
      });
    });
    $("silence").addEventListener("click", () => {
      const i = state.incident;
      if (!i) return;
      write(`${BASE}/api/silences`, {
        matchers: { service: i.service }, until_resolved: i.id,
        comment: `silenced from the incident page until ${i.id} is resolved`,
      }, "Silence until resolved");
    });
    onSubmit("severity-form", () => write(`${API}/severity`, { severity: $("severity-choice").value }, "Severity"));
    onSubmit("role-form", () => {
      const role = $("role").value, person = $("role-person").value.trim();
      write(`${API}/roles`, { role, person }, `Role ${role}`).then((ok) => { if (ok) $("role-person").value = ""; });
    });
    onSubmit("responder-form", () => {
      const kind = $("responder-kind").value, name = $("responder-name").value.trim();
      write(`${API}/responders`, { [kind]: name }, `Responder ${name}`)
        .then((ok) => { if (ok) $("responder-name").value = ""; });
    });
    onSubmit("note-form", () => {
      const text = $("note-text").value.trim();
      if (!text) return;
      write(`${API}/notes`, { text }, "Note").then((ok) => { if (ok) $("note-text").value = ""; });
    });
  }

  wire();
  setInterval(renderClock, 1000);
  load().catch((e) => {
    if (!state.incident) $("title").textContent = "The incident could not be loaded";
    say("error", e.message);
  }).finally(connect);
})();
