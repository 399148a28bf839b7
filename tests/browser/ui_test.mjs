// Browser test of the relay's web UI: the real binary on an ephemeral port,
// driven by Debian's chromium through playwright-core (from web/node_modules).
//
// Usage: node tests/browser/ui_test.mjs BUILD_DIR
// Prints "ok   ui/NAME" or "FAIL ui/NAME: reason" per check and exits
// non-zero if any failed. Saves a full-page screenshot to tests/out/ui.png.
// The relay and the browser it starts are stopped (the relay by its pid)
// on the way out, whatever happened. The ffmpeg cases make a 3 s H.264 file
// with ffmpeg (from PATH) in a temporary directory, removed at the end.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
// An ES module import ignores NODE_PATH: resolve from web/ explicitly.
const require = createRequire(path.join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

let failed = 0;
let passed = 0;

function report(name, ok, why) {
  if (ok) {
    passed++;
    console.log('ok   ui/' + name);
  } else {
    failed++;
    console.log('FAIL ui/' + name + ': ' + why);
  }
}

// Run one check; an exception fails it without stopping the others.
async function check(name, fn) {
  try {
    await fn();
    report(name, true);
  } catch (e) {
    report(name, false, (e && e.message ? e.message : String(e)).split('\n')[0]);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn until it returns a truthy value or ms pass; returns the value.
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
    await sleep(100);
  }
}

// `steward relay --listen 127.0.0.1:0 --state none`; resolves with
// {proc, port, stderr()} once it printed the address it serves.
function startRelay(build) {
  const bin = path.resolve(build, 'src', 'steward');
  const proc = spawn(bin, ['relay', '--listen', '127.0.0.1:0', '--state', 'none'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no address line in 20 s: ' + out)), 20000);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error('relay exited: ' + code + ' ' + err)); });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /steward relay: serving http:\/\/127\.0\.0\.1:(\d+)\/\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  return { proc, started, exited, stderr: () => err };
}

async function getJSON(base, p) {
  const r = await fetch(base + p);
  return { status: r.status, body: await r.json() };
}

async function inputNames(base) {
  return (await getJSON(base, '/api/inputs')).body.inputs.map((i) => i.name);
}

// A 3 s 160x120 H.264 MP4 (a keyframe every 10 frames) in @dir.
function makeMovie(dir) {
  const file = path.join(dir, 'file.mp4');
  const r = spawnSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi',
    '-i', 'testsrc=size=160x120:rate=10', '-t', '3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
    '-g', '10', file], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error('ffmpeg could not make the test file: ' + (r.stderr || r.error));
  return file;
}

// The first @n bytes of GET @url (then the request is aborted).
async function firstBytes(url, n) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 10000);
  try {
    const r = await fetch(url, { signal: ctl.signal });
    if (r.status !== 200) throw new Error(url + ': status ' + r.status);
    const reader = r.body.getReader();
    const chunks = [];
    let got = 0;
    while (got < n) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.length;
    }
    ctl.abort();
    return { type: r.headers.get('content-type'), bytes: Buffer.concat(chunks) };
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const build = process.argv[2];
  if (!build) {
    console.error('usage: node tests/browser/ui_test.mjs BUILD_DIR');
    return 2;
  }
  const outDir = path.join(root, 'tests', 'out');
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'steward-ui-'));
  const relay = startRelay(build);
  let browser = null;
  try {
    const port = await relay.started;
    const base = 'http://127.0.0.1:' + port;

    await check('assets', async () => {
      const want = {
        '/': 'text/html', '/ui/app.js': 'text/javascript', '/ui/style.css': 'text/css',
        '/ui/uplot.js': 'text/javascript', '/ui/uplot.css': 'text/css',
      };
      for (const [p, type] of Object.entries(want)) {
        const r = await fetch(base + p);
        const body = await r.text();
        assert(r.status === 200, p + ': status ' + r.status);
        assert((r.headers.get('content-type') || '').startsWith(type),
          p + ': content-type ' + r.headers.get('content-type'));
        assert(r.headers.get('cache-control') === 'no-cache',
          p + ': cache-control ' + r.headers.get('cache-control'));
        assert(body.length > 500, p + ': only ' + body.length + ' bytes');
      }
      const r = await fetch(base + '/ui/missing.js');
      assert(r.status === 404, '/ui/missing.js: status ' + r.status);
    });

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // The 4xx answers the form provokes are logged by the browser as
    // "Failed to load resource"; any other console error is a failure, and
    // so is a page file that does not load.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        pageErrors.push('console: ' + m.text());
      }
    });
    page.on('response', (r) => {
      const p = new URL(r.url()).pathname;
      if (r.status() >= 400 && (p === '/' || p.startsWith('/ui/'))) {
        pageErrors.push(p + ': ' + r.status());
      }
    });
    // Every confirmation is answered by the handler the current step sets.
    let onDialog = (d) => d.dismiss();
    const dialogs = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      onDialog(d);
    });

    await check('page-loads', async () => {
      const resp = await page.goto(base + '/');
      assert(resp.ok(), 'status ' + resp.status());
      assert((await page.title()) === 'steward relay', 'title ' + (await page.title()));
      await page.waitForFunction(() => typeof window.uPlot === 'function', null, { timeout: 5000 });
      await page.waitForSelector('#live.on', { timeout: 5000 });
    });

    const row = (name) => page.locator('tr.input[data-name="' + name + '"]');

    await check('input-row', async () => {
      const r = row('test');
      await r.waitFor({ timeout: 5000 });
      const cells = await r.locator('td').allInnerTexts();
      assert(cells[1] === 'test' && cells[2] === 'test', 'cells ' + JSON.stringify(cells));
      assert(/640\D480/.test(cells[3]), 'source ' + cells[3]);
      await until(async () => (await r.locator('.state').innerText()).toLowerCase() === 'running',
        5000, 'state running');
      assert(await r.locator('.state.state-running').isVisible(), 'no running badge');
    });

    await check('preview-moves', async () => {
      const img = row('test').locator('img.preview');
      await until(() => img.evaluate((e) => e.complete && e.naturalWidth === 640), 5000,
        'the preview to show a 640-wide frame');
      const a = await img.screenshot();
      await sleep(1000);
      const b = await img.screenshot();
      assert(a.length > 1000, 'empty screenshot');
      assert(!a.equals(b), 'two screenshots 1 s apart are identical');
    });

    await check('motion-toggle', async () => {
      const r = row('test');
      await r.locator('button', { hasText: 'Motion on' }).click();
      await r.locator('.motion').waitFor({ timeout: 5000 });
      await until(async () => (await r.locator('.motion').innerText()).toLowerCase() === 'motion',
        15000, 'the moving ball seen as motion');
      const m = (await getJSON(base, '/api/inputs/test/motion')).body;
      assert(m.active === true && m.box !== null, 'the API says ' + JSON.stringify(m));
      await r.locator('button', { hasText: 'Motion off' }).click();
      await r.locator('.motion').waitFor({ state: 'detached', timeout: 5000 });
      const off = (await getJSON(base, '/api/inputs/test/motion')).body;
      assert(off.enabled === false && off.running === false, 'still on: ' + JSON.stringify(off));
    });

    await check('outputs-listed', async () => {
      const items = page.locator('tr.outputs[data-name="test"] li');
      await until(async () => /output #\d+/.test((await items.allInnerTexts()).join()), 5000,
        'the preview viewer in the outputs list');
      const api = (await getJSON(base, '/api/inputs/test/outputs')).body.outputs;
      assert(api.length >= 1, 'the API lists no output');
      const shown = await items.allInnerTexts();
      for (const o of api) {
        assert(shown.some((t) => t.includes('output #' + o.id)), 'output ' + o.id + ' not shown');
      }
    });

    await check('add-error', async () => {
      await page.fill('#add-form [name=name]', 'test');
      await page.click('#add-form button[type=submit]');
      await until(async () => (await page.locator('#form-msg.error').count()) === 1, 5000,
        'an error message');
      const msg = await page.locator('#form-msg').innerText();
      assert(msg.includes('409') && msg.includes('input "test" already exists'), 'message ' + msg);
      await page.fill('#add-form [name=name]', 'bad name');
      await page.click('#add-form button[type=submit]');
      await until(async () => (await page.locator('#form-msg').innerText()).includes('422'),
        5000, 'a 422 message');
      const msg2 = await page.locator('#form-msg').innerText();
      assert(msg2.includes('name must be'), 'message ' + msg2);
    });

    await check('add-input', async () => {
      await page.fill('#add-form [name=name]', 'ui-added');
      await page.selectOption('#add-form [name=kind]', 'test');
      await page.fill('#add-form [name=size]', '160x120');
      await page.fill('#add-form [name=fps]', '10');
      await page.click('#add-form button[type=submit]');
      const r = row('ui-added');
      await r.waitFor({ timeout: 5000 });
      const msg = await page.locator('#form-msg').innerText();
      assert(msg.includes('added'), 'message ' + msg);
      const img = r.locator('img.preview');
      await until(() => img.evaluate((e) => e.complete && e.naturalWidth === 160), 5000,
        'a 160-wide preview');
      await until(async () => (await r.locator('.state').innerText()).toLowerCase() === 'running',
        5000, 'state running');
      assert((await inputNames(base)).includes('ui-added'), 'the API does not list it');
    });

    await check('delete-cancel', async () => {
      const before = dialogs.length;
      onDialog = (d) => d.dismiss();
      await row('ui-added').locator('button', { hasText: 'Delete' }).click();
      await until(() => dialogs.length > before, 3000, 'a confirmation');
      await sleep(500);
      assert(await row('ui-added').isVisible(), 'row gone after cancel');
      assert((await inputNames(base)).includes('ui-added'), 'deleted although cancelled');
    });

    await check('delete-input', async () => {
      const before = dialogs.length;
      onDialog = (d) => d.accept();
      await row('ui-added').locator('button', { hasText: 'Delete' }).click();
      await until(() => dialogs.length > before, 3000, 'a confirmation');
      assert(dialogs[dialogs.length - 1].includes('"ui-added"'),
        'dialog says ' + dialogs[dialogs.length - 1]);
      await row('ui-added').waitFor({ state: 'detached', timeout: 5000 });
      await until(async () => !(await inputNames(base)).includes('ui-added'), 3000,
        'the API to drop it');
      onDialog = (d) => d.dismiss();
    });

    await check('live-events', async () => {
      // Created and deleted behind the page's back: only the event stream
      // tells it (well before its 5 s full refresh, most of the time).
      const created = await fetch(base + '/api/inputs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'ui-od', kind: 'test', width: 64, height: 48, fps: 5,
          on_demand: true }),
      });
      assert(created.status === 201, 'create: ' + created.status);
      const r = row('ui-od');
      await r.waitFor({ timeout: 3000 });
      assert((await r.locator('.state').innerText()).toLowerCase() === 'idle', 'not idle');
      assert((await r.locator('img.preview').count()) === 0, 'an on-demand input was watched');
      await r.locator('button', { hasText: 'Watch' }).click();
      await until(async () => (await r.locator('.state').innerText()).toLowerCase() === 'running',
        5000, 'the watched on-demand input to run');
      const del = await fetch(base + '/api/inputs/ui-od', { method: 'DELETE' });
      assert(del.status === 200, 'delete: ' + del.status);
      await r.waitFor({ state: 'detached', timeout: 3000 });
    });

    await check('close-output', async () => {
      const ids = async () =>
        (await getJSON(base, '/api/inputs/test/outputs')).body.outputs.map((o) => o.id);
      const old = await ids();
      assert(old.length === 1, 'outputs ' + JSON.stringify(old));
      onDialog = (d) => d.accept();
      await page.locator('tr.outputs[data-name="test"] button', { hasText: 'Close' }).click();
      await until(async () => (await ids()).length === 0, 5000, 'the output to close');
      onDialog = (d) => d.dismiss();
      // Clicking the preview reconnects it: a new output.
      await row('test').locator('img.preview').click();
      const now = await until(async () => {
        const l = await ids();
        return l.length === 1 ? l : null;
      }, 5000, 'a new output');
      assert(now[0] !== old[0], 'same id ' + now[0]);
      await until(async () => (await page.locator('tr.outputs[data-name="test"] li')
        .allInnerTexts()).join().includes('output #' + now[0]), 5000, 'the new output shown');
    });

    await check('many-inputs', async () => {
      // More inputs than a browser has connections to one server: at most
      // four previews stream, the rest show snapshots, and the page keeps
      // answering (the form still gets through).
      const names = ['many-1', 'many-2', 'many-3', 'many-4', 'many-5'];
      for (const name of names) {
        const r = await fetch(base + '/api/inputs', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ name, kind: 'test', width: 32, height: 24, fps: 5 }),
        });
        assert(r.status === 201, name + ': ' + r.status);
      }
      for (const name of names) await row(name).waitFor({ timeout: 5000 });
      const modes = async () => page.evaluate(() => [...document.querySelectorAll('img.preview')]
        .map((i) => (i.getAttribute('src') || '').split('/')[1]));
      const m = await modes();
      assert(m.filter((x) => x === 'stream').length === 4, 'previews ' + JSON.stringify(m));
      assert(m.filter((x) => x === 'snapshot').length === 2, 'previews ' + JSON.stringify(m));
      await until(() => page.evaluate(() => [...document.querySelectorAll('img.preview')]
        .every((i) => i.complete && i.naturalWidth > 0)), 5000, 'every preview to show a frame');
      await page.fill('#add-form [name=name]', 'many-form');
      await page.fill('#add-form [name=size]', '32x24');
      await page.click('#add-form button[type=submit]');
      await row('many-form').waitFor({ timeout: 5000 });
      for (const name of [...names, 'many-form']) {
        const r = await fetch(base + '/api/inputs/' + name, { method: 'DELETE' });
        assert(r.status === 200, 'delete ' + name + ': ' + r.status);
      }
      for (const name of [...names, 'many-form']) {
        await row(name).waitFor({ state: 'detached', timeout: 5000 });
      }
    });

    await check('add-mjpeg', async () => {
      // Nothing listens on port 9 here: the camera cannot be reached, so the
      // input shows "no-signal" (and stays, for the screenshot).
      await page.selectOption('#add-form [name=kind]', 'mjpeg');
      assert(await page.locator('#add-form [name=url]').isVisible(), 'no URL field for mjpeg');
      assert(!(await page.locator('#add-form [name=size]').isVisible()), 'size shown for mjpeg');
      await page.fill('#add-form [name=name]', 'camera');
      await page.fill('#add-form [name=url]', 'ftp://127.0.0.1/cam');
      await page.click('#add-form button[type=submit]');
      await until(async () => (await page.locator('#form-msg').innerText()).includes('422'),
        5000, 'a 422 for an ftp URL');
      await page.fill('#add-form [name=url]', 'http://127.0.0.1:9/video.mjpg');
      await page.click('#add-form button[type=submit]');
      const r = row('camera');
      await r.waitFor({ timeout: 5000 });
      assert((await r.locator('td.url').innerText()) === 'http://127.0.0.1:9/video.mjpg',
        'url cell ' + (await r.locator('td.url').innerText()));
      await until(async () => ['no-signal', 'error'].includes(
        (await r.locator('.state').innerText()).toLowerCase()), 8000, 'state no-signal');
      // The preview shows the relay's NO SIGNAL card.
      await until(() => r.locator('img.preview').evaluate((e) => e.complete && e.naturalWidth > 0),
        5000, 'the NO SIGNAL card in the preview');
      // Under the row: why the camera is away, and the cards shown meanwhile.
      const cam = page.locator('tr.outputs[data-name="camera"] .details .camera');
      const apiErr = await until(async () => (await getJSON(base, '/api/inputs/camera')).body
        .last_error, 8000, 'a last_error in the API');
      await until(async () => (await cam.locator('.last-error').count()) === 1 &&
        (await cam.locator('.last-error').innerText()).includes(apiErr), 8000,
      'the last error under the row');
      await until(async () => /[1-9]\d* cards?/.test(await cam.innerText()), 8000,
        'the cards counted under the row');
      await page.selectOption('#add-form [name=kind]', 'test');
    });

    await check('add-ffmpeg-error', async () => {
      await page.selectOption('#add-form [name=kind]', 'ffmpeg');
      for (const f of ['url', 'rtsp_transport', 'timeout', 'loop']) {
        assert(await page.locator('#add-form [name=' + f + ']').isVisible(), 'no ' + f + ' field');
      }
      assert(!(await page.locator('#add-form [name=size]').isVisible()), 'size shown for ffmpeg');
      await page.fill('#add-form [name=name]', 'ff-bad');
      await page.fill('#add-form [name=url]', 'ftp://127.0.0.1/cam');
      await page.click('#add-form button[type=submit]');
      await until(async () => (await page.locator('#form-msg').innerText()).startsWith('422'),
        5000, 'a 422 for an ftp URL');
      const msg = await page.locator('#form-msg').innerText();
      assert(msg.includes('url'), 'message ' + msg);
      // A file that does not exist is refused too, with the server's words.
      await page.fill('#add-form [name=url]', path.join(tmp, 'missing.mp4'));
      await page.click('#add-form button[type=submit]');
      await until(async () => (await page.locator('#form-msg').innerText()) !== msg, 5000,
        'a second error');
      const msg2 = await page.locator('#form-msg').innerText();
      assert(/^4\d\d: /.test(msg2), 'message ' + msg2);
      assert(msg2.includes('missing.mp4'), 'message ' + msg2);
      assert(!(await inputNames(base)).includes('ff-bad'), 'created although refused');
    });

    await check('add-ffmpeg', async () => {
      const movie = makeMovie(tmp);
      await page.selectOption('#add-form [name=kind]', 'ffmpeg');
      await page.fill('#add-form [name=name]', 'movie');
      await page.fill('#add-form [name=url]', movie);
      await page.check('#add-form [name=loop]');
      await page.click('#add-form button[type=submit]');
      const r = row('movie');
      await r.waitFor({ timeout: 5000 });
      const api = (await getJSON(base, '/api/inputs/movie')).body;
      assert(api.kind === 'ffmpeg' && api.loop === true, 'API says ' + JSON.stringify(api));
      assert((await r.locator('td.url').innerText()) === movie, 'url cell');
      await until(async () => (await r.locator('.state').innerText()).toLowerCase() === 'running',
        15000, 'state running');
      const details = page.locator('tr.outputs[data-name="movie"] .details');
      await until(async () => {
        const t = await details.locator('.codec').innerText();
        return t.includes('h264') && t.includes('160\u00d7120');
      }, 15000, 'codec h264 and 160x120 under the row');
      const ingest = details.locator('.job-ingest');
      await until(async () => (await ingest.locator('.state').innerText()).toLowerCase() ===
        'running', 10000, 'the ingest job running');
      const pid = (await getJSON(base, '/api/inputs/movie')).body.ffmpeg.ingest.pid;
      await until(async () => (await ingest.innerText()).includes('pid ' + pid), 10000,
        'the ingest pid ' + pid);
      assert(await details.locator('.job-decoder .state').count() === 1, 'no decoder state');
      assert((await details.innerText()).includes('loop'), 'loop not shown');
      // The .ts link serves MPEG-TS (sync byte 0x47 every 188 bytes).
      const href = await details.locator('a.ts-link').getAttribute('href');
      assert(href === '/stream/movie.ts', 'ts link ' + href);
      const ts = await firstBytes(base + href, 188 * 4);
      assert(ts.bytes.length >= 188 * 2 && ts.bytes[0] === 0x47 && ts.bytes[188] === 0x47,
        'not MPEG-TS: ' + ts.type + ' ' + ts.bytes.subarray(0, 8).toString('hex'));
      // The preview decodes to JPEG on demand: a 160-wide picture that moves.
      const img = r.locator('img.preview');
      await until(() => img.evaluate((e) => e.complete && e.naturalWidth === 160), 15000,
        'a 160-wide preview');
      await until(async () => (await getJSON(base, '/api/inputs/movie')).body.ffmpeg.decoder
        .state === 'running', 10000, 'the decoder running');
    });

    const pushItems = page.locator('tr.outputs[data-name="movie"] li.push');
    const pushForm = page.locator('tr.outputs[data-name="movie"] form.push-form');
    const pushIds = async () => (await getJSON(base, '/api/inputs/movie/outputs')).body.outputs
      .filter((o) => o.type === 'push').map((o) => o.id);

    await check('push-error', async () => {
      assert((await page.locator('tr.outputs[data-name="test"] form.push-form').count()) === 0,
        'a push form under a test input');
      await pushForm.locator('[name=url]').fill('http://127.0.0.1:1/x');
      await pushForm.locator('button[type=submit]').click();
      await until(async () => (await pushForm.locator('.msg.error').count()) === 1, 5000,
        'an error');
      const msg = await pushForm.locator('.msg').innerText();
      assert(msg.startsWith('422: ') && msg.includes('rtmp://'), 'message ' + msg);
      assert((await pushIds()).length === 0, 'a push was created');
    });

    await check('push-output', async () => {
      await pushForm.locator('[name=url]').fill('rtmp://127.0.0.1:1/live/x');
      await pushForm.locator('button[type=submit]').click();
      const ids = await until(async () => {
        const l = await pushIds();
        return l.length === 1 ? l : null;
      }, 5000, 'the push in the API');
      const item = pushItems.filter({ hasText: 'output #' + ids[0] });
      await item.waitFor({ timeout: 5000 });
      assert((await item.innerText()).includes('rtmp://127.0.0.1:1/live/x'), 'url not shown');
      const state = (await item.locator('.state').innerText()).toLowerCase();
      assert(['starting', 'running', 'backoff'].includes(state), 'state ' + state);
      assert((await pushForm.locator('.msg').innerText()).includes('added output #' + ids[0]),
        'form message');
      // Nothing listens on port 1: ffmpeg fails, says why, and is restarted.
      await until(async () => /[1-9]\d* restarts?/.test(await item.innerText()) &&
        (await item.locator('.last-error').count()) === 1, 20000, 'a restart and its reason');
      const why = await item.locator('.last-error').innerText();
      assert(/refused|failed|error/i.test(why), 'last error ' + why);
      assert((await row('movie').locator('td.num').nth(1).innerText()) !== '0',
        'the outputs column does not count the push');

      const before = dialogs.length;
      onDialog = (d) => d.dismiss();
      await item.locator('button', { hasText: 'Delete' }).click();
      await until(() => dialogs.length > before, 3000, 'a confirmation');
      assert(dialogs[dialogs.length - 1].includes('push output #' + ids[0]),
        'dialog says ' + dialogs[dialogs.length - 1]);
      await sleep(500);
      assert((await pushIds()).length === 1, 'deleted although cancelled');
      onDialog = (d) => d.accept();
      await item.locator('button', { hasText: 'Delete' }).click();
      await until(async () => (await pushIds()).length === 0, 5000, 'the API to drop it');
      await item.waitFor({ state: 'detached', timeout: 5000 });
      onDialog = (d) => d.dismiss();
    });

    await check('push-redacted', async () => {
      // Left running for the screenshot: its password is never shown.
      await pushForm.locator('[name=url]').fill('rtmp://user:s3cr3t@127.0.0.1:1/live/y');
      await pushForm.locator('button[type=submit]').click();
      await pushItems.first().waitFor({ timeout: 5000 });
      await until(async () => (await pushItems.first().innerText()).includes(
        'rtmp://user:***@127.0.0.1:1/live/y'), 5000, 'the redacted URL');
      await sleep(300);
      assert(!(await page.content()).includes('s3cr3t'), 'the password is in the page');
    });

    await check('charts', async () => {
      assert((await page.locator('#charts .uplot').count()) === 3, 'not three uPlot charts');
      assert((await page.locator('#charts canvas').count()) >= 3, 'no canvases');
      const points = await until(() => page.evaluate(() => {
        const n = Object.values(window.stewardCharts).map((u) => u.data[0].length);
        return Math.min(...n) >= 3 ? n : null;
      }), 10000, 'three data points in every chart');
      // Something was drawn: every canvas has pixels that are not blank.
      const inked = await page.evaluate(() => [...document.querySelectorAll('#charts canvas')]
        .map((c) => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
          return n;
        }));
      assert(inked.every((n) => n > 100), 'blank canvas: ' + JSON.stringify(inked));
      const heap = await page.evaluate(() => window.stewardCharts.mem.data[1].at(-1));
      assert(heap > 0, 'heap series ' + heap + ' (points ' + points + ')');
    });

    await check('no-page-errors', async () => {
      assert(pageErrors.length === 0, pageErrors.join('; '));
    });

    await check('screenshot', async () => {
      const file = path.join(outDir, 'ui.png');
      await page.screenshot({ path: file, fullPage: true });
    });

    await browser.close();
    browser = null;

    await check('shutdown-clean', async () => {
      relay.proc.kill('SIGTERM');
      const t = setTimeout(() => relay.proc.kill('SIGKILL'), 10000);
      const { code, sig } = await relay.exited;
      clearTimeout(t);
      assert(code === 0, 'exit ' + code + (sig ? ' signal ' + sig : '') + ': ' +
        relay.stderr().split('\n').filter((l) => l.startsWith('shutdown:')).join(' | '));
    });
  } catch (e) {
    report('setup', false, e && e.message ? e.message : String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (relay.proc.pid !== undefined && relay.proc.exitCode === null &&
        relay.proc.signalCode === null) {
      relay.proc.kill('SIGKILL');
      await relay.exited;
    }
    rmSync(tmp, { recursive: true, force: true });
  }
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exitCode = await main();
