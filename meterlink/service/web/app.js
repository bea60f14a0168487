// meterlink web page (seed 001 ch. C.7): the current values as tables, a live graph of the active
// power P = 1.7.0 - 2.7.0 per meter over a rolling window of up to 5 minutes, and the links' states.
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
  const FONT_PX = 12;
  const FONT = `${FONT_PX}px system-ui, sans-serif`;
  const Y_TICK_PX = 36;               // the least room between two power labels
  const TIME_STEPS_S = [5, 10, 15, 30, 60, 120, 300];
  const TIME_LABEL_GAP_PX = 32;       // the least room between two clock-time labels

  const $ = (id) => document.getElementById(id);
  const state = {
    token: localStorage.getItem(TOKEN_KEY),
    meters: new Map(),                // key -> meter (see meterFor)
    windowS: MAX_WINDOW_S,
    clockSamples: [],                 // see adapterNow()
    session: null,
    drawQueued: false,
    panels: 0,                        // graph panels made so far: each canvas gets its own id
    hover: null,                      // {key, x}: the meter and pointer position of a tooltip
    openDetails: new Set(),           // links whose details the user opened
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
      meter = { key, link, meterId, latest: null, points: [], card: null, panel: null, hasPower: false,
        color: SERIES_COLORS[state.meters.size % SERIES_COLORS.length] };
      state.meters.set(key, meter);
    }
    return meter;
  }

  function addReading(reading) {
    const meter = meterFor(reading.link, reading.meter_id);
    if (!meter.latest || (reading.received_at ?? 0) >= (meter.latest.received_at ?? 0)) meter.latest = reading;
    if (typeof reading.received_at === "number") {
      const w = netPowerW(reading);
      addPoint(meter.points, { t: reading.received_at, w });
      meter.hasPower ||= w !== null;   // a meter that never states its power gets no graph panel
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

  // What the table calls a value: its short OBIS code, or "#n" for a value the meter sent without
  // one (n is its position in the telegram).
  function label(value) {
    return value.obis == null ? `#${value.index}` : shortObis(value.obis);
  }

  function findValue(reading, obis) {
    return reading.values.find((value) => label(value) === obis);
  }

  // An electricity value by its C.D.E whatever its channel B (1-0, 1-1 as Kamstrup and seed 001's
  // OMS meters number the same registers, ...): channel 0 first, then the lowest one the meter sent.
  function findElectricity(reading, cde) {
    const found = reading.values.filter((value) => /^1-\d+:/.test(label(value)) && label(value).endsWith(`:${cde}`));
    found.sort((a, b) => Number(label(a).split(/[-:]/)[1]) - Number(label(b).split(/[-:]/)[1]));
    return found[0];
  }

  // Active power in W, or null when the reading does not state it as a number in a power unit.
  // P1 meters send kW, DLMS meters W.
  function powerW(reading, cde) {
    const value = findElectricity(reading, cde);
    if (!value || typeof value.value !== "number") return null;
    const factor = value.unit in UNIT_TO_W ? UNIT_TO_W[value.unit] : value.unit_code === COSEM_UNIT_W ? 1 : null;
    return factor === null ? null : value.value * factor;
  }

  // P = 1.7.0 (P+, import) - 2.7.0 (P-, export). If either is missing the point is unknown (null)
  // and breaks the line: a missing value is never taken as 0. A meter that states no import power
  // but its net power 16.7.0 (the BSM-WS36A's SunSpec W) is drawn with that.
  function netPowerW(reading) {
    if (!findValue(reading, "1-0:1.7.0") && !findValue(reading, "1-1:1.7.0")) {
      const net = powerW(reading, "16.7.0");
      if (net !== null) return net;
    }
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
  // One panel per meter, each with its own y scale: a 300 W meter is not flattened by an 11 kW one.

  function scheduleDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    requestAnimationFrame(() => { state.drawQueued = false; draw(); });
  }

  function cssColor(name) {
    return name.startsWith("--") ? getComputedStyle(document.documentElement).getPropertyValue(name).trim() : name;
  }

  function draw() {
    const t1 = adapterNow();
    const meters = [...state.meters.values()].filter((meter) => meter.hasPower);
    const frames = meters.map((meter) => frameOf(meter, t1 - state.windowS, t1));
    // One left margin for every panel, so that their time axes line up.
    const left = Math.max(0, ...frames.map((frame) => frame.labelWidth)) + 12;
    exposeForTests(frames.map((frame) => drawPanel(frame, left)));
  }

  function panelFor(meter) {
    if (!meter.panel) {
      if (!document.querySelector("#panels .panel")) $("panels").replaceChildren();
      const canvas = el("canvas", { id: `chart-${state.panels}`, role: "img",
        ariaLabel: `Active power of ${meter.meterId ?? "the meter"} (${meter.link}) over the last minutes` });
      meter.panel = { canvas, value: el("span", { className: "value" }), direction: el("span", { className: "note" }),
        tip: el("div", { className: "tip", hidden: true }) };
      state.panels++;
      $("panels").append(el("article", { className: "panel" },
        el("div", { className: "panel-head" },
          el("span", { className: "who" }, el("span", { className: "swatch", style: { background: cssColor(meter.color) } }),
            `${meter.meterId ?? "meter"} (${meter.link})`),
          el("span", {}, meter.panel.value, " ", meter.panel.direction)),
        el("div", { className: "plot" }, canvas, meter.panel.tip)));
      watchHover(meter, canvas);
    }
    return meter.panel;
  }

  // A tooltip with the time and value of the point nearest to the pointer. On a phone a tap shows
  // it, and it stays when the finger lifts (a touch "leaves" then) until the page is scrolled.
  function watchHover(meter, canvas) {
    const follow = (event) => {
      state.hover = { key: meter.key, x: event.clientX - canvas.getBoundingClientRect().left };
      scheduleDraw();
    };
    const leave = () => { state.hover = null; scheduleDraw(); };
    canvas.addEventListener("pointermove", follow);
    canvas.addEventListener("pointerdown", follow);
    canvas.addEventListener("pointerleave", (event) => { if (event.pointerType !== "touch") leave(); });
    canvas.addEventListener("pointercancel", leave);
  }

  // The canvas at the screen's pixel density, cleared; sizes in CSS pixels.
  function prepare(canvas) {
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
    ctx.font = FONT;
    return { ctx, width, height };
  }

  // What a meter's panel will show, and how wide its power labels are.
  function frameOf(meter, t0, t1) {
    const { ctx, width, height } = prepare(panelFor(meter).canvas);
    const visible = meter.points.filter((point) => point.t >= t0);
    const { segments, threshold } = segmentsOf(visible);
    const top = FONT_PX / 2 + 2;
    const bottom = height - FONT_PX - 12;
    const ticks = yTicks(segments, bottom - top);
    const labelWidth = Math.ceil(Math.max(...ticks.map((w) => ctx.measureText(formatW(w)).width)));
    const plot = { right: width - 8, top, bottom, t0, t1, yMin: ticks[0], yMax: ticks[ticks.length - 1], width, height };
    return { meter, ctx, visible, segments, threshold, ticks, labelWidth, plot };
  }

  function drawPanel(frame, left) {
    const { meter, ctx, segments, plot } = frame;
    plot.left = left;
    const { x, y } = scales(plot);
    const labels = [];
    drawYAxis(ctx, plot, y, frame.ticks, labels);
    drawTimeAxis(ctx, plot, x, labels);
    ctx.save();
    ctx.beginPath();   // the adapter's clock is estimated to a second: keep a late point inside the plot
    ctx.rect(plot.left, plot.top - 4, plot.right - plot.left + 4, plot.bottom - plot.top + 8);
    ctx.clip();
    const color = cssColor(meter.color);
    drawSeries(ctx, segments, x, y, color);
    ctx.restore();
    showHover(ctx, meter, frame.visible, plot, color);
    showNow(meter, frame.threshold, plot.t1);
    return { ...frame, labels, color };
  }

  function scales(plot) {
    return {
      x: (t) => plot.left + ((t - plot.t0) / (plot.t1 - plot.t0)) * (plot.right - plot.left),
      y: (w) => plot.bottom - ((w - plot.yMin) / (plot.yMax - plot.yMin)) * (plot.bottom - plot.top),
    };
  }

  // The y axis's values, from a multiple of the step to a multiple of the step; 0 is always among
  // them (it separates import from export), and the ticks are at least Y_TICK_PX apart.
  function yTicks(segments, plotHeight) {
    let low = 0;
    let high = 0;
    for (const segment of segments) for (const point of segment) {
      low = Math.min(low, point.w);
      high = Math.max(high, point.w);
    }
    if (high - low < 100) high = low + 100;
    const step = niceStep((high - low) / Math.max(1, Math.floor(plotHeight / Y_TICK_PX)));
    // Integer multiples, so that 0 is exactly 0 and labels carry no float noise.
    const ticks = [];
    for (let i = Math.floor(low / step); i <= Math.ceil(high / step); i++) ticks.push(i * step);
    return ticks;
  }

  function niceStep(raw) {
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / magnitude;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  }

  function drawYAxis(ctx, plot, y, ticks, labels) {
    const muted = cssColor("--muted");
    for (const w of ticks) {
      const yy = Math.round(y(w)) + 0.5;
      gridLine(ctx, w === 0 ? muted : cssColor("--line"), plot.left, yy, plot.right, yy);   // zero stands out
      const text = formatW(w);
      const textWidth = ctx.measureText(text).width;
      placeLabel(ctx, labels, text, plot.left - 6 - textWidth, yy - FONT_PX / 2, textWidth);
    }
  }

  // Clock times of the adapter, on whole multiples of a step that leaves room for every label.
  function drawTimeAxis(ctx, plot, x, labels) {
    const labelWidth = ctx.measureText("00:00:00").width;
    const pxPerSecond = (plot.right - plot.left) / (plot.t1 - plot.t0);
    const step = TIME_STEPS_S.find((s) => s * pxPerSecond >= labelWidth + TIME_LABEL_GAP_PX) ?? TIME_STEPS_S.at(-1);
    for (let t = Math.ceil(plot.t0 / step) * step; t <= plot.t1; t += step) {
      const xx = Math.round(x(t)) + 0.5;
      gridLine(ctx, cssColor("--line"), xx, plot.top, xx, plot.bottom);
      const text = clockTime(t);
      const textWidth = ctx.measureText(text).width;
      const left = Math.min(Math.max(xx - textWidth / 2, 0), plot.width - textWidth);
      placeLabel(ctx, labels, text, left, plot.bottom + 7, textWidth);
    }
  }

  function gridLine(ctx, color, x0, y0, x1, y1) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }

  // A label is drawn only where it overlaps no other; its box is kept for the browser test.
  function placeLabel(ctx, labels, text, left, top, width) {
    const box = { text, x: left, y: top, w: width, h: FONT_PX };
    const overlaps = (o) => box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h && o.y < box.y + box.h;
    if (labels.some(overlaps)) return;
    ctx.fillStyle = cssColor("--muted");
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(text, left, top);
    labels.push(box);
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
  }

  function showHover(ctx, meter, visible, plot, color) {
    const tip = meter.panel.tip;
    const point = state.hover && state.hover.key === meter.key ? nearest(visible, plot, state.hover.x) : null;
    tip.hidden = !point;
    if (!point) return;
    const { x, y } = scales(plot);
    const [px, py] = [x(point.t), y(point.w)];
    gridLine(ctx, color, Math.round(px) + 0.5, plot.top, Math.round(px) + 0.5, plot.bottom);
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(px, py, 4, 0, 2 * Math.PI);
    ctx.fill();
    tip.replaceChildren(el("strong", {}, formatW(point.w, true)), " ", clockTime(point.t));
    tip.style.left = `${Math.min(Math.max(px - tip.offsetWidth / 2, 0), plot.width - tip.offsetWidth)}px`;
    const above = py - tip.offsetHeight - 10;   // below the point when there is no room above it
    tip.style.top = `${above >= 0 ? above : py + 10}px`;
  }

  function nearest(points, plot, pointerX) {
    const t = plot.t0 + ((pointerX - plot.left) / (plot.right - plot.left)) * (plot.t1 - plot.t0);
    let best = null;
    for (const point of points) {
      if (point.w !== null && (!best || Math.abs(point.t - t) < Math.abs(best.t - t))) best = point;
    }
    return best;
  }

  // The current power, large, in the panel's head. After a gap it shows a dash, not the last value.
  function showNow(meter, threshold, now) {
    const last = meter.points[meter.points.length - 1];
    const fresh = last && last.w !== null && now - last.t <= threshold + 1;
    meter.panel.value.className = "value" + (fresh ? (last.w >= 0 ? " import" : " export") : "");
    meter.panel.value.textContent = fresh ? formatW(last.w, true) : "\u2014";
    meter.panel.direction.textContent = fresh ? (last.w >= 0 ? "from the grid" : "to the grid") : "no current value";
  }

  // A description of what was drawn, for the browser test; the page does not use it.
  function exposeForTests(drawn) {
    window.meterlink = {
      series: drawn.map((d) => ({
        link: d.meter.link,
        meter_id: d.meter.meterId,
        canvas: d.meter.panel.canvas.id,
        color: d.color,
        threshold: d.threshold,
        plot: d.plot,
        labels: d.labels,
        points: d.visible.map((p) => [p.t, p.w]),
        segments: d.segments.map((seg) => [seg[0].t, seg[seg.length - 1].t, seg.length]),
      })),
    };
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
    "16.7.0": "Active power (net)", "36.7.0": "Active power L1 (net)", "56.7.0": "Active power L2 (net)",
    "76.7.0": "Active power L3 (net)", "90.7.0": "Current (sum of phases)",
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
      const obis = label(value);
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

  // ---- links and outputs -----------------------------------------------------------------------
  // First what a user asks about (readings, what was dropped and why, the last error), then the
  // machine's own state id and counters, folded away under "details".

  function renderLinks(answer) {
    const children = flattenChildren(answer.supervisor || []);
    const items = (answer.links || []).map((link) => linkItem(link, children.get(link.name)));
    $("links").replaceChildren(...(items.length ? items : [el("li", { className: "note" }, "no links configured")]));
    renderOutputs(answer.outputs || []);
    updateAges();
  }

  function linkItem(link, child) {
    const readings = link.kind === "dlms" || link.kind === "bsm" || link.kind === "mep" ? "readings" : "telegrams";
    return el("li", {},
      el("div", {}, el("span", { className: "link-name" }, link.name), ` (${link.kind}) `,
        el("span", { className: `state ${stateClass(link)}` }, link.state_label)),
      el("div", { className: "note" }, link.connected ? "connected" : "not connected", " \u00b7 last telegram ",
        el("span", { className: "age", dataset: { at: link.last_reading_at ?? "" } })),
      el("div", { className: "counts" }, `${link.readings} ${readings}`, " \u00b7 ", dropsText(link.drops)),
      imageTransfer(link.image),
      lastDrop(link, readings),
      lastError(child),
      linkDetails(link, child));
  }

  // A DLMS link's firmware update (POST /api/v1/links/{name}/image): while it runs its step and
  // the blocks the meter confirmed, once over the verdict; a failed one is the link's problem.
  function imageTransfer(image) {
    if (!image) return "";
    const name = `image ${image.identification}`;
    const verdict = image.verdict;
    if (verdict) {
      const resent = verdict.blocks_resent ? `, ${verdict.blocks_resent} resent` : "";
      const facts = `${verdict.blocks} blocks${resent} \u00b7 ${verdict.seconds.toFixed(1)} s`;
      if (verdict.result === "active") {
        return el("div", { className: "counts image" },
          `${name} active: revision ${verdict.revision_before} \u2192 ${verdict.revision_after} \u00b7 ${facts}`);
      }
      return el("div", { className: "problem image" }, `${name} ${verdict.result}: ${verdict.reason ?? image.state} \u00b7 ${facts}`);
    }
    const percent = image.blocks ? Math.floor((100 * image.confirmed) / image.blocks) : 0;
    const blocks = image.blocks ? ` \u00b7 ${image.confirmed}/${image.blocks} blocks (${percent} %)` : "";
    const resent = image.resent ? `, ${image.resent} resent` : "";
    return el("div", { className: "counts image" },
      el("div", {}, `${name}: ${image.state}${blocks}${resent} \u00b7 ${image.bytes_sent} of ${image.size} bytes sent`),
      el("progress", { max: image.blocks || 1, value: image.confirmed, title: `${percent} %` }));
  }

  function dropsText(drops) {
    const causes = Object.entries(drops || {}).map(([cause, n]) => `${cause.replace(/_/g, " ")} ${n}`);
    return causes.length ? `dropped: ${causes.join(", ")}` : "nothing dropped";
  }

  // A drop followed by readings is history; one with nothing read since is the link's problem now.
  function lastDrop(link, readings) {
    if (!link.last_drop) return "";
    const at = link.last_drop_at === null ? "" : ` at ${clockTime(link.last_drop_at)}`;
    if (link.last_drop_cleared) {
      return el("div", { className: "note cleared" },
        `last dropped${at}, cleared: ${link.readings_since_drop} ${readings} decoded since`);
    }
    return el("div", { className: "problem" }, `dropped${at}: ${link.last_drop}`);
  }

  function lastError(child) {
    if (!child || !child.last_error) return "";
    const at = child.last_error_at === null ? "" : ` at ${clockTime(child.last_error_at)}`;
    const restarts = `restarted ${child.restarts} time${child.restarts === 1 ? "" : "s"}`;
    return el("div", { className: child.state === "running" ? "note" : "problem" },
      `last error${at}: ${child.last_error} (${restarts}${child.state === "running" ? "" : `, ${child.state}`})`);
  }

  function linkDetails(link, child) {
    const details = el("details", { className: "details", open: state.openDetails.has(link.name) },
      el("summary", {}, "details"),
      el("div", {}, "state ", el("code", {}, link.state)),
      child ? el("div", {}, `supervisor: ${child.state}, ${child.restarts} restarts`) : "",
      link.last_drop ? el("div", {}, `last drop: ${link.last_drop}`) : "",
      el("div", {}, Object.entries(link.counters || {}).map(([name, n]) => `${name} ${n}`).join(" \u00b7 ")));
    // The list is rebuilt every poll: keep a details block open that the user opened.
    details.addEventListener("toggle", () => {
      if (details.open) state.openDetails.add(link.name);
      else state.openDetails.delete(link.name);
    });
    return details;
  }

  function flattenChildren(children, into = new Map()) {
    for (const child of children) {
      into.set(child.id, child);
      flattenChildren(child.children || [], into);
    }
    return into;
  }

  // Machine states are per link kind; a P1 link spends most of its time waiting for the next '/',
  // which is normal. Only what says trouble is marked as such.
  function stateClass(link) {
    if (!link.connected || /stale|closed|fail|stop|lost/.test(link.state)) return "bad";
    return /starting|search|powering/.test(link.state) ? "warn" : "ok";
  }

  // Where readings go besides this page (MQTT); the block is hidden when there is none.
  function renderOutputs(outputs) {
    $("outputs").hidden = outputs.length === 0;
    $("output-list").replaceChildren(...outputs.map((output) => el("li", {},
      el("div", {}, el("span", { className: "link-name" }, output.name === "mqtt" ? "MQTT" : output.name), " ",
        el("span", { className: `state ${output.connected ? "ok" : "bad"}` }, output.connected ? "connected" : "not connected")),
      el("div", { className: "counts" },
        `published ${output.published} \u00b7 queued ${output.queued} \u00b7 dropped ${output.dropped} \u00b7 expired ${output.expired}`),
      output.last_error ? el("div", { className: output.connected ? "note" : "problem" }, `last error: ${output.last_error}`) : "")));
  }

  // ---- small helpers ---------------------------------------------------------------------------

  function updateAges() {
    const now = adapterNow();
    for (const span of document.querySelectorAll(".age")) {
      const at = parseFloat(span.dataset.at);
      span.textContent = Number.isNaN(at) ? "never" : age(now - at);
    }
  }

  // HH:MM:SS of an adapter time, in the browser's time zone.
  function clockTime(t) {
    const date = new Date(t * 1000);
    return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
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
    new ResizeObserver(scheduleDraw).observe($("panels"));
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
