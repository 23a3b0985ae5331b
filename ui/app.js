// tokentray window. Renders the Dashboard JSON computed by tokentray-core (`dashboard::build`).
//
// Two hosts, one page:
//  * inside the Tauri tray app: `window.__TAURI__.core.invoke('dashboard')`, live updates from
//    the `tokentray://changed` event;
//  * in a browser, from the engine's metrics listener: `GET api/dashboard`, live updates from
//    the Server-Sent Events at `api/events`.
// Each change triggers a re-fetch, at most one per second (changes arriving meanwhile coalesce).
// No framework, no network beyond the host: charts are plain SVG built here.
'use strict';

(function () {
  const MIN_REFRESH_MS = 1000;      // never fetch more often than this
  const BACKSTOP_REFRESH_MS = 60000; // re-fetch anyway: rolls "today" over at midnight

  const $ = (id) => document.getElementById(id);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---- formatting (user's locale, USD) -------------------------------------------------------

  // Built for the user's locale: the app's window asks the tray for it (WebKit's own default
  // follows the C library's locale, "C" where the user's is not installed, which formats
  // `$ 1.02`); a browser uses its own.
  let LOCALE;
  let usdCache, compactFmt, exactFmt, pctFmt, timeFmt, dayTimeFmt, dateTimeFmt, shortDateFmt, longDateFmt, relFmt;
  function useLocale(locale) {
    try { new Intl.NumberFormat(locale); LOCALE = locale; } catch (_) { LOCALE = undefined; }
    document.documentElement.dataset.locale = LOCALE || '';
    usdCache = new Map();
    compactFmt = new Intl.NumberFormat(LOCALE, { notation: 'compact', maximumFractionDigits: 1 });
    exactFmt = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
    pctFmt = new Intl.NumberFormat(LOCALE, { style: 'percent', maximumFractionDigits: 0 });
    timeFmt = new Intl.DateTimeFormat(LOCALE, { hour: '2-digit', minute: '2-digit' });
    dayTimeFmt = new Intl.DateTimeFormat(LOCALE, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
    dateTimeFmt = new Intl.DateTimeFormat(LOCALE, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
    shortDateFmt = new Intl.DateTimeFormat(LOCALE, { day: 'numeric', month: 'short' });
    longDateFmt = new Intl.DateTimeFormat(LOCALE, { weekday: 'short', day: 'numeric', month: 'short' });
    relFmt = typeof Intl.RelativeTimeFormat === 'function' ? new Intl.RelativeTimeFormat(LOCALE, { numeric: 'auto', style: 'short' }) : null;
  }
  useLocale(undefined);

  // The app's money style (`MoneyStyle` in the core): the tray, statusline, alerts and reports
  // write amounts with it, so the window does too; a browser has none and uses Intl.
  let MONEY = null;

  /** `value` with `digits` decimals in the app's money style, as the core's `MoneyStyle`. */
  function styledUsd(value, digits, m) {
    const [whole, fraction] = Math.abs(value).toFixed(digits).split('.');
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, m.group);
    const number = fraction ? grouped + m.decimal + fraction : grouped;
    const gap = m.space ? '\u00a0' : '';
    const sign = value < 0 && /[1-9]/.test(whole + (fraction || '')) ? '-' : '';
    return sign + (m.symbol_first ? `$${gap}${number}` : `${number}${gap}$`);
  }

  function usd(v) {
    const value = Number(v) || 0;
    // As `tokentray report`: cents, or four decimals for amounts under a cent.
    const digits = value !== 0 && Math.abs(value) < 0.01 ? 4 : 2;
    if (MONEY) return styledUsd(value, digits, MONEY);
    let f = usdCache.get(digits);
    if (!f) {
      f = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: 'USD', minimumFractionDigits: digits, maximumFractionDigits: digits });
      usdCache.set(digits, f);
    }
    return f.format(value);
  }

  /** A moment as a person reads it: the time of day today, else the date and time. */
  function moment(t) {
    if (!(t instanceof Date) || isNaN(t)) return '';
    const now = new Date();
    const sameDay = t.getFullYear() === now.getFullYear() && t.getMonth() === now.getMonth() && t.getDate() === now.getDate();
    return sameDay ? timeFmt.format(t) : dateTimeFmt.format(t);
  }

  const tokens = (v) => compactFmt.format(Number(v) || 0);
  const exact = (v) => exactFmt.format(Number(v) || 0);

  function duration(seconds) {
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
    if (m > 0) return `${m} min`;
    return `${s} s`;
  }

  function ago(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (!relFmt) return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : `${Math.floor(s / 3600)} h ago`;
    if (s < 60) return relFmt.format(-s, 'second');
    if (s < 3600) return relFmt.format(-Math.floor(s / 60), 'minute');
    if (s < 86400) return relFmt.format(-Math.floor(s / 3600), 'hour');
    return relFmt.format(-Math.floor(s / 86400), 'day');
  }

  /** "YYYY-MM-DD" as a local date (Date parses bare ISO dates as UTC). */
  function localDate(ymd) {
    const [y, m, d] = String(ymd).split('-').map(Number);
    return new Date(y, (m || 1) - 1, d || 1);
  }

  // ---- small DOM helpers ---------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    if (parent) parent.append(e);
    return e;
  }

  function setMoney(node, value) {
    node.textContent = usd(value);
    node.dataset.value = String(Number(value) || 0);
  }

  function setTokens(node, value) {
    node.textContent = tokens(value);
    node.dataset.value = String(Number(value) || 0);
    node.title = `${exact(value)} tokens`;
  }

  function setTextIfChanged(node, text) {
    // Leaves a user's text selection alone when nothing changed.
    if (node.textContent !== text) node.textContent = text;
  }

  // ---- data source ---------------------------------------------------------------------------

  function describeError(e) {
    if (e === null || e === undefined) return 'unknown error';
    if (typeof e === 'string') return e;
    if (e.message) return e.message;
    try { return JSON.stringify(e); } catch (_) { return String(e); }
  }

  function tauriSource(tauri) {
    return {
      kind: 'tauri',
      load: () => tauri.core.invoke('dashboard'),
      saveBudgets: (limits) => tauri.core.invoke('set_budgets', { limits }),
      setupClaudeCode: () => tauri.core.invoke('setup_claude_code'),
      setupStatusline: () => tauri.core.invoke('setup_statusline'),
      locale: () => tauri.core.invoke('locale'),
      moneyStyle: () => tauri.core.invoke('money_style'),
      activity: (session, kind) => tauri.core.invoke('activity', { session, kind }),
      forwardStatus: (withHeaders) => tauri.core.invoke('forward_status', { withHeaders }),
      setForwardEnabled: (on) => tauri.core.invoke('set_forward_enabled', { on }),
      saveForwardHeaders: (headers) => tauri.core.invoke('save_forward_headers', { headers }),
      subscribe(onChange, onStatus) {
        if (!tauri.event || typeof tauri.event.listen !== 'function') {
          onStatus('error', 'live updates unavailable (no Tauri event API)');
          return;
        }
        tauri.event.listen('tokentray://changed', () => onChange())
          .then(() => onStatus('live'))
          .catch((e) => onStatus('error', `live updates unavailable: ${describeError(e)}`));
      },
    };
  }

  function httpSource() {
    return {
      kind: 'http',
      async load() {
        let resp;
        try {
          resp = await fetch('api/dashboard', { cache: 'no-store', headers: { Accept: 'application/json' } });
        } catch (e) {
          throw new Error(`tokentray is not reachable (${describeError(e)}). Is \`tokentray serve\` still running?`);
        }
        const body = await resp.text();
        let data;
        try { data = JSON.parse(body); } catch (_) { data = null; }
        if (!resp.ok) throw new Error((data && data.error) || `HTTP ${resp.status}: ${body.slice(0, 200)}`);
        if (!data) throw new Error('the engine answered with something that is not JSON');
        return data;
      },
      async activity(session, kind) {
        const q = new URLSearchParams({ session: session || '', kind: kind || '', limit: '100' });
        const resp = await fetch(`api/activity?${q}`, { cache: 'no-store', headers: { Accept: 'application/json' } });
        const data = await resp.json().catch(() => null);
        if (!resp.ok || !Array.isArray(data)) throw new Error((data && data.error) || `HTTP ${resp.status}`);
        return data;
      },
      subscribe(onChange, onStatus) {
        if (typeof EventSource !== 'function') {
          onStatus('live', 'polling');
          setInterval(onChange, 5000);
          return;
        }
        const es = new EventSource('api/events');
        es.addEventListener('change', () => onChange());
        // After a reconnect changes may have been missed: fetch once.
        es.addEventListener('open', () => { onStatus('live'); onChange(); });
        es.addEventListener('error', () => onStatus(es.readyState === EventSource.CLOSED ? 'error' : 'reconnecting'));
      },
    };
  }

  const source = (window.__TAURI__ && window.__TAURI__.core && typeof window.__TAURI__.core.invoke === 'function')
    ? tauriSource(window.__TAURI__)
    : httpSource();

  // ---- refresh scheduling --------------------------------------------------------------------

  let inFlight = false;
  let again = false;
  let lastStart = 0;
  let timer = null;
  let current = null;      // last Dashboard rendered
  let receivedAt = 0;      // Date.now() when it arrived, to age the "last request" line locally

  function refresh() {
    if (inFlight) { again = true; return; }
    const wait = lastStart + MIN_REFRESH_MS - Date.now();
    if (wait > 0) {
      if (!timer) timer = setTimeout(() => { timer = null; refresh(); }, wait);
      return;
    }
    inFlight = true;
    lastStart = Date.now();
    Promise.resolve()
      .then(() => source.load())
      .then((data) => {
        current = data;
        receivedAt = Date.now();
        render(data);
        showError(null);
      })
      .catch((e) => showError(`Could not load the dashboard: ${describeError(e)}`))
      .finally(() => {
        inFlight = false;
        if (again) { again = false; refresh(); }
      });
  }

  function setStatus(state, detail) {
    const s = $('status');
    s.dataset.state = state;
    const text = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', error: 'not live' }[state] || state;
    s.textContent = detail && state !== 'live' ? `${text}` : text;
    s.title = detail || '';
  }

  function showError(message) {
    const box = $('error');
    if (!message) { box.hidden = true; box.textContent = ''; return; }
    box.textContent = message;
    box.hidden = false;
    $('loading').hidden = true;
    if (!current) setStatus('error', message);
  }

  // ---- rendering -----------------------------------------------------------------------------

  // ---- views: Usage first, Settings (the app's window only) ---------------------------------

  let view = 'usage';
  let hasData = false;

  function showView(next) {
    view = next;
    for (const b of document.querySelectorAll('#tabs [role=tab]')) {
      const on = b.dataset.view === view;
      b.setAttribute('aria-selected', String(on));
      b.classList.toggle('active', on);
    }
    applyView();
  }

  function applyView() {
    const loaded = current !== null;
    $('empty-state').hidden = !loaded || view !== 'usage' || hasData;
    $('dashboard').hidden = !loaded || view !== 'usage' || !hasData;
    $('settings').hidden = view !== 'settings';
    document.body.dataset.view = view;
  }

  function render(d) {
    $('loading').hidden = true;
    const empty = !d.has_data;
    hasData = !empty;
    applyView();
    setTextIfChanged($('setup-env'), d.setup_env || '');
    renderBudgetSettings(d.budgets);
    loadForward();
    if (empty) return;

    setMoney($('spend-today'), d.today.cost_usd);
    setMoney($('spend-week'), d.week.cost_usd);
    setMoney($('spend-month'), d.month.cost_usd);
    const sub = [];
    // The JSON lists the most recent sessions only; the count covers all of today's.
    const nSessions = d.sessions_today_count ?? (d.sessions_today || []).filter((s) => s.session_id).length;
    sub.push(`${exact(nSessions)} session${nSessions === 1 ? '' : 's'}`);
    sub.push(`${exact(d.today.api_requests)} request${d.today.api_requests === 1 ? '' : 's'}`);
    if (d.today.active_time_seconds > 0) sub.push(`${duration(d.today.active_time_seconds)} active`);
    $('today-sub').textContent = sub.join(' · ');

    renderBudgets(d.budgets, d.budgets_error);
    renderPlanLimits(d.plan_limits, d.plan_outlook);
    renderSessionFilter(d.sessions_today || []);
    loadActivity();
    renderTokens(d.today.tokens, d.cache_hit_ratio);
    renderLastRequest();
    renderDaily(d.daily || []);
    renderHourly(d.hourly || [], d.generated_at);
    renderAgents(d.agents_today || []);
    renderModels(d.models || []);
    renderMachines(d.machines_today || []);
    renderProjects(d.projects || []);
    renderSessions(d.sessions_today || [], d.daily && d.daily.length ? d.daily[d.daily.length - 1].date : null, d.sessions_today_count);
    renderFooter(d);
  }

  const TOKEN_TYPES = ['input', 'output', 'cacheRead', 'cacheCreation'];

  function renderTokens(t, ratio) {
    for (const k of TOKEN_TYPES) setTokens($(`tokens-${k}`), t[k]);
    const bar = $('tokens-bar');
    bar.replaceChildren();
    const total = TOKEN_TYPES.reduce((a, k) => a + (Number(t[k]) || 0), 0);
    let x = 0;
    if (total > 0) {
      for (const k of TOKEN_TYPES) {
        const w = (Number(t[k]) || 0) / total * 100;
        if (w > 0) svg('rect', { x, y: 0, width: w, height: 6, class: k }, bar);
        x += w;
      }
    }
    bar.setAttribute('aria-label', `Token mix today: ${TOKEN_TYPES.map((k) => `${k} ${exact(t[k])}`).join(', ')}`);
    const r = $('cache-ratio');
    r.textContent = ratio === null || ratio === undefined ? '–' : pctFmt.format(ratio);
    r.dataset.value = ratio === null || ratio === undefined ? '' : String(ratio);
  }

  function renderLastRequest() {
    const line = $('last-request');
    const text = $('last-request-text');
    const lr = current && current.last_request;
    if (!lr) {
      line.classList.remove('fresh');
      setTextIfChanged(text, 'No API request recorded yet');
      $('last-request-ago').textContent = '';
      line.dataset.state = 'none';
      return;
    }
    const age = lr.seconds_ago + (Date.now() - receivedAt) / 1000;
    const cached = (Number(lr.cache_read_tokens) || 0) + (Number(lr.cache_creation_tokens) || 0);
    const parts = [
      el('span', { class: 'model', id: 'last-request-model', text: lr.model || 'unknown model' }),
      ' · ',
      el('span', { id: 'last-request-tokens', text: `${tokens(lr.input_tokens)} in · ${tokens(lr.output_tokens)} out${cached ? ` · ${tokens(cached)} cache` : ''}` }),
      ' · ',
      el('span', { id: 'last-request-cost', 'data-value': String(lr.cost_usd ?? ''), text: lr.cost_usd === null || lr.cost_usd === undefined ? 'cost n/a' : usd(lr.cost_usd) }),
    ];
    // Kept outside the truncated text: "how long ago" is what the line is for.
    $('last-request-ago').textContent = ago(age);
    text.replaceChildren(...parts);
    const when = new Date(lr.time);
    text.title = `Last API request at ${isNaN(when) ? lr.time : when.toLocaleString()}` +
      (lr.duration_ms !== null && lr.duration_ms !== undefined ? `, took ${(lr.duration_ms / 1000).toFixed(1)} s` : '') +
      (lr.session_id ? `, session ${lr.session_id}` : '');
    line.dataset.state = 'request';
    line.classList.toggle('fresh', age < 60);
  }

  /** Age the "… ago" text between fetches without asking the engine. */
  function tick() {
    const lr = current && current.last_request;
    const node = $('last-request-ago');
    if (!lr) return;
    const age = lr.seconds_ago + (Date.now() - receivedAt) / 1000;
    setTextIfChanged(node, ago(age));
    $('last-request').classList.toggle('fresh', age < 60);
  }

  /**
   * A bar chart in plain SVG. items: [{value, title, cls, attrs}], ticks: [{index, text}].
   */
  function barChart(node, items, ticks, label) {
    const W = 396, H = 100, top = 16, bottom = 16;
    const plotH = H - top - bottom;
    node.replaceChildren();
    node.setAttribute('viewBox', `0 0 ${W} ${H}`);
    node.setAttribute('aria-label', label);
    const max = items.reduce((m, it) => Math.max(m, Number(it.value) || 0), 0);
    const n = Math.max(1, items.length);
    const slot = W / n;
    const gap = Math.max(1, slot * 0.22);
    const base = top + plotH;
    svg('line', { class: 'grid', x1: 0, x2: W, y1: top, y2: top, 'stroke-dasharray': '2 3' }, node);
    svg('line', { class: 'grid', x1: 0, x2: W, y1: base + 0.5, y2: base + 0.5 }, node);
    svg('text', { class: 'max', x: W, y: top - 4, 'text-anchor': 'end', text: max > 0 ? usd(max) : usd(0) }, node);
    items.forEach((it, i) => {
      const v = Number(it.value) || 0;
      const h = max > 0 && v > 0 ? Math.max(1.5, (v / max) * plotH) : 1.5;
      const rect = svg('rect', {
        class: `bar ${v > 0 ? '' : 'zero'} ${it.cls || ''}`.trim(),
        x: (i * slot + gap / 2).toFixed(2),
        y: (base - h).toFixed(2),
        width: Math.max(1, slot - gap).toFixed(2),
        height: h.toFixed(2),
        rx: Math.min(2, (slot - gap) / 2).toFixed(2),
        'data-value': String(v),
        ...(it.attrs || {}),
      }, node);
      svg('title', { text: it.title }, rect);
    });
    for (const t of ticks) {
      const x = t.index * slot + slot / 2;
      const anchor = t.index === 0 ? 'start' : t.index === items.length - 1 ? 'end' : 'middle';
      svg('text', { x: anchor === 'start' ? 0 : anchor === 'end' ? W : x, y: H - 3, 'text-anchor': anchor, text: t.text }, node);
    }
  }

  function renderDaily(daily) {
    const last = daily.length - 1;
    const items = daily.map((d, i) => ({
      value: d.cost_usd,
      title: `${longDateFmt.format(localDate(d.date))}: ${usd(d.cost_usd)}`,
      cls: i === last ? 'today' : 'past',
      attrs: { 'data-date': d.date },
    }));
    const ticks = daily.length ? [
      { index: 0, text: shortDateFmt.format(localDate(daily[0].date)) },
      { index: Math.floor(last / 2), text: shortDateFmt.format(localDate(daily[Math.floor(last / 2)].date)) },
      { index: last, text: 'today' },
    ] : [];
    const total = daily.reduce((a, d) => a + (Number(d.cost_usd) || 0), 0);
    const top = daily.reduce((b, d) => (!b || d.cost_usd > b.cost_usd ? d : b), null);
    const label = `Daily spend, last ${daily.length} days: ${usd(total)} in total` +
      (top && top.cost_usd > 0 ? `, highest ${usd(top.cost_usd)} on ${longDateFmt.format(localDate(top.date))}` : '');
    barChart($('chart-daily'), items, ticks, label);
  }

  function renderHourly(hourly, generatedAt) {
    const nowHour = Number(String(generatedAt || '').slice(11, 13));
    const items = hourly.map((h, i) => ({
      value: h.cost_usd,
      title: `${h.hour}: ${usd(h.cost_usd)}`,
      cls: i > nowHour ? 'future' : i === nowHour ? 'now' : 'past',
      attrs: { 'data-hour': h.hour },
    }));
    const ticks = [0, 6, 12, 18, 23].filter((i) => i < hourly.length).map((i) => ({ index: i, text: hourly[i].hour.slice(0, 2) }));
    const busiest = hourly.reduce((b, h) => (!b || h.cost_usd > b.cost_usd ? h : b), null);
    const label = 'Spend by hour today' + (busiest && busiest.cost_usd > 0 ? `, highest ${usd(busiest.cost_usd)} at ${busiest.hour}` : ', none yet');
    barChart($('chart-hourly'), items, ticks, label);
  }

  function minibar(fraction) {
    const s = svg('svg', { class: 'minibar', viewBox: '0 0 100 3', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    svg('rect', { class: 'track', x: 0, y: 0, width: 100, height: 3, rx: 1.5 }, s);
    svg('rect', { x: 0, y: 0, width: Math.max(0, Math.min(1, fraction)) * 100, height: 3, rx: 1.5 }, s);
    return s;
  }

  // ---- budgets -------------------------------------------------------------------------------

  const PERIOD_TITLE = { daily: 'Today', weekly: 'This week', monthly: 'This month' };

  /** "16:40" today, "Thu 16:40" later this week, "Nov 28" further out. */
  function when(iso) {
    const t = new Date(iso);
    if (isNaN(t)) return iso;
    const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
    const days = Math.round((day(t) - day(new Date())) / 86400000);
    if (days === 0) return timeFmt.format(t);
    if (days > 0 && days < 7) return dayTimeFmt.format(t);
    return shortDateFmt.format(t);
  }

  function renderBudgets(status, error) {
    const section = $('budgets');
    const list = (status && status.budgets) || [];
    section.hidden = list.length === 0 && !error;
    if (section.hidden) return;
    const head = el('h2', { text: 'Budgets' });
    if (status && status.paused_until) {
      head.append(' ', el('span', { class: 'muted', 'data-testid': 'alerts-paused', text: `· alerts paused until ${when(status.paused_until)}` }));
    }
    const rows = list.map((b) => {
      const fraction = b.limit_usd > 0 ? b.spent_usd / b.limit_usd : 0;
      const level = b.spent_usd >= b.limit_usd ? 'over' : b.highest_crossed ? 'warn' : 'ok';
      const whose = b.model || b.agent;
      const name = (PERIOD_TITLE[b.period] || b.period) + (whose ? ` · ${whose}` : '');
      const bar = svg('svg', { class: 'budgetbar', viewBox: '0 0 100 6', preserveAspectRatio: 'none', role: 'img',
        'aria-label': `${pctFmt.format(fraction)} of ${usd(b.limit_usd)}` });
      svg('rect', { class: 'track', x: 0, y: 0, width: 100, height: 6, rx: 3 }, bar);
      svg('rect', { class: 'fill', x: 0, y: 0, width: Math.min(1, Math.max(0, fraction)) * 100, height: 6, rx: 3 }, bar);
      for (const t of b.thresholds || []) {
        if (t > 0 && t < 100) svg('rect', { class: 'tick', x: t - 0.3, y: 0, width: 0.6, height: 6 }, bar);
      }
      let forecast = '';
      if (b.forecast_ready === false) forecast = 'Forecast: not enough data yet';
      else if (b.spent_usd < b.limit_usd && b.reach_limit_at) forecast = `At this pace ${usd(b.limit_usd)} around ${when(b.reach_limit_at)}`;
      else if (b.forecast_usd > b.spent_usd + 0.005) forecast = `Forecast ${usd(b.forecast_usd)} by the end of the ${b.period === 'daily' ? 'day' : b.period === 'weekly' ? 'week' : 'month'}`;
      return el('div', { class: 'budget', 'data-testid': 'budget', 'data-period': b.period, 'data-model': b.model || '', 'data-level': level,
          'data-spent': String(b.spent_usd), 'data-limit': String(b.limit_usd), 'data-percent': String(b.percent) },
        el('div', { class: 'budget-line' },
          el('span', { class: 'budget-name', text: name }),
          el('span', { class: 'budget-figures', 'data-testid': 'budget-figures', text: `${usd(b.spent_usd)} of ${usd(b.limit_usd)} · ${pctFmt.format(b.percent / 100)}` })),
        bar,
        forecast ? el('p', { class: 'sub', 'data-testid': 'budget-forecast', text: forecast }) : null);
    });
    const parts = [head, ...rows];
    if (error) parts.push(el('p', { class: 'error', 'data-testid': 'budgets-error', text: error }));
    section.replaceChildren(...parts);
  }

  // ---- budget settings (the app's window only; the page `serve` publishes is read-only) --------

  const BUDGET_PERIODS = ['daily', 'weekly', 'monthly'];
  let budgetFormDirty = false;

  function renderBudgetSettings(status) {
    const section = $('budget-settings');
    section.hidden = typeof source.saveBudgets !== 'function';
    // Never overwrite what the user is typing.
    if (section.hidden || budgetFormDirty) return;
    const list = (status && status.budgets) || [];
    for (const p of BUDGET_PERIODS) {
      const b = list.find((x) => x.period === p && !x.model && !x.agent);
      $(`budget-input-${p}`).value = b ? String(b.limit_usd) : '';
    }
  }

  async function saveBudgets(ev) {
    ev.preventDefault();
    const note = $('budget-form-status');
    const say = (state, text) => { note.dataset.state = state; note.textContent = text; };
    const limits = {};
    for (const p of BUDGET_PERIODS) {
      const input = $(`budget-input-${p}`);
      const raw = input.value.trim();
      if (raw === '' && !(input.validity && input.validity.badInput)) { limits[p] = null; continue; }
      const v = Number(raw);
      if (!Number.isFinite(v) || v <= 0) {
        say('error', `The ${p} budget must be a positive amount of USD, or empty for none.`);
        input.focus();
        return;
      }
      limits[p] = v;
    }
    say('saving', 'Saving…');
    try {
      await source.saveBudgets(limits);
      budgetFormDirty = false;
      say('saved', 'Saved.');
      refresh();
    } catch (e) {
      say('error', `Could not save: ${describeError(e)}`);
    }
  }

  // ---- forward to team (the app's window only) --------------------------------------------------

  const FORWARD_POLL_MS = 5000; // the forwarder's state changes without new data (retries, pauses)
  let forwardSeq = 0;
  let forwardToggling = false;
  // Masked header names: read from the keychain once (a locked keychain may prompt to unlock),
  // then taken from what "Save headers" answers.
  let forwardHeaders = null;
  let forwardHeadersError = null;

  function size(bytes) {
    const b = Number(bytes) || 0;
    if (b < 1024) return `${exact(b)} B`;
    if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
    return `${(b / 1024 / 1024).toFixed(1)} MiB`;
  }

  /** "16:40 (3 min ago)" from nanoseconds since the epoch. */
  function atNs(ns) {
    const ms = Number(ns) / 1e6;
    if (!Number.isFinite(ms) || ms <= 0) return null;
    return `${when(new Date(ms).toISOString())} (${ago((Date.now() - ms) / 1000)})`;
  }

  async function loadForward() {
    if (typeof source.forwardStatus !== 'function') return;
    const seq = ++forwardSeq;
    try {
      const v = await source.forwardStatus(forwardHeaders === null);
      if (seq === forwardSeq) renderForward(v);
    } catch (e) {
      if (seq !== forwardSeq) return;
      $('forward').hidden = false;
      $('forward-summary').textContent = `Could not read the forwarding state: ${describeError(e)}`;
    }
  }

  function renderForward(v) {
    const section = $('forward');
    section.hidden = false;
    section.dataset.state = v.state;
    section.dataset.enabled = String(!!v.enabled);
    setTextIfChanged($('forward-summary'), v.summary || '');
    $('forward-setup').hidden = !!v.configured;
    $('forward-controls').hidden = !v.configured;
    if (!v.configured) return;
    if (!forwardToggling) $('forward-toggle').checked = !!v.enabled;

    const q = v.queue || {};
    const waiting = [];
    if (q.requests) waiting.push(`${exact(q.requests)} request${q.requests === 1 ? '' : 's'} (${size(q.bytes)})`);
    if (q.changed_series) waiting.push(`${exact(q.changed_series)} series`);
    const dropped = (Number(v.dropped_rejected) || 0) + (Number(v.dropped_overflow) || 0);
    const facts = [
      ['Endpoint', v.endpoint || ''],
      ['Protocol', v.protocol || ''],
      ['Waiting', waiting.length ? waiting.join(', ') : 'nothing'],
      ['Delivered', `${exact(v.delivered)} request${v.delivered === 1 ? '' : 's'}`],
      ['Last success', atNs(v.last_success_ns) || 'never'],
    ];
    if (v.last_error) facts.push(['Last error', `${v.last_error}${atNs(v.last_error_ns) ? ` · ${atNs(v.last_error_ns)}` : ''}`]);
    if (dropped) facts.push(['Dropped', `${exact(dropped)} (refused ${exact(v.dropped_rejected)}, queue full or too old ${exact(v.dropped_overflow)})`]);
    $('forward-facts').replaceChildren(...facts.flatMap(([k, val]) => [el('dt', { text: k }), el('dd', { 'data-fact': k, text: val })]));

    // Asked for once: an error is kept too, rather than asking the keychain again and again.
    if (Array.isArray(v.headers) || v.headers_error) {
      forwardHeaders = v.headers || [];
      forwardHeadersError = v.headers_error || null;
    }
    renderForwardHeaders(v.headers_file);
  }

  function renderForwardHeaders(file) {
    const h = $('forward-headers');
    const names = forwardHeaders || [];
    h.dataset.state = forwardHeadersError ? 'error' : '';
    if (forwardHeadersError) h.textContent = `Cannot read the stored headers: ${forwardHeadersError}`;
    else if (forwardHeaders === null) h.textContent = '';
    else if (file) h.textContent = `Headers come from ${file} ([forward] headers_file)${names.length ? `: ${names.join(', ')}` : ''}.`;
    else h.textContent = names.length ? `Stored in the keychain: ${names.join(', ')}` : 'No headers stored.';
  }

  async function toggleForward() {
    const box = $('forward-toggle');
    const note = $('forward-form-status');
    forwardToggling = true;
    try {
      renderForward(await source.setForwardEnabled(box.checked));
      note.dataset.state = '';
      note.textContent = '';
    } catch (e) {
      box.checked = !box.checked;
      note.dataset.state = 'error';
      note.textContent = `Could not switch forwarding: ${describeError(e)}`;
    } finally {
      forwardToggling = false;
    }
  }

  async function saveForwardHeaders(ev) {
    ev.preventDefault();
    const input = $('forward-headers-input');
    const note = $('forward-form-status');
    const say = (state, text) => { note.dataset.state = state; note.textContent = text; };
    if (!input.value.trim()) {
      say('error', 'Type the headers first: name=value, separated by commas.');
      input.focus();
      return;
    }
    say('saving', 'Saving…');
    try {
      const masked = await source.saveForwardHeaders(input.value);
      // The secret is in the keychain now: nothing of it stays in the page.
      input.value = '';
      forwardHeaders = masked;
      forwardHeadersError = null;
      renderForwardHeaders(null);
      say('saved', `Saved: ${masked.join(', ')}`);
      loadForward();
    } catch (e) {
      say('error', `Could not save the headers: ${describeError(e)}`);
    }
  }

  // ---- plan usage (from `tokentray statusline`) -----------------------------------------------

  function renderPlanLimits(p, outlook) {
    const section = $('plan-limits');
    const windows = p ? [['five_hour', '5-hour window', p.five_hour], ['seven_day', '7-day window', p.seven_day]].filter((w) => w[2]) : [];
    section.hidden = false;
    if (windows.length === 0) {
      // Known only once Claude Code's status line reports here: say so, with the one click.
      if (section.dataset.state === 'offer') return;
      section.dataset.state = 'offer';
      const offer = typeof source.setupStatusline === 'function'
        ? el('button', { id: 'setup-statusline', type: 'button', 'data-testid': 'setup-statusline', text: 'Show plan limits' })
        : el('code', { text: 'tokentray setup --statusline' });
      const result = el('p', { id: 'setup-statusline-result', class: 'sub', 'data-testid': 'setup-statusline-result', role: 'status', 'aria-live': 'polite' });
      section.replaceChildren(
        el('h2', { text: 'Plan usage' }),
        el('p', { class: 'sub', text: "Your Claude plan's 5-hour and 7-day limits, with when they reset, come from Claude Code's status line." },
          ' ', typeof source.setupStatusline === 'function' ? 'One click makes tokentray its status line:' : 'To show them, run', ' ', offer),
        result);
      if (offer.tagName === 'BUTTON') offer.addEventListener('click', () => { setupStatusline(offer, result); });
      return;
    }
    section.dataset.state = 'limits';
    const head = el('h2', { text: 'Plan usage' });
    const reported = new Date(p.reported_at);
    if (!isNaN(reported)) head.append(' ', el('span', { class: 'muted', text: `· as of ${when(p.reported_at)}` }));
    const rows = windows.map(([key, label, w]) => {
      const pct = Math.max(0, Math.min(100, Number(w.used_percentage) || 0));
      const bar = svg('svg', { class: 'budgetbar', viewBox: '0 0 100 6', preserveAspectRatio: 'none', role: 'img', 'aria-label': `${label}: ${pct.toFixed(0)}% used` });
      svg('rect', { class: 'track', x: 0, y: 0, width: 100, height: 6, rx: 3 }, bar);
      svg('rect', { class: 'fill', x: 0, y: 0, width: pct, height: 6, rx: 3 }, bar);
      // The core's countdown and pace ("resets in 2 h 17 m · 100% at 16:40"); the clock time of
      // the reset when an older engine sent no outlook.
      const ahead = (outlook && outlook[key]) || {};
      const resets = ahead.resets_in ? ` · ${ahead.resets_in}` : (w.resets_at ? ` · resets ${when(w.resets_at)}` : '');
      const full = ahead.full_at_clock ? ` · 100% at ${ahead.full_at_clock}` : '';
      return el('div', { class: 'budget', 'data-testid': 'plan-window', 'data-window': key, 'data-percent': String(w.used_percentage), 'data-level': pct >= 100 ? 'over' : 'ok' },
        el('div', { class: 'budget-line' },
          el('span', { class: 'budget-name', text: label }),
          el('span', { class: 'budget-figures', text: `${pct.toFixed(0)}% used${resets}${full}` })),
        bar);
    });
    section.replaceChildren(head, ...rows);
  }

  async function setupStatusline(button, result) {
    button.disabled = true;
    try {
      result.textContent = await source.setupStatusline();
      result.dataset.state = 'done';
    } catch (e) {
      result.textContent = `Could not set up the status line: ${describeError(e)}`;
      result.dataset.state = 'error';
      button.disabled = false;
    }
  }

  // ---- activity ----------------------------------------------------------------------------

  const KIND_LABEL = { api_request: 'API', api_error: 'error', tool_decision: 'decision', tool_result: 'tool', user_prompt: 'prompt' };

  function renderSessionFilter(sessions) {
    const select = $('activity-session');
    const chosen = select.value;
    const ids = sessions.map((s) => s.session_id).filter(Boolean);
    if (chosen && !ids.includes(chosen)) ids.push(chosen);
    const wanted = ['', ...ids].join('\n');
    if (select.dataset.ids === wanted) return;
    select.dataset.ids = wanted;
    select.replaceChildren(el('option', { value: '', text: 'All sessions' }), ...ids.map((id) => el('option', { value: id, text: id.slice(0, 8) })));
    select.value = chosen;
  }

  let activitySeq = 0;
  async function loadActivity() {
    if (typeof source.activity !== 'function') return;
    const seq = ++activitySeq;
    const session = $('activity-session').value;
    const kind = $('activity-kind').value;
    let rows;
    try {
      rows = await source.activity(session, kind);
    } catch (e) {
      if (seq === activitySeq) $('activity-list').replaceChildren(el('li', { class: 'error', text: `Could not load the activity: ${describeError(e)}` }));
      return;
    }
    if (seq !== activitySeq) return; // a newer filter won
    const list = $('activity-list');
    list.dataset.session = session;
    list.dataset.kind = kind;
    list.replaceChildren(...rows.map((r) => {
      const t = new Date(r.time);
      const right = r.cost_usd != null ? usd(r.cost_usd) : (r.duration_ms != null ? (r.duration_ms < 1000 ? `${r.duration_ms} ms` : duration(r.duration_ms / 1000)) : '');
      return el('li', { 'data-testid': 'activity-row', 'data-kind': r.kind, 'data-session': r.session_id || '', class: `act act-${r.kind}` },
        el('span', { class: 'act-time', 'data-testid': 'activity-time', title: isNaN(t) ? '' : t.toLocaleString(LOCALE), text: moment(t) }),
        el('span', { class: 'act-kind', text: KIND_LABEL[r.kind] || r.kind }),
        el('span', { class: 'act-summary', title: [r.model, r.session_id].filter(Boolean).join(' · '), text: (r.model ? `${r.model} · ` : '') + r.summary }),
        el('span', { class: 'act-right', text: right }));
    }));
    $('activity-empty').hidden = rows.length > 0;
  }

  // ---- how a row's money is known (`cost_source`, `priced_usd`, `unpriced_tokens`) ------------

  const SOURCE_TITLE = {
    exact: "Claude Code's own cost (telemetry or the transcript's cost-state)",
    priced: 'Part of the cost is priced from the price table (requests only the transcripts saw)',
    unpriced: 'Some tokens are of a model without a price: the cost leaves them out',
  };

  /** A small word-badge: exact, priced or unpriced. */
  function sourceBadge(kind) {
    return el('span', { class: `src src-${kind}`, 'data-testid': 'cost-source', 'data-source': kind, title: SOURCE_TITLE[kind] || '', text: kind });
  }

  /** "N tokens unpriced" under a row's name, or null when every token has a price. */
  function unpricedNote(n) {
    const v = Number(n) || 0;
    if (v <= 0) return null;
    return el('span', { class: 'note unpriced', 'data-testid': 'unpriced-tokens', 'data-value': String(v), text: `${exact(v)} token${v === 1 ? '' : 's'} unpriced` });
  }

  /**
   * The cost cell: the amount, or "unpriced" for a row whose only tokens have no price (never a
   * silent $0.00); `badges` (exact / priced) go in front of the amount.
   */
  function costCell(cost, unpriced, badges) {
    if (!(Number(cost) > 0) && Number(unpriced) > 0) {
      return el('td', { class: 'num cost unpriced', title: SOURCE_TITLE.unpriced }, 'unpriced');
    }
    return el('td', { class: 'num cost' }, ...badges, usd(cost));
  }

  function renderModels(models) {
    const body = $('models-body');
    const max = models.reduce((m, r) => Math.max(m, r.cost_usd), 0);
    body.replaceChildren(...models.map((m) => {
      const name = m.model || '(no model)';
      const unpriced = Number(m.unpriced_tokens) || 0;
      const nameCell = el('td', { class: 'name' }, el('span', { text: name, title: name }), unpricedNote(unpriced), minibar(max > 0 ? m.cost_usd / max : 0));
      return el('tr', { 'data-model': m.model, 'data-testid': 'model-row', 'data-cost': String(m.cost_usd), 'data-source': m.cost_source || '', 'data-unpriced-tokens': String(unpriced) },
        nameCell,
        el('td', { class: 'num', title: `${exact(m.tokens.total)} tokens`, text: tokens(m.tokens.total) }),
        costCell(m.cost_usd, unpriced, m.priced_usd > 0 ? [sourceBadge('priced')] : []));
    }));
    $('models-empty').hidden = models.length > 0;
    $('models').hidden = models.length === 0;
  }

  // Shown once another machine forwarded here today: the laptop's share and each remote's.
  function renderMachines(machines) {
    const forwarded = machines.some((m) => !m.this_machine);
    $('machines').hidden = !forwarded;
    if (!forwarded) return;
    const max = machines.reduce((m, r) => Math.max(m, r.cost_usd), 0);
    $('machines-body').replaceChildren(...machines.map((m) => {
      const name = m.this_machine ? `${m.machine} (this machine)` : (m.developer ? `${m.machine} · ${m.developer}` : m.machine);
      const nameCell = el('td', { class: 'name' }, el('span', { text: name, title: name }), minibar(max > 0 ? m.cost_usd / max : 0));
      return el('tr', { 'data-machine': m.machine, 'data-testid': 'machine-row', 'data-cost': String(m.cost_usd) },
        nameCell,
        el('td', { class: 'num', title: `${exact(m.tokens.total)} tokens`, text: tokens(m.tokens.total) }),
        el('td', { class: 'num cost', text: usd(m.cost_usd) }));
    }));
  }

  // This month by project, most expensive first (the core's order); hidden without projects.
  function renderProjects(projects) {
    $('projects').hidden = projects.length === 0;
    if (!projects.length) return;
    const max = projects.reduce((m, r) => Math.max(m, r.cost_usd), 0);
    $('projects-body').replaceChildren(...projects.map((p) => {
      const name = p.project || '(no project)';
      const title = p.path || (p.project ? p.project : 'Usage without a known working directory');
      const unpriced = Number(p.unpriced_tokens) || 0;
      const priced = Number(p.priced_usd) > 0;
      const nameCell = el('td', { class: 'name' }, el('span', { class: 'project-name', text: name, title }), unpricedNote(unpriced), minibar(max > 0 ? p.cost_usd / max : 0));
      return el('tr', {
        'data-testid': 'project-row', 'data-project': p.project, 'data-path': p.path || '', 'data-cost': String(p.cost_usd),
        'data-tokens': String(p.tokens.total), 'data-priced': String(priced), 'data-unpriced-tokens': String(unpriced),
        'data-source': p.cost_source || '',
      },
      nameCell,
      el('td', { class: 'num', title: `${exact(p.tokens.total)} tokens`, text: tokens(p.tokens.total) }),
      costCell(p.cost_usd, unpriced, priced ? [sourceBadge('priced')] : []));
    }));
  }

  function renderSessions(sessions, todayDate, total) {
    const body = $('sessions-body');
    const listed = sessions.filter((s) => s.session_id).length;
    const more = (total ?? listed) - listed;
    const moreRow = more > 0
      ? [el('tr', { 'data-testid': 'sessions-more' }, el('td', { colspan: '4', text: `and ${exact(more)} more session${more === 1 ? '' : 's'} today (tokentray report --by session)` }))]
      : [];
    body.replaceChildren(...sessions.map((s) => {
      const id = s.session_id || '';
      const started = s.started_at ? new Date(s.started_at) : null;
      // A session that began before today shows its date, one of today only the time.
      const startedText = started && !isNaN(started) ? moment(started) : '–';
      // exact: all of it Claude Code's own cost; priced: some from the price table. An older
      // engine sends no cost_source: no badge rather than a guess.
      const unpriced = Number(s.unpriced_tokens) || 0;
      const src = s.cost_source === undefined ? null : (Number(s.priced_usd) > 0 ? 'priced' : (unpriced > 0 ? null : 'exact'));
      const models = s.models || [];
      const errors = Number(s.api_errors) || 0;
      const details = [models.join(', '), s.project ? `in ${s.project}` : ''].filter(Boolean).join(' · ');
      const nameCell = el('td', { class: 'name' },
        el('span', { class: 'mono', text: id ? id.slice(0, 8) : '(no session id)', title: id ? `Session ${id}` : 'Usage sent without session.id' }),
        errors > 0 ? el('span', { class: 'err-mark', 'data-testid': 'session-errors', 'data-value': String(errors), title: `${exact(errors)} API error${errors === 1 ? '' : 's'} in this session today`, text: `⚠ ${exact(errors)} error${errors === 1 ? '' : 's'}` }) : null,
        details ? el('span', { class: 'note session-details', 'data-testid': 'session-details', title: s.project_path || details, text: details }) : null,
        unpricedNote(unpriced));
      return el('tr', { 'data-session': id, 'data-testid': 'session-row', 'data-cost': String(s.cost_usd), 'data-source': src || s.cost_source || '',
          'data-unpriced-tokens': String(unpriced), 'data-models': models.join(','), 'data-errors': String(errors), 'data-project': s.project || '',
          'data-started': s.started_at || '', 'data-duration': String(s.duration_seconds), class: errors > 0 ? 'failed' : '' },
        nameCell,
        el('td', { 'data-testid': 'session-started', text: startedText }),
        el('td', { class: 'num', text: duration(s.duration_seconds) }),
        costCell(s.cost_usd, unpriced, src ? [sourceBadge(src)] : []));
    }), ...moreRow);
    $('sessions-empty').hidden = sessions.length > 0;
    $('sessions').hidden = sessions.length === 0;
  }

  const AGENT_NAME = { 'claude-code': 'Claude Code', codex: 'Codex CLI', 'gemini-cli': 'Gemini CLI' };

  // Today per agent; shown once a second agent (or only another agent) sent anything today.
  function renderAgents(agents) {
    const others = agents.some((a) => a.agent !== 'claude-code');
    $('agents').hidden = !others;
    if (!others) return;
    const max = agents.reduce((m, r) => Math.max(m, r.cost_usd), 0);
    $('agents-body').replaceChildren(...agents.map((a) => {
      const name = AGENT_NAME[a.agent] || a.agent;
      return el('tr', { 'data-testid': 'agent-row', 'data-agent': a.agent, 'data-cost': String(a.cost_usd), 'data-sessions': String(a.sessions), 'data-tokens': String(a.tokens.total) },
        el('td', { class: 'name' }, el('span', { text: name, title: `${name}: ${exact(a.api_requests)} request${a.api_requests === 1 ? '' : 's'} today` }), minibar(max > 0 ? a.cost_usd / max : 0)),
        el('td', { class: 'num', text: exact(a.sessions) }),
        el('td', { class: 'num', title: `${exact(a.tokens.total)} tokens`, text: tokens(a.tokens.total) }),
        el('td', { class: 'num cost', text: usd(a.cost_usd) }));
    }));
  }

  function renderFooter(d) {
    const e = d.endpoints || {};
    const updated = new Date(d.generated_at);
    $('footer').replaceChildren(
      'OTLP gRPC ', el('code', { text: e.otlp_grpc || '?' }),
      ' · HTTP ', el('code', { text: e.otlp_http || '?' }),
      ' · Prometheus ', el('code', { text: `${e.metrics || '?'}/metrics` }),
      el('br'),
      `Updated ${isNaN(updated) ? d.generated_at : updated.toLocaleTimeString()}`,
    );
  }

  // ---- copy button ---------------------------------------------------------------------------

  function copyFallback(text) {
    // Off-screen textarea + execCommand: works where the async clipboard API is missing or denied.
    const ta = el('textarea', { readonly: '', 'aria-hidden': 'true', class: 'offscreen' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
    ta.remove();
    return ok;
  }

  function selectPre(pre) {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  async function copyEnv() {
    const button = $('copy-env');
    const pre = $('setup-env');
    const text = pre.textContent;
    let ok = false;
    try {
      if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (_) { ok = false; }
    if (!ok) ok = copyFallback(text);
    if (!ok) selectPre(pre);
    button.dataset.state = ok ? 'copied' : 'select';
    button.textContent = ok ? 'Copied' : 'Press Ctrl+C';
    setTimeout(() => { button.dataset.state = ''; button.textContent = 'Copy'; }, 2500);
  }

  // ---- start ---------------------------------------------------------------------------------

  function start() {
    $('copy-env').addEventListener('click', () => { copyEnv(); });
    $('budget-form').addEventListener('submit', saveBudgets);
    for (const id of ['activity-session', 'activity-kind']) $(id).addEventListener('change', () => { loadActivity(); });
    for (const ev of ['input', 'change']) $('budget-form').addEventListener(ev, () => { budgetFormDirty = true; });
    if (typeof source.forwardStatus === 'function') {
      $('forward-toggle').addEventListener('change', () => { toggleForward(); });
      $('forward-headers-form').addEventListener('submit', saveForwardHeaders);
      setInterval(() => { if (!document.hidden && !$('dashboard').hidden) loadForward(); }, FORWARD_POLL_MS);
    }
    if (typeof source.setupClaudeCode === 'function') {
      $('setup-auto').hidden = false;
      $('setup-claude').addEventListener('click', async () => {
        const result = $('setup-result');
        $('setup-claude').disabled = true;
        try {
          result.textContent = await source.setupClaudeCode();
          result.dataset.state = 'done';
        } catch (e) {
          result.textContent = `Could not set up Claude Code: ${describeError(e)}`;
          result.dataset.state = 'error';
          $('setup-claude').disabled = false;
        }
      });
    }
    if (typeof source.saveBudgets === 'function') {
      $('tabs').hidden = false;
      for (const b of document.querySelectorAll('#tabs [role=tab]')) b.addEventListener('click', () => showView(b.dataset.view));
    }
    const begin = () => { source.subscribe(refresh, setStatus); refresh(); };
    if (typeof source.locale === 'function') {
      // The C locale (none set) reads as en-US rather than WebKit's `$ 1.02`.
      const money = typeof source.moneyStyle === 'function'
        ? Promise.resolve().then(() => source.moneyStyle()).then((m) => { if (m && m.decimal) MONEY = m; }, () => {})
        : Promise.resolve();
      Promise.resolve().then(() => source.locale()).then((l) => useLocale(l || 'en-US'), () => useLocale('en-US'))
        .then(() => money).finally(begin);
    } else {
      begin();
    }
    setInterval(tick, 1000);
    setInterval(refresh, BACKSTOP_REFRESH_MS);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
