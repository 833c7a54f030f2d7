// Ramudroid fleet page: the fleet over Server-Sent Events (polling as fallback), stops and commands over POST.
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const LABELS = {
    estop: "Emergency stop", fault: "Fault", critical_battery: "Battery critical", obstacle_stop: "Obstacle ahead",
    escaping: "Backing away", stuck: "Stuck: needs help", manual: "Manual control", paused: "Paused",
    sheltering: "Going to shelter", sheltered: "Sheltering", low_battery: "Low battery", night: "Night",
    tray_full: "Tray full", outside_fence: "Outside the fence", gps_wait: "Waiting for GPS", route_done: "Route done",
    cleaning: "Cleaning",
  };
  const BAD = new Set(["estop", "fault", "critical_battery", "stuck", "outside_fence"]);
  const OK = new Set(["cleaning", "manual", "route_done"]);
  let last = null;
  let loggedIn = false;
  let selected = null;
  let lastRx = 0;

  const cls = (r) => (r.stale ? "off" : !r.state ? "off" : BAD.has(r.state.state) ? "bad" : OK.has(r.state.state) ? "ok" : "warn");
  const fmt = (v, unit) => (v === null || v === undefined ? "–" : Math.round(v) + unit);
  const el = (tag, text, className) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (className) e.className = className;
    return e;
  };
  function say(text, isError) {
    $("msg").textContent = text;
    $("msg").className = isError ? "msg err" : "msg";
  }

  async function post(url, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 6000);
    try {
      const res = await fetch(url, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
        signal: ctl.signal, cache: "no-store", credentials: "same-origin",
      });
      const j = await res.json().catch(() => ({}));
      return { ok: res.ok, status: res.status, body: j };
    } catch (e) {
      return { ok: false, status: 0, body: { error: "no connection to the fleet server" } };
    } finally {
      clearTimeout(timer);
    }
  }

  async function stopAll() {
    $("stop-all").classList.add("pressed");
    setTimeout(() => $("stop-all").classList.remove("pressed"), 600);
    for (let i = 0; i < 3; i++) {
      const r = await post("/api/estop");
      if (r.ok) {
        say("STOP sent to every robot (" + (r.body.sent.length - 1) + " known, and the fleet-wide topic).");
        return;
      }
      if (i === 2) say("STOP NOT CONFIRMED: " + (r.body.error || "HTTP " + r.status) + ". Press again.", true);
    }
  }
  async function stopOne(name) {
    const r = await post("/api/robots/" + encodeURIComponent(name) + "/estop");
    if (r.ok) say("STOP sent to " + name + ".");
    else say("STOP NOT CONFIRMED for " + name + ": " + (r.body.error || "HTTP " + r.status), true);
  }
  async function command(name, body, label) {
    const r = await post("/api/robots/" + encodeURIComponent(name) + "/command", body);
    if (r.ok) say(label + " sent to " + name + "; waiting for the robot's answer.");
    else {
      if (r.status === 401) setLogin(false);
      say(label + " not sent: " + (r.body.error || "HTTP " + r.status), true);
    }
  }
  $("stop-all").addEventListener("click", stopAll);

  function setLogin(state) {
    loggedIn = state;
    $("login-form").hidden = state || !cfg.control;
    $("logout").hidden = !state;
    if (!cfg.control) $("access-note").textContent = "Control is off on this server (fleet.password_hash and fleet.master_key). STOP always works.";
    if (last) render(last);
  }
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await post("/api/login", { password: $("password").value });
    $("password").value = "";
    if (r.ok) { setLogin(true); say("Logged in."); } else say("Login failed: " + (r.body.error || r.status), true);
  });
  $("logout").addEventListener("click", async () => { await post("/api/logout"); setLogin(false); say("Logged out."); });

  // ---- map: an equirectangular projection fitted to the robots, metres shown by a scale bar ----------------
  function drawMap(robots) {
    const svg = $("map");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const placed = robots.filter((r) => r.state && r.state.latitude !== undefined && r.state.longitude !== undefined);
    $("map-note").textContent = placed.length < robots.length ? (robots.length - placed.length) + " robot(s) without a GPS position" : "";
    if (!placed.length) return;
    const lat0 = placed.reduce((s, r) => s + r.state.latitude, 0) / placed.length;
    const k = Math.cos((lat0 * Math.PI) / 180);
    const xs = placed.map((r) => r.state.longitude * k), ys = placed.map((r) => r.state.latitude);
    let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const span = Math.max(x1 - x0, y1 - y0, 0.0005);
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const scale = Math.min(900 / span, 500 / span);
    const px = (r) => [500 + (r.state.longitude * k - cx) * scale, 300 - (r.state.latitude - cy) * scale];
    const metres = (span * 111320) / 4;
    const p10 = Math.pow(10, Math.floor(Math.log10(metres)));
    const niceM = [5, 2, 1].map((m) => m * p10).find((m) => m <= metres);
    const bar = niceM * scale / 111320;
    const line = document.createElementNS(SVG, "line");
    for (const [a, v] of [["x1", 20], ["y1", 580], ["x2", 20 + bar], ["y2", 580]]) line.setAttribute(a, v);
    line.setAttribute("stroke", "#333");
    line.setAttribute("stroke-width", "4");
    svg.appendChild(line);
    const lbl = document.createElementNS(SVG, "text");
    lbl.setAttribute("x", 20);
    lbl.setAttribute("y", 570);
    lbl.textContent = niceM >= 1000 ? niceM / 1000 + " km" : niceM + " m";
    svg.appendChild(lbl);
    for (const r of placed) {
      const [x, y] = px(r);
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "robot " + cls(r) + (r.name === selected ? " selected" : ""));
      g.setAttribute("data-robot", r.name);
      g.setAttribute("transform", "translate(" + x.toFixed(1) + " " + y.toFixed(1) + ")");
      const c = document.createElementNS(SVG, "circle");
      c.setAttribute("r", 12);
      const title = document.createElementNS(SVG, "title");
      title.textContent = r.name + ": " + (r.stale ? "offline or silent" : LABELS[r.state.state] || r.state.state);
      const t = document.createElementNS(SVG, "text");
      t.setAttribute("x", 16);
      t.setAttribute("y", 6);
      t.textContent = r.name;
      g.append(c, title, t);
      g.addEventListener("click", () => { selected = r.name; render(last); });
      svg.appendChild(g);
    }
  }

  function actions(r) {
    const td = el("td", undefined, "actions");
    const stop = el("button", "STOP", "stop");
    stop.type = "button";
    stop.setAttribute("aria-label", "Emergency stop " + r.name);
    stop.addEventListener("click", () => stopOne(r.name));
    td.appendChild(stop);
    if (cfg.control && loggedIn) {
      for (const [label, body] of [["Pause", { kind: "set_mode", mode: "paused" }], ["Auto", { kind: "set_mode", mode: "auto" }], ["Reset", { kind: "reset" }]]) {
        const b = el("button", label);
        b.type = "button";
        b.addEventListener("click", () => command(r.name, body, label));
        td.append(" ", b);
      }
    }
    return td;
  }

  function render(data) {
    last = data;
    const robots = data.robots;
    const online = robots.filter((r) => !r.stale).length;
    const stopped = robots.filter((r) => r.state && r.state.state === "estop").length;
    $("summary").textContent = robots.length + " robots · " + online + " online · " + stopped + " e-stopped" + (data.broker ? "" : " · BROKER UNREACHABLE");
    $("banner").hidden = data.broker;
    $("banner").textContent = data.broker ? "" : "The fleet server cannot reach the MQTT broker: what you see may be old, and stops cannot go out.";
    drawMap(robots);
    const tbody = $("robots");
    tbody.replaceChildren();
    if (!robots.length) {
      const tr = el("tr");
      const td = el("td", "No robot has reported yet", "none");
      td.colSpan = 6;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    for (const r of robots) {
      const tr = el("tr", undefined, cls(r) + (r.name === selected ? " selected" : ""));
      tr.dataset.robot = r.name;
      const s = r.state || {};
      const stateCell = el("td");
      const label = r.stale ? (r.status === "offline" ? "Offline" : "No news") : LABELS[s.state] || s.state || "–";
      stateCell.append(el("div", label, "state"), el("div", s.reason || "", "reason"));
      const lastResult = r.result ? (r.result.ok ? "✓ " : "✗ ") + r.result.outcome : "";
      stateCell.append(el("div", lastResult, "reason"));
      tr.append(el("th", r.name), stateCell, el("td", fmt(s.battery_pct, " %")), el("td", fmt(s.tray_pct, " %")),
        el("td", r.age_s === null ? "never" : Math.round(r.age_s) + " s ago"), actions(r));
      tr.addEventListener("click", (e) => { if (e.target.tagName !== "BUTTON") { selected = r.name; render(last); } });
      tbody.appendChild(tr);
    }
    const ul = $("alerts");
    ul.replaceChildren();
    if (!data.alerts.length) ul.appendChild(el("li", "None", "none"));
    for (const a of data.alerts) {
      const when = a.wall ? new Date(a.wall * 1000).toLocaleTimeString() : "";
      ul.appendChild(el("li", when + " " + a.robot + ": " + a.message, a.severity));
    }
  }

  function receive(data) {
    lastRx = Date.now();
    render(data);
  }
  async function poll() {
    try {
      const res = await fetch("/api/fleet", { cache: "no-store" });
      const j = await res.json();
      setLogin(j.logged_in);
      receive(j);
    } catch (e) { /* shown by the watchdog below */ }
  }
  if (window.EventSource) {
    const es = new EventSource("/api/events");
    es.onmessage = (e) => receive(JSON.parse(e.data));
  } else {
    setInterval(poll, 2000);
  }
  setInterval(() => {
    if (Date.now() - lastRx > 5000) {
      $("banner").hidden = false;
      $("banner").textContent = "No news from the fleet server for " + Math.round((Date.now() - lastRx) / 1000) + " s.";
      poll();
    }
  }, 2000);
  setLogin(false);
  poll();
})();
