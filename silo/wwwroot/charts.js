// Small SVG charts for the pages: lines (curves, projections), bars, stacked bars and phase timelines.
'use strict';

// Every text a chart shows (titles, labels, series and row names) is escaped here: callers pass plain strings,
// which may come from users (job ids, owners, failure messages).
const Charts = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const fmt = v => Math.abs(v) >= 1000 ? v.toLocaleString('en', { maximumFractionDigits: 0 })
    : Math.abs(v) >= 10 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2);

  function frame(title, width, height, body) {
    return `<div class="chart"><div class="title">${esc(title)}</div><svg xmlns="${NS}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">${body}</svg></div>`;
  }

  function ticks(min, max, n) {
    if (max <= min) return [min];
    const out = [];
    for (let i = 0; i <= n; i++) out.push(min + (max - min) * i / n);
    return out;
  }

  // series: [{ name, color, points: [[x, y], ...] }]; options: { xLabel, logX, yMin, yMax }
  function line(title, series, options = {}) {
    const W = options.width || 460, H = options.height || 220, L = 46, R = 10, T = 10, B = 34;
    const all = series.flatMap(s => s.points);
    if (all.length === 0) return frame(title, W, 40, `<text x="8" y="24">no data yet</text>`);
    const tx = x => options.logX ? Math.log10(x) : x;
    let [x0, x1] = [Math.min(...all.map(p => tx(p[0]))), Math.max(...all.map(p => tx(p[0])))];
    let [y0, y1] = [options.yMin ?? Math.min(...all.map(p => p[1])), options.yMax ?? Math.max(...all.map(p => p[1]))];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 = y0 + 1; }
    const sx = x => L + (tx(x) - x0) / (x1 - x0) * (W - L - R), sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    let body = `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#aab"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#aab"/>`;
    for (const y of ticks(y0, y1, 4)) body += `<text x="${L - 4}" y="${sy(y) + 3}" text-anchor="end">${fmt(y)}</text><line x1="${L}" x2="${W - R}" y1="${sy(y)}" y2="${sy(y)}" stroke="#eee"/>`;
    const xTicks = options.logX && x1 - x0 >= 1
      ? Array.from({ length: Math.floor(x1) - Math.ceil(x0) + 1 }, (_, i) => Math.ceil(x0) + i) // decades
      : ticks(x0, x1, 4);
    for (const x of xTicks) {
      const v = options.logX ? Math.pow(10, x) : x;
      body += `<text x="${sx(v)}" y="${H - B + 13}" text-anchor="middle">${fmt(v)}</text>`;
    }
    body += `<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">${esc(options.xLabel)}</text>`;
    for (const s of series) {
      if (s.points.length === 0) continue;
      const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
      body += `<path class="series" data-series="${esc(s.name)}" d="${d}" fill="none" stroke="${esc(s.color)}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`;
      if (s.points.length === 1) body += `<circle cx="${sx(s.points[0][0])}" cy="${sy(s.points[0][1])}" r="3" fill="${esc(s.color)}"/>`;
    }
    return frame(title, W, H, body) + legend(series);
  }

  // items: [{ label, value, color }]
  function bars(title, items, options = {}) {
    const W = options.width || 460, rowH = 18, L = options.labelWidth || 130, H = Math.max(30, items.length * rowH + 10);
    if (items.length === 0) return frame(title, W, 40, `<text x="8" y="24">no data yet</text>`);
    const max = options.max ?? Math.max(...items.map(i => i.value), 1e-9);
    let body = '';
    items.forEach((item, i) => {
      const w = Math.max(0, item.value / max * (W - L - 60)), y = 5 + i * rowH;
      body += `<text x="${L - 5}" y="${y + 11}" text-anchor="end">${esc(item.label)}</text>`
        + `<rect x="${L}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${esc(item.color || '#3b7dd8')}"/>`
        + `<text x="${L + w + 4}" y="${y + 11}">${options.format ? options.format(item.value) : fmt(item.value)}</text>`;
    });
    return frame(title, W, H, body);
  }

  // rows: [{ label, parts: [{ name, value, color }] }] — each row's parts share one horizontal bar.
  function stacked(title, rows, options = {}) {
    const W = options.width || 900, rowH = 20, L = options.labelWidth || 130, H = Math.max(30, rows.length * rowH + 10);
    if (rows.length === 0) return frame(title, W, 40, `<text x="8" y="24">no data yet</text>`);
    let body = '';
    rows.forEach((row, i) => {
      const total = row.parts.reduce((a, p) => a + p.value, 0) || 1, y = 5 + i * rowH;
      let x = L;
      body += `<text x="${L - 5}" y="${y + 12}" text-anchor="end">${esc(row.label)}</text>`;
      for (const p of row.parts) {
        const w = p.value / total * (W - L - 10);
        if (w > 0) body += `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${esc(p.color)}"><title>${esc(p.name)}: ${fmt(p.value)}</title></rect>`;
        x += w;
      }
    });
    const names = rows[0].parts.map(p => ({ name: p.name, color: p.color }));
    return frame(title, W, H, body) + legend(names);
  }

  // Dots on a time axis, one row per category: events = [{ at: Date, row, label }]
  function timeline(title, events, rows, colors, options = {}) {
    const W = options.width || 760, rowH = 20, L = 130, H = rows.length * rowH + 30;
    if (events.length === 0) return frame(title, W, 40, `<text x="8" y="24">nothing yet</text>`);
    const t0 = Math.min(...events.map(e => e.at)), t1 = Math.max(...events.map(e => e.at), t0 + 1000);
    const sx = t => L + (t - t0) / (t1 - t0) * (W - L - 16);
    let body = '';
    rows.forEach((r, i) => body += `<text x="${L - 5}" y="${i * rowH + 16}" text-anchor="end">${esc(r)}</text><line x1="${L}" x2="${W - 10}" y1="${i * rowH + 12}" y2="${i * rowH + 12}" stroke="#eee"/>`);
    for (const e of events) {
      const i = rows.indexOf(e.row);
      body += `<circle cx="${sx(e.at).toFixed(1)}" cy="${i * rowH + 12}" r="5" fill="${esc(colors[i % colors.length])}"><title>${esc(e.label)}</title></circle>`;
    }
    body += `<text x="${L}" y="${H - 4}">${new Date(t0).toLocaleTimeString()}</text><text x="${W - 10}" y="${H - 4}" text-anchor="end">${new Date(t1).toLocaleTimeString()}</text>`;
    return frame(title, W, H, body);
  }

  function legend(series) {
    return `<div class="legend">${series.map(s => `<span><i style="background:${esc(s.color)}"></i>${esc(s.name)}</span>`).join('')}</div>`;
  }

  return { line, bars, stacked, timeline, fmt, esc };
})();
