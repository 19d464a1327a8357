// Orchestrator's pages: one script, routed by the URL's hash, re-rendered from the read-only /api every 2 s.
'use strict';

const PHASE_COLORS = { Queued: '#9aa5b8', Starting: '#e0a526', Training: '#2e9e5b', Stalled: '#c0392b', Paused: '#8e44ad', Ended: '#1d2330' };
const TIME_PARTS = [
  ['productiveSeconds', 'productive', '#2e9e5b'], ['queueingSeconds', 'queueing', '#9aa5b8'], ['startingSeconds', 'starting', '#e0a526'],
  ['detectionSeconds', 'detection', '#c0392b'], ['recoverySeconds', 'recovery', '#8e44ad'], ['lostProgressSeconds', 'lost progress', '#e67e22'],
];
const CATEGORY_COLORS = ['#c0392b', '#8e44ad', '#e67e22', '#e0a526', '#3b7dd8', '#16a085', '#7f8c8d', '#2c3e50', '#d35400'];

const esc = Charts.esc;
const num = (v, digits = 2) => v == null ? '–' : Number(v).toFixed(digits);
const pct = v => v == null ? '–' : `${(v * 100).toFixed(1)}%`;
const time = iso => iso ? new Date(iso).toLocaleTimeString() : '–';
const ago = iso => iso ? `${((Date.now() - new Date(iso)) / 1000).toFixed(1)} s ago` : 'never';
const secs = s => s == null ? '–' : s >= 7200 ? `${(s / 3600).toFixed(1)} h` : s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`;
// A .NET TimeSpan as JSON ("d.hh:mm:ss.fffffff") in seconds.
function spanSeconds(span) {
  if (span == null) return null;
  const m = /^(-)?(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(span);
  if (!m) return null;
  const s = (+(m[2] || 0)) * 86400 + (+m[3]) * 3600 + (+m[4]) * 60 + (+m[5]);
  return m[1] ? -s : s;
}
const stateCell = s => `<span class="state-${esc(s)}">${esc(s)}</span>`;
const bar = f => `<div class="bar"><div style="width:${Math.max(0, Math.min(1, f || 0)) * 100}%"></div></div>`;

async function api(path) {
  const r = await fetch(`api/${path}`, { cache: 'no-store' });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function kindOf(job) {
  if (job.shards) return `recommendation, ${job.ranks ? `gang of ${job.ranks.length}` : 'single'} (erasure-coded shards)`;
  if (job.gang || job.ranks) return `data-parallel gang of ${(job.ranks || []).length} rank(s)`;
  if (job.assignment && job.assignment.arrayWidth > 1) return `fused array ${esc(job.assignment.arrayId)} (width ${job.assignment.arrayWidth})`;
  return 'single';
}

const pages = {
  async jobs() {
    const jobs = await api('jobs');
    const counts = {};
    for (const j of jobs) counts[j.state] = (counts[j.state] || 0) + 1;
    const rows = jobs.map(j => {
      const p = j.progress, frac = p && p.totalSteps ? p.step / p.totalSteps : (j.state === 'Succeeded' ? 1 : 0);
      const acc = j.result ? j.result.testAccuracy : p ? p.testAccuracy : null;
      return `<tr data-job="${esc(j.jobId)}"><td><a href="#/job/${encodeURIComponent(j.jobId)}">${esc(j.jobId)}</a></td><td>${esc(j.name)}</td><td>${stateCell(j.state)}</td>
        <td>${kindOf(j)}</td><td>${bar(frac)} <span class="muted">${p ? `${p.step} / ${p.totalSteps}` : ''}</span></td>
        <td class="num">${num(acc, 4)}</td><td>${esc(j.owner)}</td><td class="num">${j.time ? num(j.time.ettr, 3) : '–'}</td></tr>`;
    }).join('');
    const curves = jobs.filter(j => j.progress).slice(-8);
    return `<h1>Jobs</h1>
      <div class="cards">${Object.entries(counts).map(([s, c]) => `<div class="card"><div class="value">${c}</div><div class="label">${esc(s)}</div></div>`).join('') || '<div class="card"><div class="label">no jobs yet: submit one with orch submit</div></div>'}</div>
      <div class="charts">${Charts.bars('Progress (fraction of steps done)', curves.map(j => ({ label: j.jobId, value: j.progress.totalSteps ? j.progress.step / j.progress.totalSteps : 0 })), { max: 1, format: pct })}
      ${Charts.bars('ETTR (productive / wall time)', jobs.filter(j => j.time).slice(-12).map(j => ({ label: j.jobId, value: j.time.ettr, color: '#2e9e5b' })), { max: 1, format: v => v.toFixed(3) })}</div>
      <h2>All jobs</h2>
      <table><tr><th>Job</th><th>Name</th><th>State</th><th>Kind</th><th>Progress</th><th class="num">Accuracy</th><th>Owner</th><th class="num">ETTR</th></tr>${rows}</table>`;
  },

  async job(id) {
    const d = await api(`jobs/${encodeURIComponent(id)}`);
    const j = d.info, curve = d.history.curve, t = j.time;
    const loss = curve.map(p => [p.step, p.loss]), acc = curve.filter(p => p.testAccuracy != null).map(p => [p.step, p.testAccuracy]);
    const marks = d.history.marks;
    const end = j.endedAt ? new Date(j.endedAt) : new Date();
    const phaseRows = marks.map((m, i) => {
      const from = new Date(m.at), to = i + 1 < marks.length ? new Date(marks[i + 1].at) : end;
      return `<tr><td>${time(m.at)}</td><td><span style="color:${PHASE_COLORS[m.phase]}">${esc(m.phase)}</span></td><td class="num">${m.step}</td><td class="num">${m.phase === 'Ended' ? '' : secs((to - from) / 1000)}</td></tr>`;
    }).join('');
    const members = (j.ranks || []).map((r, i) => `<tr><td>${i}</td><td>${esc(r.nodeId)}/${esc(r.device)}</td><td>${r.assignmentEpoch}</td><td>${time(r.assignedAt)}</td></tr>`).join('');
    const incidents = d.incidents.map(v => incidentRow(v)).join('');
    return `<h1>Job ${esc(j.jobId)} <span class="muted">${esc(j.name)}</span></h1>
      <div class="cards">
        <div class="card"><div class="value">${stateCell(j.state)}</div><div class="label">state</div></div>
        <div class="card"><div class="value">${j.progress ? `${j.progress.step} / ${j.progress.totalSteps}` : '–'}</div><div class="label">steps</div></div>
        <div class="card"><div class="value">${num(j.result ? j.result.testAccuracy : j.progress && j.progress.testAccuracy, 4)}</div><div class="label">test accuracy</div></div>
        <div class="card"><div class="value">${t ? num(t.ettr, 3) : '–'}</div><div class="label">ETTR</div></div>
        <div class="card"><div class="value">${j.recoveries}</div><div class="label">recoveries</div></div>
        <div class="card"><div class="value">${esc(j.model)}</div><div class="label">${kindOf(j)}, owner ${esc(j.owner)}</div></div>
      </div>
      ${j.failure ? `<p class="failure">Failed (${esc(j.failure.cause)}, ${esc(j.failure.category)}): ${esc(j.failure.message)}</p>` : ''}
      <div class="charts" id="curves">
        ${Charts.line('Training loss', [{ name: 'loss', color: '#c0392b', points: loss }], { xLabel: 'step' })}
        ${Charts.line('Test accuracy', [{ name: 'test accuracy', color: '#2e9e5b', points: acc }], { xLabel: 'step', yMin: 0, yMax: 1 })}
      </div>
      <h2>Where the time went</h2>
      ${t ? Charts.stacked(`Wall time ${secs(t.wallSeconds)}: ETTR ${num(t.ettr, 3)}${t.lostSteps ? `, ${t.lostSteps} steps redone` : ''}`, [{ label: j.jobId, parts: TIME_PARTS.map(([k, n, c]) => ({ name: n, value: t[k], color: c })) }]) : ''}
      <table><tr><th>From</th><th>Phase</th><th class="num">Step</th><th class="num">For</th></tr>${phaseRows}</table>
      ${members ? `<h2>Ranks (membership epoch ${j.gang ? j.gang.membershipEpoch : '–'})</h2><table><tr><th>Rank</th><th>Device</th><th>Assignment epoch</th><th>Placed</th></tr>${members}</table>` : ''}
      <h2>Incidents</h2>
      ${incidents ? `<table>${incidentHeader()}${incidents}</table>` : '<p class="muted">none</p>'}
      <h2>Events</h2>
      <table><tr><th>Time</th><th>Source</th><th>Kind</th><th>What</th></tr>${d.events.slice().reverse().map(e => `<tr data-kind="${esc(e.kind)}"><td>${time(e.at)}</td><td>${esc(e.source)}</td><td>${esc(e.kind)}</td><td>${esc(e.message)}</td></tr>`).join('')}</table>`;
  },

  async nodes() {
    const nodes = await api('nodes');
    const rows = nodes.map(n => `<tr><td>${esc(n.nodeId)}</td><td class="health-${esc(n.health)}">${esc(n.health)}</td><td>${n.devices.length}</td>
      <td>${n.devices.map(dev => { const a = n.assignments.filter(x => x.device === dev); return `${esc(dev)}: ${a.length ? a.map(x => `<a href="#/job/${encodeURIComponent(x.jobId)}">${esc(x.jobId)}</a>`).join(', ') : '<span class="muted">idle</span>'}`; }).join('<br>')}</td>
      <td>${ago(n.lastHeartbeat)}</td><td>${esc(n.host || '')} ${n.processId || ''}</td></tr>`).join('');
    const busy = nodes.map(n => ({ label: n.nodeId, value: n.devices.length ? new Set(n.assignments.map(a => a.device)).size / n.devices.length : 0, color: n.health === 'Dead' ? '#c0392b' : '#3b7dd8' }));
    return `<h1>Nodes</h1>
      <div class="cards"><div class="card"><div class="value">${nodes.length}</div><div class="label">nodes</div></div>
      <div class="card"><div class="value">${nodes.filter(n => n.health === 'Healthy').length}</div><div class="label">healthy</div></div>
      <div class="card"><div class="value">${nodes.reduce((a, n) => a + n.devices.length, 0)}</div><div class="label">devices</div></div></div>
      <div class="charts">${Charts.bars('Devices in use', busy, { max: 1, format: pct })}</div>
      <table><tr><th>Node</th><th>Health</th><th>Devices</th><th>What runs where</th><th>Last heartbeat</th><th>Host / PID</th></tr>${rows}</table>`;
  },

  async arrays() {
    const arrays = await api('arrays');
    const rows = arrays.map(a => `<tr><td>${esc(a.arrayId)}</td><td>${esc(a.nodeId)}/${esc(a.device)}</td><td class="num">${a.width}</td>
      <td>${a.members.map(m => `<a href="#/job/${encodeURIComponent(m.jobId)}">${esc(m.jobId)}</a> ${stateCell(m.state)} ${m.step}/${m.totalSteps}`).join('<br>')}</td>
      <td class="num">${num(a.samplesPerSecond, 0)}</td><td>${bar(a.utilization)} ${pct(a.utilization)}</td></tr>`).join('');
    return `<h1>Fused arrays</h1>
      <p class="muted">Compatible small jobs trained as one fused model on one device (HFTA); a job alone is an array of width 1.</p>
      <div class="charts">${Charts.bars('Samples/s per array', arrays.map(a => ({ label: `${a.arrayId} (×${a.width})`, value: a.samplesPerSecond })))}
      ${Charts.bars('Array width', arrays.map(a => ({ label: a.arrayId, value: a.width, color: '#16a085' })))}</div>
      <table><tr><th>Array</th><th>Device</th><th class="num">Width</th><th>Members</th><th class="num">Samples/s</th><th>Utilization</th></tr>${rows || '<tr><td colspan="6" class="muted">no arrays running</td></tr>'}</table>`;
  },

  async incidents() {
    const incidents = await api('incidents?last=500');
    const categories = [...new Set(incidents.map(v => v.incident.category))].sort();
    const events = incidents.map(v => ({ at: new Date(v.incident.at).getTime(), row: v.incident.category, label: `${v.incident.category}: ${v.incident.message}` }));
    const counts = categories.map((c, i) => ({ label: c, value: incidents.filter(v => v.incident.category === c).length, color: CATEGORY_COLORS[i % CATEGORY_COLORS.length] }));
    return `<h1>Incidents</h1>
      <p class="muted">Every failure the cluster noticed, in the taxonomy of Meta's reliability study; recovery: until each job it hit trained again.</p>
      <div class="charts">${Charts.timeline('When', events, categories, CATEGORY_COLORS)}${Charts.bars('By category', counts, { format: v => v.toFixed(0) })}</div>
      <table>${incidentHeader()}${incidents.slice().reverse().map(incidentRow).join('') || '<tr><td colspan="8" class="muted">no incidents recorded</td></tr>'}</table>`;
  },

  async reliability() {
    const r = await api('reliability?devices=8,64,512,1024,4096,16384,100000');
    const cats = r.categories.filter(c => c.failures > 0);
    const jobRows = r.jobs.map(j => `<tr><td><a href="#/job/${encodeURIComponent(j.jobId)}">${esc(j.jobId)}</a></td><td>${stateCell(j.state)}</td><td class="num">${num(j.time.ettr, 3)}</td>
      ${TIME_PARTS.map(([k]) => `<td class="num">${secs(j.time[k])}</td>`).join('')}<td class="num">${j.time.lostSteps}</td></tr>`).join('');
    const buckets = [0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0001];
    const histogram = buckets.slice(0, -1).map((b, i) => ({ label: `${b.toFixed(2)}–${Math.min(1, buckets[i + 1]).toFixed(2)}`, value: r.jobs.filter(j => j.time.ettr >= b && j.time.ettr < buckets[i + 1]).length, color: '#2e9e5b' }));
    const colors = ['#c0392b', '#3b7dd8', '#16a085'];
    const series = r.projections.flatMap((p, i) => [
      { name: `${p.source}: checkpoint-restart`, color: colors[i % 3], points: p.rows.map(x => [x.devices, x.ettrCheckpoint]) },
      { name: `${p.source}: erasure-coded`, color: colors[i % 3], dashed: true, points: p.rows.map(x => [x.devices, x.ettrErasureCoded]) },
    ]);
    const projRows = r.projections.flatMap(p => p.rows.map(x => `<tr><td>${esc(p.source)}</td><td class="num">${num(p.failuresPerThousandNodeDays, 2)}</td><td class="num">${x.devices.toLocaleString('en')}</td>
      <td class="num">${secs(spanSeconds(x.jobMttf))}</td><td class="num">${secs(spanSeconds(x.checkpointInterval))}</td><td class="num">${num(x.ettrCheckpoint, 4)}</td><td class="num">${num(x.ettrErasureCoded, 4)}</td></tr>`)).join('');
    const regime = r.failures === 0 ? 'no infrastructure failure recorded yet'
      : r.failuresPerThousandNodeDays > 6.5 ? `${num(r.failuresPerThousandNodeDays / 6.5, 0)}× RSC-1's rate: a failure-heavy regime (a chaos test, or a short observation)`
      : r.failuresPerThousandNodeDays > 2.34 ? "between the study's two clusters" : "below both of the study's clusters";
    return `<h1>Reliability</h1>
      <div class="cards">
        <div class="card"><div class="value">${num(r.nodeDays, 4)}</div><div class="label">node-days observed</div></div>
        <div class="card"><div class="value">${r.failures}</div><div class="label">infrastructure failures</div></div>
        <div class="card"><div class="value">${num(r.failuresPerThousandNodeDays, 2)}</div><div class="label">failures per 1,000 node-days (RSC-1 6.50, RSC-2 2.34)</div></div>
        <div class="card"><div class="value">${r.clusterMttfHours == null ? '–' : secs(r.clusterMttfHours * 3600)}</div><div class="label">node MTTF (node-time per failure)</div></div>
        <div class="card"><div class="value">${secs(r.medianRecoverySeconds)}</div><div class="label">median recovery, failure to training again</div></div>
      </div>
      <p>This cluster: <strong>${regime}</strong>. The study (Meta, 11 months, 150 million A100 GPU-hours): ${r.study.map(s => `${esc(s.cluster)} ${s.gpus.toLocaleString('en')} GPUs, ${s.failuresPerThousandNodeDays} failures per 1,000 node-days, job MTTF ${num(s.jobMttfHoursAt16kGpus, 1)} h at 16,384 GPUs`).join('; ')}.</p>
      <div class="charts">
        ${Charts.line('Projected E[ETTR] by job size (checkpoint at the Daly interval: solid; erasure-coded: dashed)', series, { xLabel: 'devices (log scale)', logX: true, yMin: 0, yMax: 1, width: 620, height: 260 })}
        ${Charts.bars('ETTR distribution (jobs)', histogram, { format: v => v.toFixed(0) })}
      </div>
      <h2>MTTF by failure category</h2>
      <table><tr><th>Category</th><th class="num">Failures</th><th class="num">MTTF</th></tr>${cats.map(c => `<tr><td>${esc(c.name)}</td><td class="num">${c.failures}</td><td class="num">${secs(spanSeconds(c.mttf))}</td></tr>`).join('') || '<tr><td colspan="3" class="muted">no failures</td></tr>'}</table>
      <h2>MTTF by node</h2>
      <table><tr><th>Node</th><th class="num">Node-days</th><th class="num">Failures</th><th class="num">MTTF</th></tr>${r.nodes.map(n => `<tr><td>${esc(n.name)}</td><td class="num">${num(n.nodeDays, 4)}</td><td class="num">${n.failures}</td><td class="num">${n.mttf ? secs(spanSeconds(n.mttf)) : '–'}</td></tr>`).join('')}</table>
      <h2>ETTR per job</h2>
      <table><tr><th>Job</th><th>State</th><th class="num">ETTR</th>${TIME_PARTS.map(([, n]) => `<th class="num">${n}</th>`).join('')}<th class="num">steps redone</th></tr>${jobRows}</table>
      <h2>Projections</h2>
      <p class="muted">E[ETTR] ≈ [1 − N·r_f·(u0 + Δt/2)] / (1 + w/Δt) with w = ${secs(spanSeconds(r.checkpointWrite))}, u0 = ${secs(spanSeconds(r.restart))}${r.medianRecoverySeconds != null ? ' (measured here)' : ''}; erasure-coded: 1 − N·r_f·rebuild, rebuild ${secs(spanSeconds(r.rebuild))}.</p>
      <table><tr><th>Failure rate from</th><th class="num">per 1,000 node-days</th><th class="num">Devices</th><th class="num">Job MTTF</th><th class="num">Daly interval</th><th class="num">E[ETTR] checkpoint</th><th class="num">E[ETTR] erasure-coded</th></tr>${projRows}</table>`;
  },
};

function incidentHeader() {
  return '<tr><th>Time</th><th>Category</th><th>What</th><th>Node / silo</th><th>Jobs</th><th class="num">Detected after</th><th class="num">Recovery</th><th class="num">Steps lost</th></tr>';
}

function incidentRow(v) {
  const i = v.incident, jobs = v.jobs;
  return `<tr data-category="${esc(i.category)}"><td>${time(i.at)}</td><td>${esc(i.category)}</td><td>${esc(i.message)}</td><td>${esc(i.nodeId || i.silo || '')}</td>
    <td>${i.jobs.map(x => `<a href="#/job/${encodeURIComponent(x)}">${esc(x)}</a>`).join(', ')}</td>
    <td class="num">${secs(i.detectionSeconds)}</td><td class="num">${jobs.map(j => secs(j.recoverySeconds)).join(', ') || '–'}</td><td class="num">${jobs.map(j => j.lostSteps).join(', ') || '–'}</td></tr>`;
}

async function render() {
  const main = document.getElementById('page'), status = document.getElementById('status');
  const [, name = 'jobs', arg] = (location.hash || '#/jobs').split('/').map(decodeURIComponent);
  // Own pages only: a name like 'constructor' must not reach Object.prototype (and run what the hash says).
  const page = Object.hasOwn(pages, name) ? pages[name] : pages.jobs;
  try {
    main.innerHTML = await page(arg);
    main.dataset.page = name;
    main.dataset.loaded = 'true';
    document.title = `Orchestrator: ${name}${arg ? ` ${arg}` : ''}`;
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.innerHTML = `<span class="error">${esc(e.message)}</span>`;
    if (main.dataset.page !== name) main.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

window.addEventListener('hashchange', render);
render();
setInterval(render, 2000);
