// Browser test of the web UI behind users and TLS: the real binary with a
// config file (a self-signed certificate made here with openssl, users
// hashed with `steward relay --hash-password`), driven by Debian's
// chromium through playwright-core with HTTP Basic credentials.
//
// Usage: node tests/browser/ui_auth_test.mjs BUILD_DIR
// Prints "ok   ui/NAME" or "FAIL ui/NAME: reason" per check and exits
// non-zero if any failed. The relay (by its pid), the browser and the
// temporary directory are cleaned up on the way out, whatever happened.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const require = createRequire(path.join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');

// The certificate is self-signed: the browser is told to accept it (curl
// checks it for real in tests/integration/relay_auth.py).
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--ignore-certificate-errors'];

let failed = 0;

function report(name, ok, why) {
  if (!ok) failed++;
  console.log(ok ? 'ok   ui/' + name : 'FAIL ui/' + name + ': ' + why);
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
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
    await sleep(100);
  }
}

function hash(bin, pw) {
  return execFileSync(bin, ['relay', '--hash-password'], { input: pw + '\n' }).toString().trim();
}

function startRelay(bin, conf) {
  const proc = spawn(bin, ['relay', '--config', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no address line in 20 s: ' + out)), 20000);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error('relay exited: ' + code + ' ' + err)); });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /steward relay: serving https:\/\/127\.0\.0\.1:(\d+)\/\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  return { proc, started, exited, stderr: () => err };
}

// A page logged in as @user, collecting script errors.
async function pageAs(browser, user) {
  const ctx = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: true,
    httpCredentials: user ? { username: user[0], password: user[1] } : undefined,
  });
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return { ctx, page };
}

async function main() {
  const build = process.argv[2];
  if (!build) {
    console.error('usage: node tests/browser/ui_auth_test.mjs BUILD_DIR');
    return 2;
  }
  const bin = path.resolve(build, 'src', 'steward');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ui-auth-'));
  let relay = null;
  let browser = null;
  try {
    const cert = path.join(tmp, 'cert.pem');
    const key = path.join(tmp, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
      'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const conf = path.join(tmp, 'relay.yaml');
    writeFileSync(conf, [
      'listen: 127.0.0.1:0',
      'state: none',
      'test_pattern: {size: 160x120, fps: 10}',
      'tls: {cert: "' + cert + '", key: "' + key + '"}',
      'users:',
      '  alice: {password_hash: "' + hash(bin, 'alice-pw') + '", permissions: [admin]}',
      '  bob: {password_hash: "' + hash(bin, 'bob-pw') + '", permissions: [read]}',
      '',
    ].join('\n'));
    relay = startRelay(bin, conf);
    const port = await relay.started;
    const base = 'https://127.0.0.1:' + port;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });

    await check('auth-no-user-401', async () => {
      // A page would show the browser's login prompt: ask as a script does.
      const { ctx, page } = await pageAs(browser, null);
      const resp = await page.request.get(base + '/');
      assert(resp.status() === 401, 'status ' + resp.status());
      assert(resp.headers()['www-authenticate'] === 'Basic realm="steward"',
        'WWW-Authenticate ' + resp.headers()['www-authenticate']);
      await ctx.close();
    });

    await check('auth-reader-sees-streams', async () => {
      const { ctx, page } = await pageAs(browser, ['bob', 'bob-pw']);
      const resp = await page.goto(base + '/');
      assert(resp.ok(), 'status ' + resp.status());
      await page.waitForSelector('#live.on', { timeout: 5000 });
      const row = page.locator('tr.input[data-name="test"]');
      await row.waitFor({ timeout: 5000 });
      await until(async () => (await row.locator('.state').innerText()).toLowerCase() === 'running',
        5000, 'state running');
      const img = row.locator('img.preview');
      await until(() => img.evaluate((e) => e.complete && e.naturalWidth === 160), 5000,
        'the preview over https with credentials');
      // Creating needs publish: the form shows the 403.
      await page.fill('#add-form [name=name]', 'by-bob');
      await page.click('#add-form button[type=submit]');
      await until(async () => (await page.locator('#form-msg').innerText()).includes('403'), 5000,
        'a 403 message');
      const msg = await page.locator('#form-msg').innerText();
      assert(msg.includes('lacks the publish permission'), 'message ' + msg);
      assert(page.errors.length === 0, 'script errors: ' + page.errors.join('; '));
      await ctx.close();
    });

    await check('auth-admin-adds-and-deletes', async () => {
      const { ctx, page } = await pageAs(browser, ['alice', 'alice-pw']);
      page.on('dialog', (d) => d.accept());
      await page.goto(base + '/');
      await page.waitForSelector('#live.on', { timeout: 5000 });
      await page.fill('#add-form [name=name]', 'by-alice');
      await page.selectOption('#add-form [name=kind]', 'test');
      await page.fill('#add-form [name=size]', '64x48');
      await page.click('#add-form button[type=submit]');
      const row = page.locator('tr.input[data-name="by-alice"]');
      await row.waitFor({ timeout: 5000 });
      await row.locator('button', { hasText: 'Delete' }).click();
      await row.waitFor({ state: 'detached', timeout: 5000 });
      // The charts read /system-resources, which needs admin.
      await until(() => page.evaluate(() => document.querySelectorAll('canvas').length > 0), 5000,
        'the charts');
      assert(page.errors.length === 0, 'script errors: ' + page.errors.join('; '));
      await ctx.close();
    });

    await browser.close();
    browser = null;
    await check('auth-exit', async () => {
      relay.proc.kill('SIGTERM');
      const { code } = await relay.exited;
      assert(code === 0, 'exit ' + code + ': ' + relay.stderr().slice(-1500));
    });
  } catch (e) {
    report('auth-start', false, (e && e.message) || String(e));
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (relay && relay.proc.exitCode === null) relay.proc.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
