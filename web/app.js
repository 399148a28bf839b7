// steward relay web UI. Plain DOM, no framework: the inputs table follows
// the relay's Server-Sent Events (/api/events) and re-reads an input from the
// REST API when one of its events arrives; a slow full refresh of
// /api/inputs keeps the counters (and the ffmpeg jobs' and push outputs'
// states, which have no events) current and repairs anything missed while
// the event stream was down. Under each input: what its source says (an
// ffmpeg input's stream and jobs, a camera's last error), its outputs, and
// for an ffmpeg input a form to push it elsewhere. The resource charts (uPlot) poll
// /system-resources every 2 s. Data from the relay reaches the page through
// textContent only, never as HTML.
'use strict';

const REFRESH_MS = 5000;
const RESOURCES_MS = 2000;
const CHART_POINTS = 180; // 6 minutes at one point every 2 s

const rowsBody = document.getElementById('input-rows');
const summary = document.getElementById('summary');
const live = document.getElementById('live');
const form = document.getElementById('add-form');
const formMsg = document.getElementById('form-msg');

// name -> {input, row, outRow, cells, details, list, pushForm, preview, timer}
const inputs = new Map();
// Bumped whenever a row is added or removed, so that a full refresh whose
// answer is older than such a change does not undo it.
let rowChanges = 0;
let process = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// fetch() that resolves to {status, body} with the JSON body parsed, and
// turns the relay's {"error": "..."} into an Error carrying that message.
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let j = null;
  try {
    j = await r.json();
  } catch (e) {
    j = null;
  }
  if (!r.ok) {
    const msg = j && typeof j.error === 'string' ? j.error : r.statusText;
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return j;
}

function fmtBytes(v) {
  if (v == null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

function fmtKbps(v) {
  if (v == null || !(v > 0)) return '';
  return v >= 10000 ? (v / 1000).toFixed(1) + ' Mb/s' : Math.round(v) + ' kb/s';
}

function plural(n, word) {
  return n + ' ' + word + (n === 1 ? '' : 's');
}

function fmtAge(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

// Unix seconds as local HH:MM:SS, for the charts' time axis.
function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

function streamUrl(name) {
  return '/stream/' + encodeURIComponent(name);
}

function tsUrl(name) {
  return '/stream/' + encodeURIComponent(name) + '.ts';
}

function inputPath(name) {
  return '/api/inputs/' + encodeURIComponent(name);
}

function snapshotUrl(name) {
  return '/snapshot/' + encodeURIComponent(name) + '.jpg?t=' + Date.now();
}

// ---- inputs table -------------------------------------------------------

// A browser opens at most 6 connections to one server, and every streaming
// preview holds one for as long as it shows (the event stream holds
// another). So at most MAX_STREAMS previews stream; the others show the
// input's snapshot, reloaded every second, which holds no connection and
// is no output of the input. Clicking a preview reopens it (as a stream
// if a slot is free).
const MAX_STREAMS = 4;
const SNAPSHOT_MS = 1000;

function streamsOpen() {
  let n = 0;
  for (const entry of inputs.values()) if (entry.mode === 'stream') n++;
  return n;
}

function stopPreview(entry) {
  clearTimeout(entry.snapTimer);
  if (entry.preview) {
    // An image that stays in memory keeps its stream open: cut it first.
    entry.preview.src = 'data:,';
    entry.preview = null;
  }
  entry.mode = 'off';
}

function setPreview(entry, on) {
  const cell = entry.cells.preview;
  stopPreview(entry);
  cell.textContent = '';
  const name = entry.input.name;
  const stream = on && streamsOpen() < MAX_STREAMS;
  if (stream || (on && !entry.input.on_demand)) {
    const img = el('img', { class: 'preview', alt: 'preview of ' + name });
    if (stream) {
      entry.mode = 'stream';
      img.title = 'live stream; click to reconnect';
      img.src = streamUrl(name) + '?t=' + Date.now();
    } else {
      // The next snapshot is asked for once this one loaded (or failed).
      entry.mode = 'snapshot';
      img.title = 'snapshot every second (too many live previews); click to stream';
      const next = () => {
        clearTimeout(entry.snapTimer);
        entry.snapTimer = setTimeout(() => {
          if (entry.preview === img) img.src = snapshotUrl(name);
        }, SNAPSHOT_MS);
      };
      img.addEventListener('load', next);
      img.addEventListener('error', next);
      img.src = snapshotUrl(name);
    }
    img.addEventListener('click', () => setPreview(entry, true));
    entry.preview = img;
    cell.append(img);
  } else {
    // Watching an on-demand input starts its source, so it is asked for.
    const full = on && !stream;
    cell.append(el('div', { class: 'preview-off' },
      el('button', {
        type: 'button',
        title: full ? 'too many live previews: close one first' : 'start a live preview',
        onclick: () => setPreview(entry, true),
      }, 'Watch')));
  }
}

function addRow(input) {
  const cells = {
    preview: el('td'),
    name: el('td', { class: 'name' }),
    kind: el('td'),
    url: el('td', { class: 'url' }),
    state: el('td'),
    viewers: el('td', { class: 'num' }),
    outputs: el('td', { class: 'num' }),
    onDemand: el('td'),
    framesIn: el('td', { class: 'num' }),
    actions: el('td'),
  };
  const row = el('tr', { class: 'input' }, ...Object.values(cells));
  row.dataset.name = input.name;
  const details = el('div', { class: 'details' });
  const list = el('ul', { class: 'outputs-list' });
  const under = el('td', { colspan: '9' }, details, list);
  const outRow = el('tr', { class: 'outputs' }, el('td'), under);
  outRow.dataset.name = input.name;
  const entry = { input, row, outRow, cells, details, list, under, pushForm: null,
    preview: null, mode: 'off', timer: null, snapTimer: null };
  entry.motionButton = el('button', {
    type: 'button',
    class: 'motion-toggle',
    onclick: () => toggleMotion(entry),
  }, 'Motion');
  entry.recButton = el('button', {
    type: 'button',
    class: 'rec-toggle',
    title: 'start or stop recording this input',
    onclick: () => toggleRecord(entry),
  }, 'Record');
  cells.actions.append(entry.motionButton, entry.recButton, el('button', {
    type: 'button',
    class: 'rec-open',
    title: 'recordings of this input: sessions, segments, the last 24 hours, playback',
    onclick: () => openRecordings(entry.input.name),
  }, 'Recordings'), el('button', {
    type: 'button',
    class: 'danger',
    title: 'delete this input and all its outputs',
    onclick: () => deleteInput(entry),
  }, 'Delete'));
  inputs.set(input.name, entry);
  rowChanges++;
  const empty = rowsBody.querySelector('tr.empty');
  if (empty) empty.remove();
  rowsBody.append(row, outRow);
  updateRow(entry, input);
  setPreview(entry, !input.on_demand);
  scheduleOutputs(entry);
  return entry;
}

function badge(state, extra) {
  const s = String(state || 'unknown');
  return el('span', { class: 'state state-' + s + (extra ? ' ' + extra : '') }, s);
}

function setState(entry, state) {
  entry.input.state = state;
  const s = entry.cells.state;
  s.textContent = '';
  s.append(badge(state));
  renderMotion(entry);
}

// Motion detection, beside the state: "motion" while something moves,
// "quiet" while the processor watches and nothing does.
function renderMotion(entry) {
  const m = entry.input.motion;
  const on = !!(m && m.enabled);
  if (entry.motionButton) {
    entry.motionButton.textContent = on ? 'Motion off' : 'Motion on';
    entry.motionButton.title = on ? 'stop motion detection on this input'
      : 'detect motion on this input (events on /api/events)';
  }
  const cell = entry.cells.state;
  let b = cell.querySelector('.motion');
  if (!on) {
    if (b) b.remove();
    return;
  }
  if (!b) {
    b = el('span');
    cell.append(b);
  }
  b.className = 'motion' + (m.active ? ' motion-active' : '');
  b.textContent = m.active ? 'motion' : 'quiet';
  b.title = m.active && m.box
    ? 'motion: ' + m.score.toFixed(2) + ' % of the picture, at ' + m.box.x + ',' + m.box.y +
      ' ' + m.box.w + '\u00d7' + m.box.h
    : 'motion detection at ' + m.fps + ' fps: nothing moves';
}

async function toggleMotion(entry) {
  const name = entry.input.name;
  const on = !(entry.input.motion && entry.input.motion.enabled);
  try {
    entry.input.motion = await api('PATCH', inputPath(name) + '/motion', { enabled: on });
    renderMotion(entry);
  } catch (e) {
    window.alert('Could not change motion detection of "' + name + '": ' + e.message);
  }
}

// "h264 (High) · 1280×720 · 25 fps · 2.1 Mb/s · aac 48000 Hz 2 ch", from
// what ffmpeg said about the camera's streams.
function mediaText(m) {
  if (!m) return '';
  const parts = [];
  if (m.video_codec) {
    parts.push(m.video_codec + (m.video_profile ? ' (' + m.video_profile + ')' : ''));
  }
  if (m.width > 0 && m.height > 0) parts.push(m.width + '\u00d7' + m.height);
  if (m.fps > 0) parts.push((Math.round(m.fps * 100) / 100) + ' fps');
  if (m.bitrate_kbps > 0) parts.push(fmtKbps(m.bitrate_kbps));
  if (m.audio_codec) {
    let a = m.audio_codec;
    if (m.sample_rate > 0) a += ' ' + m.sample_rate + ' Hz';
    if (m.channels > 0) a += ' ' + m.channels + ' ch';
    parts.push(a);
  }
  return parts.join(' \u00b7 ');
}

// One ffmpeg job (ingest, decoder or push): its state, child, restarts,
// how the last child ended and its last words (redacted by the relay).
function jobParts(job) {
  const parts = [];
  if (job.pid > 0) parts.push(el('span', { class: 'pid' }, 'pid ' + job.pid));
  parts.push(el('span', { class: 'restarts' }, plural(job.restarts || 0, 'restart')));
  if (job.last_exit) parts.push(el('span', { class: 'last-exit' }, 'last exit: ' + job.last_exit));
  if (job.last_error) {
    parts.push(el('span', { class: 'last-error', title: job.last_error }, job.last_error));
  }
  return parts;
}

function jobLine(label, job) {
  const line = el('div', { class: 'job job-' + label });
  if (!job) return line;
  line.append(el('span', { class: 'label' }, label), badge(job.state, 'small'), ...jobParts(job));
  return line;
}

// What an input's source says, under its row: an ffmpeg input's streams,
// its ingest and decoder jobs and its .ts link; a camera's last error and
// counters. Nothing for a test pattern.
function renderDetails(entry) {
  const i = entry.input;
  const d = entry.details;
  d.textContent = '';
  if (i.kind === 'ffmpeg') {
    const ff = i.ffmpeg || {};
    const media = mediaText(ff.media);
    const opts = [];
    if (i.rtsp_transport === 'udp') opts.push('rtsp over udp');
    if (i.loop) opts.push('loop');
    if (i.timeout) opts.push('timeout ' + i.timeout + ' s');
    const ts = ff.ts || {};
    const tsParts = [];
    if (ts.bytes_in != null) tsParts.push(fmtBytes(ts.bytes_in) + ' in');
    if (ts.keyframes != null) tsParts.push(plural(ts.keyframes, 'keyframe'));
    if (ff.speed > 0) tsParts.push('speed ' + ff.speed.toFixed(2) + '\u00d7');
    if (i.cards) tsParts.push(plural(i.cards, 'card'));
    d.append(
      el('div', { class: 'media' },
        el('span', { class: 'label' }, 'stream'),
        el('span', { class: 'codec' }, media || 'no stream information yet'),
        el('a', { class: 'ts-link', href: tsUrl(i.name), target: '_blank',
          title: 'MPEG-TS with the camera\'s codecs, for ffplay, VLC or ffmpeg' },
        i.name + '.ts'),
        el('span', {}, tsParts.join(', ')),
        el('span', {}, opts.join(', '))),
      jobLine('ingest', ff.ingest),
      jobLine('decoder', ff.decoder));
  } else if (i.kind === 'mjpeg') {
    const c = i.camera || {};
    const counters = [plural(c.connects || 0, 'connect'), plural(i.cards || 0, 'card')];
    if (c.garbage_bytes) counters.push(fmtBytes(c.garbage_bytes) + ' garbage');
    if (c.bad_parts) counters.push(plural(c.bad_parts, 'bad part'));
    if (c.oversize) counters.push(c.oversize + ' oversize');
    if (c.length_mismatch) counters.push(c.length_mismatch + ' length mismatch');
    d.append(el('div', { class: 'camera' },
      el('span', { class: 'label' }, 'camera'),
      el('span', { class: 'counters' }, counters.join(', ')),
      i.last_error
        ? el('span', { class: 'last-error', title: i.last_error }, 'last error: ' + i.last_error)
        : el('span', { class: 'no-error' }, 'no error')));
  }
  if (i.record && i.recording) {
    const r = i.recording;
    const parts = [];
    if (r.mode === 'motion') {
      parts.push('around motion: ' + r.pre_roll + ' s before, ' + r.post_roll + ' s after');
      if (r.ring) parts.push('pre-roll ring ' + fmtBytes(r.ring.bytes) + ' (' +
        (r.ring.ms / 1000).toFixed(1) + ' s)');
    }
    if (r.session) parts.push('session ' + r.session);
    parts.push(r.segment + ' s segments');
    parts.push(fmtBytes(r.bytes || 0) + ' written');
    if (r.restarts) parts.push(plural(r.restarts, 'restart'));
    d.append(el('div', { class: 'recording' },
      el('span', { class: 'label' }, 'recording'),
      badge(r.state, 'small'),
      el('span', {}, parts.join(', ')),
      r.last_error ? el('span', { class: 'last-error', title: r.last_error }, r.last_error) : ''));
  }
  d.hidden = d.childNodes.length === 0;
  setPushForm(entry, i.kind === 'ffmpeg');
}

// The form that adds a push output; only ffmpeg inputs have one. Built once
// per row, so what is being typed survives the refreshes.
function setPushForm(entry, on) {
  if (!on) {
    if (entry.pushForm) entry.pushForm.remove();
    entry.pushForm = null;
    return;
  }
  if (entry.pushForm) return;
  const url = el('input', { name: 'url', size: '40', required: '', maxlength: '2048',
    placeholder: 'rtmp://server/live/key', 'aria-label': 'push URL' });
  const msg = el('span', { class: 'msg', role: 'status' });
  const f = el('form', { class: 'push-form', autocomplete: 'off' },
    el('span', { class: 'label' }, 'push to'), url,
    el('button', { type: 'submit', class: 'small' }, 'Add push'), msg);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = entry.input.name;
    msg.className = 'msg';
    msg.textContent = 'adding\u2026';
    try {
      const o = await api('POST', inputPath(name) + '/outputs',
        { type: 'push', url: url.value.trim() });
      msg.className = 'msg ok';
      msg.textContent = 'added output #' + o.id;
      url.value = '';
    } catch (e) {
      msg.className = 'msg error';
      msg.textContent = (e.status ? e.status + ': ' : '') + e.message;
    }
    scheduleOutputs(entry);
  });
  entry.pushForm = f;
  entry.under.append(f);
}

function updateRow(entry, input) {
  entry.input = Object.assign(entry.input, input);
  const i = entry.input;
  const c = entry.cells;
  c.name.textContent = i.name;
  c.kind.textContent = i.kind;
  if (i.kind === 'test') {
    c.url.textContent = i.width + '\u00d7' + i.height + ' @ ' + i.fps + ' fps';
    c.url.title = '';
  } else {
    c.url.textContent = i.url || '';
    c.url.title = i.url || '';
  }
  setState(entry, i.state);
  c.viewers.textContent = i.viewers;
  c.outputs.textContent = i.outputs;
  c.onDemand.textContent = i.on_demand ? 'yes' : 'no';
  c.framesIn.textContent = i.frames_in;
  if (entry.recButton) {
    entry.recButton.textContent = i.record ? 'Stop recording' : 'Record';
    entry.recButton.classList.toggle('on', !!i.record);
  }
  renderDetails(entry);
}

function removeRow(name) {
  const entry = inputs.get(name);
  if (!entry) return;
  stopPreview(entry);
  clearTimeout(entry.timer);
  entry.row.remove();
  entry.outRow.remove();
  inputs.delete(name);
  rowChanges++;
  if (inputs.size === 0) {
    rowsBody.append(el('tr', { class: 'empty' }, el('td', { colspan: '10' }, 'no inputs')));
  }
  updateSummary();
}

function renderOutputs(entry, outputs) {
  const list = entry.list;
  list.textContent = '';
  if (outputs.length === 0) list.append(el('li', { class: 'none' }, 'no outputs'));
  for (const o of outputs) {
    if (o.type === 'push') {
      list.append(pushItem(entry, o));
      continue;
    }
    list.append(el('li', { class: 'viewer' },
      el('span', {}, 'output #' + o.id),
      el('span', {}, o.type + ' ' + o.peer),
      el('span', {}, 'for ' + fmtAge(o.started)),
      el('span', {}, o.frames + ' frames, ' + o.dropped + ' dropped, ' + o.queued + ' queued'),
      el('button', {
        type: 'button',
        class: 'danger small',
        title: 'close this viewer',
        onclick: () => deleteOutput(entry, o),
      }, 'Close')));
  }
}

// A push output: its target (password redacted by the relay), its ffmpeg
// job and what went through it.
function pushItem(entry, o) {
  const li = el('li', { class: 'push' },
    el('span', {}, 'output #' + o.id),
    el('span', { class: 'push-url', title: o.url }, 'push ' + o.url),
    badge(o.state, 'small'));
  const parts = [];
  if (o.pid > 0) parts.push(el('span', { class: 'pid' }, 'pid ' + o.pid));
  parts.push(el('span', { class: 'bitrate' }, fmtKbps(o.bitrate_kbps) || '0 kb/s'));
  parts.push(el('span', { class: 'bytes' }, fmtBytes(o.bytes || 0) + ' sent'));
  parts.push(el('span', { class: 'restarts' }, plural(o.restarts || 0, 'restart')));
  if (o.skipped) parts.push(el('span', {}, o.skipped + ' skipped'));
  if (o.last_exit) parts.push(el('span', { class: 'last-exit' }, 'last exit: ' + o.last_exit));
  if (o.last_error) {
    parts.push(el('span', { class: 'last-error', title: o.last_error }, o.last_error));
  }
  li.append(...parts, el('button', {
    type: 'button',
    class: 'danger small',
    title: 'stop this push and delete it',
    onclick: () => deleteOutput(entry, o),
  }, 'Delete'));
  return li;
}

// Re-read one input and its outputs, a little after its last event, so a
// burst of events costs one pair of requests.
function scheduleOutputs(entry) {
  clearTimeout(entry.timer);
  entry.timer = setTimeout(async () => {
    const name = entry.input.name;
    try {
      const [input, outs] = await Promise.all([
        api('GET', inputPath(name)),
        api('GET', inputPath(name) + '/outputs'),
      ]);
      if (inputs.get(name) !== entry) return;
      updateRow(entry, input);
      renderOutputs(entry, outs.outputs);
      updateSummary();
    } catch (e) {
      if (e.status === 404) removeRow(name);
    }
  }, 150);
}

async function refreshAll() {
  const before = rowChanges;
  try {
    const j = await api('GET', '/api/inputs');
    // An event added or removed a row meanwhile: this list may predate it,
    // so only the rows both know are updated.
    const stale = rowChanges !== before;
    const seen = new Set();
    for (const i of j.inputs) {
      seen.add(i.name);
      const entry = inputs.get(i.name);
      if (entry) {
        updateRow(entry, i);
        scheduleOutputs(entry);
      } else if (!stale) {
        addRow(i);
      }
    }
    if (!stale) for (const name of [...inputs.keys()]) if (!seen.has(name)) removeRow(name);
    if (j.inputs.length === 0 && !rowsBody.querySelector('tr.empty')) {
      rowsBody.append(el('tr', { class: 'empty' }, el('td', { colspan: '10' }, 'no inputs')));
    }
    updateSummary();
  } catch (e) {
    summary.textContent = 'relay not answering: ' + e.message;
  }
}

function updateSummary() {
  let viewers = 0;
  for (const entry of inputs.values()) viewers += entry.input.viewers || 0;
  const parts = [inputs.size + ' input' + (inputs.size === 1 ? '' : 's'),
    viewers + ' viewer' + (viewers === 1 ? '' : 's')];
  if (process) {
    parts.push('pid ' + process.pid);
    parts.push('up ' + fmtAge(new Date(Date.now() - process.uptime_ms).toISOString()));
  }
  summary.textContent = parts.join(' \u00b7 ');
}

async function deleteInput(entry) {
  const name = entry.input.name;
  const n = entry.input.outputs;
  const what = 'Delete input "' + name + '"' +
    (n ? ' and close its ' + n + ' output' + (n === 1 ? '' : 's') : '') + '?';
  if (!window.confirm(what)) return;
  try {
    await api('DELETE', '/api/inputs/' + encodeURIComponent(name));
    removeRow(name);
  } catch (e) {
    if (e.status === 404) removeRow(name);
    else window.alert('Could not delete "' + name + '": ' + e.message);
  }
}

async function deleteOutput(entry, o) {
  const name = entry.input.name;
  const id = o.id;
  const what = o.type === 'push'
    ? 'Delete push output #' + id + ' of "' + name + '" (' + o.url + ')?'
    : 'Close output #' + id + ' of "' + name + '"?';
  if (!window.confirm(what)) return;
  try {
    await api('DELETE', inputPath(name) + '/outputs/' + id);
  } catch (e) {
    if (e.status !== 404) window.alert('Could not delete output #' + id + ': ' + e.message);
  }
  scheduleOutputs(entry);
}

// ---- events -------------------------------------------------------------

function onEvent(type, fn) {
  events.addEventListener(type, (ev) => {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    fn(data);
  });
}

const events = new EventSource('/api/events');
let connected = false;
events.onopen = () => {
  live.textContent = 'live';
  live.className = 'live on';
  // After the relay was away, the previews' streams have ended: reopen them.
  if (connected) {
    for (const entry of inputs.values()) if (entry.mode === 'stream') setPreview(entry, true);
  }
  connected = true;
  refreshAll();
};
events.onerror = () => {
  live.textContent = 'reconnecting';
  live.className = 'live off';
};
onEvent('input-created', (i) => {
  const entry = inputs.get(i.name);
  if (entry) updateRow(entry, i);
  else addRow(i);
  updateSummary();
});
onEvent('input-deleted', (d) => removeRow(d.name));
onEvent('input-state', (d) => {
  const entry = inputs.get(d.name);
  if (!entry) return;
  setState(entry, d.state);
  // The source's details (an ffmpeg job, a camera's last error) changed too.
  if (entry.input.kind !== 'test') scheduleOutputs(entry);
});
for (const type of ['motion-start', 'motion-end']) {
  onEvent(type, (d) => {
    const entry = inputs.get(d.input);
    if (!entry || !entry.input.motion) return;
    const m = entry.input.motion;
    m.active = type === 'motion-start';
    m.score = d.score;
    m.box = m.active ? d.box : null;
    renderMotion(entry);
  });
}
for (const type of ['output-created', 'output-deleted']) {
  onEvent(type, (d) => {
    const entry = inputs.get(d.input);
    if (entry) scheduleOutputs(entry);
  });
}

onEvent('input-updated', (i) => {
  const entry = inputs.get(i.name);
  if (entry) updateRow(entry, i);
});
onEvent('recording-state', (d) => {
  const entry = inputs.get(d.input);
  if (!entry) return;
  entry.input.recording = d.recording;
  renderDetails(entry);
});
for (const type of ['segment-created', 'segment-finished', 'segment-deleted',
  'session-created', 'session-deleted']) {
  onEvent(type, (d) => {
    if (rec.name === d.input) scheduleRecordings();
  });
}
onEvent('recordings-disk', () => {
  if (rec.name) scheduleRecordings();
});

// ---- recordings ---------------------------------------------------------

const recSection = document.getElementById('recordings');
const recVideo = document.getElementById('rec-video');
const recNow = document.getElementById('rec-now');
const rec = { name: null, timer: null, playing: null };
const DAY_MS = 24 * 3600 * 1000;

async function toggleRecord(entry) {
  const on = !entry.input.record;
  try {
    const input = await api('PATCH', inputPath(entry.input.name), { record: on });
    updateRow(entry, input);
  } catch (e) {
    window.alert('Could not ' + (on ? 'start' : 'stop') + ' recording "' + entry.input.name +
      '": ' + e.message);
  }
}

function recPath(p) {
  return '/api/recordings/' + p.split('/').map(encodeURIComponent).join('/');
}

function openRecordings(name) {
  rec.name = name;
  document.getElementById('rec-name').textContent = name;
  recSection.hidden = false;
  loadRecordings();
  recSection.scrollIntoView({ block: 'nearest' });
}

document.getElementById('rec-close').addEventListener('click', () => {
  rec.name = null;
  recSection.hidden = true;
  recVideo.pause();
  recVideo.removeAttribute('src');
  recVideo.load();
});

function scheduleRecordings() {
  clearTimeout(rec.timer);
  rec.timer = setTimeout(loadRecordings, 300);
}

function fmtDuration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min ' + (s % 60) + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}

function play(seg) {
  rec.playing = seg.path;
  recVideo.src = recPath(seg.path);
  recNow.className = 'msg';
  recNow.textContent = 'playing ' + seg.path + ' (' + fmtDuration(seg.duration_ms) + ', ' +
    fmtBytes(seg.size) + ')';
  const p = recVideo.play();
  if (p) p.catch((e) => { recNow.textContent = 'cannot play: ' + e.message; });
  for (const li of recSection.querySelectorAll('.segment')) {
    li.classList.toggle('playing', li.dataset.path === seg.path);
  }
}

async function deleteRecording(path, what) {
  if (!window.confirm('Delete ' + what + ' ' + path + '?')) return;
  try {
    await api('DELETE', recPath(path));
  } catch (e) {
    window.alert('Could not delete ' + path + ': ' + e.message);
  }
  scheduleRecordings();
}

function renderTimeline(sessions) {
  const bars = recSection.querySelector('.timeline-bars');
  const ticks = recSection.querySelector('.timeline-ticks');
  bars.textContent = '';
  ticks.textContent = '';
  const end = Date.now();
  const start = end - DAY_MS;
  for (const s of sessions) {
    for (const seg of s.segments) {
      const a = Math.max(seg.start_ms, start);
      const b = Math.min(seg.start_ms + Math.max(seg.duration_ms, 1000), end);
      if (b <= start || a >= end) continue;
      bars.append(el('div', {
        class: 'bar' + (seg.recording ? ' live' : ''),
        style: 'left:' + ((a - start) / DAY_MS * 100).toFixed(3) + '%;width:' +
          Math.max((b - a) / DAY_MS * 100, 0.15).toFixed(3) + '%',
        title: seg.start + ', ' + fmtDuration(seg.duration_ms),
        onclick: () => play(seg),
      }));
    }
  }
  for (let h = 0; h <= 24; h += 3) {
    const t = new Date(start + h * 3600 * 1000);
    ticks.append(el('span', { style: 'left:' + (h / 24 * 100) + '%' },
      String(t.getHours()).padStart(2, '0') + ':' + String(t.getMinutes()).padStart(2, '0')));
  }
}

async function loadRecordings() {
  const name = rec.name;
  if (!name) return;
  const box = document.getElementById('rec-sessions');
  let list;
  try {
    const [top, l] = await Promise.all([
      api('GET', '/api/recordings'),
      api('GET', '/api/recordings/' + encodeURIComponent(name)),
    ]);
    list = l;
    document.getElementById('rec-disk').textContent = fmtBytes(top.free_bytes) + ' free' +
      (top.disk_full ? ' · DISK FULL: recording paused' : '');
  } catch (e) {
    if (rec.name !== name) return;
    box.textContent = '';
    box.append(el('p', { class: 'none' }, e.status === 404 ? 'no recordings yet' : e.message));
    renderTimeline([]);
    return;
  }
  if (rec.name !== name) return;
  renderTimeline(list.sessions);
  box.textContent = '';
  if (list.sessions.length === 0) box.append(el('p', { class: 'none' }, 'no recordings yet'));
  for (const s of [...list.sessions].reverse()) {
    const total = s.segments.reduce((n, g) => n + g.duration_ms, 0);
    const bytes = s.segments.reduce((n, g) => n + g.size, 0);
    const ul = el('ul', { class: 'segments' });
    for (const g of s.segments) {
      const li = el('li', { class: 'segment' + (g.path === rec.playing ? ' playing' : '') },
        el('span', { class: 'seg-time' }, new Date(g.start_ms).toLocaleTimeString()),
        el('span', {}, fmtDuration(g.duration_ms)),
        el('span', {}, fmtBytes(g.size)),
        el('span', {}, (g.codec || '?') + (g.width ? ' ' + g.width + '×' + g.height : '')),
        g.recording ? el('span', { class: 'rec-dot' }, 'recording') : '',
        el('button', { type: 'button', class: 'small play', onclick: () => play(g) }, 'Play'),
        el('button', {
          type: 'button',
          class: 'danger small',
          onclick: () => deleteRecording(g.path, 'segment'),
        }, 'Delete'));
      li.dataset.path = g.path;
      li.dataset.duration = g.duration_ms;
      ul.append(li);
    }
    box.append(el('div', { class: 'session' },
      el('div', { class: 'session-head' },
        el('span', { class: 'label' }, 'session ' + s.id),
        el('span', {}, plural(s.segments.length, 'segment') + ', ' + fmtDuration(total) + ', ' +
          fmtBytes(bytes)),
        el('button', {
          type: 'button',
          class: 'danger small',
          onclick: () => deleteRecording(name + '/' + s.id, 'session'),
        }, 'Delete session')),
      ul));
  }
}

// ---- add-input form -----------------------------------------------------

const URL_HINTS = {
  mjpeg: 'http://camera/video.mjpg',
  ffmpeg: 'rtsp://user:password@camera:554/stream',
};

// Show the fields of the chosen kind only (data-kinds lists the kinds a
// field belongs to).
function showKind() {
  const kind = form.elements.kind.value;
  form.className = 'kind-' + kind;
  for (const f of form.querySelectorAll('[data-kinds]')) {
    f.hidden = !f.dataset.kinds.split(' ').includes(kind);
  }
  if (URL_HINTS[kind]) form.elements.url.placeholder = URL_HINTS[kind];
}
form.elements.kind.addEventListener('change', showKind);
showKind();

function showRolls() {
  for (const f of form.querySelectorAll('.roll')) f.hidden = form.elements.record_mode.value !== 'motion';
}
form.elements.record_mode.addEventListener('change', showRolls);
showRolls();

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = form.elements;
  const body = { name: f.name.value.trim(), kind: f.kind.value, on_demand: f.on_demand.checked };
  if (f.record.checked) body.record = true;
  if (f.record_mode.value === 'motion') {
    // Recording around motion needs motion detection: the form turns it on.
    body.record_mode = 'motion';
    body.record_pre_roll = Number(f.record_pre_roll.value);
    body.record_post_roll = Number(f.record_post_roll.value);
    body.motion = { enabled: true };
  }
  if (body.kind === 'mjpeg') {
    body.url = f.url.value.trim();
  } else if (body.kind === 'ffmpeg') {
    body.url = f.url.value.trim();
    // Only what differs from the relay's defaults (tcp, no loop, 10 s).
    if (f.rtsp_transport.value !== 'tcp') body.rtsp_transport = f.rtsp_transport.value;
    if (f.loop.checked) body.loop = true;
    if (f.timeout.value.trim() !== '') {
      const t = Number(f.timeout.value);
      if (!Number.isInteger(t)) {
        formMsg.className = 'msg error';
        formMsg.textContent = 'timeout must be a whole number of seconds';
        return;
      }
      body.timeout = t;
    }
  } else {
    const m = /^\s*(\d+)\s*[x\u00d7]\s*(\d+)\s*$/.exec(f.size.value);
    if (!m) {
      formMsg.className = 'msg error';
      formMsg.textContent = 'size must be WIDTHxHEIGHT, e.g. 320x240';
      return;
    }
    body.width = Number(m[1]);
    body.height = Number(m[2]);
    body.fps = Number(f.fps.value);
  }
  formMsg.className = 'msg';
  formMsg.textContent = 'adding\u2026';
  try {
    const input = await api('POST', '/api/inputs', body);
    if (!inputs.has(input.name)) addRow(input);
    formMsg.className = 'msg ok';
    formMsg.textContent = 'added "' + input.name + '"';
    f.name.value = '';
  } catch (e) {
    formMsg.className = 'msg error';
    formMsg.textContent = (e.status ? e.status + ': ' : '') + e.message;
  }
});

// ---- resource charts ----------------------------------------------------

const chartData = {
  mem: [[], []],
  threads: [[], []],
  fds: [[], [], []],
};

function makeChart(id, data, series, yValues) {
  const box = document.getElementById(id);
  const opts = {
    width: Math.max(200, box.clientWidth),
    height: 170,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
    series: [{}, ...series],
    axes: [{ space: 70, values: (u, vals) => vals.map(clock) }, { size: 64, values: yValues }],
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
  return new uPlot(opts, data, box);
}

const charts = {
  mem: makeChart('chart-mem', chartData.mem, [
    { label: 'heap', stroke: '#2f6fde', fill: 'rgba(47,111,222,.12)', width: 2,
      value: (u, v) => fmtBytes(v) },
  ], (u, vals) => vals.map(fmtBytes)),
  threads: makeChart('chart-threads', chartData.threads, [
    { label: 'threads', stroke: '#1a7f37', width: 2 },
  ]),
  fds: makeChart('chart-fds', chartData.fds, [
    { label: 'fds', stroke: '#8250df', width: 2 },
    { label: 'sockets', stroke: '#b86e00', width: 2 },
  ]),
};
// The browser test reads the charts' data through this.
window.stewardCharts = charts;

window.addEventListener('resize', () => {
  for (const [key, u] of Object.entries(charts)) {
    const box = document.getElementById('chart-' + key);
    u.setSize({ width: Math.max(200, box.clientWidth), height: 170 });
  }
});

function push(key, t, ...values) {
  const d = chartData[key];
  d[0].push(t);
  values.forEach((v, i) => d[i + 1].push(v));
  if (d[0].length > CHART_POINTS) for (const a of d) a.shift();
  charts[key].setData(d);
}

async function pollResources() {
  try {
    const r = await api('GET', '/system-resources');
    const kinds = {};
    for (const k of r.ledger.kinds) kinds[k.kind] = k;
    const count = (k) => (kinds[k] ? kinds[k].live : 0);
    const t = Date.now() / 1000;
    push('mem', t, kinds.heap ? kinds.heap.live_bytes : 0);
    push('threads', t, count('thread'));
    push('fds', t, count('fd'), count('socket'));
    document.getElementById('now-mem').textContent = fmtBytes(kinds.heap ? kinds.heap.live_bytes : 0) +
      ' in ' + count('heap') + ' blocks';
    document.getElementById('now-threads').textContent = String(count('thread'));
    document.getElementById('now-fds').textContent = count('fd') + ' fds, ' + count('socket') + ' sockets';
    process = { pid: r.pid, uptime_ms: r.uptime_ms };
    updateSummary();
  } catch (e) {
    if (e.status === 403) {
      // A user without the admin permission: no charts, no polling.
      clearInterval(resourcesTimer);
      return;
    }
    summary.textContent = 'relay not answering: ' + e.message;
  }
}

let resourcesTimer = null;
refreshAll();
pollResources();
setInterval(refreshAll, REFRESH_MS);
resourcesTimer = setInterval(pollResources, RESOURCES_MS);
