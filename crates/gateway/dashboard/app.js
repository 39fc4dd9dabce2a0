// The Switchyard dashboard: hash router, session handling, data loading and the six pages.
//
// Marker contract the browser test relies on (keep it exact):
//   body[data-page]  overview | slos | routing | guards | rollouts | requests
//   body[data-state] loading | ready | error | login
//   charts: svg.chart[data-series=N]; KPI tiles .kpi-tile; SLO cards .slo-card;
//   tables: table.data.NAME with one tbody (an empty one holds a single tr.empty);
//   failures: .error-banner; login: form#login with input[name=key][type=password].
//   request detail: tr.detail .conversation[data-state] loading | ready | error, holding
//   .msg (one per message, .msg.answer for the answer) with pre.msg-text and mark.ph.
//
// Every string from the API goes through esc() before it reaches innerHTML: request ids,
// model, tenant and rollout names, alert text and audit reasons are attacker-influenced.
'use strict';

(() => {
  const Charts = window.Charts;
  const PAGES = ['overview', 'slos', 'routing', 'guards', 'rollouts', 'requests'];
  const RANGES = [1, 24, 168, 720];
  const REFRESH_MS = 30_000;
  const FETCH_TIMEOUT_MS = 20_000;
  const HOUR = 3600e3;
  const DAY = 24 * HOUR;

  const state = {
    token: 0,
    loggedIn: false,
    timer: null,
    inFlight: false,
    guardsBy: 'guard',
    rolloutId: null,
    // Requests page: set once the user paged back or opened a row, so auto-refresh does not
    // yank the list from under them.
    requestsTouched: false,
    // Requests page: model and route choices, with when they were fetched.
    filterOptions: null,
  };

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

  // ---- Escaping and formatting ----

  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(value) {
    return String(value ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
  }

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const DASH = '–';

  function money(nanos) {
    if (!isNum(nanos)) return DASH;
    const d = nanos / 1e9;
    const a = Math.abs(d);
    if (a === 0) return '$0';
    if (a >= 1e6) return `$${(d / 1e6).toFixed(2)}M`;
    if (a >= 1e4) return `$${(d / 1e3).toFixed(1)}k`;
    if (a >= 100) return `$${d.toFixed(0)}`;
    if (a >= 0.1) return `$${d.toFixed(2)}`;
    if (a >= 0.01) return `$${d.toFixed(3).replace(/(\.\d\d)0$/, '$1')}`;
    return `$${d.toPrecision(2)}`;
  }

  function pct(share, digits = 1) {
    if (!isNum(share)) return DASH;
    return `${(share * 100).toFixed(digits)}%`;
  }

  // SLIs sit near 100%: show enough digits to tell 99.9% from 99.95%.
  function pctFine(share) {
    if (!isNum(share)) return DASH;
    const p = share * 100;
    if (p >= 99.99 && p < 100) return `${p.toFixed(3)}%`;
    if (p >= 99 && p < 100) return `${p.toFixed(2)}%`;
    return `${p.toFixed(1)}%`;
  }

  function num(v) {
    if (!isNum(v)) return DASH;
    const a = Math.abs(v);
    if (a >= 1e9) return `${(v / 1e9).toFixed(1)}B`;
    if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }

  function ms(v) {
    if (!isNum(v)) return DASH;
    if (v < 1) return `${v.toFixed(2)} ms`;
    if (v < 1000) return `${Math.round(v)} ms`;
    if (v < 60_000) return `${(v / 1000).toFixed(v < 10_000 ? 2 : 1)} s`;
    return `${(v / 60_000).toFixed(1)} min`;
  }

  function burn(v) {
    if (!isNum(v)) return DASH;
    return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}×`;
  }

  function duration(secs) {
    if (!isNum(secs)) return DASH;
    if (secs % 86400 === 0) return `${secs / 86400} d`;
    if (secs % 3600 === 0) return `${secs / 3600} h`;
    if (secs % 60 === 0) return `${secs / 60} min`;
    return `${secs} s`;
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad2 = (n) => String(n).padStart(2, '0');

  // UTC throughout: the API buckets by UTC day and hour.
  function when(msValue) {
    if (!isNum(msValue)) return DASH;
    const d = new Date(msValue);
    return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
  }

  function sameUtcDay(msValue) {
    return isNum(msValue) && Math.floor(msValue / DAY) === Math.floor(Date.now() / DAY);
  }

  function ago(msValue) {
    if (!isNum(msValue)) return '';
    const s = Math.round((Date.now() - msValue) / 1000);
    if (s < 0) return 'just now';
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function rangeLabel(hours) {
    return { 1: 'last hour', 24: 'last 24 h', 168: 'last 7 days', 720: 'last 30 days' }[hours]
      || `last ${hours} h`;
  }

  // The bucket of a range's charts, as the API names it, with its length and its name in a
  // chart's hint: minutes for an hour, 15 minutes for a day, hours for a week, days beyond,
  // so a chart has between 30 and 168 points.
  const BUCKETS = [
    [1, 'minute', 60e3, 'minute'],
    [6, '5min', 5 * 60e3, '5 minutes'],
    [24, '15min', 15 * 60e3, '15 minutes'],
    [168, 'hour', HOUR, 'hour'],
    [Infinity, 'day', DAY, 'day'],
  ];
  const bucketOf = (hours) => BUCKETS.find(([upTo]) => hours <= upTo);
  const bucketFor = (hours) => bucketOf(hours)[1];
  const bucketMs = (hours) => bucketOf(hours)[2];
  const bucketLabel = (hours) => bucketOf(hours)[3];

  function safeDiv(a, b) {
    return isNum(a) && isNum(b) && b !== 0 ? a / b : null;
  }

  // Some record fields are JSON text (guards, route decision); accept objects too in case
  // the API starts sending them parsed.
  function parseMaybe(value) {
    if (value === null || value === undefined || value === '') return null;
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }

  // ---- API ----

  class ApiError extends Error {
    constructor(status, message, url) {
      super(message);
      this.status = status;
      this.url = url;
    }
  }

  async function request(url, init = {}) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(url, { credentials: 'same-origin', ...init, signal: ctrl.signal });
    } catch (err) {
      const why = err && err.name === 'AbortError' ? 'timed out' : 'could not reach the gateway';
      throw new ApiError(0, why, url);
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    let parsed = true;
    const text = await res.text().catch(() => '');
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        parsed = false;
      }
    }
    // Something between the browser and the gateway (a proxy's sign-in page, say) answered.
    if (res.ok && !parsed) {
      throw new ApiError(res.status, 'the answer is not JSON', url);
    }
    if (!res.ok) {
      const msg = body && body.error && body.error.message
        ? body.error.message
        : `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
      throw new ApiError(res.status, msg, url);
    }
    return body;
  }

  const api = (url) => request(url, { headers: { accept: 'application/json' } });

  // Loads several URLs at once. A failure leaves that key null and adds its message to
  // `errors`, so a page still shows what did load; a 401 means the session is gone.
  async function loadAll(urls) {
    const keys = Object.keys(urls);
    const results = await Promise.allSettled(keys.map((k) => api(urls[k])));
    const data = {};
    const errors = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        data[keys[i]] = r.value;
      } else {
        data[keys[i]] = null;
        const err = r.reason;
        if (err instanceof ApiError && err.status === 401) throw err;
        const where = (urls[keys[i]] || '').split('?')[0];
        errors.push(`${where}: ${err && err.message ? err.message : String(err)}`);
      }
    });
    return { data, errors };
  }

  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
    }
    return p.toString();
  }

  // ---- Routing ----

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [path, query = ''] = raw.split('?');
    const page = PAGES.includes(path) ? path : 'overview';
    const params = new URLSearchParams(query);
    let hours = Number(params.get('hours'));
    if (!RANGES.includes(hours)) hours = 24;
    return { page, params, hours };
  }

  function go(page, params) {
    const q = params.toString();
    const next = `#/${page}${q ? `?${q}` : ''}`;
    if (location.hash === next) {
      render();
    } else {
      location.hash = next;
    }
  }

  function setMarker(page, st) {
    if (page) document.body.dataset.page = page;
    document.body.dataset.state = st;
  }

  // ---- Banner ----

  function showErrors(errors) {
    const slot = $('#banner-slot');
    if (!errors.length) {
      slot.replaceChildren();
      return;
    }
    slot.innerHTML = `<div class="error-banner" role="alert">
      <div><strong>Some data could not be loaded.</strong>
      <ul>${errors.map((e) => `<li>${esc(e)}</li>`).join('')}</ul></div>
      <button type="button" class="dismiss" aria-label="Dismiss">×</button></div>`;
    $('.dismiss', slot).addEventListener('click', () => slot.replaceChildren());
  }

  // ---- Login ----

  function showLogin(message) {
    state.loggedIn = false;
    state.token++;
    Charts.hideTip();
    showErrors([]);
    setMarker(null, 'login');
    $('#updated').textContent = '';
    $('#view').innerHTML = `<div class="login-wrap"><div class="card login-card">
      <h1>Sign in</h1>
      <p>Enter the gateway's admin key. It is sent once; the session lives in a cookie.</p>
      <form id="login">
        <input name="username" type="text" value="admin" autocomplete="username" hidden>
        <input name="key" type="password" placeholder="Admin key" aria-label="Admin key" autocomplete="current-password" required>
        <button type="submit" class="btn primary">Sign in</button>
        <div class="login-error" role="status">${esc(message || '')}</div>
      </form></div></div>`;
    const form = $('#login');
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const key = form.elements.key.value;
      const out = $('.login-error', form);
      const button = $('button', form);
      button.disabled = true;
      out.textContent = '';
      try {
        await request('/dashboard/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key }),
        });
        state.loggedIn = true;
        render();
      } catch (err) {
        out.textContent = err && err.message ? err.message : 'Sign-in failed';
        button.disabled = false;
        form.elements.key.select();
      }
    });
    form.elements.key.focus();
  }

  async function signOut() {
    try {
      await request('/dashboard/logout', { method: 'POST' });
    } catch {
      // Signed out or not, the login screen is the right place to be.
    }
    showLogin();
  }

  // ---- Rendering ----

  function syncChrome(page, hours) {
    for (const a of $$('#nav a')) a.classList.toggle('active', a.dataset.route === page);
    for (const b of $$('#range button')) b.classList.toggle('active', Number(b.dataset.hours) === hours);
    // Requests and rollouts are lists, not a time range: the picker does not apply there.
    $('#range').style.visibility = page === 'requests' || page === 'rollouts' ? 'hidden' : '';
    document.title = `${TITLES[page]} · Switchyard`;
  }

  const TITLES = {
    overview: 'Overview', slos: 'SLOs', routing: 'Routing & cache', guards: 'Guardrails',
    rollouts: 'Rollouts', requests: 'Requests',
  };

  // The empty-state text of a chart or table whose data failed to load says so, rather than
  // claiming there is nothing.
  const emptyOr = (loaded, text) => (loaded ? text : 'Not available: the data did not load (see above).');

  async function render({ quiet = false } = {}) {
    const { page, params, hours } = parseHash();
    const token = ++state.token;
    state.inFlight = true;
    Charts.hideTip();
    syncChrome(page, hours);
    setMarker(page, 'loading');
    const view = $('#view');
    if (!quiet) {
      view.setAttribute('aria-busy', 'true');
      if (view.dataset.page !== page) view.innerHTML = '<p class="loading-note">Loading…</p>';
    }
    try {
      const def = PAGE_DEFS[page];
      const { data, errors } = def.load ? await def.load(hours, params) : await loadAll(def.urls(hours, params));
      if (token !== state.token) return;
      state.loggedIn = true;
      const root = document.createElement('div');
      root.className = `page page-${page}`;
      view.replaceChildren(root);
      view.dataset.page = page;
      try {
        def.render(root, data, { hours, params, page });
      } catch (err) {
        errors.push(`Could not draw this page: ${err && err.message ? err.message : String(err)}`);
      }
      showErrors(errors);
      $('#updated').textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC`;
      setMarker(page, errors.length ? 'error' : 'ready');
    } catch (err) {
      if (token !== state.token) return;
      if (err instanceof ApiError && err.status === 401) {
        showLogin('Your session has ended: sign in again.');
        return;
      }
      showErrors([err && err.message ? err.message : String(err)]);
      setMarker(page, 'error');
    } finally {
      if (token === state.token) {
        state.inFlight = false;
        view.removeAttribute('aria-busy');
      }
    }
  }

  function slot(root, id) {
    return root.querySelector(`[data-slot="${id}"]`);
  }

  function emptyRow(cols, message) {
    return `<tr class="empty"><td colspan="${cols}">${esc(message)}</td></tr>`;
  }

  function table(name, head, rows, emptyMessage) {
    const cols = head.length;
    const th = head.map((h) => {
      const [label, cls] = Array.isArray(h) ? h : [h, ''];
      return `<th${cls ? ` class="${cls}"` : ''}>${esc(label)}</th>`;
    }).join('');
    const body = rows.length ? rows.join('') : emptyRow(cols, emptyMessage);
    return `<div class="table-wrap"><table class="data ${name}"><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table></div>`;
  }

  function pill(label, cls) {
    return `<span class="pill ${esc(cls || label)}">${esc(label)}</span>`;
  }

  // Bucketed rows → a full bucket list with nulls where the API had no row (groups by hour
  // or day are sparse; the trend is filled).
  function fillBuckets(fromMs, toMs, step, rows, keyOf) {
    const byKey = new Map(rows.map((r) => [keyOf(r), r]));
    const out = [];
    const start = Math.floor(fromMs / step) * step;
    if (toMs - start > step * 2000) return rows.map((r) => [keyOf(r), r]);
    for (let t = start; t < toMs; t += step) out.push([t, byKey.get(t) || null]);
    return out;
  }

  function delta(cur, prev, goodWhenUp) {
    if (!isNum(cur) || !isNum(prev) || prev === 0) return '';
    const change = (cur - prev) / Math.abs(prev);
    if (Math.abs(change) < 0.005) return '<span class="kpi-delta flat">= previous period</span>';
    const up = change > 0;
    const cls = goodWhenUp === null ? 'flat' : up === goodWhenUp ? 'good' : 'bad';
    const size = Math.abs(change) >= 10 ? '>999%' : `${(Math.abs(change) * 100).toFixed(0)}%`;
    return `<span class="kpi-delta ${cls}">${up ? '▲' : '▼'} ${size} vs previous</span>`;
  }

  // ---- SLO helpers ----

  const STATE_RANK = { firing: 3, pending: 2, resolved: 1, inactive: 0 };

  function worstState(slo) {
    let worst = 'inactive';
    for (const r of slo.rules || []) {
      if ((STATE_RANK[r.state] ?? 0) > (STATE_RANK[worst] ?? 0)) worst = r.state;
    }
    return worst;
  }

  function sloStatusLabel(s) {
    return s === 'firing' ? 'firing' : s === 'pending' ? 'pending' : 'ok';
  }

  function objectiveText(obj) {
    if (!obj) return '';
    switch (obj.kind) {
      case 'availability': return 'Availability: no server or provider error';
      case 'latency': return `Latency: answered within ${ms(obj.threshold_ms)}`;
      case 'ttft': return `Time to first token within ${ms(obj.threshold_ms)}`;
      case 'quality': return 'Quality: passed output guards, no negative feedback';
      default: return String(obj.kind || '');
    }
  }

  function scopeText(scope) {
    const parts = [];
    if (scope && scope.route) parts.push(`route ${scope.route}`);
    if (scope && scope.model) parts.push(`model ${scope.model}`);
    return parts.length ? parts.join(', ') : 'all traffic';
  }

  function budgetBlock(slo, id) {
    const b = slo.budget || {};
    return `<div class="budget-line"><span>Error budget left</span>
      <strong>${esc(pct(b.remaining, 0))}</strong></div>
      <div data-slot="${id}"></div>
      <div class="budget-line muted small"><span>${esc(num(b.bad))} bad of ${esc(num(b.total))}</span>
      <span>${esc(num(b.allowed_bad))} allowed over ${esc(duration(slo.window_secs))}</span></div>`;
  }

  // ---- Pages ----

  const PAGE_DEFS = {};

  // Overview: the numbers an executive asks for, then SLOs at a glance.
  PAGE_DEFS.overview = {
    urls(hours) {
      const now = Date.now();
      return {
        summary: `/admin/v1/kpis/summary?${qs({ hours })}`,
        previous: `/admin/v1/kpis/summary?${qs({ from_ms: now - 2 * hours * HOUR, to_ms: now - hours * HOUR })}`,
        trend: `/admin/v1/kpis/trend?${qs({ hours, bucket: bucketFor(hours) })}`,
        slos: '/admin/v1/slos',
      };
    },
    render(root, data, { hours }) {
      const s = data.summary || {};
      const p = data.previous || {};
      const fb = s.feedback || {};
      const pfb = p.feedback || {};
      const trend = (data.trend && data.trend.rows) || [];
      const successRate = safeDiv(s.successful, s.requests);
      const prevSuccess = safeDiv(p.successful, p.requests);
      const savedShare = safeDiv(s.saved_total_nanos, s.baseline_cost_nanos);

      const tiles = [
        {
          label: 'Spend', value: money(s.cost_nanos), spark: 'cost_nanos', color: '#f59e0b',
          note: `${money(s.cost_per_request_nanos)} per request`,
          delta: delta(s.cost_nanos, p.cost_nanos, null),
        },
        {
          label: 'Savings', value: money(s.saved_total_nanos), spark: 'saved_nanos', color: '#10b981',
          note: `${pct(savedShare)} of ${money(s.baseline_cost_nanos)} without routing and cache`,
          delta: delta(s.saved_total_nanos, p.saved_total_nanos, true),
        },
        {
          label: 'Cost per successful interaction', value: money(s.cost_per_success_nanos),
          note: `${num(s.successful)} successful interactions`,
          delta: delta(s.cost_per_success_nanos, p.cost_per_success_nanos, false),
        },
        {
          label: 'Automation rate', value: pct(s.automation_rate),
          note: `${num(s.answered)} answered without a human taking over`,
          delta: delta(s.automation_rate, p.automation_rate, true),
        },
        {
          label: 'Escalation rate', value: pct(s.escalation_rate),
          note: `${num(s.escalated)} of ${num(s.answered)} answers handed to a human`,
          delta: delta(s.escalation_rate, p.escalation_rate, false),
        },
        {
          label: 'Requests', value: num(s.requests), spark: 'requests', color: '#2563eb',
          note: `${num(s.errors)} 5xx · ${num(s.client_errors)} 4xx`,
          delta: delta(s.requests, p.requests, null),
        },
        {
          label: 'Success rate', value: pct(successRate),
          note: `${num(s.guard_refusals)} refused by guards`,
          delta: delta(successRate, prevSuccess, true),
        },
        {
          label: 'p95 latency', value: ms(s.latency_p95_ms), spark: 'latency_p95_ms', color: '#8b5cf6',
          note: `p50 ${ms(s.latency_p50_ms)}`,
          delta: delta(s.latency_p95_ms, p.latency_p95_ms, false),
        },
        {
          label: 'User satisfaction', value: pct(fb.mean_score, 0),
          note: fb.count ? `${num(fb.count)} ratings · ${pct(fb.task_completion_rate, 0)} tasks completed` : 'no feedback yet',
          delta: delta(fb.mean_score, pfb.mean_score, true),
        },
        {
          label: 'Cache hit rate', value: pct(s.cache_hit_rate), spark: 'cache_hits', color: '#06b6d4',
          note: `${num(s.cache_hits)} hits of ${num(s.cache_lookups)} lookups`,
          delta: delta(s.cache_hit_rate, p.cache_hit_rate, true),
        },
      ];

      const slos = (data.slos && data.slos.slos) || [];
      root.innerHTML = `
        <div class="page-head"><h1>Overview</h1><span class="sub">${esc(rangeLabel(hours))}, compared with the ${esc(rangeLabel(hours).replace('last ', 'previous '))}</span></div>
        <section class="grid tiles five">${tiles.map((t, i) => `
          <div class="card kpi-tile">
            <div class="kpi-label">${esc(t.label)}</div>
            <div class="kpi-value">${esc(t.value)}</div>
            <div class="kpi-note">${esc(t.note)}</div>
            ${t.delta}
            ${t.spark ? `<div data-slot="spark-${i}"></div>` : ''}
          </div>`).join('')}
        </section>
        <section class="grid g-wide">
          <div class="card"><h2>Requests and spend <span class="hint">per ${esc(bucketLabel(hours))}</span></h2><div data-slot="trend"></div></div>
          <div class="card"><h2>Savings <span class="hint">routing vs cache</span></h2><div data-slot="savings"></div>
            <h3 style="margin:12px 0 2px">Spend vs the most expensive model on each route</h3>
            <div data-slot="versus"></div></div>
        </section>
        <section>
          <div class="page-head"><h2>Service level objectives</h2><a href="#/slos?hours=${hours}">Details →</a></div>
          ${slos.length ? `<div class="grid cards">${slos.map((slo, i) => sloCardCompact(slo, i)).join('')}</div>`
            : `<div class="card"><p class="empty-note">${data.slos ? 'No SLOs are configured yet: add [[slos]] entries to the config.' : 'SLO status unavailable.'}</p></div>`}
        </section>`;

      tiles.forEach((t, i) => {
        if (t.spark) Charts.sparkline(slot(root, `spark-${i}`), trend.map((r) => r[t.spark]), { color: t.color });
      });
      Charts.timeSeries(slot(root, 'trend'), {
        title: 'Requests and spend over time',
        series: [
          { name: 'Requests', color: '#2563eb', area: true, points: trend.map((r) => [r.bucket_ms, r.requests]), format: num },
          { name: 'Spend', color: '#f59e0b', axis: 'right', points: trend.map((r) => [r.bucket_ms, r.cost_nanos]), format: money },
        ],
        from: data.trend && data.trend.from_ms,
        to: data.trend && data.trend.to_ms,
        bucketMs: bucketMs(hours),
        bucketed: true,
        yFormat: num,
        y2Format: money,
        emptyText: emptyOr(data.trend, 'No requests in this time range yet.'),
      });
      Charts.donut(slot(root, 'savings'), {
        title: 'Savings split',
        items: [
          { label: 'Routing', value: s.saved_by_routing_nanos || 0, color: '#2563eb' },
          { label: 'Cache', value: s.saved_by_cache_nanos || 0, color: '#06b6d4' },
        ],
        format: money,
        center: money(s.saved_total_nanos),
        centerLabel: 'saved',
        size: 160,
        emptyText: emptyOr(data.summary, 'Nothing saved yet in this time range.'),
      });
      Charts.barList(slot(root, 'versus'), {
        title: 'Spend vs counterfactual',
        items: s.requests ? [
          { label: 'Spent', value: s.cost_nanos || 0, color: '#f59e0b' },
          { label: 'Without savings', value: s.baseline_cost_nanos || 0, color: '#94a3b8', note: `saved ${pct(savedShare)}` },
        ] : [],
        format: money,
        emptyText: emptyOr(data.summary, 'No spend in this time range yet.'),
      });
      slos.forEach((slo, i) => Charts.bullet(slot(root, `budget-${i}`), { value: slo.budget && slo.budget.remaining }));
    },
  };

  function sloCardCompact(slo, i) {
    const st = sloStatusLabel(worstState(slo));
    return `<div class="card slo-card state-${st}">
      <div class="slo-head"><h2>${esc(slo.name)}</h2>${pill(st)}</div>
      <div class="slo-meta">${esc(objectiveText(slo.objective))} · ${esc(scopeText(slo.scope))}</div>
      <div class="slo-figures">
        <div class="fig"><span class="v">${esc(pctFine(slo.sli))}</span><span class="l">SLI</span></div>
        <div class="fig"><span class="v">${esc(pctFine(slo.target))}</span><span class="l">target</span></div>
      </div>
      ${budgetBlock(slo, `budget-${i}`)}
    </div>`;
  }

  // SLOs: budget, burn per rule, burn over time, alert history.
  PAGE_DEFS.slos = {
    urls(hours) {
      return { slos: `/admin/v1/slos?${qs({ history_hours: hours })}` };
    },
    render(root, data, { hours }) {
      const slos = (data.slos && data.slos.slos) || [];
      const alerts = [...((data.slos && data.slos.alerts) || [])].sort((a, b) => b.at_secs - a.at_secs);
      root.innerHTML = `
        <div class="page-head"><h1>Service level objectives</h1><span class="sub">burn-rate history: ${esc(rangeLabel(hours))}</span></div>
        ${slos.length ? slos.map((slo, i) => sloCardFull(slo, i)).join('')
          : `<div class="card slo-empty"><p class="empty-note">${data.slos ? 'No SLOs are configured yet: add [[slos]] entries to the config.' : 'SLO status unavailable.'}</p></div>`}
        <section class="card" style="margin-top:14px">
          <h2>Alert history <span class="hint">state changes, newest first</span></h2>
          ${table('alerts', ['Time', 'SLO', 'Rule', 'Severity', 'Change', ['Long burn', 'num'], ['Short burn', 'num'], ['Threshold', 'num']],
            alerts.map((a) => `<tr>
              <td class="nowrap">${esc(when(a.at_secs * 1000))}</td>
              <td>${esc(a.slo)}</td>
              <td>${esc(a.rule)}</td>
              <td>${pill(a.severity)}</td>
              <td class="nowrap">${pill(a.from)} → ${pill(a.to)}</td>
              <td class="num">${esc(burn(a.long_burn))} <span class="muted small">${esc(duration(a.long_secs))}</span></td>
              <td class="num">${esc(burn(a.short_burn))} <span class="muted small">${esc(duration(a.short_secs))}</span></td>
              <td class="num">${esc(burn(a.threshold))}</td></tr>`),
            emptyOr(data.slos, 'No alerts yet: every burn rate has stayed under its thresholds.'))}
        </section>`;

      slos.forEach((slo, i) => {
        Charts.bullet(slot(root, `budget-${i}`), { value: slo.budget && slo.budget.remaining });
        const points = (slo.history && Array.isArray(slo.history.points)) ? slo.history.points : [];
        const step = slo.history && isNum(slo.history.step_secs) ? slo.history.step_secs * 1000 : HOUR;
        const thresholds = burnThresholds(slo.rules || []);
        Charts.timeSeries(slot(root, `burn-${i}`), {
          title: `${slo.name}: burn rate over time`,
          height: 200,
          series: [
            { name: 'Burn rate, 1 h', color: '#dc2626', points: points.map((pt) => [pt.at_secs * 1000, pt.burn_1h]) },
            { name: 'Burn rate, 6 h', color: '#f59e0b', points: points.map((pt) => [pt.at_secs * 1000, pt.burn_6h]) },
          ],
          thresholds,
          bucketMs: step,
          yScale: 'symlog',
          yFormat: burn,
          yMaxAtLeast: 1,
          emptyText: slo.history ? 'No burn-rate history in this time range yet.'
            : 'Burn-rate history needs a gateway that reports it (history_hours).',
        });
        Charts.timeSeries(slot(root, `left-${i}`), {
          title: `${slo.name}: error budget left over time`,
          height: 130,
          series: [{ name: 'Budget left', color: '#16a34a', area: true, points: points.map((pt) => [pt.at_secs * 1000, pt.budget_remaining]) }],
          bucketMs: step,
          yFormat: (v) => pct(v, 0),
          yMaxAtLeast: 1,
          emptyText: 'No budget history yet.',
        });
      });
    },
  };

  // The page and ticket thresholds as dashed lines: one per distinct threshold.
  function burnThresholds(rules) {
    const seen = new Map();
    for (const r of rules) {
      if (!isNum(r.threshold)) continue;
      const k = r.threshold;
      if (!seen.has(k)) seen.set(k, { value: k, label: `${r.severity} ${burn(k)} (${r.rule})`, color: r.severity === 'page' ? '#b91c1c' : '#b45309' });
    }
    return [...seen.values()].sort((a, b) => b.value - a.value);
  }

  function sloCardFull(slo, i) {
    const st = sloStatusLabel(worstState(slo));
    const b = slo.budget || {};
    const pc = slo.percentiles;
    const rules = slo.rules || [];
    return `<section class="card slo-card state-${st}" style="margin-bottom:14px">
      <div class="slo-head"><h2>${esc(slo.name)}</h2>${pill(st)}</div>
      <div class="slo-meta">${esc(objectiveText(slo.objective))} · ${esc(scopeText(slo.scope))} · window ${esc(duration(slo.window_secs))}</div>
      <div class="slo-detail">
        <div>
          <div class="slo-figures">
            <div class="fig"><span class="v">${esc(pctFine(slo.sli))}</span><span class="l">SLI</span></div>
            <div class="fig"><span class="v">${esc(pctFine(slo.target))}</span><span class="l">target</span></div>
            <div class="fig"><span class="v">${esc(num(b.total))}</span><span class="l">events in window</span></div>
          </div>
          ${budgetBlock(slo, `budget-${i}`)}
          <h3 style="margin:14px 0 4px">Burn rate by alert rule</h3>
          <div class="table-wrap"><table class="mini">
            <thead><tr><th>Rule</th><th>Severity</th><th class="num">Long window</th><th class="num">Short window</th><th class="num">Threshold</th><th>State</th></tr></thead>
            <tbody>${rules.length ? rules.map((r) => `<tr>
              <td class="nowrap">${esc(r.rule)}</td><td>${pill(r.severity)}</td>
              <td class="num"><span class="burn${r.long_burn >= r.threshold ? ' over' : ''}">${esc(burn(r.long_burn))}</span> <span class="muted small">${esc(duration(r.long_secs))}</span></td>
              <td class="num"><span class="burn${r.short_burn >= r.threshold ? ' over' : ''}">${esc(burn(r.short_burn))}</span> <span class="muted small">${esc(duration(r.short_secs))}</span></td>
              <td class="num">${esc(burn(r.threshold))}</td>
              <td>${pill(r.state)}${isNum(r.since_secs) ? ` <span class="muted small" title="${esc(when(r.since_secs * 1000))} UTC">${esc(ago(r.since_secs * 1000))}</span>` : ''}</td>
            </tr>`).join('') : '<tr><td colspan="6" class="muted">No alert rules.</td></tr>'}</tbody></table></div>
          ${pc ? `<h3 style="margin:14px 0 4px">Latency percentiles, last hour <span class="muted small">(${esc(num(pc.count))} requests)</span></h3>
            <div class="slo-figures">
              <div class="fig"><span class="v">${esc(ms(pc.p50))}</span><span class="l">p50</span></div>
              <div class="fig"><span class="v">${esc(ms(pc.p90))}</span><span class="l">p90</span></div>
              <div class="fig"><span class="v">${esc(ms(pc.p95))}</span><span class="l">p95</span></div>
              <div class="fig"><span class="v">${esc(ms(pc.p99))}</span><span class="l">p99</span></div>
              <div class="fig"><span class="v">${esc(ms(pc.max))}</span><span class="l">max</span></div>
            </div>` : ''}
        </div>
        <div>
          <h3 style="margin-bottom:4px">Burn rate over time</h3>
          <div data-slot="burn-${i}"></div>
          <h3 style="margin:10px 0 4px">Error budget left</h3>
          <div data-slot="left-${i}"></div>
        </div>
      </div>
    </section>`;
  }

  // Routing & cache: where traffic went, what it cost, what the cache and router saved.
  PAGE_DEFS.routing = {
    urls(hours) {
      return {
        summary: `/admin/v1/kpis/summary?${qs({ hours })}`,
        models: `/admin/v1/kpis/models?${qs({ hours })}`,
        routes: `/admin/v1/kpis/groups?${qs({ hours, by: 'route' })}`,
        buckets: `/admin/v1/kpis/groups?${qs({ hours, by: bucketFor(hours) })}`,
        classes: `/admin/v1/kpis/groups?${qs({ hours, by: 'priority' })}`,
      };
    },
    render(root, data, { hours }) {
      const s = data.summary || {};
      const models = (data.models && data.models.rows) || [];
      // Highest class first; requests without one (embeddings, refused early) last.
      const classOrder = ['critical', 'interactive', 'standard', 'batch'];
      const rank = (k) => (classOrder.indexOf(k) < 0 ? classOrder.length : classOrder.indexOf(k));
      const classes = ((data.classes && data.classes.rows) || []).slice().sort((a, b) => rank(a.key) - rank(b.key));
      const routes = ((data.routes && data.routes.rows) || []).slice().sort((a, b) => (b.cost_nanos || 0) - (a.cost_nanos || 0));
      const step = bucketMs(hours);
      const groups = data.buckets || { rows: [] };
      const from = groups.from_ms ?? Date.now() - hours * HOUR;
      const to = groups.to_ms ?? Date.now();
      const filled = fillBuckets(from, to, step, groups.rows || [], (r) => r.bucket_ms);
      // Per bucket: the semantic tier's hits, the rest exact.
      const exact = new Map();
      const semantic = new Map();
      for (const r of groups.rows || []) {
        semantic.set(r.bucket_ms, r.cache_semantic_hits || 0);
        exact.set(r.bucket_ms, (r.cache_hits || 0) - (r.cache_semantic_hits || 0));
      }
      const totalModelCost = models.reduce((n, m) => n + (m.cost_nanos || 0), 0);

      root.innerHTML = `
        <div class="page-head"><h1>Routing &amp; cache</h1><span class="sub">${esc(rangeLabel(hours))}</span></div>
        <section class="grid g3">
          <div class="card kpi-tile"><div class="kpi-label">Saved by routing</div><div class="kpi-value">${esc(money(s.saved_by_routing_nanos))}</div><div class="kpi-note">cheaper models where they were good enough</div></div>
          <div class="card kpi-tile"><div class="kpi-label">Saved by cache</div><div class="kpi-value">${esc(money(s.saved_by_cache_nanos))}</div><div class="kpi-note">${esc(num(s.cache_hits))} hits of ${esc(num(s.cache_lookups))} lookups</div></div>
          <div class="card kpi-tile"><div class="kpi-label">Cache hit rate</div><div class="kpi-value">${esc(pct(s.cache_hit_rate))}</div><div class="kpi-note">exact and semantic, of cacheable requests</div></div>
        </section>
        <section class="grid g2">
          <div class="card"><h2>Model mix <span class="hint">requests per answering model</span></h2><div data-slot="mix"></div></div>
          <div class="card"><h2>Spend per model</h2><div data-slot="model-spend"></div>
            ${table('models', ['Model', ['Requests', 'num'], ['Share', 'num'], ['Spend', 'num'], ['Per request', 'num']],
              models.map((m) => `<tr>
                <td><span class="swatch" style="background:${esc(Charts.colorFor(m.model ?? '(none)'))}"></span> ${esc(m.model ?? '(none)')}</td>
                <td class="num">${esc(num(m.requests))}</td>
                <td class="num">${esc(pct(m.share))}</td>
                <td class="num">${esc(money(m.cost_nanos))}</td>
                <td class="num">${esc(money(safeDiv(m.cost_nanos, m.requests)))}</td></tr>`),
              emptyOr(data.models, 'No requests in this time range yet.'))}
          </div>
        </section>
        <section class="card" style="margin-bottom:14px"><h2>Spend by route</h2>
          <div data-slot="route-spend"></div>
          ${table('routes', ['Route', ['Requests', 'num'], ['Spend', 'num'], ['Saved', 'num'], ['Saved %', 'num'], ['Cache hit rate', 'num'], ['p95 latency', 'num']],
            routes.map((r) => `<tr>
              <td>${r.key === null || r.key === undefined ? '<span class="muted">no route (plain model)</span>' : esc(r.key)}</td>
              <td class="num">${esc(num(r.requests))}</td>
              <td class="num">${esc(money(r.cost_nanos))}</td>
              <td class="num">${esc(money(r.saved_total_nanos))}</td>
              <td class="num">${esc(pct(safeDiv(r.saved_total_nanos, r.baseline_cost_nanos)))}</td>
              <td class="num">${esc(pct(r.cache_hit_rate))}</td>
              <td class="num">${esc(ms(r.latency_p95_ms))}</td></tr>`),
            emptyOr(data.routes, 'No routed requests in this time range yet.'))}
        </section>
        <section class="card" style="margin-bottom:14px"><h2>Priority classes <span class="hint">waiting for capacity, shed and preempted</span></h2>
          ${table('classes', ['Class', ['Requests', 'num'], ['p50 latency', 'num'], ['p95 latency', 'num'], ['Mean queue wait', 'num'], ['Shed', 'num'], ['Preempted', 'num']],
            classes.map((c) => `<tr>
              <td>${c.key === null || c.key === undefined ? '<span class="muted">none (embeddings, refused early)</span>' : esc(c.key)}</td>
              <td class="num">${esc(num(c.requests))}</td>
              <td class="num">${esc(ms(c.latency_p50_ms))}</td>
              <td class="num">${esc(ms(c.latency_p95_ms))}</td>
              <td class="num">${esc(ms(c.queue_wait_mean_ms))}</td>
              <td class="num">${esc(num(c.shed))}</td>
              <td class="num">${esc(num(c.preemptions))}</td></tr>`),
            emptyOr(data.classes, 'No requests in this time range yet.'))}
        </section>
        <section class="grid g2">
          <div class="card"><h2>Cache hit rate over time</h2><div data-slot="hit-rate"></div></div>
          <div class="card"><h2>Cache hits: exact vs semantic <span class="hint">per ${esc(bucketLabel(hours))}</span></h2><div data-slot="hit-tiers"></div></div>
        </section>
        <section class="card"><h2>Savings over time <span class="hint">routing vs cache, per ${esc(bucketLabel(hours))}</span></h2><div data-slot="savings"></div></section>`;

      Charts.donut(slot(root, 'mix'), {
        title: 'Model mix',
        items: models.map((m) => ({ label: m.model ?? '(none)', value: m.requests || 0, note: `spend ${money(m.cost_nanos)}` })),
        format: num,
        centerLabel: 'requests',
        emptyText: emptyOr(data.models, 'No requests in this time range yet.'),
      });
      Charts.barList(slot(root, 'model-spend'), {
        title: 'Spend per model',
        items: models.map((m) => ({
          label: m.model ?? '(none)', value: m.cost_nanos || 0,
          note: `${pct(safeDiv(m.cost_nanos, totalModelCost))} of spend`,
        })),
        format: money,
        emptyText: emptyOr(data.models, 'No spend in this time range yet.'),
      });
      Charts.barList(slot(root, 'route-spend'), {
        title: 'Spend by route',
        items: routes.map((r) => ({
          label: r.key ?? '(no route)', value: r.cost_nanos || 0,
          color: r.key === null || r.key === undefined ? '#94a3b8' : undefined,
          note: `${num(r.requests)} requests, saved ${money(r.saved_total_nanos)}`,
        })),
        format: money,
        emptyText: emptyOr(data.routes, 'No spend in this time range yet.'),
      });
      Charts.timeSeries(slot(root, 'hit-rate'), {
        title: 'Cache hit rate over time',
        height: 200,
        series: [{
          name: 'Hit rate', color: '#06b6d4', area: true,
          points: filled.map(([t, r]) => [t, r && isNum(r.cache_hit_rate) ? r.cache_hit_rate : null]),
        }],
        from, to, bucketMs: step, bucketed: true,
        yFormat: (v) => pct(v, 0),
        yMaxAtLeast: 1,
        emptyText: emptyOr(data.buckets, 'No cacheable requests in this time range yet.'),
      });
      const tierBuckets = filled.map(([t]) => t);
      Charts.stackedBars(slot(root, 'hit-tiers'), {
        title: 'Cache hits by tier',
        height: 200,
        buckets: tierBuckets,
        bucketMs: step, from, to,
        series: [
          { name: 'Exact', color: Charts.colorFor('hit-exact'), values: tierBuckets.map((t) => exact.get(t) || 0) },
          { name: 'Semantic', color: Charts.colorFor('hit-semantic'), values: tierBuckets.map((t) => semantic.get(t) || 0) },
        ],
        yFormat: num,
        emptyText: emptyOr(data.buckets, 'No cache hits in this time range yet.'),
      });
      Charts.stackedBars(slot(root, 'savings'), {
        title: 'Savings over time',
        height: 220,
        buckets: tierBuckets,
        bucketMs: step, from, to,
        series: [
          { name: 'Routing', color: '#2563eb', values: filled.map(([, r]) => (r ? r.saved_by_routing_nanos || 0 : 0)) },
          { name: 'Cache', color: '#06b6d4', values: filled.map(([, r]) => (r ? r.saved_by_cache_nanos || 0 : 0)) },
        ],
        yFormat: money,
        emptyText: emptyOr(data.buckets, 'Nothing saved in this time range yet.'),
      });
    },
  };

  // Guardrails: what triggered, and what the guards did about it.
  const OUTCOME_ORDER = ['blocked', 'refused', 'stopped', 'replaced', 'fixed', 'masked', 'flagged', 'retried', 'error'];

  PAGE_DEFS.guards = {
    urls(hours) {
      return {
        guards: `/admin/v1/kpis/guards?${qs({ hours, bucket: bucketFor(hours) })}`,
        summary: `/admin/v1/kpis/summary?${qs({ hours })}`,
      };
    },
    render(root, data, { hours }) {
      const g = data.guards || { rows: [] };
      const rows = g.rows || [];
      const s = data.summary || {};
      const guards = [...new Set(rows.map((r) => r.guard))];
      const outcomes = [...new Set(rows.map((r) => r.outcome))].sort((a, b) => {
        const ia = OUTCOME_ORDER.indexOf(a);
        const ib = OUTCOME_ORDER.indexOf(b);
        return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
      });
      const matrix = new Map(guards.map((name) => [name, new Map()]));
      const totals = new Map();
      for (const r of rows) {
        const m = matrix.get(r.guard);
        m.set(r.outcome, (m.get(r.outcome) || 0) + r.count);
        totals.set(r.guard, (totals.get(r.guard) || 0) + r.count);
      }
      guards.sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b));
      const byOutcome = new Map(outcomes.map((o) => [o, rows.filter((r) => r.outcome === o).reduce((n, r) => n + r.count, 0)]));
      const step = bucketMs(hours);
      const from = g.from_ms ?? Date.now() - hours * HOUR;
      const to = g.to_ms ?? Date.now();

      root.innerHTML = `
        <div class="page-head"><h1>Guardrails</h1><span class="sub">${esc(rangeLabel(hours))}</span></div>
        <section class="grid g3">
          <div class="card kpi-tile"><div class="kpi-label">Requests with a trigger</div><div class="kpi-value">${esc(num(s.guard_triggers))}</div><div class="kpi-note">${esc(pct(safeDiv(s.guard_triggers, s.requests)))} of ${esc(num(s.requests))} requests</div></div>
          <div class="card kpi-tile"><div class="kpi-label">Refused by a guard</div><div class="kpi-value">${esc(num(s.guard_refusals))}</div><div class="kpi-note">${esc(pct(safeDiv(s.guard_refusals, s.requests)))} of requests blocked or refused</div></div>
          <div class="card kpi-tile"><div class="kpi-label">Verdicts other than pass</div><div class="kpi-value">${esc(num(rows.reduce((n, r) => n + r.count, 0)))}</div><div class="kpi-note">${esc(num(guards.length))} guards, ${esc(num(outcomes.length))} kinds of action</div></div>
        </section>
        <section class="card" style="margin-bottom:14px">
          <h2>Triggers over time <span class="hint">per ${esc(bucketLabel(hours))}</span>
            <span class="spacer"></span>
            <span class="seg" role="group" aria-label="Group by">
              <button type="button" data-by="guard" class="${state.guardsBy === 'guard' ? 'active' : ''}">By guard</button>
              <button type="button" data-by="outcome" class="${state.guardsBy === 'outcome' ? 'active' : ''}">By action</button>
            </span></h2>
          <div data-slot="over-time"></div>
        </section>
        <section class="grid g2">
          <div class="card"><h2>Actions taken</h2><div data-slot="outcomes"></div></div>
          <div class="card"><h2>Triggers by guard</h2><div data-slot="by-guard"></div></div>
        </section>
        <section class="card"><h2>Guard × action</h2>
          ${table('guards', ['Guard', ...outcomes.map((o) => [o, 'num']), ['Total', 'num']],
            guards.map((name) => `<tr><td><span class="swatch" style="background:${esc(Charts.colorFor(name))}"></span> ${esc(name)}</td>
              ${outcomes.map((o) => `<td class="num">${matrix.get(name).get(o) ? esc(num(matrix.get(name).get(o))) : '<span class="muted">·</span>'}</td>`).join('')}
              <td class="num"><strong>${esc(num(totals.get(name)))}</strong></td></tr>`),
            emptyOr(data.guards, 'No guard has triggered in this time range.'))}
        </section>`;

      const drawOverTime = () => {
        const keyOf = (r) => (state.guardsBy === 'outcome' ? r.outcome : r.guard);
        const names = state.guardsBy === 'outcome' ? outcomes : guards;
        const buckets = [];
        for (let t = Math.floor(from / step) * step; t < to; t += step) buckets.push(t);
        const index = new Map(buckets.map((t, i) => [t, i]));
        const series = names.map((name) => ({ name, values: buckets.map(() => 0) }));
        const sIndex = new Map(names.map((n, i) => [n, i]));
        for (const r of rows) {
          const bi = index.get(r.bucket_ms);
          const si = sIndex.get(keyOf(r));
          if (bi !== undefined && si !== undefined) series[si].values[bi] += r.count;
        }
        Charts.stackedBars(slot(root, 'over-time'), {
          title: 'Guard triggers over time',
          buckets, bucketMs: step, from, to, series, yFormat: num,
          emptyText: emptyOr(data.guards, 'No guard has triggered in this time range.'),
        });
      };
      drawOverTime();
      for (const b of $$('.seg button', root)) {
        b.addEventListener('click', () => {
          state.guardsBy = b.dataset.by;
          for (const o of $$('.seg button', root)) o.classList.toggle('active', o === b);
          drawOverTime();
        });
      }
      Charts.donut(slot(root, 'outcomes'), {
        title: 'Actions taken',
        items: outcomes.map((o) => ({ label: o, value: byOutcome.get(o) })),
        format: num,
        centerLabel: 'verdicts',
        emptyText: emptyOr(data.guards, 'No guard has triggered in this time range.'),
      });
      Charts.barList(slot(root, 'by-guard'), {
        title: 'Triggers by guard',
        items: guards.map((name) => ({
          label: name, value: totals.get(name),
          note: [...matrix.get(name)].map(([o, n]) => `${o} ${num(n)}`).join(', '),
        })),
        format: num,
        emptyText: emptyOr(data.guards, 'No guard has triggered in this time range.'),
      });
    },
  };

  // Rollouts: what is rolling out now, what happened before, who changed what.
  const ACTIVE = new Set(['pending', 'running', 'paused']);

  const AUDIT_SHOWN = 50;

  PAGE_DEFS.rollouts = {
    // The chain check is worth showing beside the trail: a broken chain is an incident.
    async load() {
      return loadAll({
        rollouts: '/admin/v1/rollouts',
        verify: '/admin/v1/audit/verify',
        audit: `/admin/v1/audit?${qs({ latest: true, limit: AUDIT_SHOWN })}`,
        history: `/admin/v1/config/history?${qs({ limit: 50 })}`,
        flags: '/admin/v1/flags',
      });
    },
    render(root, data) {
      const list = ((data.rollouts && data.rollouts.rollouts) || []).filter((r) => r && r.rollout);
      const started = (r) => {
        const tl = (r.rollout && r.rollout.timeline) || [];
        return tl.length ? tl[0].at_ms : 0;
      };
      list.sort((a, b) => started(b) - started(a));
      const stateOf = (r) => (r.rollout && r.rollout.state && r.rollout.state.state) || 'unknown';
      const current = list.filter((r) => ACTIVE.has(stateOf(r)));
      const audit = (data.audit && data.audit.entries) || [];
      const verify = data.verify;
      const chain = !verify ? ''
        : verify.ok ? `<span class="pill ok" title="Every entry's hash matches its content and its predecessor">hash chain verified · ${esc(num(verify.checked))} entries</span>`
          : `<span class="pill firing" title="${esc(verify.error || '')}">hash chain broken at entry ${esc(verify.seq ?? '?')}</span>`;
      const hist = data.history || {};
      const versions = hist.versions || [];
      const flags = (data.flags && data.flags.flags) || [];
      if (!state.rolloutId || !list.some((r) => r.rollout && r.rollout.id === state.rolloutId)) {
        state.rolloutId = list.length ? (current[0] || list[0]).rollout.id : null;
      }

      root.innerHTML = `
        <div class="page-head"><h1>Rollouts</h1><span class="sub">canary and blue-green releases of models, prompts and configs</span></div>
        <h2 style="margin-bottom:8px">In progress</h2>
        ${current.length ? `<div class="grid cards rollout-cards">${current.map(rolloutCard).join('')}</div>`
          : `<div class="card" style="margin-bottom:14px"><p class="empty-note">${data.rollouts ? 'Nothing is rolling out right now.' : 'Rollouts unavailable.'}</p></div>`}
        <section class="grid g-wide">
          <div class="card"><h2>All rollouts <span class="hint">click one for its timeline</span></h2>
            ${table('rollouts', ['Rollout', 'Kind', 'Baseline → candidate', 'State', ['Candidate share', 'num'], 'Started', 'Last change'],
              list.map((r) => {
                const ro = r.rollout || {};
                const tl = ro.timeline || [];
                const st = stateOf(r);
                return `<tr class="clickable${ro.id === state.rolloutId ? ' selected' : ''}" data-id="${esc(ro.id)}" tabindex="0">
                  <td class="id">${esc(ro.id)}</td>
                  <td>${esc(ro.baseline && ro.baseline.kind)}${ro.spec && ro.spec.kind === 'blue_green' ? ' <span class="muted small">blue-green</span>' : ''}</td>
                  <td>${esc(ro.baseline && ro.baseline.id)} → ${esc(ro.candidate && ro.candidate.id)}</td>
                  <td>${pill(st.replace('_', ' '), st)}</td>
                  <td class="num">${esc(pct(((r.traffic && r.traffic.candidate_basis_points) || 0) / 10000, 0))}</td>
                  <td class="nowrap">${esc(when(started(r)))}</td>
                  <td class="nowrap">${tl.length ? esc(ago(tl[tl.length - 1].at_ms)) : DASH}</td></tr>`;
              }), emptyOr(data.rollouts, 'No rollouts yet. Start one with `switchyard rollout start`.'))}
          </div>
          <div class="card"><h2>Timeline <span class="hint id" data-slot="tl-id"></span></h2><div data-slot="timeline"></div></div>
        </section>
        <section class="card" style="margin-bottom:14px"><h2>Audit trail <span class="hint">newest first</span><span class="spacer"></span>${chain}</h2>
          ${table('audit', ['Time', 'Actor', 'Action', 'Target', 'Message'],
            audit.map((e) => `<tr>
              <td class="nowrap">${esc(when(e.at_ms))}</td>
              <td>${esc(e.actor)}</td>
              <td class="mono">${esc(e.action)}</td>
              <td class="mono ellipsis" title="${esc(e.target)}">${esc(e.target)}</td>
              <td>${esc(e.reason) || '<span class="muted">–</span>'}</td></tr>`),
            data.audit ? 'The audit log is empty.' : 'Audit log unavailable.')}
        </section>
        <section class="grid g-wide">
          <div class="card"><h2>Config versions <span class="hint">newest first</span></h2>
            ${table('versions', ['Version', 'Author', 'Message', 'Created', 'Last applied'],
              versions.map((v) => `<tr>
                <td class="id">${esc(String(v.id || '').slice(0, 12))}${v.id && v.id === hist.running ? ` ${pill('running')}` : ''}</td>
                <td>${esc(v.author)}</td>
                <td>${esc(v.message)}</td>
                <td class="nowrap">${esc(when(v.created_at_ms))}</td>
                <td class="nowrap">${isNum(v.last_applied_at_ms) ? esc(when(v.last_applied_at_ms)) : '<span class="muted">staged</span>'}</td></tr>`),
              data.history ? 'No config versions yet.' : 'Config history unavailable.')}
          </div>
          <div class="card"><h2>Feature flags</h2>
            ${flags.length ? `<ul class="flags">${flags.map(flagItem).join('')}</ul>`
              : `<p class="empty-note">${data.flags ? 'No flags set.' : 'Flags unavailable.'}</p>`}
          </div>
        </section>`;

      const showTimeline = (rollout) => {
        const box = slot(root, 'timeline');
        slot(root, 'tl-id').textContent = rollout && rollout.rollout ? rollout.rollout.id : '';
        if (!rollout || !rollout.rollout) {
          box.innerHTML = `<p class="empty-note">${list.length ? 'No rollout selected.' : 'Nothing to show yet.'}</p>`;
          return;
        }
        box.innerHTML = `<div data-slot="share" class="share-chart"></div>${timelineHtml(rollout)}`;
        const tl = (rollout.rollout && rollout.rollout.timeline) || [];
        const pts = tl.filter((e) => e.traffic && isNum(e.traffic.candidate_basis_points))
          .map((e) => [e.at_ms, e.traffic.candidate_basis_points / 10000]);
        const active = ACTIVE.has((rollout.rollout.state && rollout.rollout.state.state) || '');
        Charts.timeSeries(slot(box, 'share'), {
          title: 'Candidate share of users over time',
          height: 140,
          series: [{ name: 'Candidate share', color: '#2563eb', area: true, hold: true, points: pts }],
          to: active ? Date.now() : (pts.length ? pts[pts.length - 1][0] + 60e3 : undefined),
          bucketMs: 60e3,
          yFormat: (v) => pct(v, 0),
          yMaxAtLeast: 1,
          emptyText: 'No traffic changes yet.',
        });
      };
      showTimeline(list.find((r) => r.rollout.id === state.rolloutId));

      const select = async (id) => {
        state.rolloutId = id;
        for (const tr of $$('table.rollouts tbody tr[data-id]', root)) tr.classList.toggle('selected', tr.dataset.id === id);
        const token = state.token;
        try {
          const fresh = await api(`/admin/v1/rollouts/${encodeURIComponent(id)}`);
          if (token === state.token && state.rolloutId === id) showTimeline(fresh);
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) {
            showLogin('Your session has ended: sign in again.');
            return;
          }
          if (token === state.token) {
            showErrors([`Rollout ${id}: ${err.message}`]);
            setMarker(null, 'error');
          }
        }
      };
      for (const tr of $$('table.rollouts tbody tr[data-id]', root)) {
        tr.addEventListener('click', () => select(tr.dataset.id));
        tr.addEventListener('keydown', (ev) => {
          if (ev.key === 'Enter' || ev.key === ' ') {
            ev.preventDefault();
            select(tr.dataset.id);
          }
        });
      }
      for (const a of $$('[data-show-timeline]', root)) {
        a.addEventListener('click', (ev) => {
          ev.preventDefault();
          select(a.dataset.showTimeline);
          slot(root, 'timeline').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
        });
      }
    },
  };

  function stepsOf(ro) {
    return (ro.spec && Array.isArray(ro.spec.steps)) ? ro.spec.steps : [];
  }

  function rolloutCard(r) {
    const ro = r.rollout || {};
    const st = (ro.state && ro.state.state) || 'unknown';
    const steps = stepsOf(ro);
    const stepIx = ro.state && isNum(ro.state.step) ? ro.state.step : -1;
    const share = ((r.traffic && r.traffic.candidate_basis_points) || 0) / 10000;
    const tl = ro.timeline || [];
    const last = tl[tl.length - 1];
    const w = r.windows || {};
    const arm = (name, a) => (a ? `<tr><td>${esc(name)}</td><td class="num">${esc(num(a.requests))}</td>
      <td class="num">${esc(num(a.errors))}</td><td class="num">${esc(num(a.guard_violations))}</td>
      <td class="num">${esc(num(a.feedback))}</td></tr>` : '');
    const blueGreen = ro.spec && ro.spec.kind === 'blue_green';
    // The last canary step (100%) is the promotion, not a judged step: "step 1 of 3" as the
    // gateway says it.
    const judged = blueGreen ? 1 : Math.max(1, steps.length - 1);
    return `<div class="card rollout-card">
      <div class="slo-head"><h2 class="id">${esc(ro.id)}</h2>${pill(st)}</div>
      <div class="slo-meta">${esc(ro.baseline && ro.baseline.kind)} · <strong>${esc(ro.baseline && ro.baseline.id)}</strong> → <strong>${esc(ro.candidate && ro.candidate.id)}</strong>${blueGreen ? ' · blue-green' : ''}</div>
      <div class="row small"><span>Candidate serves <strong>${esc(pct(share, share < 0.1 && share > 0 ? 1 : 0))}</strong> of users</span><span class="spacer"></span>
        <span class="muted">${stepIx >= 0 && steps.length ? (blueGreen ? 'blue-green bake' : `step ${stepIx + 1} of ${judged}`) : ''}</span></div>
      <div class="progress${st === 'paused' ? ' paused' : ''}">
        ${steps.map((bp, i) => `<span class="${i < stepIx ? 'done' : i === stepIx ? 'current' : ''}" title="${esc(pct(bp / 10000, 0))}"></span>`).join('')}</div>
      <div class="progress-labels">${steps.map((bp) => `<span>${esc(pct(bp / 10000, bp < 1000 && bp % 100 ? 1 : 0))}</span>`).join('')}</div>
      ${w.baseline || w.candidate ? `<div class="table-wrap"><table class="mini arms"><thead><tr><th>This step</th><th class="num" title="Requests">Req.</th><th class="num" title="Errors">Err.</th><th class="num" title="Guard violations">Guard</th><th class="num" title="Feedback">Feedb.</th></tr></thead>
        <tbody>${arm('Baseline', w.baseline)}${arm('Candidate', w.candidate)}</tbody></table></div>` : ''}
      ${last ? `<p class="small muted" style="margin:8px 0 0">${esc(last.reason)} · ${esc(ago(last.at_ms))}</p>` : ''}
      <p class="small" style="margin:6px 0 0"><a href="#" data-show-timeline="${esc(ro.id)}">Timeline →</a></p>
    </div>`;
  }

  function verdictText(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'string') return v;
    if (v.breach || v.Breach) {
      const b = v.breach || v.Breach;
      return `breach: ${b.criterion ?? ''} ${b.detail ?? ''}`.trim();
    }
    if (v.not_enough_data || v.NotEnoughData) {
      const n = v.not_enough_data || v.NotEnoughData;
      return `not enough data: ${n.detail ?? ''}`;
    }
    return JSON.stringify(v);
  }

  function timelineHtml(r) {
    const ro = r.rollout || {};
    const tl = (ro.timeline || []).slice().reverse();
    if (!tl.length) return '<p class="empty-note">No transitions yet.</p>';
    return `<ul class="timeline">${tl.map((e) => {
      const to = (e.to && e.to.state) || '';
      const cls = to === 'rolled_back' || to === 'aborted' ? 'bad' : to === 'promoted' ? 'good' : '';
      const share = e.traffic && isNum(e.traffic.candidate_basis_points) ? pct(e.traffic.candidate_basis_points / 10000, 0) : '';
      const verdict = verdictText(e.verdict);
      return `<li class="${cls}">
        <div class="when">${esc(when(e.at_ms))} UTC</div>
        <div>${pill((e.from && e.from.state) || '?')} → ${pill(to || '?')}${share ? ` <span class="small muted">candidate ${esc(share)}</span>` : ''}</div>
        <div class="small">${esc(e.reason)}</div>
        ${verdict ? `<div class="small muted">${esc(verdict)}</div>` : ''}
      </li>`;
    }).join('')}</ul>`;
  }

  function flagItem(f) {
    const kind = f.kind || {};
    let value = '';
    if (kind.type === 'boolean') value = kind.on ? 'on' : 'off';
    else if (kind.type === 'percentage') value = `${pct((kind.basis_points || 0) / 10000, 1)} of users`;
    else if (kind.type === 'variant') value = (kind.variants || []).map((v) => `${v.name}=${v.weight}`).join(', ');
    else value = JSON.stringify(kind);
    return `<li><code>${esc(f.key ?? f.name)}</code>
      <span>${esc(value)}</span>
      ${f.enabled === false ? pill('disabled', 'paused') : ''}
      <span class="spacer"></span>
      ${isNum(f.updated_at_ms) ? `<span class="muted small">${esc(ago(f.updated_at_ms))}</span>` : ''}</li>`;
  }

  // Requests: the newest requests, filtered, with details on click and older pages.
  const FILTERS = ['status_class', 'model', 'route', 'cache', 'guard_outcome', 'tenant'];
  const PAGE_SIZE = 100;

  const OPTIONS_TTL_MS = 5 * 60e3;

  PAGE_DEFS.requests = {
    // The model and route choices come from a day of KPIs; they change slowly, so they are
    // fetched again at most every few minutes, not on every 30 s refresh.
    async load(hours, params) {
      const f = {};
      for (const k of FILTERS) if (params.get(k)) f[k] = params.get(k);
      const urls = { requests: `/admin/v1/requests?${qs({ limit: PAGE_SIZE, ...f })}` };
      const cached = state.filterOptions;
      const fresh = cached && Date.now() - cached.at < OPTIONS_TTL_MS;
      if (!fresh) {
        urls.models = `/admin/v1/kpis/models?${qs({ hours: 24 })}`;
        urls.routes = `/admin/v1/kpis/groups?${qs({ hours: 24, by: 'route' })}`;
      }
      const got = await loadAll(urls);
      if (fresh) {
        got.data.models = cached.models;
        got.data.routes = cached.routes;
      } else if (got.data.models && got.data.routes) {
        state.filterOptions = { at: Date.now(), models: got.data.models, routes: got.data.routes };
      }
      return got;
    },
    render(root, data, { params }) {
      state.requestsTouched = false;
      const rows = (data.requests && data.requests.requests) || [];
      const models = ((data.models && data.models.rows) || []).map((m) => m.model).filter((m) => m);
      const routes = ((data.routes && data.routes.rows) || []).map((r) => r.key).filter((r) => r);
      const cur = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || '']));
      for (const [list, k] of [[models, 'model'], [routes, 'route']]) {
        if (cur[k] && !list.includes(cur[k])) list.push(cur[k]);
      }
      const options = (values, selected, anyLabel) => [['', anyLabel], ...values.map((v) => (Array.isArray(v) ? v : [v, v]))]
        .map(([v, label]) => `<option value="${esc(v)}"${v === selected ? ' selected' : ''}>${esc(label)}</option>`).join('');
      const filtered = FILTERS.some((k) => cur[k]);

      root.innerHTML = `
        <div class="page-head"><h1>Recent requests</h1><span class="sub">newest first</span></div>
        <form class="filters card" id="req-filters">
          <label>Status<select name="status_class">${options([['2xx', '2xx success'], ['4xx', '4xx client error'], ['5xx', '5xx server error']], cur.status_class, 'Any')}</select></label>
          <label>Model (answered)<select name="model">${options(models, cur.model, 'Any')}</select></label>
          <label>Route<select name="route">${options(routes, cur.route, 'Any')}</select></label>
          <label>Cache<select name="cache">${options([['hit', 'hit (any)'], 'hit-exact', 'hit-semantic', 'miss', 'bypass'], cur.cache, 'Any')}</select></label>
          <label>Guard outcome<select name="guard_outcome">${options(OUTCOME_ORDER, cur.guard_outcome, 'Any')}</select></label>
          <label>Tenant<input name="tenant" type="search" value="${esc(cur.tenant)}" placeholder="any" spellcheck="false"></label>
          <button type="submit" class="btn primary">Apply</button>
          ${filtered ? '<button type="button" class="btn" id="req-clear">Clear</button>' : ''}
        </form>
        <section class="card">
          ${table('requests', ['Time', 'Request', 'Tenant / key', 'Model', 'Route', 'Status', ['Latency', 'num'], ['TTFT', 'num'], ['Cost', 'num'], 'Cache', 'Guards'],
            rows.map(requestRow), emptyOr(data.requests, filtered ? 'No request matches these filters.' : 'No requests yet.'))}
          <div class="row" style="margin-top:10px">
            <span class="muted small" data-slot="count">${esc(num(rows.length))} shown</span><span class="spacer"></span>
            <button type="button" class="btn" id="req-older"${rows.length < PAGE_SIZE ? ' disabled' : ''}>Older requests</button>
          </div>
        </section>`;

      const form = $('#req-filters', root);
      const apply = () => {
        const next = new URLSearchParams(params);
        for (const k of FILTERS) {
          const v = String(form.elements[k].value || '').trim();
          if (v) next.set(k, v); else next.delete(k);
        }
        go('requests', next);
      };
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        apply();
      });
      for (const sel of $$('select', form)) sel.addEventListener('change', apply);
      const clear = $('#req-clear', root);
      if (clear) {
        clear.addEventListener('click', () => {
          const next = new URLSearchParams(params);
          for (const k of FILTERS) next.delete(k);
          go('requests', next);
        });
      }

      const tbody = $('table.requests tbody', root);
      let loaded = rows.slice();
      tbody.addEventListener('click', (ev) => {
        const tr = ev.target.closest('tr[data-ix]');
        if (tr) toggleDetail(tr, loaded[Number(tr.dataset.ix)]);
      });
      tbody.addEventListener('keydown', (ev) => {
        const tr = ev.target.closest('tr[data-ix]');
        if (tr && (ev.key === 'Enter' || ev.key === ' ')) {
          ev.preventDefault();
          toggleDetail(tr, loaded[Number(tr.dataset.ix)]);
        }
      });

      const older = $('#req-older', root);
      older.addEventListener('click', async () => {
        const last = loaded[loaded.length - 1];
        if (!last) return;
        state.requestsTouched = true;
        older.disabled = true;
        const f = {};
        for (const k of FILTERS) if (cur[k]) f[k] = cur[k];
        const token = state.token;
        try {
          const more = await api(`/admin/v1/requests?${qs({ limit: PAGE_SIZE, ...f, before_ms: last.started_at_ms })}`);
          if (token !== state.token) return;
          const next = (more && more.requests) || [];
          const start = loaded.length;
          loaded = loaded.concat(next);
          tbody.insertAdjacentHTML('beforeend', next.map((r, i) => requestRow(r, start + i)).join(''));
          slot(root, 'count').textContent = `${num(loaded.length)} shown`;
          older.disabled = next.length < PAGE_SIZE;
          if (!next.length) older.textContent = 'No older requests';
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) {
            showLogin('Your session has ended: sign in again.');
            return;
          }
          if (token === state.token) {
            showErrors([`Older requests: ${err.message}`]);
            setMarker(null, 'error');
            older.disabled = false;
          }
        }
      });
    },
  };

  function guardList(r) {
    const g = parseMaybe(r.guards);
    return Array.isArray(g) ? g : [];
  }

  function routeOf(r) {
    // The record keeps the router's decision, not the alias: the alias is what the client
    // asked for without its `:policy` suffix, when the router decided, or when a cache hit
    // answered with another model than the one called (kpi.rs, ROUTE_SQL).
    const alias = String(r.requested_model || '').split(':')[0];
    const decision = parseMaybe(r.route);
    if (decision) return { alias, how: decision.policy || decision.rule || '', decision };
    const hit = String(r.cache || '').startsWith('hit');
    if (hit && r.model && r.model !== r.requested_model) return { alias, how: 'cache', decision: null };
    return null;
  }

  function requestRow(r, i) {
    const guards = guardList(r).filter((g) => g && g.outcome && g.outcome !== 'pass');
    const route = routeOf(r);
    const status = isNum(r.status) ? r.status : null;
    const sclass = status === null ? '' : `s${String(status)[0]}xx`;
    const served = r.model && r.model !== r.requested_model ? ` → ${esc(r.model)}` : '';
    const cache = r.cache || '';
    return `<tr class="clickable" data-ix="${i}" tabindex="0">
      <td class="nowrap" title="${esc(when(r.started_at_ms))} UTC">${esc(when(r.started_at_ms).split(', ')[1] || '')}${sameUtcDay(r.started_at_ms) ? '' : ` <span class="muted small">${esc(when(r.started_at_ms).split(', ')[0])}</span>`}</td>
      <td class="id ellipsis" title="${esc(r.request_id)}">${esc(String(r.request_id || '').slice(0, 8))}</td>
      <td class="ellipsis">${esc(r.tenant ?? DASH)} <span class="muted small">${esc(r.key_id ?? '')}</span></td>
      <td class="ellipsis">${esc(r.requested_model ?? DASH)}${served}</td>
      <td class="nowrap">${route ? `${esc(route.alias)} <span class="muted small">${esc(route.how)}</span>` : '<span class="muted">–</span>'}</td>
      <td>${status === null ? DASH : pill(String(status), sclass)}</td>
      <td class="num">${esc(ms(r.latency_ms))}</td>
      <td class="num">${esc(ms(r.ttft_ms))}</td>
      <td class="num">${esc(money(r.cost_nanos))}</td>
      <td>${cache.startsWith('hit') ? pill(cache, 'hit') : `<span class="muted small">${esc(cache || DASH)}</span>`}</td>
      <td>${guards.length ? guards.map((g) => `<span class="pill ${esc(g.outcome)}" title="${esc(g.detail || '')}">${esc(g.guard)}: ${esc(g.outcome)}</span>`).join(' ') : '<span class="muted small">pass</span>'}</td>
    </tr>`;
  }

  // A stored text, escaped, with masking's marks shown as such: the PII guard's placeholders
  // (`<EMAIL_1>`, what the model saw; `<EMAIL:3f2a9c1b>` hashed), storage's redactions
  // (`[EMAIL]`) and the note that ends a text cut to the size limit.
  const PLACEHOLDER = /&lt;[A-Z][A-Z_]*(?:_\d+|:[0-9a-f]{8})&gt;|\[[A-Z][A-Z_]*\]/g;
  const CUT = / …\[cut: \d+ bytes in all\]$/;
  function maskedText(text) {
    return esc(text)
      .replace(PLACEHOLDER, (m) => `<mark class="ph" title="masked value">${m}</mark>`)
      .replace(CUT, (m) => `<span class="cut">${m}</span>`);
  }

  function toolCallsHtml(calls) {
    return (calls || []).map((c) => `<div class="tool-call"><span class="tool-name">${esc(c.name)}(…)</span>
      <pre class="msg-text">${maskedText(c.arguments)}</pre></div>`).join('');
  }

  // The conversation role by role, then the answer; or why there is none.
  function conversationHtml(content) {
    if (!content) {
      return `<p class="muted small content-none">Content not stored. The gateway stores prompts and answers
        (masked) only with <code>[telemetry] content = "masked"</code>, for chat requests, and deletes
        them after <code>content_retention_days</code>.</p>`;
    }
    const parts = (content.messages || []).map((m, i) => {
      const forCall = m.tool_call_id ? ` <span class="muted small">for ${esc(m.tool_call_id)}</span>` : '';
      const msg = `<div class="msg role-${esc(m.role)}"><div class="msg-role">${esc(m.role)}${forCall}</div>
        ${m.text ? `<pre class="msg-text">${maskedText(m.text)}</pre>` : ''}${toolCallsHtml(m.tool_calls)}</div>`;
      const omitted = i === 0 && content.omitted_messages
        ? `<p class="muted small">… ${esc(num(content.omitted_messages))} more messages, not stored …</p>` : '';
      return msg + omitted;
    });
    const a = content.answer;
    parts.push(a
      ? `<div class="msg answer"><div class="msg-role">answer${a.finish_reason ? ` <span class="muted small">${esc(a.finish_reason)}</span>` : ''}</div>
        ${a.text ? `<pre class="msg-text">${maskedText(a.text)}</pre>` : ''}${toolCallsHtml(a.tool_calls)}</div>`
      : '<p class="muted small no-answer">No answer: the request was refused, or failed before the model answered.</p>');
    return parts.join('');
  }

  // Fills a detail row's conversation from `/admin/v1/requests/ID`.
  async function loadConversation(box, id) {
    const token = state.token;
    try {
      const d = await api(`/admin/v1/requests/${encodeURIComponent(id)}`);
      if (token !== state.token) return;
      box.innerHTML = conversationHtml(d && d.content);
      box.dataset.state = 'ready';
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        showLogin('Your session has ended: sign in again.');
        return;
      }
      if (token !== state.token) return;
      box.innerHTML = `<p class="muted small">${esc(err instanceof ApiError && err.status === 404
        ? 'This request is not written yet: open it again in a moment.'
        : `The prompt and answer could not be loaded: ${err && err.message ? err.message : String(err)}`)}</p>`;
      box.dataset.state = 'error';
    }
  }

  function toggleDetail(tr, r) {
    if (!r) return;
    state.requestsTouched = true;
    const next = tr.nextElementSibling;
    if (next && next.classList.contains('detail')) {
      next.remove();
      tr.classList.remove('selected');
      return;
    }
    tr.classList.add('selected');
    const cols = tr.children.length;
    const skip = new Set(['guards', 'route']);
    const fields = Object.keys(r).filter((k) => !skip.has(k)).sort();
    const fmtField = (k, v) => {
      if (v === null || v === undefined) return '<span class="muted">–</span>';
      if (k.endsWith('_nanos') && isNum(v)) return `${esc(money(v))} <span class="muted small">(${esc(v)} n$)</span>`;
      if (k.endsWith('_ms') && isNum(v) && k.startsWith('started')) return `${esc(when(v))} UTC <span class="muted small">(${esc(v)})</span>`;
      if (k.endsWith('_ms') && isNum(v)) return esc(ms(v));
      if (typeof v === 'object') return `<code>${esc(JSON.stringify(v))}</code>`;
      return esc(v);
    };
    const guards = guardList(r);
    const route = parseMaybe(r.route);
    const detail = document.createElement('tr');
    detail.className = 'detail';
    detail.innerHTML = `<td colspan="${cols}">
      <div class="grid g2" style="margin:4px 0">
        <div><h3>Record</h3><dl class="kv">${fields.map((k) => `<dt>${esc(k)}</dt><dd>${fmtField(k, r[k])}</dd>`).join('')}</dl></div>
        <div>
          <h3>Guards</h3>
          ${guards.length ? `<table class="mini"><thead><tr><th>Guard</th><th>Outcome</th><th class="num">Score</th><th class="num">Time</th><th>Detail</th></tr></thead><tbody>
            ${guards.map((g) => `<tr><td>${esc(g.guard)}</td><td>${pill(g.outcome || '?', g.outcome === 'pass' ? 'ok' : g.outcome)}</td>
              <td class="num">${isNum(g.score) ? esc(g.score.toFixed(3)) : DASH}</td><td class="num">${esc(ms(g.ms))}</td><td>${esc(g.detail || '')}</td></tr>`).join('')}
            </tbody></table>` : '<p class="muted small">No guard ran.</p>'}
          <h3 style="margin-top:10px">Routing decision</h3>
          ${route ? `<pre class="block">${esc(typeof route === 'string' ? route : JSON.stringify(route, null, 2))}</pre>` : '<p class="muted small">The router did not decide this request.</p>'}
        </div>
      </div>
      <h3 style="margin-top:10px">Prompt and answer <span class="muted small">masked: placeholders stand for what the PII guard or storage took out</span></h3>
      <div class="conversation" data-state="loading"><p class="muted small">Loading…</p></div></td>`;
    tr.after(detail);
    loadConversation($('.conversation', detail), r.request_id);
  }

  // ---- Start-up and chrome wiring ----

  function wireChrome() {
    window.addEventListener('hashchange', () => {
      if (state.loggedIn) render();
    });
    for (const b of $$('#range button')) {
      b.addEventListener('click', () => {
        const { page, params } = parseHash();
        params.set('hours', b.dataset.hours);
        go(page, params);
      });
    }
    const auto = $('#auto-refresh');
    try {
      auto.checked = localStorage.getItem('switchyard.autoRefresh') !== 'off';
    } catch {
      // Storage may be blocked; the default (on) is fine.
    }
    auto.addEventListener('change', () => {
      try {
        localStorage.setItem('switchyard.autoRefresh', auto.checked ? 'on' : 'off');
      } catch {
        // Not remembered across reloads, that is all.
      }
    });
    state.timer = setInterval(() => {
      if (!auto.checked || !state.loggedIn || state.inFlight || document.hidden) return;
      const { page } = parseHash();
      if (page === 'requests' && state.requestsTouched) return;
      render({ quiet: true });
    }, REFRESH_MS);
    $('#signout').addEventListener('click', signOut);
    // Charts are drawn for the width they had; a much wider or narrower window redraws them
    // (a small change only scales them, which reads fine).
    let drawnWidth = window.innerWidth;
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        const w = window.innerWidth;
        if (Math.abs(w - drawnWidth) / drawnWidth < 0.15 || !state.loggedIn || state.inFlight) return;
        const { page } = parseHash();
        if (page === 'requests') return;
        drawnWidth = w;
        render({ quiet: true });
      }, 300);
    });
    window.addEventListener('scroll', () => Charts.hideTip(), { passive: true });
    // A safety net: a bug must show up on the page, not as an uncaught console error.
    window.addEventListener('unhandledrejection', (ev) => {
      ev.preventDefault();
      const r = ev.reason;
      showErrors([r && r.message ? r.message : String(r)]);
    });
  }

  async function start() {
    wireChrome();
    const { page } = parseHash();
    setMarker(page, 'loading');
    try {
      const session = await request('/dashboard/session', { headers: { accept: 'application/json' } });
      // The gateway answers 200 either way ({signed_in, admin_enabled, expires_in_secs}), so
      // the check never shows as a failed request in the console; a 401 (below) works too.
      if (session && (session.signed_in === false || session.ok === false)) {
        showLogin(session.admin_enabled === false
          ? 'This gateway has no admin key configured, so the dashboard cannot be used.' : '');
        return;
      }
      state.loggedIn = true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        showLogin();
        return;
      }
      // No session endpoint or a hiccup: the admin calls themselves decide (401 → login).
      state.loggedIn = true;
    }
    render();
  }

  start().catch((err) => {
    showErrors([err && err.message ? err.message : String(err)]);
    setMarker(null, 'error');
  });
})();
