// Browser test of the web UI's recordings view: the real relay recording a
// test pattern (H.264 in fragmented MP4 by its ffmpeg recorder), Debian's
// chromium through playwright-core. A recorded segment must actually play
// in the page's <video> (currentTime advances, no media error), seek (the
// relay answers the browser's Range requests), show on the 24-hour
// timeline, and be deleted only after the confirmation is accepted.
//
// Usage: node tests/browser/ui_record_test.mjs BUILD_DIR
// Prints "ok   ui/NAME" or "FAIL ui/NAME: reason" per check and exits
// non-zero if any failed. Saves a screenshot to tests/out/ui-recordings.png.
// The relay (stopped by its pid) and the browser are stopped on the way
// out, and the recordings directory (a temporary one) removed.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const require = createRequire(path.join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--autoplay-policy=no-user-gesture-required'];

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

function startRelay(build, dir) {
  const bin = path.resolve(build, 'src', 'steward');
  const proc = spawn(bin, ['relay', '--listen', '127.0.0.1:0', '--state', 'none',
    '--no-default-input', '--recordings', dir, '--recordings-min-free', '0'],
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

async function main() {
  const build = process.argv[2];
  if (!build) {
    console.error('usage: node tests/browser/ui_record_test.mjs BUILD_DIR');
    return 2;
  }
  const outDir = path.join(root, 'tests', 'out');
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'steward-ui-rec-'));
  const dir = path.join(tmp, 'rec');
  const relay = startRelay(build, dir);
  let browser = null;
  try {
    const port = await relay.started;
    const base = 'http://127.0.0.1:' + port;
    const post = await fetch(base + '/api/inputs', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'cam', kind: 'test', width: 320, height: 240, fps: 10 }),
    });
    assert(post.status === 201, 'create: ' + post.status);

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        pageErrors.push('console: ' + m.text());
      }
    });
    let onDialog = (d) => d.dismiss();
    const dialogs = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      onDialog(d);
    });
    const ranges = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/recordings/cam/') && r.headers().range) ranges.push(r.headers().range);
    });
    await page.goto(base + '/');
    await page.waitForSelector('#live.on', { timeout: 5000 });
    const row = page.locator('tr.input[data-name="cam"]');
    // Finished segments of about 2 s.
    const whole = () => page.locator(
      '#rec-sessions li.segment[data-duration="2000"]:not(:has(.rec-dot))');

    await check('record-button', async () => {
      await row.waitFor({ timeout: 5000 });
      await row.locator('button.rec-toggle').click();
      await until(async () => (await row.locator('button.rec-toggle').innerText()) ===
        'Stop recording', 5000, 'the button to say Stop recording');
      const j = await (await fetch(base + '/api/inputs/cam')).json();
      assert(j.record === true, 'record ' + j.record);
      // The details line follows the recorder's state events.
      await page.locator('tr.outputs[data-name="cam"] .recording .state-recording')
        .waitFor({ timeout: 15000 });
    });

    await check('recordings-view', async () => {
      await row.locator('button.rec-open').click();
      await page.locator('#recordings').waitFor({ state: 'visible', timeout: 5000 });
      // Segments are 60 s by default: switch to 2 s ones through the API so
      // a finished one exists soon (the view follows the segment events).
      const r = await fetch(base + '/api/inputs/cam', {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ record_segment: 2 }),
      });
      assert(r.status === 200, 'patch ' + r.status);
      // (the segment cut by that change may be short: whole ones are wanted)
      await until(async () => (await whole().count()) >= 2, 20000,
        'two finished 2 s segments in the list');
      const bars = await page.locator('#rec-timeline .bar').count();
      assert(bars >= 2, 'timeline bars ' + bars);
    });

    await check('segment-plays', async () => {
      const seg = whole().first();
      await seg.locator('button.play').click();
      const t = await until(() => page.evaluate(() => {
        const v = document.getElementById('rec-video');
        if (v.error) return 'error ' + v.error.code;
        return v.currentTime > 1.0 ? v.currentTime : null;
      }), 10000, 'currentTime to pass 1 s').catch(async (e) => {
        const st = await page.evaluate(() => {
          const v = document.getElementById('rec-video');
          return { t: v.currentTime, rs: v.readyState, ns: v.networkState, paused: v.paused,
            err: v.error && v.error.message, src: v.currentSrc,
            h264: v.canPlayType('video/mp4; codecs="avc1.64001e"'),
            now: document.getElementById('rec-now').textContent };
        });
        throw new Error(e.message + ' ' + JSON.stringify(st));
      });
      assert(typeof t === 'number', 'video: ' + t);
      const info = await page.evaluate(() => {
        const v = document.getElementById('rec-video');
        return { w: v.videoWidth, h: v.videoHeight, d: v.duration };
      });
      assert(info.w === 320 && info.h === 240, 'video size ' + JSON.stringify(info));
      assert(info.d > 1.5 && info.d < 3.1, 'duration ' + info.d);
      // Seeking back works (the browser fetches ranges as it needs).
      await page.evaluate(() => { document.getElementById('rec-video').currentTime = 0.2; });
      await until(() => page.evaluate(() => {
        const v = document.getElementById('rec-video');
        return !v.seeking && v.currentTime >= 0.2 && v.readyState >= 2;
      }), 5000, 'the seek to finish');
      assert(ranges.length > 0, 'the browser sent no Range request');
    });

    await check('delete-confirmed', async () => {
      await page.locator('#rec-video').evaluate((v) => v.pause());
      const seg = page.locator('#rec-sessions li.segment:not(:has(.rec-dot))').first();
      const p = await seg.getAttribute('data-path');
      const file = path.join(dir, p);
      assert(existsSync(file), 'no file ' + file);
      onDialog = (d) => d.dismiss();
      await seg.locator('button.danger').click();
      await sleep(500);
      assert(existsSync(file), 'deleted although the confirmation was dismissed');
      onDialog = (d) => d.accept();
      await seg.locator('button.danger').click();
      await until(() => !existsSync(file), 5000, 'the file to go');
      await until(async () => (await page.locator('#rec-sessions li.segment[data-path="' + p +
        '"]').count()) === 0, 5000, 'the segment to leave the list');
      assert(dialogs.some((m) => m.includes(p)), 'dialogs ' + JSON.stringify(dialogs));
    });

    await check('stop-recording', async () => {
      onDialog = (d) => d.dismiss();
      await row.locator('button.rec-toggle').click();
      await until(async () => (await row.locator('button.rec-toggle').innerText()) === 'Record',
        10000, 'the button to say Record');
      const j = await (await fetch(base + '/api/inputs/cam')).json();
      assert(j.record === false && j.recording.state === 'off', JSON.stringify(j.recording));
    });

    await check('record-around-motion', async () => {
      // The add form: recording around motion turns motion detection on.
      const f = page.locator('#add-form');
      await f.locator('input[name="name"]').fill('yard');
      await f.locator('select[name="kind"]').selectOption('test');
      await f.locator('input[name="record"]').check();
      assert(!(await f.locator('input[name="record_pre_roll"]').isVisible()),
        'pre-roll shown in mode continuous');
      await f.locator('select[name="record_mode"]').selectOption('motion');
      await f.locator('input[name="record_pre_roll"]').fill('3');
      await f.locator('input[name="record_post_roll"]').fill('4');
      await f.locator('button[type="submit"]').click();
      const yard = page.locator('tr.input[data-name="yard"]');
      await yard.waitFor({ timeout: 5000 });
      const j = await (await fetch(base + '/api/inputs/yard')).json();
      assert(j.record === true && j.record_mode === 'motion' && j.record_pre_roll === 3 &&
        j.record_post_roll === 4 && j.motion.enabled === true, JSON.stringify(j));
      const details = page.locator('tr.outputs[data-name="yard"] .recording');
      await until(async () => (await details.count()) > 0 &&
        (await details.innerText()).includes('around motion: 3 s before, 4 s after'), 10000,
        'the details to say around motion');
      // The moving ball: armed, then recording.
      await page.locator('tr.outputs[data-name="yard"] .recording .state-recording')
        .waitFor({ timeout: 20000 });
      const d = await fetch(base + '/api/inputs/yard', { method: 'DELETE' });
      assert(d.status === 200, 'delete ' + d.status);
    });

    await check('recordings-no-page-errors', async () => {
      assert(pageErrors.length === 0, pageErrors.join('; '));
    });
    await page.screenshot({ path: path.join(outDir, 'ui-recordings.png'), fullPage: true });
    await browser.close();
    browser = null;

    await check('recordings-shutdown-clean', async () => {
      relay.proc.kill('SIGTERM');
      const t = setTimeout(() => relay.proc.kill('SIGKILL'), 15000);
      const { code, sig } = await relay.exited;
      clearTimeout(t);
      assert(code === 0, 'exit ' + code + (sig ? ' signal ' + sig : '') + ': ' +
        relay.stderr().split('\n').filter((l) => l.startsWith('shutdown:')).join(' | '));
    });
  } catch (e) {
    report('recordings-setup', false, e && e.message ? e.message : String(e));
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
