// The dashboard in a real browser: Debian's chromium, headless, driven by
// playwright-core. Run by tests/integration/dashboard_test.cpp against the
// real daemon and real containers; it reaches qabox.<domain> through the
// real router (--host-resolver-rules maps the domain to loopback, no DNS).
//
// Environment: DASHBOARD_URL, DOMAIN, QA_TOKEN, OPS_TOKEN, OPS_NAME,
// QABOX_CLI, QABOX_ENDPOINT, SCREENSHOTS (a directory), CHROMIUM.
'use strict';
const { chromium } = require('playwright-core');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');

const env = process.env;
const base = env.DASHBOARD_URL.replace(/\/$/, '');
const shots = env.SCREENSHOTS;
fs.mkdirSync(shots, { recursive: true });

function cli(args) {
  return new Promise((resolve, reject) => {
    execFile(env.QABOX_CLI, ['--endpoint', env.QABOX_ENDPOINT, ...args], { timeout: 180000 },
      (err, stdout, stderr) => (err ? reject(new Error(`qabox ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
  });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
  console.log(`screenshot ${name}.png`);
}

async function signIn(page, token) {
  await page.goto(base + '/');
  assert.match(page.url(), /\/login\?next=/, 'not signed in: the list sends to the login');
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(base + '/'), page.click('form.login button')]);
}

function row(page, ticket) { return page.locator(`tr[data-ticket="${ticket}"]`); }

async function stateOf(page, ticket) {
  return (await row(page, ticket).locator('.state').textContent()).trim();
}

// Waits (polling the page, never reloading it) until `pred` holds.
async function until(what, pred, timeoutMs = 90000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function markNoReload(page) { await page.evaluate(() => { window.__qaboxMark = 42; }); }
async function notReloaded(page) { return (await page.evaluate(() => window.__qaboxMark)) === 42; }

async function asQa(page) {
  await signIn(page, env.QA_TOKEN);
  await row(page, 'EXMP-1').waitFor();
  assert.equal(await stateOf(page, 'EXMP-1'), 'READY');
  assert.match(await row(page, 'EXMP-1').textContent(), /feature\/EXMP-1 → develop/);
  await shot(page, 'list');

  // A deploy the page did not start shows up and changes state live.
  await markNoReload(page);
  const deploy = cli(['deploy', 'EXMP-2', '--repo', 'app', '--source', 'feature/EXMP-2', '--target', 'develop']);
  await until('EXMP-2 to appear deploying', async () => (await row(page, 'EXMP-2').count()) > 0);
  const seen = new Set();
  await until('EXMP-2 READY', async () => {
    if ((await row(page, 'EXMP-2').count()) === 0) return false;
    const s = await stateOf(page, 'EXMP-2');
    seen.add(s);
    return s === 'READY';
  });
  await deploy;
  assert.ok(seen.has('DEPLOYING') || seen.has('CREATING'), 'saw it busy first: ' + [...seen]);
  assert.ok(await notReloaded(page), 'the list updated without a reload');
  console.log('live states seen: ' + [...seen].join(' -> '));

  // The filter, without JavaScript's help too (server-side query).
  await page.goto(base + '/?q=exmp-2');
  assert.equal(await row(page, 'EXMP-1').count(), 0);
  assert.equal(await row(page, 'EXMP-2').count(), 1);

  // An environment, its deploy log.
  await page.goto(base + '/');
  await Promise.all([page.waitForURL(/\/env\/EXMP-1$/), row(page, 'EXMP-1').locator('a').first().click()]);
  await page.locator('table.phases').waitFor();
  await shot(page, 'environment');
  await Promise.all([page.waitForURL(/\/log\?which=deploy/), page.click('text=Deploy log')]);
  await until('the deploy log', async () => /building the app/.test(await page.locator('#log').textContent()));
  await shot(page, 'deploy-log');

  // Redeploy through the page: DEPLOYING, then READY, followed live.
  await page.goto(base + '/env/EXMP-1');
  await Promise.all([page.waitForURL(/done=redeploy/), page.click('button[value=redeploy]')]);
  await markNoReload(page);
  const states = new Set();
  await until('the redeploy to finish', async () => {
    const s = (await page.locator('#details .state').first().textContent()).trim();
    states.add(s);
    const events = await page.locator('table.events').textContent();
    // The row may be seen DEPLOYING or not (the old container serves, READY,
    // until the switch, and a fast redeploy ends between two updates); the
    // redeploy's own "ok" event arriving without a reload is what shows the
    // page followed it.
    return s === 'READY' && /redeploy\s*token:alice\s*ok/.test(events);
  });
  console.log('states seen during the redeploy: ' + [...states].join(', '));
  assert.ok(await notReloaded(page), 'the environment page updated without a reload');
  await shot(page, 'redeployed');

  // qa may not delete: no button, and the URL itself answers 403 naming the role.
  assert.equal(await page.locator('a:has-text("Delete")').count(), 0);
  const refused = await page.goto(base + '/env/EXMP-1/delete');
  assert.equal(refused.status(), 403);
  assert.match(await page.locator('main').textContent(), /needs the role .*ops/);
  await shot(page, 'refused');

  // A preview behind a login: the router sends the browser to the
  // dashboard, which sends it back with a grant; the app's own page.
  await cli(['deploy', 'EXMP-3', '--repo', 'app', '--source', 'develop', '--target', 'develop', '--access', 'login']);
  const port = new URL(base).port;
  const preview = `http://exmp-3.${env.DOMAIN}${port ? ':' + port : ''}/index.html?from=test`;
  await page.goto(preview);
  assert.equal(page.url(), preview, 'back on the preview after the grant');
  assert.match(await page.content(), /dashboard test app/);
  await shot(page, 'preview');

  await page.goto(base + '/');
  await Promise.all([page.waitForURL(/\/login$/), page.click('form.signout button')]);
  const after = await page.goto(base + '/host');
  assert.match(page.url(), /\/login\?next=/, 'signed out: ' + after.status());
}

async function asOps(page) {
  await signIn(page, env.OPS_TOKEN);
  await page.goto(base + '/host');
  assert.match(await page.locator('main').textContent(), /busybox/);
  await shot(page, 'host');

  await page.goto(base + '/env/EXMP-2');
  await Promise.all([page.waitForURL(/\/delete$/), page.click('text=Delete…')]);
  assert.match(await page.locator('h1').textContent(), /Delete EXMP-2\?/);
  await shot(page, 'delete-confirm');
  await page.fill('input[name=confirm]', 'EXMP-2');
  await Promise.all([page.waitForURL(/done=delete/), page.click('button.danger')]);
  await markNoReload(page);
  await until('EXMP-2 to go', async () => (await row(page, 'EXMP-2').count()) === 0);
  assert.ok(await notReloaded(page));
  await shot(page, 'deleted');

  // Revoking the token signs the browser out at once: the open page's
  // stream says so and the next request is the login's.
  await cli(['token', 'revoke', env.OPS_NAME]);
  await page.waitForURL(/\/login/, { timeout: 15000 });
  await page.goto(base + '/');
  assert.match(page.url(), /\/login\?next=/);
  await shot(page, 'signed-out');
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'qabox-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           `--host-resolver-rules=MAP *.${env.DOMAIN} 127.0.0.1`],
    viewport: { width: 1400, height: 900 },
  });
  let failed = false;
  const page = context.pages()[0] || (await context.newPage());
  try {
    page.setDefaultTimeout(30000);
    page.on('pageerror', (e) => { console.error('page error: ' + e.message); failed = true; });
    await asQa(page);
    await asOps(page);
  } catch (e) {
    console.error(e.stack || String(e));
    failed = true;
    // What the page was when it failed, for a person to look at.
    await shot(page, 'failure').catch(() => {});
    fs.writeFileSync(path.join(shots, 'failure.html'), await page.content().catch(() => ''));
    console.error('failed at ' + page.url());
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(failed ? 'dashboard browser test: FAILED' : 'dashboard browser test: passed');
  process.exit(failed ? 1 : 0);
})();
