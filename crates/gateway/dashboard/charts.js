// A small SVG chart library for the dashboard: no dependencies, no build step.
//
// Every chart is drawn into a container element the caller has already attached to the
// page (its width is measured so text is drawn at its real size), and is an
// <svg class="chart" data-series="N"> where N counts the data points drawn. With nothing to
// draw, N is 0 and an empty-state note is shown next to it: the browser test relies on both.
//
// Labels are set with textContent, never parsed as markup: model names, guard names and
// tenants come from the API and are attacker-influenced.
'use strict';

(() => {
  const NS = 'http://www.w3.org/2000/svg';

  // Colour-blind-friendly-ish, distinguishable on white.
  const PALETTE = [
    '#2563eb', '#f59e0b', '#10b981', '#8b5cf6', '#ef4444',
    '#06b6d4', '#ec4899', '#84cc16', '#64748b', '#f97316',
  ];

  // Names the demo and the gateway use get fixed colours, so the same model or guard has the
  // same colour on every chart and every page; anything else hashes into the palette.
  const FIXED = {
    small: '#10b981', medium: '#f59e0b', frontier: '#2563eb', flaky: '#ec4899', cache: '#06b6d4',
    pii: '#2563eb', secrets: '#0ea5e9', injection: '#ef4444', toxicity: '#f97316',
    grounding: '#8b5cf6', bias: '#ec4899', compliance: '#84cc16', topic: '#14b8a6',
    schema: '#a16207', length: '#64748b', harmful: '#b91c1c',
    blocked: '#dc2626', refused: '#991b1b', stopped: '#f97316', masked: '#2563eb',
    flagged: '#f59e0b', fixed: '#10b981', replaced: '#8b5cf6', retried: '#06b6d4',
    error: '#64748b',
    auto: '#6366f1', routing: '#2563eb', 'hit-exact': '#0891b2', 'hit-semantic': '#a855f7',
  };

  function colorFor(name) {
    const key = String(name ?? '');
    if (Object.prototype.hasOwnProperty.call(FIXED, key)) return FIXED[key];
    let h = 2166136261;
    for (let i = 0; i < key.length; i++) {
      h ^= key.charCodeAt(i);
      h = Math.imul(h, 16777619);
    }
    return PALETTE[(h >>> 0) % PALETTE.length];
  }

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const t = el('text', Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = content;
    return t;
  }

  // ---- Tooltip: one for the whole page, positioned next to the pointer. ----

  let tip = null;
  function tooltip() {
    if (!tip || !tip.isConnected) {
      tip = html('div', 'chart-tip');
      tip.setAttribute('role', 'tooltip');
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  }

  // rows: [{color, label, value}]
  function showTip(event, title, rows) {
    const t = tooltip();
    t.replaceChildren();
    if (title) t.appendChild(html('div', 'tip-title', title));
    for (const row of rows) {
      const line = html('div', 'tip-row');
      if (row.color) {
        const sw = html('span', 'swatch');
        sw.style.background = row.color;
        line.appendChild(sw);
      }
      line.appendChild(html('span', 'tip-label', row.label));
      line.appendChild(html('span', 'tip-value', row.value));
      t.appendChild(line);
    }
    t.hidden = false;
    const pad = 14;
    const w = t.offsetWidth;
    const h = t.offsetHeight;
    let x = event.clientX + pad;
    let y = event.clientY + pad;
    if (x + w > window.innerWidth - 4) x = event.clientX - w - pad;
    if (y + h > window.innerHeight - 4) y = event.clientY - h - pad;
    t.style.left = `${Math.max(4, x)}px`;
    t.style.top = `${Math.max(4, y)}px`;
  }

  function hideTip() {
    if (tip) tip.hidden = true;
  }

  // ---- Scales and ticks ----

  function linear(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    return step * mag;
  }

  function niceTicks(min, max, count) {
    if (!(max > min)) max = min + 1;
    const step = niceStep(max - min, count);
    const lo = Math.floor(min / step) * step;
    const hi = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
    return { lo, hi, ticks };
  }

  const MIN = 60e3;
  const HOUR = 3600e3;
  const DAY = 24 * HOUR;
  const TIME_STEPS = [5 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR,
    12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY];

  function pad2(n) { return String(n).padStart(2, '0'); }
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  // The API buckets by UTC, so the charts speak UTC too.
  function fmtTime(ms, step) {
    const d = new Date(ms);
    const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    if (step >= DAY) return day;
    if (d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && step >= HOUR) return day;
    return hm;
  }

  function fmtStamp(ms, bucketMs) {
    const d = new Date(ms);
    const day = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
    if (bucketMs >= DAY) return `${day} (UTC day)`;
    return `${day}, ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())} UTC`;
  }

  function timeTicks(from, to, maxTicks) {
    const span = to - from;
    const step = TIME_STEPS.find((s) => span / s <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
    const ticks = [];
    for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
    return { step, ticks };
  }

  // ---- Frame: container, svg, legend, empty state ----

  function frame(container, opts, points) {
    container.replaceChildren();
    container.classList.add('chart-box');
    const width = Math.max(200, Math.round(opts.width || container.clientWidth || 560));
    const height = opts.height || 220;
    const drawn = points > 0;
    const svg = el('svg', {
      class: `chart${opts.kind ? ` chart-${opts.kind}` : ''}`,
      'data-series': String(points),
      viewBox: `0 0 ${width} ${drawn ? height : Math.min(height, 60)}`,
      width: '100%',
      role: 'img',
      'aria-label': opts.title || 'chart',
    });
    if (!drawn) svg.classList.add('is-empty');
    container.appendChild(svg);
    if (!drawn) {
      container.appendChild(html('p', 'empty-note', opts.emptyText || 'Nothing yet in this time range.'));
    }
    return { svg, width, height, drawn };
  }

  function legend(container, items) {
    if (!items.length) return;
    const box = html('div', 'legend');
    for (const item of items) {
      const entry = html('span', 'legend-item');
      const sw = html('span', `swatch${item.dashed ? ' dashed' : ''}`);
      sw.style.background = item.dashed ? 'transparent' : item.color;
      if (item.dashed) sw.style.borderColor = item.color;
      entry.appendChild(sw);
      entry.appendChild(document.createTextNode(item.label));
      box.appendChild(entry);
    }
    container.appendChild(box);
  }

  const ident = (v) => String(v);

  // ---- Time series: lines or areas over time, optional right axis and threshold lines ----
  //
  // opts: {series: [{name, color, points: [[ms, value|null]], axis: 'left'|'right', area,
  //        hold, dashed, format}], from, to, bucketMs, bucketed, yFormat, y2Format,
  //        yScale: 'linear'|'symlog', yMin, yMaxAtLeast, thresholds: [{value, label, color}],
  //        height, emptyText, title}
  function timeSeries(container, opts) {
    const series = (opts.series || []).map((s) => ({
      ...s,
      color: s.color || colorFor(s.name),
      points: (s.points || []).filter((p) => Number.isFinite(p[0])),
    }));
    const count = series.reduce(
      (n, s) => n + s.points.filter((p) => p[1] !== null && Number.isFinite(p[1])).length, 0);
    const { svg, width, height, drawn } = frame(container, opts, count);
    if (!drawn) return svg;

    const hasRight = series.some((s) => s.axis === 'right');
    const m = { top: 12, right: hasRight ? 56 : 16, bottom: 26, left: 56 };
    const pw = width - m.left - m.right;
    const ph = height - m.top - m.bottom;

    const allT = series.flatMap((s) => s.points.map((p) => p[0]));
    let from = opts.from ?? Math.min(...allT);
    let to = opts.to ?? Math.max(...allT);
    from = Math.min(from, ...allT);
    to = Math.max(to, ...allT);
    if (to <= from) to = from + (opts.bucketMs || HOUR);
    const x = linear(from, to, m.left, m.left + pw);
    // Few buckets drawn as a line would invent a slope between two hours: draw each bucket's
    // value flat across its span instead.
    const bucket = opts.bucketMs || HOUR;
    const stepped = Boolean(opts.bucketed) && Math.max(...series.map((s) => s.points.length)) <= 12;
    const spanEnd = (t) => Math.min(t + bucket, to);
    const anchor = (t) => (stepped ? (t + spanEnd(t)) / 2 : t);

    const domain = (axis) => {
      const vals = series.filter((s) => (s.axis || 'left') === axis)
        .flatMap((s) => s.points.map((p) => p[1]))
        .filter((v) => v !== null && Number.isFinite(v));
      if (axis === 'left') for (const th of opts.thresholds || []) vals.push(th.value);
      const lo = Math.min(opts.yMin ?? 0, ...vals);
      const hi = Math.max(...vals, lo + (opts.yMaxAtLeast || 0));
      return niceTicks(lo, hi > lo ? hi : lo + 1, Math.max(2, Math.floor(ph / 45)));
    };
    // `symlog`: burn rates of 0.3 and thresholds of 14.4 on one axis; a linear one would
    // flatten the burn against the floor. log10(1 + v) keeps 0 at the bottom.
    const symlog = opts.yScale === 'symlog';
    let left = domain('left');
    let yL = linear(left.lo, left.hi, m.top + ph, m.top);
    if (symlog) {
      const f = (v) => Math.log10(1 + Math.max(0, v));
      const top = left.hi;
      const ticks = [0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].filter((t) => t <= top * 1.0001);
      const hi = Math.max(top, ticks[ticks.length - 1]);
      left = { lo: 0, hi, ticks };
      const lin = linear(0, f(hi), m.top + ph, m.top);
      yL = (v) => lin(f(v));
    }
    const right = hasRight ? domain('right') : null;
    const yR = right ? linear(right.lo, right.hi, m.top + ph, m.top) : null;
    const fmtL = opts.yFormat || ident;
    const fmtR = opts.y2Format || ident;

    const grid = el('g', { class: 'grid' }, svg);
    for (const v of left.ticks) {
      const y = yL(v);
      el('line', { x1: m.left, x2: m.left + pw, y1: y, y2: y }, grid);
      text(grid, m.left - 6, y + 4, fmtL(v), { class: 'tick', 'text-anchor': 'end' });
    }
    if (right) {
      for (const v of right.ticks) {
        text(grid, m.left + pw + 6, yR(v) + 4, fmtR(v), { class: 'tick', 'text-anchor': 'start' });
      }
    }
    const xt = timeTicks(from, to, Math.max(2, Math.floor(pw / 80)));
    for (const t of xt.ticks) {
      const xx = x(t);
      el('line', { x1: xx, x2: xx, y1: m.top + ph, y2: m.top + ph + 4, class: 'tick-mark' }, grid);
      text(grid, xx, height - 8, fmtTime(t, xt.step), { class: 'tick', 'text-anchor': 'middle' });
    }
    el('line', { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph, class: 'axis' }, grid);

    for (const th of opts.thresholds || []) {
      const y = yL(th.value);
      el('line', {
        x1: m.left, x2: m.left + pw, y1: y, y2: y, class: 'threshold',
        stroke: th.color || '#dc2626',
      }, svg);
      text(svg, m.left + pw - 4, y - 4, th.label, {
        class: 'threshold-label', 'text-anchor': 'end', fill: th.color || '#dc2626',
      });
    }

    for (const s of series) {
      const y = s.axis === 'right' ? yR : yL;
      const g = el('g', { class: 'series' }, svg);
      // Null values break the line: a missing p95 is not a zero.
      const runs = [];
      let run = [];
      // `hold`: a value that stands until the next point (a rollout's share), else the
      // bucket's span when stepped.
      const flat = stepped || s.hold;
      s.points.forEach(([t, v], k) => {
        if (v === null || !Number.isFinite(v)) {
          if (run.length) runs.push(run);
          run = [];
        } else {
          const end = s.hold ? (k + 1 < s.points.length ? s.points[k + 1][0] : to) : spanEnd(t);
          run.push([x(t), y(v), x(end)]);
        }
      });
      if (run.length) runs.push(run);
      const base = y(Math.max(s.axis === 'right' ? right.lo : left.lo, 0));
      for (const r0 of runs) {
        // Stepped: each point becomes its bucket's flat segment.
        const r = flat ? r0.flatMap(([px, py, ex]) => [[px, py], [ex, py]]) : r0;
        const d = r.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('');
        if (s.area && r.length > 1) {
          el('path', {
            d: `${d}L${r[r.length - 1][0].toFixed(1)},${base}L${r[0][0].toFixed(1)},${base}Z`,
            fill: s.color, class: 'area',
          }, g);
        }
        el('path', {
          d, stroke: s.color, class: `line${s.dashed ? ' dashed' : ''}`, fill: 'none',
        }, g);
        if (r0.length === 1 && !flat) el('circle', { cx: r[0][0], cy: r[0][1], r: 3, fill: s.color }, g);
      }
    }

    // Hover: the nearest timestamp across all series.
    const stamps = [...new Set(allT)].sort((a, b) => a - b);
    const lookups = series.map((s) => new Map(s.points.map((p) => [p[0], p[1]])));
    const hover = el('g', { class: 'hover', visibility: 'hidden' }, svg);
    const vline = el('line', { y1: m.top, y2: m.top + ph, class: 'hover-line' }, hover);
    const dots = series.map((s) => el('circle', { r: 3.5, fill: s.color, stroke: '#fff', 'stroke-width': 1.5 }, hover));
    const overlay = el('rect', {
      x: m.left, y: m.top, width: pw, height: ph, fill: 'transparent', class: 'overlay',
    }, svg);
    overlay.addEventListener('mousemove', (ev) => {
      const box = svg.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * width;
      let best = stamps[0];
      for (const t of stamps) if (Math.abs(x(anchor(t)) - px) < Math.abs(x(anchor(best)) - px)) best = t;
      const bx = x(anchor(best));
      vline.setAttribute('x1', bx);
      vline.setAttribute('x2', bx);
      const rows = [];
      series.forEach((s, i) => {
        const v = lookups[i].get(best);
        const has = v !== undefined && v !== null && Number.isFinite(v);
        dots[i].setAttribute('visibility', has ? 'visible' : 'hidden');
        if (has) {
          dots[i].setAttribute('cx', bx);
          dots[i].setAttribute('cy', (s.axis === 'right' ? yR : yL)(v));
        }
        const f = s.format || (s.axis === 'right' ? fmtR : fmtL);
        rows.push({ color: s.color, label: s.name, value: has ? f(v) : '–' });
      });
      hover.setAttribute('visibility', 'visible');
      showTip(ev, fmtStamp(best, opts.bucketMs || HOUR), rows);
    });
    overlay.addEventListener('mouseleave', () => {
      hover.setAttribute('visibility', 'hidden');
      hideTip();
    });

    legend(container, [
      ...series.map((s) => ({
        color: s.color,
        label: s.axis === 'right' && hasRight ? `${s.name} (right axis)` : s.name,
      })),
      ...(opts.thresholds || []).map((t) => ({ color: t.color || '#dc2626', label: t.label, dashed: true })),
    ]);
    return svg;
  }

  // ---- Stacked bars over time ----
  //
  // opts: {buckets: [ms], bucketMs, series: [{name, color, values: [number]}], from, to,
  //        yFormat, height, emptyText, title}
  function stackedBars(container, opts) {
    const buckets = opts.buckets || [];
    const series = (opts.series || []).map((s) => ({ ...s, color: s.color || colorFor(s.name) }));
    let count = 0;
    for (const s of series) for (const v of s.values) if (v > 0) count++;
    const { svg, width, height, drawn } = frame(container, opts, count);
    if (!drawn) return svg;

    const m = { top: 12, right: 16, bottom: 26, left: 56 };
    const pw = width - m.left - m.right;
    const ph = height - m.top - m.bottom;
    const bucketMs = opts.bucketMs || HOUR;
    const from = Math.min(opts.from ?? Infinity, buckets[0]);
    const to = Math.max(opts.to ?? -Infinity, buckets[buckets.length - 1] + bucketMs);
    const x = linear(from, to, m.left, m.left + pw);
    const totals = buckets.map((_, i) => series.reduce((n, s) => n + (s.values[i] || 0), 0));
    const yt = niceTicks(0, Math.max(...totals, 1), Math.max(2, Math.floor(ph / 45)));
    const y = linear(0, yt.hi, m.top + ph, m.top);
    const fmt = opts.yFormat || ident;

    const grid = el('g', { class: 'grid' }, svg);
    for (const v of yt.ticks) {
      el('line', { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v) }, grid);
      text(grid, m.left - 6, y(v) + 4, fmt(v), { class: 'tick', 'text-anchor': 'end' });
    }
    const xt = timeTicks(from, to, Math.max(2, Math.floor(pw / 80)));
    for (const t of xt.ticks) {
      text(grid, x(t), height - 8, fmtTime(t, xt.step), { class: 'tick', 'text-anchor': 'middle' });
    }
    el('line', { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph, class: 'axis' }, grid);

    const slot = Math.max(1, x(from + bucketMs) - x(from));
    const barW = Math.max(1, Math.min(slot * 0.8, 48));
    const bars = el('g', { class: 'bars' }, svg);
    buckets.forEach((t, i) => {
      let acc = 0;
      const x0 = x(t) + (slot - barW) / 2;
      const col = el('g', { class: 'bar-col' }, bars);
      // The full-height hit area makes small bars easy to hover.
      el('rect', { x: x(t), y: m.top, width: slot, height: ph, fill: 'transparent' }, col);
      for (const s of series) {
        const v = s.values[i] || 0;
        if (v <= 0) continue;
        const y1 = y(acc);
        const y2 = y(acc + v);
        el('rect', {
          x: x0, y: y2, width: barW, height: Math.max(0.5, y1 - y2), fill: s.color, class: 'bar',
        }, col);
        acc += v;
      }
      col.addEventListener('mousemove', (ev) => {
        const rows = series.filter((s) => (s.values[i] || 0) > 0)
          .map((s) => ({ color: s.color, label: s.name, value: fmt(s.values[i]) }));
        rows.push({ label: 'Total', value: fmt(totals[i]) });
        col.classList.add('hovered');
        showTip(ev, fmtStamp(t, bucketMs), rows);
      });
      col.addEventListener('mouseleave', () => {
        col.classList.remove('hovered');
        hideTip();
      });
    });
    legend(container, series.filter((s) => s.values.some((v) => v > 0))
      .map((s) => ({ color: s.color, label: s.name })));
    return svg;
  }

  // ---- Horizontal bar list ----
  //
  // opts: {items: [{label, value, color, note}], format, emptyText, title, max}
  function barList(container, opts) {
    const items = (opts.items || []).filter((it) => Number.isFinite(it.value));
    const rowH = 28;
    const { svg, width, drawn } = frame(container, {
      ...opts, kind: 'barlist', height: Math.max(60, items.length * rowH + 8),
    }, items.length);
    if (!drawn) return svg;
    const fmt = opts.format || ident;
    const labelW = Math.min(170, Math.max(90, width * 0.3));
    const valueW = 84;
    const bw = Math.max(20, width - labelW - valueW - 12);
    const max = Math.max(opts.max || 0, ...items.map((it) => it.value), 1e-12);
    items.forEach((it, i) => {
      const g = el('g', { class: 'bar-row' }, svg);
      const y0 = 4 + i * rowH;
      el('rect', { x: 0, y: y0, width, height: rowH, fill: 'transparent' }, g);
      const label = it.label ?? '(none)';
      const short = label.length > 24 ? `${label.slice(0, 23)}…` : label;
      text(g, 0, y0 + rowH / 2 + 4, short, { class: 'bar-label' });
      el('rect', { x: labelW, y: y0 + 6, width: bw, height: rowH - 12, rx: 3, class: 'bar-track' }, g);
      el('rect', {
        x: labelW, y: y0 + 6, width: Math.max(it.value > 0 ? 2 : 0, (it.value / max) * bw),
        height: rowH - 12, rx: 3, fill: it.color || colorFor(label), class: 'bar',
      }, g);
      text(g, width - 2, y0 + rowH / 2 + 4, fmt(it.value), { class: 'bar-value', 'text-anchor': 'end' });
      g.addEventListener('mousemove', (ev) => {
        const rows = [{ color: it.color || colorFor(label), label, value: fmt(it.value) }];
        if (it.note) rows.push({ label: '', value: it.note });
        showTip(ev, null, rows);
      });
      g.addEventListener('mouseleave', hideTip);
    });
    return svg;
  }

  // ---- Donut ----
  //
  // opts: {items: [{label, value, color, note}], format, center, centerLabel, emptyText, title}
  function donut(container, opts) {
    const items = (opts.items || []).filter((it) => it.value > 0);
    const size = opts.size || 180;
    const { svg, drawn } = frame(container, { ...opts, kind: 'donut', width: size, height: size }, items.length);
    if (!drawn) return svg;
    container.classList.add('donut-box');
    svg.setAttribute('width', size);
    const fmt = opts.format || ident;
    const total = items.reduce((n, it) => n + it.value, 0);
    const cx = size / 2;
    const r = size / 2 - 6;
    const inner = r * 0.62;
    let angle = -Math.PI / 2;
    const pt = (a, rad) => `${(cx + rad * Math.cos(a)).toFixed(2)},${(cx + rad * Math.sin(a)).toFixed(2)}`;
    for (const it of items) {
      const sweep = (it.value / total) * Math.PI * 2;
      const a1 = angle + Math.min(sweep, Math.PI * 2 - 1e-4);
      const large = sweep > Math.PI ? 1 : 0;
      const d = `M${pt(angle, r)}A${r},${r} 0 ${large} 1 ${pt(a1, r)}L${pt(a1, inner)}`
        + `A${inner},${inner} 0 ${large} 0 ${pt(angle, inner)}Z`;
      const color = it.color || colorFor(it.label);
      const arc = el('path', { d, fill: color, class: 'arc' }, svg);
      arc.addEventListener('mousemove', (ev) => {
        const rows = [{ color, label: it.label, value: fmt(it.value) },
          { label: 'Share', value: `${((it.value / total) * 100).toFixed(1)}%` }];
        if (it.note) rows.push({ label: '', value: it.note });
        showTip(ev, null, rows);
      });
      arc.addEventListener('mouseleave', hideTip);
      angle += sweep;
    }
    text(svg, cx, cx + 2, opts.center ?? fmt(total), { class: 'donut-center', 'text-anchor': 'middle' });
    text(svg, cx, cx + 20, opts.centerLabel || 'total', { class: 'donut-sub', 'text-anchor': 'middle' });
    const box = html('div', 'legend legend-col');
    for (const it of items) {
      const entry = html('span', 'legend-item');
      const sw = html('span', 'swatch');
      sw.style.background = it.color || colorFor(it.label);
      entry.appendChild(sw);
      entry.appendChild(html('span', 'legend-label', it.label));
      entry.appendChild(html('span', 'legend-value',
        `${fmt(it.value)} · ${((it.value / total) * 100).toFixed(1)}%`));
      box.appendChild(entry);
    }
    container.appendChild(box);
    return svg;
  }

  // ---- Sparkline: a tile's trend, no axes ----
  function sparkline(container, values, opts = {}) {
    const pts = values.map((v, i) => [i, v]).filter(([, v]) => v !== null && Number.isFinite(v));
    container.replaceChildren();
    container.classList.add('spark-box');
    const w = opts.width || 120;
    const h = opts.height || 32;
    const svg = el('svg', {
      class: 'chart spark', 'data-series': String(pts.length), viewBox: `0 0 ${w} ${h}`,
      width: '100%', height: h, preserveAspectRatio: 'none', 'aria-hidden': 'true',
    }, container);
    if (!pts.length) return svg;
    const vals = pts.map((p) => p[1]);
    const lo = Math.min(0, ...vals);
    const hi = Math.max(...vals);
    const x = linear(0, Math.max(1, values.length - 1), 1, w - 1);
    const y = linear(lo, hi > lo ? hi : lo + 1, h - 2, 2);
    const d = pts.map(([i, v], k) => `${k ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
    const color = opts.color || '#2563eb';
    if (pts.length === 1) {
      el('circle', { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2.5, fill: color }, svg);
      return svg;
    }
    el('path', {
      d: `${d}L${x(pts[pts.length - 1][0]).toFixed(1)},${h}L${x(pts[0][0]).toFixed(1)},${h}Z`,
      fill: color, class: 'area',
    }, svg);
    el('path', { d, stroke: color, fill: 'none', class: 'line', 'vector-effect': 'non-scaling-stroke' }, svg);
    return svg;
  }

  // ---- Bullet bar: a share of budget left (may be negative: overspent) ----
  //
  // opts: {value (share, 1 = all left), label, height}
  function bullet(container, opts) {
    container.replaceChildren();
    container.classList.add('bullet-box');
    const v = Number.isFinite(opts.value) ? opts.value : null;
    const w = opts.width || Math.max(160, container.clientWidth || 240);
    const h = opts.height || 14;
    const svg = el('svg', {
      class: 'chart bullet', 'data-series': v === null ? '0' : '1', viewBox: `0 0 ${w} ${h}`,
      width: '100%', height: h, preserveAspectRatio: 'none', role: 'img',
      'aria-label': opts.label || 'budget remaining',
    }, container);
    // Bands: under a quarter left is trouble, under half is worth a look.
    el('rect', { x: 0, y: 0, width: w, height: h, rx: 3, class: 'band-ok' }, svg);
    el('rect', { x: 0, y: 0, width: w * 0.5, height: h, rx: 3, class: 'band-warn' }, svg);
    el('rect', { x: 0, y: 0, width: w * 0.25, height: h, rx: 3, class: 'band-bad' }, svg);
    if (v !== null) {
      const share = Math.max(0, Math.min(1, v));
      const level = v <= 0.25 ? 'bad' : v <= 0.5 ? 'warn' : 'ok';
      el('rect', {
        x: 0, y: h * 0.25, width: Math.max(share > 0 ? 2 : 0, share * w), height: h * 0.5,
        class: `bullet-fill level-${level}`,
      }, svg);
      if (v < 0) {
        // Overspent: the bar cannot show a negative share, so a red edge says "below zero".
        el('rect', { x: 0, y: 0, width: 4, height: h, class: 'bullet-over' }, svg);
      }
    }
    for (const q of [0.25, 0.5, 0.75]) {
      el('line', { x1: q * w, x2: q * w, y1: 0, y2: h, class: 'bullet-tick' }, svg);
    }
    return svg;
  }

  window.Charts = {
    colorFor, timeSeries, stackedBars, barList, donut, sparkline, bullet, hideTip,
  };
})();
