// Ramudroid dashboard: status over Server-Sent Events (polling as fallback), commands over POST /api/command,
// STOP over POST /api/estop and, at the same time, the separate e-stop port (which holds when this one is flooded).
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const STATES = {
    estop: ["Emergency stop", "bad"], fault: ["Fault", "bad"], critical_battery: ["Battery critical", "bad"],
    obstacle_stop: ["Stopped: obstacle ahead", "warn"], escaping: ["Backing away from obstacle", "warn"],
    stuck: ["Stuck: needs help", "bad"], manual: ["Manual control", "ok"], paused: ["Paused", "warn"],
    sheltering: ["Going to shelter (rain)", "warn"], sheltered: ["Sheltering from rain", "warn"],
    low_battery: ["Low battery: charging", "warn"], night: ["Night: resting", "warn"],
    critical_parking: ["Battery critical: parking", "bad"], waiting_for_sun: ["Saving battery: waiting for sun", "warn"],
    tray_full: ["Tray full: please empty", "warn"], outside_fence: ["Outside the fence", "bad"],
    gps_wait: ["Waiting for GPS", "warn"], route_done: ["Route done", "ok"], cleaning: ["Cleaning", "ok"],
  };
  const RESETTABLE = new Set(["estop", "fault", "stuck"]);
  const DIRS = {
    f: [1, 1], b: [-1, -1], l: [-0.6, 0.6], r: [0.6, -0.6],
    fl: [0.5, 1], fr: [1, 0.5], bl: [-0.5, -1], br: [-1, -0.5], stop: [0, 0],
  };
  const DRIVE_MS = 100; // the supervisor's deadman is 500 ms: several ticks fit in one deadman period

  // This tab's own id, so the robot can tell two browsers apart for the driving lease (no secret in it).
  let clientId = sessionStorage.getItem("ramudroid-client");
  if (!clientId) {
    clientId = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("ramudroid-client", clientId);
  }
  let loggedOut = false; // the robot wants a password before it shows or takes anything but STOP
  let last = null; // newest status
  let lastRx = 0; // Date.now() of the newest message from the server
  let waiting = false; // the server is up but the robot has not reported yet
  let es = null;
  let pollTimer = null;

  const fmt = (v, digits, unit) => (v === null || v === undefined || !isFinite(v) ? "–" : v.toFixed(digits) + unit);
  function setText(id, text, cls) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
    el.className = cls || "";
  }
  function showMsg(text, isError) {
    const m = $("msg");
    m.textContent = text;
    m.className = isError ? "msg err" : "msg";
  }

  // ---- commands -------------------------------------------------------------------------------------------
  function needLogin(text) {
    loggedOut = true;
    $("login-box").hidden = false;
    $("logout").hidden = true;
    if (text) $("login-msg").textContent = text;
    setPad(false, "Log in to drive.");
    if (es) { es.close(); es = null; }
  }

  async function send(body) {
    const headers = { "Content-Type": "application/json", "X-Ramudroid-Client": clientId };
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 4000);
    try {
      const res = await fetch("/api/command", {
        method: "POST", headers, body: JSON.stringify(body), signal: ctl.signal, cache: "no-store",
        credentials: "same-origin",
      });
      if (res.status === 401) {
        needLogin("Log in to do that (STOP needs no password).");
        showMsg("Log in first.", true);
      } else if (res.status === 409) {
        const j = await res.json().catch(() => ({}));
        showMsg(j.error || "Someone else is driving.", true);
        if (j.driver) renderDriver(j.driver, last ? last.mode : "manual");
      } else if (!res.ok) {
        const j = await res.json().catch(() => ({}));
        showMsg(j.error || "Refused (HTTP " + res.status + ")", true);
      }
      return res.ok;
    } catch (e) {
      showMsg("Not sent: no connection to the robot.", true);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  // One STOP request to one address; resolves true once the robot confirmed it (202).
  async function postStop(url) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 2000);
    try {
      const res = await fetch(url, { method: "POST", cache: "no-store", signal: ctl.signal });
      if (!res.ok) throw new Error("HTTP " + res.status);
      return true;
    } finally {
      clearTimeout(timer);
    }
  }
  function stopOnce() {
    // Both doors at once: the dashboard itself, and the e-stop port that slow or flooding clients cannot block.
    const tries = [postStop("/api/estop")];
    if (cfg.estop_port) tries.push(postStop(location.protocol + "//" + location.hostname + ":" + cfg.estop_port + "/api/estop"));
    return Promise.any(tries).then(() => true, () => false);
  }

  async function estop() {
    stopDrive(false);
    $("estop").classList.add("pressed");
    setTimeout(() => $("estop").classList.remove("pressed"), 600);
    for (let i = 0; i < 3; i++) {
      if (await stopOnce()) {
        showMsg("STOP sent.");
        return;
      }
    }
    showMsg("STOP NOT CONFIRMED: press again, or switch the robot off.", true);
  }
  // pointerdown: stop on touch, not on release; keyboard activation arrives as a click with detail 0.
  $("estop").addEventListener("pointerdown", (e) => { e.preventDefault(); estop(); });
  $("estop").addEventListener("click", (e) => { if (e.detail === 0) estop(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") estop(); });

  for (const b of document.querySelectorAll("[data-mode]")) {
    b.addEventListener("click", async () => {
      if (await send({ kind: "set_mode", mode: b.dataset.mode })) showMsg("Mode: " + b.textContent + " requested.");
    });
  }
  $("reset").addEventListener("click", async () => { if (await send({ kind: "reset" })) showMsg("Reset requested."); });
  $("take-over").addEventListener("click", async () => {
    if (await send({ kind: "take_over" })) showMsg("You drive now: the wheels were braked for the hand-over.");
  });
  $("tray").addEventListener("click", async () => {
    if (await send({ kind: "tray_emptied" })) showMsg("Tray marked as emptied.");
  });

  // ---- hold-to-drive --------------------------------------------------------------------------------------
  let driveTimer = null, driveVec = null, driveBtn = null, inFlight = false;
  const speed = () => Number($("speed").value);
  const round2 = (x) => Math.round(x * 100) / 100;
  function driveTick() {
    // One request at a time: on a slow link ticks are skipped instead of piling up behind each other.
    if (inFlight || !driveVec) return;
    inFlight = true;
    const s = speed();
    send({ kind: "drive", left: round2(driveVec[0] * s), right: round2(driveVec[1] * s) })
      .finally(() => { inFlight = false; });
  }
  function startDrive(btn) {
    stopDrive(false);
    driveVec = DIRS[btn.dataset.dir];
    driveBtn = btn;
    btn.classList.add("active");
    driveTick();
    driveTimer = setInterval(driveTick, DRIVE_MS);
  }
  function stopDrive(sendZero = true) {
    if (driveTimer === null) return;
    clearInterval(driveTimer);
    driveTimer = null;
    driveVec = null;
    driveBtn.classList.remove("active");
    driveBtn = null;
    // The deadman would stop the robot anyway; the explicit zero stops it at once.
    if (sendZero) send({ kind: "drive", left: 0, right: 0 });
  }
  for (const b of document.querySelectorAll("[data-dir]")) {
    b.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      b.setPointerCapture(e.pointerId);
      startDrive(b);
    });
    for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) b.addEventListener(ev, () => stopDrive());
    b.addEventListener("keydown", (e) => {
      if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); startDrive(b); }
    });
    b.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") stopDrive(); });
    b.addEventListener("blur", () => stopDrive());
    b.addEventListener("contextmenu", (e) => e.preventDefault()); // long press must not open a menu
  }
  window.addEventListener("blur", () => stopDrive());
  $("speed").addEventListener("input", () => { $("speed-out").textContent = Math.round(speed() * 100) + "%"; });

  function setPad(enabled, hint) {
    for (const b of document.querySelectorAll("[data-dir]")) b.disabled = !enabled;
    if (!enabled) stopDrive();
    if (hint && $("drive-hint").textContent !== hint) $("drive-hint").textContent = hint;
  }

  // ---- the parts' readings ------------------------------------------------------------------------------
  // A tile per polled part's reading, in the parts table's order (cfg.parts, from robot/parts.py). A reading
  // field listed here gets its own tile and wording; any other field gets a plain tile titled after its part,
  // so a part added to the table shows here without touching this file. A part whose newest reading is older
  // than its freshness limit is marked stale (the core brakes on it).
  const cap = cfg.tray_capacity_kg;
  const VIEWS = {
    battery_soc: { id: "battery", title: "Battery", show: (s) => [
      fmt(s.battery_soc === null ? null : s.battery_soc * 100, 0, " %") + " · " + fmt(s.battery_v, 1, " V"),
      s.battery_soc === null ? "" : s.battery_soc < 0.15 ? "bad" : s.battery_soc < 0.3 ? "warn" : "ok"] },
    battery_v: null, // on the battery tile
    panel_w: { id: "panel", title: "Solar panel", show: (s) => [fmt(s.panel_w, 1, " W"), ""] },
    tray_kg: { id: "tray", title: "Tray", meter: true, show: (s) => [
      fmt(s.tray_kg, 2, "") + " / " + cap.toFixed(1) + " kg",
      s.tray_kg >= cap * 0.95 ? "bad" : s.tray_kg >= cap * 0.75 ? "warn" : ""] },
    raining: { id: "rain", title: "Rain", show: (s) => [
      s.raining === null ? "–" : s.raining ? "Raining" : "Dry", s.raining ? "warn" : ""] },
    distance_m: { id: "obstacle", title: "Obstacle", show: (s) => [
      s.distance_m === null ? "No echo" : fmt(s.distance_m, 2, " m"),
      s.distance_m === null || s.distance_m < 0.5 ? "warn" : ""] },
    fix: { id: "gps", title: "GPS", show: (s) => [s.fix
      ? s.fix.mode + "D fix · HDOP " + fmt(s.fix.hdop, 1, "") + " · " + (s.fix.sats ?? "?") + " sats"
      : "No fix", s.fix ? "ok" : "warn"] },
  };
  function plain(field) {
    return (s) => {
      const v = s[field];
      if (v === null || v === undefined) return ["–", ""];
      if (typeof v === "number") return [fmt(v, 2, ""), ""];
      if (typeof v === "boolean") return [v ? "Yes" : "No", ""];
      return [JSON.stringify(v), ""];
    };
  }
  const tiles = []; // [part, view, dd, age note]
  function buildParts() {
    const end = $("tiles-end");
    for (const part of cfg.parts || []) {
      for (const field of part.fields) {
        let view = VIEWS[field];
        if (view === null) continue;
        if (view === undefined) view = { id: field, title: part.label + " · " + field, show: plain(field) };
        const box = document.createElement("div");
        const dt = document.createElement("dt");
        dt.textContent = view.title;
        const dd = document.createElement("dd");
        dd.id = "r-" + view.id;
        dd.textContent = "–";
        box.append(dt, dd);
        if (view.meter) {
          const m = document.createElement("meter");
          Object.assign(m, { id: "tray-meter", min: 0, max: cap, low: cap * 0.5, high: cap * 0.9, optimum: 0, value: 0 });
          m.setAttribute("aria-label", "Tray load");
          box.append(m);
        }
        const note = document.createElement("small");
        note.className = "part-age";
        note.hidden = true;
        box.append(note);
        box.title = part.label + (part.fresh_s === null ? "" : ": fresh within " + part.fresh_s + " s (" + part.fresh_key + ")");
        box.dataset.part = part.name;
        end.before(box);
        tiles.push([part, view, dd, note]);
      }
    }
  }
  function renderParts(s) {
    const ages = s.reading_age_s || {};
    for (const [part, view, dd, note] of tiles) {
      const [text, cls] = view.show(s);
      setText(dd.id, text, cls);
      const age = ages[part.name];
      const stale = part.fresh_s !== null && age !== undefined && (age === null || age > part.fresh_s);
      note.hidden = !stale;
      note.textContent = !stale ? "" : age === null ? part.label + ": no reading yet"
        : part.label + ": stale, " + fmt(age, 1, " s") + " old (limit " + part.fresh_s + " s)";
      if (view.meter) $("tray-meter").value = Math.max(0, Math.min(cap, s.tray_kg || 0));
    }
  }
  buildParts();

  // ---- status ---------------------------------------------------------------------------------------------
  function render(s) {
    const [label, cls] = STATES[s.state] || [s.state, "warn"];
    setText("state", label);
    setText("reason", s.reason || "");
    $("state-box").className = "state " + cls;
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.setAttribute("aria-pressed", String(b.dataset.mode === s.mode));
    }
    $("reset").disabled = !RESETTABLE.has(s.state);
    // Driving blind is not allowed: the pad works only in manual mode, with fresh data, and not after a STOP.
    let hint = "Hold a button to move; let go to stop.";
    const other = s.driver && !s.driver.you;
    if (s.state === "estop") hint = "Stopped: press “Reset after stop” first.";
    else if (s.mode !== "manual") hint = "Switch to Manual to drive. Hold a button to move; let go to stop.";
    else if (s.stale) hint = "No fresh data from the robot: driving is disabled.";
    else if (other) hint = "Someone else is driving: you may press STOP, or take over.";
    setPad(s.mode === "manual" && s.state !== "estop" && !s.stale && !other, hint);
    renderDriver(s.driver, s.mode);

    renderParts(s);
    const fix = s.fix;
    const stats = s.link_stats || {};
    const rttKey = Object.keys(stats).find((k) => k.includes("rtt"));
    setText("r-link", (s.link_ok ? "OK" : "DOWN") + (rttKey ? " · RTT " + fmt(stats[rttKey], 0, rttKey.endsWith("_s") ? " s" : " ms") : ""),
      s.link_ok ? "ok" : "bad");
    setText("r-goal", s.goal || "–");
    setText("r-route", fmt((s.route_progress || 0) * 100, 0, " %"));
    renderAlerts(s);
    renderRobot(fix);
    const when = new Date((s.wall || s.server_time) * 1000);
    setText("footer", "Robot time " + when.toLocaleTimeString() + " · data age " + fmt(s.age_s, 1, " s"), "hint");
  }

  function renderDriver(d, mode) {
    let text = "";
    if (d && d.you) text = "You are driving.";
    else if (d) text = d.label + " is driving (for " + Math.round(d.since_s) + " s).";
    setText("driver", text, "driver");
    $("take-over").hidden = !(d && !d.you && mode === "manual");
  }

  let alertsKey = "";
  function renderAlerts(s) {
    const items = (s.recent_alerts || []).slice().reverse();
    const key = items.map((a) => a.at + a.kind).join("|");
    if (key === alertsKey) return;
    alertsKey = key;
    const ul = $("alerts");
    ul.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "None";
      ul.append(li);
    }
    for (const a of items.slice(0, 10)) {
      const li = document.createElement("li");
      li.className = a.severity;
      const sev = document.createElement("span");
      sev.className = "sev";
      sev.textContent = a.severity;
      const age = document.createElement("span");
      age.className = "age";
      age.textContent = " · " + ago(s.at - a.at);
      li.append(sev, " ", a.message, age);
      ul.append(li);
    }
  }
  function ago(sec) {
    if (!isFinite(sec) || sec < 0) return "";
    if (sec < 90) return Math.round(sec) + " s ago";
    if (sec < 5400) return Math.round(sec / 60) + " min ago";
    return Math.round(sec / 3600) + " h ago";
  }

  function onStatus(s) {
    last = s;
    lastRx = Date.now();
    waiting = false;
    render(s);
  }
  function onWaiting() {
    lastRx = Date.now();
    waiting = true;
  }

  async function pollOnce() {
    try {
      const res = await fetch("/api/status", { cache: "no-store", headers: { "X-Ramudroid-Client": clientId } });
      if (res.ok) onStatus(await res.json());
      else if (res.status === 503) onWaiting();
      else if (res.status === 401) needLogin("Your login has ended: log in again.");
    } catch (e) { /* the banner reports the silence */ }
  }
  function startPolling() {
    if (pollTimer === null) pollTimer = setInterval(pollOnce, 1000);
  }
  function connect() {
    if (loggedOut) return;
    if (!window.EventSource) { startPolling(); return; }
    if (es) es.close();
    // EventSource cannot send headers: the tab's id rides in the query string (it is not a secret).
    es = new EventSource("/api/events?client=" + clientId);
    es.onmessage = (e) => { try { onStatus(JSON.parse(e.data)); } catch (err) { /* ignore a torn message */ } };
    es.addEventListener("waiting", onWaiting);
    es.onerror = () => {
      // CLOSED: the server refused the stream (too many tabs, or the login ended); polling tells which.
      if (es && es.readyState === EventSource.CLOSED) startPolling();
    };
    es.onopen = () => {
      if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
    };
  }
  // A phone with its screen off should not spend data; reconnect when the page is shown again.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { stopDrive(); if (es) { es.close(); es = null; } } else connect();
  });

  function checkStale() {
    const silent = (Date.now() - lastRx) / 1000;
    let text = "";
    if (loggedOut) text = "";
    else if (!lastRx) text = "Connecting to the robot…";
    else if (silent > cfg.stale_after_s) {
      text = "Connection lost: no data for " + Math.round(silent) + " s. Shown values are old.";
      setPad(false, "No connection to the robot: driving is disabled.");
    } else if (waiting) text = "The robot has not reported yet.";
    else if (last && last.stale) text = "Robot not reporting: data is " + Math.round(last.age_s) + " s old.";
    const banner = $("banner");
    if (banner.textContent !== text) banner.textContent = text;
    banner.hidden = !text;
    document.body.classList.toggle("stale", Boolean(text));
  }
  setInterval(checkStale, 500);

  // ---- map ------------------------------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  let project = null;
  function svgEl(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }
  function roleOf(p) {
    const r = String(p.role || p.kind || p.type || p.name || "").toLowerCase();
    for (const k of ["fence", "route", "shelter", "park"]) if (r.includes(k)) return k;
    return "other";
  }
  function drawSite(gj) {
    const feats = gj.type === "FeatureCollection" ? gj.features || [] : [gj];
    const pts = [];
    const walk = (c) => (typeof c[0] === "number" ? pts.push(c) : c.forEach(walk));
    feats.forEach((f) => f.geometry && walk(f.geometry.coordinates));
    if (!pts.length) return;
    const lons = pts.map((p) => p[0]), lats = pts.map((p) => p[1]);
    const lon0 = Math.min(...lons), lon1 = Math.max(...lons), lat0 = Math.min(...lats), lat1 = Math.max(...lats);
    const k = Math.cos(((lat0 + lat1) / 2) * Math.PI / 180); // metres per degree of longitude shrink with latitude
    const w = Math.max((lon1 - lon0) * k, 1e-9), h = Math.max(lat1 - lat0, 1e-9);
    const scale = Math.min(900 / w, 600 / h);
    const ox = (1000 - w * scale) / 2, oy = (700 - h * scale) / 2;
    project = (lon, lat) => [ox + (lon - lon0) * k * scale, oy + (lat1 - lat) * scale];
    const svg = $("map");
    const ring = (c) => c.map((p) => project(p[0], p[1]).map((v) => v.toFixed(1)).join(",")).join(" ");
    for (const f of feats) {
      const g = f.geometry;
      if (!g) continue;
      const role = roleOf(f.properties || {});
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const poly of polys) svg.append(svgEl("polygon", { points: ring(poly[0]), class: role === "other" ? "fence" : role }));
      const lines = g.type === "LineString" ? [g.coordinates] : g.type === "MultiLineString" ? g.coordinates : [];
      for (const line of lines) svg.append(svgEl("polyline", { points: ring(line), class: role === "other" ? "route" : role }));
      if (g.type === "Point") {
        const [x, y] = project(g.coordinates[0], g.coordinates[1]);
        svg.append(svgEl("circle", { cx: x, cy: y, r: 20, class: role }));
        const label = svgEl("text", { x: x + 28, y: y + 14 });
        label.textContent = (f.properties && (f.properties.name || f.properties.role)) || role;
        svg.append(label);
      }
    }
    const robot = svgEl("g", { id: "robot", visibility: "hidden" });
    robot.append(svgEl("path", { d: "M0,-40 L26,26 L0,13 L-26,26 Z", class: "robot" }));
    svg.append(robot);
  }
  function renderRobot(fix) {
    const note = fix ? "Robot at " + fix.lat.toFixed(6) + ", " + fix.lon.toFixed(6) : "Robot position unknown (no GPS fix)";
    if ($("map-note").textContent !== note) $("map-note").textContent = note;
    const robot = $("robot");
    if (!robot) return;
    if (!fix || !project) { robot.setAttribute("visibility", "hidden"); return; }
    const [x, y] = project(fix.lon, fix.lat);
    robot.setAttribute("transform", "translate(" + x.toFixed(1) + "," + y.toFixed(1) + ") rotate(" + (fix.track || 0) + ")");
    robot.setAttribute("visibility", "visible");
  }
  let siteDrawn = false;
  function loadSite() {
    if (!cfg.site) { $("map").hidden = true; return; }
    if (siteDrawn) return;
    fetch("/api/site").then((r) => (r.ok ? r.json() : null)).then((gj) => {
      if (gj && !siteDrawn) { siteDrawn = true; drawSite(gj); }
    }).catch(() => {});
  }

  // ---- camera: one picture at a time, the next only after the last arrived (self-pacing on slow links) ----
  if (cfg.camera) {
    const box = $("camera-box"), img = $("camera");
    box.hidden = false;
    let timer = null;
    const next = (ms) => {
      clearTimeout(timer);
      timer = setTimeout(() => { if (box.open) img.src = "/api/camera.jpg?t=" + Date.now(); }, ms);
    };
    img.addEventListener("load", () => next(1000));
    img.addEventListener("error", () => next(3000));
    box.addEventListener("toggle", () => next(0));
  }

  // ---- login ----------------------------------------------------------------------------------------------
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const password = $("password").value;
    try {
      const res = await fetch("/api/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ password }),
        cache: "no-store", credentials: "same-origin",
      });
      const j = await res.json().catch(() => ({}));
      if (!res.ok) { $("login-msg").textContent = j.error || "Login refused (HTTP " + res.status + ")"; return; }
    } catch (err) {
      $("login-msg").textContent = "No connection to the robot.";
      return;
    }
    $("password").value = "";
    $("login-msg").textContent = "";
    start();
  });
  $("logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST", cache: "no-store", credentials: "same-origin" }).catch(() => {});
    needLogin("Logged out.");
  });

  async function start() {
    let info = { login_required: false, logged_in: false };
    try {
      const res = await fetch("/api/session", { cache: "no-store" });
      if (res.ok) info = await res.json();
    } catch (e) { /* the banner reports the silence */ }
    if (info.login_required && !info.logged_in) { needLogin(""); return; }
    loggedOut = false;
    $("login-box").hidden = true;
    $("logout").hidden = !info.logged_in;
    loadSite();
    connect();
  }

  start();
  checkStale();
})();
