// Drives Debian's Chromium with playwright-core (no browser download) through the hub's STAC
// Browser, as tests/integration/test_browser.py asks: one JSON argument in, one JSON line out.
//
// Input (a file named by argv[2]):
//   browserUrl   the hub's browser (https), its front page
//   catalogUrl   the hub's catalog (https), the page's API
//   collection   the collection harvested from the members
//   items        {member: hub item id} to find, open and check
//   homes        {member: member's public URL}, where each item's canonical link must point
//   asset        {item: hub item id, itemId: member's id, member, key: asset key, alternate: "https"}:
//                the asset whose link the signed-in page must show
//   write        {url, body}: a write the signed-in user (without the write scope) tries
//   spki         SHA-256 SPKI hashes (base64) of the test certificates Chromium is to accept
//   screenshots  the folder to write each step's screenshot into
//   chromium     the browser executable (default /usr/bin/chromium)
// Output: {steps: [{name, screenshot, url}], items: {member: {hrefs}}, login: {scope},
//          asset: {href, accessToken}, pageDownload: [what the page's own Download did],
//          write: {status, body}, console: [errors the page logged, once each]}
// Any failure prints {error, steps, console} and exits 1, with a screenshot of where it stopped.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const TIMEOUT = 30000;
const out = { steps: [], items: {}, console: [] };

async function shot(page, name) {
  const file = path.join(input.screenshots, `${String(out.steps.length + 1).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  out.steps.push({ name, screenshot: file, url: page.url() });
}

// The item's card on the collection page, by its id (STAC Browser shows the id as the title),
// opened: done when the item's own page shows a link to `home`, the member that published it.
// (The id is on the collection page too, and an app's route change leaves the load state
// 'networkidle' already reached, so neither says the item page is there.)
async function openItem(page, collectionPage, id, home) {
  await page.goto(collectionPage);
  const link = page.locator(`a[href*="${encodeURIComponent(id)}"], a[href*="${id}"]`).first();
  await link.waitFor({ timeout: TIMEOUT });
  await link.click();
  await page.waitForURL((u) => u.toString().includes(id) || u.toString().includes(encodeURIComponent(id)));
  await page.locator(`a[href^="${home}"]`).first().waitFor({ state: 'attached', timeout: TIMEOUT });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: input.chromium || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      `--ignore-certificate-errors-spki-list=${input.spki.join(',')}`,
    ],
  });
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    // Errors the page logs, once each (offline, the schemas and map tiles it fetches fail).
    page.on('console', (m) => {
      if (m.type() === 'error' && !out.console.includes(m.text()) && out.console.length < 30) out.console.push(m.text());
    });
    page.setDefaultTimeout(TIMEOUT);

    // 1. The federation's front page: the hub's catalog, its collection listed.
    await page.goto(input.browserUrl);
    await page.getByText(input.collection).first().waitFor();
    await shot(page, 'hub-front-page');

    // 2. Item search across the members: one search of the hub finds items of each.
    // The hub offers collection search too: its tab opens first. Wait for the Items tab (a
    // count() before the page has rendered it is 0, and the collections were searched) and
    // until it is the selected one before submitting.
    await page.goto(`${input.browserUrl}/search`);
    const itemSearch = page.getByRole('tab', { name: /Items/ }).first();
    await itemSearch.click();
    await page.locator('[role="tab"][aria-selected="true"]', { hasText: 'Items' }).first().waitFor();
    await page.getByRole('button', { name: 'Submit' }).last().click();
    for (const id of Object.values(input.items)) {
      await page.getByText(id).first().waitFor();
    }
    await shot(page, 'search-across-members');

    // 3. The collection harvested from the members, its items listed.
    await page.goto(input.browserUrl);
    await page.getByText(input.collection).first().click();
    await page.waitForLoadState('networkidle');
    for (const id of Object.values(input.items)) {
      await page.getByText(id).first().waitFor();
    }
    const collectionPage = page.url();
    await shot(page, 'collection-items-of-both-members');

    // 4. Each member's item opened: its canonical link names its home site.
    for (const [member, id] of Object.entries(input.items)) {
      await openItem(page, collectionPage, id, input.homes[member]);
      const hrefs = await page.$$eval('a[href]', (as) => as.map((a) => a.href));
      out.items[member] = { hrefs: hrefs.filter((h) => h.startsWith(input.homes[member])) };
      await shot(page, `item-from-${member}`);
    }

    // 5. Log in through the issuer (authorization code with PKCE, in the browser).
    await openItem(page, collectionPage, input.asset.item, input.homes[input.asset.member]);
    const itemPage = page.url();
    await page.getByRole('button', { name: 'Log in' }).first().click();
    await page.waitForURL((u) => u.toString().startsWith(input.issuerUrl));
    await shot(page, 'issuer-sign-in');
    await page.locator('#sign-in').click();
    await page.waitForURL((u) => u.toString().startsWith(input.browserUrl) && !u.toString().includes('code='));
    await page.getByRole('button', { name: 'Log out' }).first().waitFor();
    if (page.url() !== itemPage) {
      await page.goto(itemPage);
    }
    await page.waitForLoadState('networkidle');
    const user = await page.evaluate(() => {
      for (const store of [window.sessionStorage, window.localStorage]) {
        for (let i = 0; i < store.length; i++) {
          const key = store.key(i);
          if (key.startsWith('oidc.user:')) return JSON.parse(store.getItem(key));
        }
      }
      return null;
    });
    if (!user || !user.access_token) throw new Error('signed in, but no OIDC user in the page storage');
    out.login = { scope: user.scope, tokenType: user.token_type };
    await shot(page, 'signed-in-item');

    // 6. The asset's https alternate, as the signed-in page links it.
    // Waited for, not counted: a count() before the asset list has rendered is 0.
    const tab = page.getByRole('tab', { name: input.asset.alternate }).first();
    await tab.click();
    // Signed in, the tab offers Download (a fetch with the token) and Copy URL (the href).
    const wanted = `/assets/${input.collection}/${input.asset.itemId}/${input.asset.key}`;
    await page.locator(`[title$="${wanted}"], a[href$="${wanted}"]`).first().waitFor({ state: 'attached' });
    const named = await page.$$eval('[title], a[href]', (els) => els.map((e) => e.getAttribute('title') || e.href));
    const href = named.find((h) => h && h.endsWith(wanted));
    if (!href) throw new Error(`the item page names no ${wanted}; it names: ${[...new Set(named)].join(' ')}`);
    // What the page's own Download does with it (reported, not required: see the test).
    // Done when its request to the href has an answer or has failed (or, reported as such,
    // when the page sent none).
    const seen = [];
    page.on('requestfailed', (r) => { if (r.url().startsWith(href)) seen.push({ url: r.url(), failure: r.failure() && r.failure().errorText }); });
    page.on('response', (r) => { if (r.url().startsWith(href) || r.url().includes('X-Amz-Signature')) seen.push({ url: r.url().split('?')[0], status: r.status() }); });
    const settled = Promise.race([
      page.waitForEvent('requestfailed', { predicate: (r) => r.url().startsWith(href), timeout: 10000 }),
      page.waitForEvent('requestfinished', { predicate: (r) => r.url().startsWith(href), timeout: 10000 }),
    ]).catch(() => seen.push({ url: href, note: 'no request from the page within 10 s' }));
    await page.getByRole('button', { name: 'Download' }).first().click().catch(() => {});
    await settled;
    out.pageDownload = seen;
    await shot(page, 'asset-link');
    // The test follows the href with the token the login gave (the 307, then the file).
    out.asset = { href, accessToken: user.access_token };

    // 7. A write with the signed-in user's token (no write scope), from the page: refused.
    const write = await page.evaluate(async ({ url, body, token }) => {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
      const text = await r.text();
      const note = document.createElement('div');
      note.id = 'fedeploy-write-attempt';
      note.style.cssText = 'position:fixed;top:0;left:0;right:0;z-index:99999;padding:12px;background:#b00020;color:#fff;font:16px sans-serif';
      note.textContent = `POST ${url} with the signed-in user's token: ${r.status} ${r.statusText} ${text.slice(0, 120)}`;
      document.body.appendChild(note);
      return { status: r.status, body: text.slice(0, 500) };
    }, { url: input.write.url, body: input.write.body, token: user.access_token });
    out.write = write;
    await shot(page, 'write-refused');
  } catch (err) {
    out.error = String(err && err.stack || err);
    if (page) {
      try { await shot(page, 'failed-here'); } catch (e) { /* the page is gone */ }
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.error ? 1 : 0);
}

main();
