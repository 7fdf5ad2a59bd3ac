// The admin dashboard: live events (SSE over fetch), publishing jobs, health, analytics.
// The tokens live in memory only; every text from the server is set with textContent.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const HEALTH_EVERY_MS = 3000;
  const JOB_EVERY_MS = 1000;
  const RECENT_JOBS = 10; // the newest jobs listed with each health refresh
  const STREAM_SILENCE_MS = 45000; // the gateway sends a keepalive every 15 s
  const MAX_BACKOFF_MS = 30000;
  const SPARK_SECONDS = 60;
  const MAX_ROWS = 50;
  const JOB_ID = /^[0-9a-f]{32}$/;

  const state = {
    access: null,
    refresh: null,
    counts: {},
    perSecond: new Array(SPARK_SECONDS).fill(0),
    jobs: new Map(),
    stream: null,
    timers: [],
    depths: {},
  };

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function say(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = kind || "";
    box.hidden = !text;
  }

  function setStream(text, kind) {
    const pill = $("stream-state");
    pill.textContent = text;
    pill.className = "pill " + (kind || "");
  }

  // ---------------------------------------------------------------- API calls

  class ApiError extends Error {
    constructor(status, text) {
      super(text || "HTTP " + status);
      this.status = status;
    }
  }

  // One refresh at a time: the gateway takes a second use of one refresh token for a
  // replay and revokes the whole login. A caller whose token was already replaced retries.
  let refreshing = null;

  function refreshTokens(expired) {
    if (state.access && state.access !== expired) return Promise.resolve(true);
    if (!refreshing) refreshing = rotate().finally(() => (refreshing = null));
    return refreshing;
  }

  async function rotate() {
    if (!state.refresh) return false;
    const answer = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { Authorization: "Bearer " + state.refresh },
      cache: "no-store",
    });
    if (!answer.ok) return false;
    const pair = await answer.json();
    state.access = pair.access_token;
    state.refresh = pair.refresh_token || state.refresh;
    return true;
  }

  async function api(path, retried) {
    const token = state.access;
    if (!token) throw new ApiError(401, "signed out");
    const answer = await fetch(path, {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
    });
    if (answer.status === 401 && !retried && (await refreshTokens(token))) return api(path, true);
    if (answer.status === 401) signOut("Your session has ended: sign in again.");
    if (answer.status === 403) forbidden();
    if (!answer.ok) throw new ApiError(answer.status, await problem(answer));
    return answer.json();
  }

  async function problem(answer) {
    try {
      const body = await answer.json();
      return body.message || body.error || "HTTP " + answer.status;
    } catch (_) {
      return "HTTP " + answer.status;
    }
  }

  // ------------------------------------------------------------- sign in/out

  async function signIn(event) {
    event.preventDefault();
    say("");
    const body = { email: $("login-email").value, password: $("login-password").value };
    const answer = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    $("login-password").value = "";
    if (!answer.ok) {
      say("Sign-in failed: " + (await problem(answer)));
      return;
    }
    const pair = await answer.json();
    state.access = pair.access_token;
    state.refresh = pair.refresh_token;
    try {
      await api("/api/reports/signups?from=" + isoDay(0) + "&to=" + isoDay(0)); // admins only
    } catch (_) {
      return; // forbidden() or signOut() said why
    }
    start();
  }

  function forbidden() {
    stop();
    say("This dashboard is for admins only: this account is not an administrator.");
  }

  function signOut(text) {
    stop();
    say(text || "Signed out.", "info");
  }

  // Revokes this login's tokens on the server too, then forgets them.
  async function logOut() {
    const token = state.access;
    signOut("Signed out.");
    if (token) {
      await fetch("/api/auth/logout", {
        method: "POST",
        headers: { Authorization: "Bearer " + token },
        cache: "no-store",
      }).catch(() => undefined);
    }
  }

  function start() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    streamEvents();
    state.timers.push(setInterval(tickSparkline, 1000));
    refreshHealth();
    state.timers.push(setInterval(refreshHealth, HEALTH_EVERY_MS));
    refreshJobs();
    state.timers.push(setInterval(refreshJobs, HEALTH_EVERY_MS));
    $("range-from").value = isoDay(-13);
    $("range-to").value = isoDay(0);
    loadReports();
  }

  function stop() {
    state.access = null;
    state.refresh = null;
    if (state.stream) state.stream.abort();
    state.timers.forEach(clearInterval);
    state.timers = [];
    state.jobs.forEach((job) => {
      clearTimeout(job.timer);
      job.polling = false;
    });
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    setStream("signed out", "stopped");
  }

  // ------------------------------------------------------------ live events

  // EventSource cannot send the Authorization header the stream needs: read it with fetch.
  async function streamEvents() {
    let backoff = 1000;
    let reason = "";
    while (state.access) {
      const control = new AbortController();
      state.stream = control;
      const token = state.access;
      let watchdog = null;
      try {
        const answer = await fetch("/api/events/stream", {
          headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
          cache: "no-store",
          signal: control.signal,
        });
        if (answer.status === 403) return forbidden();
        if (answer.status === 401) {
          if (await refreshTokens(token)) continue;
          return signOut("Your session has ended: sign in again.");
        }
        if (!answer.ok) {
          // 429: this admin's streams are at their cap (a closed tab's slot lapses soon);
          // 503: the gateway is busy. Both say when to come back.
          const retryAfter = Number(answer.headers.get("Retry-After")) || 0;
          backoff = Math.min(Math.max(backoff, retryAfter * 1000), MAX_BACKOFF_MS);
          reason = answer.status === 429 ? " (too many open streams)" : " (HTTP " + answer.status + ")";
          throw new ApiError(answer.status);
        }
        reason = "";
        setStream("live", "live");
        backoff = 1000;
        let heard = Date.now();
        watchdog = setInterval(() => {
          if (Date.now() - heard > STREAM_SILENCE_MS) control.abort();
        }, 5000);
        await readSse(answer.body, () => (heard = Date.now()), onEvent);
      } catch (error) {
        if (!state.access) return;
      } finally {
        clearInterval(watchdog);
      }
      if (!state.access) return;
      const wait = backoff + Math.floor(Math.random() * 500);
      setStream("reconnecting in " + Math.round(wait / 1000) + " s" + reason, "reconnecting");
      await sleep(wait);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  // A small Server-Sent Events parser: "event:" and "data:" fields, blank line ends one.
  async function readSse(body, onChunk, onMessage) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let type = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onChunk();
      buffer += value;
      const lines = buffer.split(/\r\n|\n|\r/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) onMessage(type, data.join("\n"));
          type = "message";
          data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") type = text;
          else if (field === "data") data.push(text);
        }
      }
    }
  }

  // Drops every key naming an e-mail address, at any depth.
  function scrub(value) {
    if (Array.isArray(value)) return value.map(scrub);
    if (value === null || typeof value !== "object") return value;
    const clean = {};
    for (const [key, inner] of Object.entries(value)) {
      if (!/email/i.test(key)) clean[key] = scrub(inner);
    }
    return clean;
  }

  function idsOf(event) {
    return Object.entries(event)
      .filter(([key]) => /(^|_)id$/.test(key) && key !== "event_id")
      .map(([key, value]) => key + "=" + value)
      .join(" ");
  }

  function onEvent(channel, data) {
    let event;
    try {
      event = scrub(JSON.parse(data));
    } catch (_) {
      return;
    }
    const type = event.type || channel;
    state.counts[type] = (state.counts[type] || 0) + 1;
    state.perSecond[SPARK_SECONDS - 1] += 1;
    renderCounts();
    const row = el("tr");
    row.dataset.type = type;
    const when = event.occurred_at ? new Date(event.occurred_at) : new Date();
    row.append(el("td", when.toLocaleTimeString()), el("td", type), el("td", idsOf(event), "ids"));
    row.title = "event " + (event.event_id || "");
    const list = $("event-list");
    list.prepend(row);
    while (list.rows.length > MAX_ROWS) list.deleteRow(-1);
    if (type === "course.published" && JOB_ID.test(event.job_id || "")) followJob(event.job_id);
    drawSparkline();
  }

  function renderCounts() {
    const list = $("event-counts");
    list.replaceChildren(
      ...Object.keys(state.counts)
        .sort()
        .map((type) => {
          const item = el("li", type);
          item.dataset.type = type;
          item.append(el("b", state.counts[type]));
          return item;
        }),
    );
  }

  function tickSparkline() {
    state.perSecond.shift();
    state.perSecond.push(0);
    drawSparkline();
  }

  function drawSparkline() {
    const svg = $("sparkline");
    const top = Math.max(1, ...state.perSecond);
    const step = 240 / (SPARK_SECONDS - 1);
    const points = state.perSecond.map((n, i) => `${(i * step).toFixed(1)},${(38 - (n / top) * 36).toFixed(1)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.replaceChildren(line);
    $("event-rate").textContent = String(state.perSecond[SPARK_SECONDS - 2] || 0);
  }

  // -------------------------------------------------------------------- jobs

  function followJob(id) {
    if (state.jobs.has(id)) return;
    const job = addJob(id);
    job.polling = true;
    pollJob(id, job);
  }

  function addJob(id) {
    const row = el("tr");
    row.dataset.job = id;
    const progress = el("progress");
    progress.max = 100;
    progress.value = 0;
    const cells = {
      id: el("td", id.slice(0, 8)),
      course: el("td", "…"),
      status: el("td", "…"),
      step: el("td", ""),
      progress: el("td"),
    };
    cells.progress.append(progress, el("span", " 0 %", "percent"));
    row.append(...Object.values(cells));
    $("job-list").prepend(row);
    const job = { row, cells, progress, timer: null, polling: false };
    state.jobs.set(id, job);
    return job;
  }

  const finished = (out) => out.status === "succeeded" || out.status === "failed";

  // A job being polled stops when it finishes, is not found, or the session ends.
  async function pollJob(id, job) {
    if (!state.access) return (job.polling = false);
    try {
      const out = await api("/api/jobs/" + id);
      renderJob(job, out);
      if (finished(out)) return (job.polling = false);
    } catch (error) {
      job.cells.status.textContent = error.status === 404 ? "not found" : "error: " + error.message;
      job.cells.status.className = "status-failed";
      if (error.status === 404 || error.status === 403 || error.status === 401) {
        return (job.polling = false);
      }
    }
    job.timer = setTimeout(() => pollJob(id, job), JOB_EVERY_MS);
  }

  // The newest jobs of every course join the panel (newest on top); unfinished ones are
  // polled like a followed job, the others shown as they are.
  async function refreshJobs() {
    let recent;
    try {
      recent = (await api("/api/jobs?limit=" + RECENT_JOBS)).items;
    } catch (_) {
      return; // signed out, forbidden, or a passing error: the next refresh tries again
    }
    for (const out of recent.slice().reverse()) {
      if (!JOB_ID.test(out.id)) continue;
      const job = state.jobs.get(out.id) || addJob(out.id);
      if (job.polling) continue;
      renderJob(job, out);
      if (!finished(out)) {
        job.polling = true;
        job.timer = setTimeout(() => pollJob(out.id, job), JOB_EVERY_MS);
      }
    }
  }

  function renderJob(job, out) {
    job.row.dataset.status = out.status;
    job.cells.course.textContent = String(out.course_id);
    job.cells.status.textContent = out.status;
    job.cells.status.className = "status-" + out.status;
    job.cells.step.textContent = `${out.step} (${out.step_index}/${out.steps_total})`;
    job.progress.value = out.percent;
    job.cells.progress.querySelector(".percent").textContent = ` ${out.percent} %`;
    if (out.status === "failed" && out.error) {
      job.cells.step.append(el("div", out.error, "error"));
    }
  }

  function onFollow(event) {
    event.preventDefault();
    const id = $("job-id").value.trim().toLowerCase();
    if (!JOB_ID.test(id)) return say("A job id is 32 hexadecimal digits.");
    say("");
    $("job-id").value = "";
    followJob(id);
  }

  // ------------------------------------------------------------------ health

  async function refreshHealth() {
    const rows = [];
    try {
      const alive = await fetch("/health", { cache: "no-store" });
      rows.push(["gateway", alive.ok ? "ok" : "HTTP " + alive.status]);
      const ready = await fetch("/ready", { cache: "no-store" });
      const body = await ready.json();
      for (const [name, value] of Object.entries(body.services || {})) rows.push([name, value]);
      rows.push(["redis", body.redis || "unknown"]);
      renderQueues(parseMetrics(await (await fetch("/metrics", { cache: "no-store" })).text()));
    } catch (error) {
      rows.push(["gateway", "unreachable"]);
    }
    $("health-list").replaceChildren(
      ...rows.map(([name, value]) => {
        const row = el("tr");
        row.dataset.process = name;
        row.append(el("td", name), el("td", value, value === "ok" ? "state-ok" : "state-bad"));
        return row;
      }),
    );
    $("health-time").textContent = "at " + new Date().toLocaleTimeString();
  }

  // Prometheus text: {name: [[labels, value], ...]}.
  function parseMetrics(text) {
    const found = {};
    for (const line of text.split("\n")) {
      const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!match) continue;
      const labels = {};
      for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
      (found[match[1]] = found[match[1]] || []).push([labels, Number(match[3])]);
    }
    return found;
  }

  function renderQueues(metrics) {
    const depths = {};
    for (const [labels, value] of metrics.mesh_outbox_backlog || []) {
      const name = "outbox " + (labels.service || "?");
      depths[name] = (depths[name] || 0) + value;
    }
    const deadNames = Object.keys(metrics).filter(
      (name) => /dead_letter|dlq/.test(name) && !/_created$/.test(name),
    );
    let deadQueues = 0;
    for (const metric of deadNames) {
      for (const [labels, value] of metrics[metric]) {
        const name = "dead letters " + (labels.queue || labels.service || metric);
        deadQueues += 1;
        // A queue shows while it holds dead letters, and once more when it is emptied.
        if (value > 0 || state.depths[name] > 0) depths[name] = (depths[name] || 0) + value;
      }
    }
    const rows = Object.keys(depths)
      .sort()
      .map((name) => {
        const value = depths[name];
        const before = state.depths[name];
        const kind = before !== undefined && value > before ? "depth-growing" : value > 0 ? "depth-some" : "depth-zero";
        const row = el("tr");
        row.dataset.queue = name;
        row.append(el("td", name), el("td", value, kind));
        return row;
      });
    if (!deadNames.length) rows.push(queueNote("dead letters", "not in /metrics (see `mesh dlq list`)"));
    else if (!Object.keys(depths).some((name) => name.startsWith("dead letters "))) {
      rows.push(queueNote("dead letters", `none in ${deadQueues} queues`));
    }
    if (!metrics.mesh_outbox_backlog) rows.push(queueNote("outbox", "no relay has reported yet"));
    state.depths = depths;
    $("queue-list").replaceChildren(...rows);
  }

  function queueNote(name, text) {
    const row = el("tr");
    row.append(el("td", name), el("td", text, "hint"));
    return row;
  }

  // --------------------------------------------------------------- analytics

  function isoDay(offset) {
    const day = new Date();
    day.setUTCDate(day.getUTCDate() + offset);
    return day.toISOString().slice(0, 10);
  }

  function daysBetween(from, to) {
    const days = [];
    for (let day = new Date(from + "T00:00:00Z"); day <= new Date(to + "T00:00:00Z"); day.setUTCDate(day.getUTCDate() + 1)) {
      days.push(day.toISOString().slice(0, 10));
    }
    return days;
  }

  function perDay(rows, field, days) {
    const sums = Object.fromEntries(days.map((day) => [day, 0]));
    for (const row of rows) if (row.day in sums) sums[row.day] += row[field] || 0;
    return days.map((day) => sums[day]);
  }

  async function loadReports(event) {
    if (event) event.preventDefault();
    const from = $("range-from").value;
    const to = $("range-to").value;
    if (!from || !to || from > to) return say("Pick a range: From must not be after To.");
    const range = "?from=" + from + "&to=" + to;
    try {
      const [signups, orders, enrolments] = await Promise.all(
        ["signups", "orders", "enrollments"].map((name) => api("/api/reports/" + name + range)),
      );
      say("");
      const days = daysBetween(from, to);
      const currencies = [...new Set(orders.items.map((row) => row.currency).filter(Boolean))];
      $("revenue-currency").textContent = currencies.length ? "(" + currencies.join(", ") + ")" : "";
      drawChart($("chart-signups"), days, perDay(signups.items, "signups", days), "bars");
      drawChart($("chart-orders"), days, perDay(orders.items, "orders", days), "bars");
      const cents = perDay(orders.items, "revenue_cents", days);
      drawChart($("chart-revenue"), days, cents.map((c) => c / 100), "line");
      drawChart($("chart-enrollments"), days, perDay(enrolments.items, "enrollments", days), "bars");
      drawChart($("chart-completions"), days, perDay(enrolments.items, "lesson_completions", days), "bars");
    } catch (error) {
      if (state.access) say("Reports: " + error.message);
    }
  }

  function svgNode(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A hand-drawn chart: one bar (or line point) per day, the axis labelled with its ends.
  function drawChart(svg, days, values, kind) {
    const width = 320, height = 140, left = 28, bottom = 16, top = 8;
    const plotW = width - left - 4, plotH = height - bottom - top;
    const most = Math.max(1, ...values);
    const slot = plotW / days.length;
    const y = (v) => top + plotH - (v / most) * plotH;
    const nodes = [
      svgNode("line", { x1: left, y1: top + plotH, x2: width - 4, y2: top + plotH }),
      svgNode("text", { x: 2, y: top + 8 }, String(+most.toFixed(2))),
      svgNode("text", { x: 2, y: top + plotH }, "0"),
      svgNode("text", { x: left, y: height - 3 }, days[0]),
      svgNode("text", { x: width - 60, y: height - 3 }, days[days.length - 1]),
    ];
    if (kind === "line") {
      const points = values.map((v, i) => `${(left + slot * (i + 0.5)).toFixed(1)},${y(v).toFixed(1)}`);
      nodes.push(svgNode("polyline", { points: points.join(" ") }));
    }
    values.forEach((value, i) => {
      const attributes = { x: (left + slot * i + slot * 0.1).toFixed(1), width: Math.max(slot * 0.8, 1).toFixed(1) };
      const bar = kind === "line"
        ? svgNode("circle", { cx: (left + slot * (i + 0.5)).toFixed(1), cy: y(value).toFixed(1), r: 2 })
        : svgNode("rect", { ...attributes, y: y(value).toFixed(1), height: (top + plotH - y(value)).toFixed(1) });
      bar.dataset.day = days[i];
      bar.dataset.value = String(value);
      bar.append(svgNode("title", {}, days[i] + ": " + value));
      nodes.push(bar);
    });
    svg.replaceChildren(...nodes);
    svg.dataset.drawn = "true";
  }

  // -------------------------------------------------------------------- wire

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", logOut);
    $("follow-job").addEventListener("submit", onFollow);
    $("range").addEventListener("submit", loadReports);
    drawSparkline();
  });
})();
