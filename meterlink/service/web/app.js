// meterlink web page (seed 001 ch. C.7): the current values as tables, a live graph of the active
// power P = 1.7.0 - 2.7.0 over a rolling window of up to 5 minutes, and the links' states.
//
// The adapter keeps only 60 s of readings (seed 001 ch. C.1), so the 5-minute window is built
// here, in the browser, from the live stream; it starts with the adapter's 60 s. Missing
// telegrams are shown as gaps: nothing is calculated or interpolated for the display.
// No framework and nothing from the internet: the adapter has no connection to it.
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "meterlink.token";
  const MAX_WINDOW_S = 300;           // seed 001 ch. C.7: a rolling window of up to 5 minutes
  const GAP_FACTOR = 1.5;             // see segmentsOf()
  const MIN_INTERVAL_S = 1;           // the shortest push interval assumed (P1 pushes every second)
  const LINKS_POLL_MS = 2000;
  const STREAM_SILENCE_MS = 40000;    // the adapter sends a keepalive every 15 s; 40 s of nothing = dead
  const RETRY_MS = [1000, 2000, 5000, 10000];
  const SERIES_COLORS = ["--accent", "#d4a017", "#8250df", "#cf222e", "#0a7f86"];
  const UNIT_TO_W = { W: 1, kW: 1e3, MW: 1e6 };
  const COSEM_UNIT_W = 27;            // DLMS unit enumeration: 27 = W

  const $ = (id) => document.getElementById(id);
  const state = {
    token: localStorage.getItem(TOKEN_KEY),
    meters: new Map(),                // key -> meter (see meterFor)
    windowS: MAX_WINDOW_S,
    clockSamples: [],                 // see adapterNow()
    session: null,
    drawQueued: false,
    draws: 0,
  };

  class NeedToken extends Error {}

  // ---- talking to the adapter ------------------------------------------------------------------

  async function api(path, signal) {
    const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    const response = await fetch(API + path, { headers, signal, cache: "no-store" });
    noteServerDate(response);
    if (response.status === 401) throw new NeedToken(path);
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  // One session = one set of loops (stream, link polling) with the current token; a new token or a
  // 401 ends the session, so no loop keeps sending a token that was replaced or rejected.
  function restart() {
    if (state.session) state.session.abort();
    const session = new AbortController();
    state.session = session;
    runSession(session).catch((error) => sessionFailed(session, error));
  }

  async function runSession(session) {
    const signal = session.signal;
    setConnection("starting");
    pollLinks(signal).catch((error) => sessionFailed(session, error));
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        await readStream(signal, () => {
          attempt = 0;
          // The stream carries only what arrives after it subscribed, so the adapter's window is
          // fetched after that: every reading is then in one or the other, and no reading that
          // came in between is missing from the graph (it would look like a gap). A reconnect
          // fetches it again for the readings received while the stream was down. addPoint()
          // drops the readings that come both ways.
          loadSnapshot(signal).catch((error) => {
            if (error instanceof NeedToken) sessionFailed(session, error);
            else console.info("meterlink: the window could not be fetched again:", error.message);
          });
        });
      } catch (error) {
        if (error instanceof NeedToken || signal.aborted) throw error;
      }
      if (signal.aborted) return;
      setConnection("reconnecting");
      await sleep(RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)], signal);
    }
  }

  function sessionFailed(session, error) {
    if (session !== state.session || session.signal.aborted) return;
    session.abort();
    if (error instanceof NeedToken) {
      askForToken();
    } else {
      setConnection("error");
      console.warn("meterlink:", error);
      setTimeout(() => { if (session === state.session) restart(); }, RETRY_MS[RETRY_MS.length - 1]);
    }
  }

  async function loadSnapshot(signal) {
    const latest = await (await api("/readings/latest", signal)).json();
    latest.forEach(addReading);
    const windows = await (await api("/readings/window", signal)).json();
    for (const meter of windows) meter.readings.forEach(addReading);
    renderMeters();
    scheduleDraw();
  }

  async function pollLinks(signal) {
    while (!signal.aborted) {
      try {
        renderLinks(await (await api("/links", signal)).json());
      } catch (error) {
        if (error instanceof NeedToken) throw error;   // other errors: try again next time
      }
      await sleep(LINKS_POLL_MS, signal);
    }
  }

  // EventSource cannot send an Authorization header, so the stream is read with fetch() and its
  // Server-Sent Events are parsed here: events end with a blank line, `data:` lines carry the
  // reading, lines starting with `:` are comments (the adapter's keepalive).
  async function readStream(signal, onOpen) {
    const response = await api("/stream", signal);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let opened = false;
    let buffer = "";
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => reader.cancel(), STREAM_SILENCE_MS);
    };
    try {
      arm();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        arm();
        if (!opened) {   // the adapter's first line (": subscribed") says the subscription is in place
          opened = true;
          setConnection("live");
          onOpen();
        }
        buffer = (buffer + value).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const data = sseData(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (data !== null) liveReading(data);
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  function sseData(block) {
    const lines = block.split("\n").filter((line) => line.startsWith("data:"));
    if (lines.length === 0) return null;
    return lines.map((line) => line.slice(line.startsWith("data: ") ? 6 : 5)).join("\n");
  }

  function liveReading(data) {
    let reading;
    try {
      reading = JSON.parse(data);
    } catch (error) {
      console.warn("meterlink: a stream event that is not JSON was skipped");
      return;
    }
    if (typeof reading.received_at === "number") noteClock(reading.received_at);
    addReading(reading);
    renderMeter(meterFor(reading.link, reading.meter_id));
    scheduleDraw();
  }

  // ---- the adapter's clock ---------------------------------------------------------------------
  // Times on the page are the adapter's (received_at). The adapter has no internet and may have no
  // real-time clock, so its clock can be far from the browser's. adapterNow() is the browser's
  // clock plus an offset. Every sample (a live reading's received_at, or an HTTP Date header,
  // which is rounded down to the second) is the adapter's time at or before the moment it arrived,
  // so each gives a lower bound of the offset: the largest of the last two minutes is the estimate.

  function noteClock(adapterSeconds) {
    const now = Date.now() / 1000;
    state.clockSamples.push({ at: now, offset: adapterSeconds - now });
    state.clockSamples = state.clockSamples.filter((sample) => sample.at > now - 120);
  }

  function noteServerDate(response) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) noteClock(date / 1000);
  }

  function adapterNow() {
    const offsets = state.clockSamples.map((sample) => sample.offset);
    return Date.now() / 1000 + (offsets.length ? Math.max(...offsets) : 0);
  }

  // ---- readings --------------------------------------------------------------------------------

  function meterFor(link, meterId) {
    const key = `${link}\u0000${meterId ?? ""}`;
    let meter = state.meters.get(key);
    if (!meter) {
      meter = { key, link, meterId, latest: null, points: [], card: null,
        color: SERIES_COLORS[state.meters.size % SERIES_COLORS.length] };
      state.meters.set(key, meter);
    }
    return meter;
  }

  function addReading(reading) {
    const meter = meterFor(reading.link, reading.meter_id);
    if (!meter.latest || (reading.received_at ?? 0) >= (meter.latest.received_at ?? 0)) meter.latest = reading;
    if (typeof reading.received_at === "number") {
      addPoint(meter.points, { t: reading.received_at, w: netPowerW(reading) });
    }
    prune(meter.points);
  }

  // Points stay sorted by time, without duplicates: the window fetched after a reconnect overlaps
  // with what the stream already delivered.
  function addPoint(points, point) {
    let i = points.length;
    while (i > 0 && points[i - 1].t > point.t) i--;
    if (i > 0 && points[i - 1].t === point.t) return;
    points.splice(i, 0, point);
  }

  function prune(points) {
    const horizon = adapterNow() - MAX_WINDOW_S;
    let drop = 0;
    while (drop < points.length && points[drop].t < horizon) drop++;
    if (drop) points.splice(0, drop);
  }

  // "1-0:1.7.0.255" -> "1-0:1.7.0": the page names objects without the usual F = 255.
  function shortObis(obis) {
    return obis.endsWith(".255") ? obis.slice(0, -4) : obis;
  }

  function findValue(reading, obis) {
    return reading.values.find((value) => shortObis(value.obis) === obis);
  }

  // Active power in W, or null when the reading does not state it as a number in a power unit.
  // P1 meters send kW, DLMS meters W; channel 1-1 is how some meters number the same registers.
  function powerW(reading, cde) {
    const value = findValue(reading, `1-0:${cde}`) || findValue(reading, `1-1:${cde}`);
    if (!value || typeof value.value !== "number") return null;
    const factor = value.unit in UNIT_TO_W ? UNIT_TO_W[value.unit] : value.unit_code === COSEM_UNIT_W ? 1 : null;
    return factor === null ? null : value.value * factor;
  }

  // P = 1.7.0 (P+, import) - 2.7.0 (P-, export). If either is missing the point is unknown (null)
  // and breaks the line: a missing value is never taken as 0.
  function netPowerW(reading) {
    const imported = powerW(reading, "1.7.0");
    const exported = powerW(reading, "2.7.0");
    return imported === null || exported === null ? null : imported - exported;
  }

  // ---- the gap rule ----------------------------------------------------------------------------
  // A line joins two consecutive readings only if they are at most GAP_FACTOR (1.5) times the
  // meter's typical interval apart. The typical interval is the median of the recent intervals
  // between readings, but at least MIN_INTERVAL_S (1 s). So a P1 meter pushing every second breaks
  // the line when more than 1.5 s pass without a telegram (one lost telegram is enough), and a
  // meter read every 10 s when more than 15 s pass. A reading without both power values (null)
  // breaks the line too. A reading alone between two gaps is drawn as a dot, never joined across.

  function typicalInterval(points) {
    const recent = points.slice(-61);
    const intervals = [];
    for (let i = 1; i < recent.length; i++) intervals.push(recent[i].t - recent[i - 1].t);
    if (intervals.length === 0) return MIN_INTERVAL_S;
    intervals.sort((a, b) => a - b);
    const mid = intervals.length >> 1;
    const median = intervals.length % 2 ? intervals[mid] : (intervals[mid - 1] + intervals[mid]) / 2;
    return Math.max(median, MIN_INTERVAL_S);
  }

  function segmentsOf(points) {
    const threshold = GAP_FACTOR * typicalInterval(points);
    const segments = [];
    let current = [];
    let previous = null;
    for (const point of points) {
      if (point.w === null || (previous && point.t - previous.t > threshold)) {
        if (current.length) segments.push(current);
        current = [];
      }
      if (point.w !== null) current.push(point);
      previous = point;
    }
    if (current.length) segments.push(current);
    return { segments, threshold };
  }

  // ---- drawing the graph -----------------------------------------------------------------------

  function scheduleDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    requestAnimationFrame(() => { state.drawQueued = false; draw(); });
  }

  function cssColor(name) {
    return name.startsWith("--") ? getComputedStyle(document.documentElement).getPropertyValue(name).trim() : name;
  }

  function draw() {
    const canvas = $("chart");
    const ctx = canvas.getContext("2d");
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const t1 = adapterNow();
    const t0 = t1 - state.windowS;
    const series = [...state.meters.values()].map((meter) => {
      const visible = meter.points.filter((point) => point.t >= t0);
      return { meter, visible, ...segmentsOf(visible) };
    });
    const [yMin, yMax, yStep] = yScale(series);
    ctx.font = "12px system-ui, sans-serif";
    const labelWidth = Math.max(...yTicks(yMin, yMax, yStep).map((w) => ctx.measureText(formatW(w)).width));
    const left = Math.ceil(labelWidth) + 10;
    const plot = { left, right: width - 8, top: 8, bottom: height - 22, t0, t1, yMin, yMax };
    const x = (t) => plot.left + ((t - t0) / (t1 - t0)) * (plot.right - plot.left);
    const y = (w) => plot.bottom - ((w - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);

    drawAxes(ctx, plot, x, y, yStep);
    let drawnSegments = 0;
    ctx.save();
    ctx.beginPath();   // the adapter's clock is estimated to a second: keep a late point inside the plot
    ctx.rect(plot.left, plot.top - 4, plot.right - plot.left + 4, plot.bottom - plot.top + 8);
    ctx.clip();
    for (const s of series) drawnSegments += drawSeries(ctx, s.segments, x, y, cssColor(s.meter.color));
    ctx.restore();
    renderNow(series, t1);
    exposeForTests(series, drawnSegments, plot);
  }

  function yScale(series) {
    let low = 0;
    let high = 0;                      // 0 is always shown: it separates import from export
    for (const s of series) for (const seg of s.segments) for (const p of seg) {
      low = Math.min(low, p.w);
      high = Math.max(high, p.w);
    }
    if (high - low < 100) high = low + 100;
    const step = niceStep((high - low) / 4);
    return [Math.floor(low / step) * step, Math.ceil(high / step) * step, step];
  }

  // Computed from integer multiples, so that 0 is exactly 0 and labels carry no float noise.
  function yTicks(low, high, step) {
    const ticks = [];
    for (let i = Math.round(low / step); i <= Math.round(high / step); i++) ticks.push(i * step);
    return ticks;
  }

  function niceStep(raw) {
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / magnitude;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  }

  function drawAxes(ctx, plot, x, y, yStep) {
    const muted = cssColor("--muted");
    const line = cssColor("--line");
    ctx.lineWidth = 1;
    ctx.fillStyle = muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const w of yTicks(plot.yMin, plot.yMax, yStep)) {
      const yy = Math.round(y(w)) + 0.5;
      ctx.strokeStyle = w === 0 ? muted : line;   // the zero line stands out: import above, export below
      ctx.beginPath();
      ctx.moveTo(plot.left, yy);
      ctx.lineTo(plot.right, yy);
      ctx.stroke();
      ctx.fillText(formatW(w), plot.left - 5, yy);
    }
    // Time is shown relative to now: the adapter's clock may not be the browser's.
    const span = plot.t1 - plot.t0;
    const tick = span > 150 ? 60 : span > 60 ? 30 : 10;
    // On a narrow screen label only every n-th line, so that the labels do not run into each other.
    const tickPx = ((plot.right - plot.left) * tick) / span;
    const labelEvery = Math.ceil((ctx.measureText("\u22125 min").width + 12) / tickPx);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.strokeStyle = line;
    for (let ago = 0; ago <= span + 0.001; ago += tick) {
      const xx = Math.round(x(plot.t1 - ago)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, plot.top);
      ctx.lineTo(xx, plot.bottom);
      ctx.stroke();
      if ((ago / tick) % labelEvery !== 0) continue;
      const label = ago === 0 ? "now" : ago % 60 === 0 ? `\u2212${ago / 60} min` : `\u2212${ago} s`;
      ctx.textAlign = ago === 0 ? "right" : xx - plot.left < 20 ? "left" : "center";
      ctx.fillText(label, xx, plot.bottom + 5);
    }
  }

  // Each segment is its own path: nothing is drawn between segments (the gaps).
  function drawSeries(ctx, segments, x, y, color) {
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const segment of segments) {
      if (segment.length === 1) {
        ctx.beginPath();
        ctx.arc(x(segment[0].t), y(segment[0].w), 2.5, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      segment.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.w)) : ctx.moveTo(x(p.t), y(p.w))));
      ctx.stroke();
    }
    return segments.length;
  }

  // A description of what was drawn, for the browser test; the page does not use it.
  function exposeForTests(series, drawnSegments, plot) {
    state.draws++;
    window.meterlink = {
      draws: state.draws,
      points: series.reduce((n, s) => n + s.visible.length, 0),
      segments: drawnSegments,
      plot: { left: plot.left, right: plot.right, top: plot.top, bottom: plot.bottom, t0: plot.t0, t1: plot.t1 },
      series: series.map((s) => ({
        link: s.meter.link,
        meter_id: s.meter.meterId,
        color: cssColor(s.meter.color),
        threshold: s.threshold,
        points: s.visible.map((p) => [p.t, p.w]),
        segments: s.segments.map((seg) => [seg[0].t, seg[seg.length - 1].t, seg.length]),
      })),
    };
  }

  // The current power per meter, large. After a gap it shows a dash, not the last value.
  function renderNow(series, now) {
    const items = series.map((s) => {
      const last = s.meter.points[s.meter.points.length - 1];
      const fresh = last && last.w !== null && now - last.t <= s.threshold + 1;
      const value = el("span", { className: "value" + (fresh ? (last.w >= 0 ? " import" : " export") : "") },
        fresh ? formatW(last.w, true) : "\u2014");
      const who = el("span", { className: "who" },
        el("span", { className: "swatch", style: { background: cssColor(s.meter.color) } }),
        `${s.meter.meterId ?? "meter"} (${s.meter.link}) `,
        fresh ? (last.w >= 0 ? "from the grid" : "to the grid") : "no current value");
      return el("div", {}, value, el("br"), who);
    });
    $("power-now").replaceChildren(...(items.length ? items : [el("span", { className: "note" }, "no readings yet")]));
  }

  // precise: the current value, always two decimals in kW; otherwise an axis label, as short as exact.
  function formatW(w, precise = false) {
    if (Math.abs(w) < 1000) return `${Math.round(w)} W`;
    return `${precise ? (w / 1000).toFixed(2) : Number((w / 1000).toFixed(3))} kW`;
  }

  // ---- the tables ------------------------------------------------------------------------------

  const ELECTRICITY = {      // A = 1, keyed by C.D.E
    "1.8.0": "Import energy (+A)", "1.8.1": "Import energy T1", "1.8.2": "Import energy T2",
    "1.8.3": "Import energy T3", "1.8.4": "Import energy T4",
    "2.8.0": "Export energy (\u2212A)", "2.8.1": "Export energy T1", "2.8.2": "Export energy T2",
    "2.8.3": "Export energy T3", "2.8.4": "Export energy T4",
    "3.8.0": "Reactive energy import (+R)", "3.8.1": "Reactive energy import", "4.8.0": "Reactive energy export (\u2212R)",
    "4.8.1": "Reactive energy export", "15.8.0": "Absolute active energy",
    "1.7.0": "Active power import (+P)", "2.7.0": "Active power export (\u2212P)",
    "3.7.0": "Reactive power import (+Q)", "4.7.0": "Reactive power export (\u2212Q)",
    "21.7.0": "Active power import L1", "41.7.0": "Active power import L2", "61.7.0": "Active power import L3",
    "22.7.0": "Active power export L1", "42.7.0": "Active power export L2", "62.7.0": "Active power export L3",
    "32.7.0": "Voltage L1", "52.7.0": "Voltage L2", "72.7.0": "Voltage L3",
    "31.7.0": "Current L1", "51.7.0": "Current L2", "71.7.0": "Current L3",
    "14.7.0": "Frequency", "13.7.0": "Power factor",
    "33.7.0": "Power factor L1", "53.7.0": "Power factor L2", "73.7.0": "Power factor L3",
    "1.4.0": "Average import power, current period", "1.6.0": "Maximum import demand",
    "31.4.0": "Current limit", "15.35.0": "Power over limit threshold",
  };
  const GENERAL = {          // A = 0, B = 0
    "0-0:1.0.0": "Date and time", "0-0:96.1.0": "Meter number", "0-0:96.1.1": "Equipment identifier",
    "0-0:96.1.4": "Version information", "0-0:96.14.0": "Tariff", "0-0:96.3.10": "Breaker state",
    "0-0:17.0.0": "Power limit", "0-0:96.13.0": "Message text", "0-0:96.13.1": "Message code",
    "0-0:98.1.0": "Maximum demand, past months", "0-0:42.0.0": "Logical device name",
    "1-3:0.2.8": "DSMR version", "0-0:96.7.21": "Power failures", "0-0:96.7.9": "Long power failures",
  };
  const CHANNEL = {          // A = 0, B = n: devices on the meter's M-Bus (gas, water, heat)
    "24.1.0": "Device type", "96.1.0": "Equipment identifier", "96.1.1": "Equipment identifier",
    "24.4.0": "Valve state",
  };
  const DEVICE_TYPES = { 2: "electricity", 3: "gas", 4: "heat", 6: "warm water", 7: "water" };   // EN 13757-3

  function obisName(obis, reading) {
    const match = /^(\d+)-(\d+):(\d+\.\d+\.\d+)$/.exec(obis);
    if (!match) return "";
    const [, a, b, cde] = match;
    if (a === "1") return ELECTRICITY[cde] || "";
    if (obis in GENERAL) return GENERAL[obis];
    if (a === "0" && b !== "0") {
      if (cde.startsWith("24.2.")) {
        const type = findValue(reading, `0-${b}:24.1.0`);
        const kind = type ? DEVICE_TYPES[Number(type.value)] : undefined;
        return `Channel ${b} reading${kind ? ` (${kind})` : ""}`;
      }
      if (CHANNEL[cde]) return `Channel ${b} ${CHANNEL[cde].toLowerCase()}`;
    }
    return "";
  }

  function meterCard(meter) {
    if (!meter.card) {
      meter.card = el("article", { className: "card meter" },
        el("div", { className: "meter-head" },
          el("h3", {}, `${meter.meterId ?? "unknown meter"}`),
          el("span", { className: "note" }, `${meter.link} \u00b7 `, el("span", { className: "age" }))),
        el("div", { className: "table-wrap" },
          el("table", {},
            el("thead", {}, el("tr", {}, ...["OBIS", "Name", "Value", "Unit"].map((h) => el("th", { className: h.toLowerCase() }, h)))),
            el("tbody"))));
      $("meters").append(meter.card);
    }
    return meter.card;
  }

  function renderMeters() {
    for (const meter of state.meters.values()) renderMeter(meter);
  }

  function renderMeter(meter) {
    if (!meter.latest) return;
    const card = meterCard(meter);
    card.querySelector(".age").dataset.at = meter.latest.received_at ?? "";
    const rows = meter.latest.values.map((value) => {
      const obis = shortObis(value.obis);
      return el("tr", {},
        el("td", { className: "obis" }, obis),
        // On a phone the OBIS column is hidden and the code is shown under the name instead.
        el("td", { className: "name" }, obisName(obis, meter.latest), el("span", { className: "obis-inline" }, obis)),
        el("td", { className: typeof value.value === "string" && value.value.length > 16 ? "value long" : "value" },
          ...valueCell(value)),
        el("td", {}, value.unit ?? ""));
    });
    card.querySelector("tbody").replaceChildren(...rows);
    updateAges();
  }

  // The value exactly as the meter stated it; a profile (a list, such as P1's monthly maxima) is
  // folded into one line that opens on a tap.
  function valueCell(value) {
    if (Array.isArray(value.value)) {
      const rows = value.value.map((row) => el("span", { className: "time" },
        `${row.time ?? row.entry_time ?? ""} ${row.value ?? ""} ${row.unit ?? ""}`));
      return [el("details", {}, el("summary", {}, `${rows.length} entries`), ...rows)];
    }
    const parts = [String(value.value ?? "")];
    const text = hexText(value);
    if (text) parts.push(el("span", { className: "time" }, text));
    if (value.time) parts.push(el("span", { className: "time" }, value.time));
    return parts;
  }

  // Equipment identifiers arrive as hex of ASCII text (DIN 43863-5); show the text beneath.
  function hexText(value) {
    if (!/:96\.1\.[01]/.test(value.obis) || typeof value.value !== "string") return "";
    if (!/^([0-9A-Fa-f]{2})+$/.test(value.value)) return "";
    const text = value.value.match(/../g).map((h) => String.fromCharCode(parseInt(h, 16))).join("");
    return /^[\x20-\x7e]+$/.test(text) ? text : "";
  }

  // ---- links -----------------------------------------------------------------------------------

  function renderLinks(answer) {
    const links = Array.isArray(answer) ? answer : answer.links || [];
    const children = flattenChildren(answer.supervisor || []);
    const items = links.map((link) => {
      const child = children.get(link.name);
      const counters = Object.entries(link.counters || {}).map(([name, n]) => `${name} ${n}`).join(" \u00b7 ");
      return el("li", {},
        el("div", {}, el("span", { className: "link-name" }, link.name), ` (${link.kind}) `,
          el("span", { className: `state ${stateClass(link)}` }, link.state)),
        el("div", { className: "note" }, link.connected ? "connected" : "not connected", " \u00b7 last telegram ",
          el("span", { className: "age", dataset: { at: link.last_reading_at ?? "" } })),
        child && (child.restarts || child.state !== "running")
          ? el("div", { className: "note" }, `supervisor: ${child.state}, ${child.restarts} restarts`,
            child.last_error ? ` \u00b7 ${child.last_error}` : "")
          : "",
        counters ? el("div", { className: "note" }, counters) : "",
        link.last_drop ? el("div", { className: "note" }, `last dropped: ${link.last_drop}`) : "");
    });
    $("links").replaceChildren(...(items.length ? items : [el("li", { className: "note" }, "no links configured")]));
    updateAges();
  }

  function flattenChildren(children, into = new Map()) {
    for (const child of children) {
      into.set(child.id, child);
      flattenChildren(child.children || [], into);
    }
    return into;
  }

  // Machine states are per link kind; a P1 link spends most of its time "hunting" for the next '/',
  // which is normal. Only what says trouble is marked as such.
  function stateClass(link) {
    if (!link.connected || /stale|closed|fail|stop|lost/.test(link.state)) return "bad";
    return /starting|search|powering/.test(link.state) ? "warn" : "ok";
  }

  // ---- small helpers ---------------------------------------------------------------------------

  function updateAges() {
    const now = adapterNow();
    for (const span of document.querySelectorAll(".age")) {
      const at = parseFloat(span.dataset.at);
      span.textContent = Number.isNaN(at) ? "never" : age(now - at);
    }
  }

  function age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return `${s} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    return `${Math.round(s / 3600)} h ago`;
  }

  // el("td", {className: "x"}, "text", child, ...) -> an element; text is never parsed as HTML.
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "style") Object.assign(node.style, value);   // CSSOM, allowed by the page's CSP
      else node[name] = value;
    }
    node.append(...children.filter((child) => child !== "" && child != null));
    return node;
  }

  function setConnection(name) {
    const labels = { starting: "connecting\u2026", live: "live", reconnecting: "reconnecting\u2026", token: "token needed", error: "adapter unreachable" };
    const pill = $("connection");
    pill.dataset.state = name;
    pill.textContent = labels[name];
  }

  function askForToken() {
    if (state.token) {
      // A rejected token is forgotten, so the page does not keep sending it (each try counts as a failed login).
      localStorage.removeItem(TOKEN_KEY);
      $("token-message").textContent = "That token was not accepted.";
      state.token = null;
    }
    setConnection("token");
    $("token-form").hidden = false;
    $("token-input").focus();
  }

  function setUp() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.token = $("token-input").value.trim();
      $("token-input").value = "";
      $("token-message").textContent = "";
      $("token-form").hidden = true;
      localStorage.setItem(TOKEN_KEY, state.token);
      restart();
    });
    $("window-select").addEventListener("change", (event) => {
      state.windowS = Number(event.target.value);
      draw();
    });
    new ResizeObserver(scheduleDraw).observe($("chart"));
    // Once a second: ages move on, and the window rolls even when no telegram arrives.
    setInterval(() => {
      for (const meter of state.meters.values()) prune(meter.points);
      updateAges();
      scheduleDraw();
    }, 1000);
    restart();
  }

  setUp();
})();
