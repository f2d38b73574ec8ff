import { CHROMIUM_ARGS, CHROMIUM_PATH, ensureChromium, freePort } from '@ledgerly/devstack';
import { seed, startTestPlatform, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPayroll, type PayrollApp } from './support/payroll.js';

/**
 * The "Done means", clicked through in a real browser (Debian's
 * chromium, driven by playwright-core): in the example payroll app, Connect →
 * sign in on the platform's page → tick an organisation → Allow → back in the
 * app, which shows that organisation. Also Deny, and Disconnect.
 */
let t: TestPlatform;
let app: PayrollApp;
let browser: Browser;
/** The app's registered client (one per payroll process). */
let client: Seed['client'];

beforeAll(async () => {
  const started = Date.now();
  ensureChromium((msg) => console.log(msg));
  const installed = Date.now() - started;
  if (installed > 1000) console.log(`chromium installed in ${(installed / 1000).toFixed(1)} s`);

  t = await startTestPlatform();
  const port = await freePort();
  ({ client } = await seed(t.grpc, `http://localhost:${port}/callback`));
  app = await startPayroll({
    port,
    issuer: t.issuer,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    logFile: join(t.dir, 'logs', 'payroll.log'),
  });
  expect(app.redirectUri).toBe(client.redirectUri);
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await t?.stop();
});

/**
 * A fresh user in two fresh organisations (adviser in the first, read-only in
 * the second), so that no test sees another's connections.
 */
async function freshUser(): Promise<Pick<Seed, 'user' | 'organisations'>> {
  const { user, organisations } = await seed(t.grpc, client.redirectUri);
  return { user, organisations };
}

/** A fresh browser context per test; on failure, a screenshot and the page's HTML. */
async function inBrowser(name: string, fn: (page: Page) => Promise<void>): Promise<void> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()} (${page.url()})`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message} (${page.url()})`));
  try {
    await fn(page);
  } catch (err) {
    try {
      const dir = mkdtempSync(join(tmpdir(), `ledgerly-browser-${name}-`));
      await page.screenshot({ path: join(dir, 'failure.png'), fullPage: true });
      writeFileSync(join(dir, 'failure.html'), await page.content());
      writeFileSync(join(dir, 'console.txt'), `${page.url()}\n\n${consoleLines.join('\n')}\n`);
      console.error(`Browser test "${name}" failed at ${page.url()}; screenshot, HTML and console in ${dir}`);
    } catch (artifactErr) {
      console.error(`Could not save the failure artifacts: ${(artifactErr as Error).message}`);
    }
    throw err;
  } finally {
    await context.close();
  }
}

const onApp = (url: URL) => url.origin === app.url && url.pathname === '/';
const onPlatform = (path: string) => (url: URL) => url.origin === t.issuer && url.pathname === path;

/** From the app's home page, through Connect and the platform's sign-in page, to the consent page. */
async function connectAndSignIn(page: Page, user: Seed['user']): Promise<void> {
  await page.goto(app.url);
  await page.getByRole('link', { name: 'Connect to Ledgerly' }).click();

  await page.waitForURL(onPlatform('/login'));
  expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in to Ledgerly');
  expect(await page.locator('p.lead').textContent()).toBe(`to continue to ${client.name}`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();

  await page.waitForURL(onPlatform('/consent'));
  expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(`${client.name} wants to connect to your Ledgerly account`);
}

/** The names of the organisations the app's page shows as connected. */
async function shownOrganisations(page: Page): Promise<string[]> {
  return (await page.locator('section.org h2.org-name').allTextContents()).map((s) => s.trim());
}

/** What the consent service holds for this user and the app, independent of the app's page. */
async function liveConnections(userId: string): Promise<string[]> {
  const { connections } = await t.grpc.consent.listConnections({ userId, clientId: client.clientId });
  return connections.map((c) => c.tenantId).sort();
}

describe('the example payroll app connects to Ledgerly, in a real browser', () => {
  it('Connect → sign in → tick one organisation → Allow: the app shows that organisation, and only it', async () => {
    const { user, organisations: [chosen, other] } = await freshUser();
    await inBrowser('allow', async (page) => {
      await connectAndSignIn(page, user);

      // Both organisations are offered, neither is ticked for the user.
      for (const org of [chosen, other]) {
        const box = page.getByLabel(org.name);
        expect(await box.getAttribute('value')).toBe(org.id);
        expect(await box.isChecked()).toBe(false);
      }
      await page.getByLabel(chosen.name).check();
      await page.getByRole('button', { name: 'Allow access' }).click();

      // Back in the app (via /callback), on the app's own origin.
      await page.waitForURL(onApp);
      await page.locator('section.org h2.org-name').first().waitFor();
      expect(new URL(page.url()).origin).toBe(app.url);
      expect(await shownOrganisations(page)).toEqual([chosen.name]);
      expect(await page.locator('section.org').getAttribute('data-tenant-id')).toBe(chosen.id);
      expect(await page.content()).not.toContain(other.name);
      expect(await page.locator('main > p').first().textContent()).toBe(`Connected to Ledgerly as ${user.name}.`);
      // The organisation's contacts were read through the API (no error on the card).
      expect(await page.locator('section.org .error').count()).toBe(0);
      expect(await page.locator('section.org').textContent()).toContain('No contacts yet.');

      expect(await liveConnections(user.id)).toEqual([chosen.id]);
    });
  });

  it('Deny: the app says the connection was not allowed, and no organisation is connected', async () => {
    const { user, organisations } = await freshUser();
    await inBrowser('deny', async (page) => {
      await connectAndSignIn(page, user);
      await page.getByLabel(organisations[0].name).check();
      await page.getByRole('button', { name: 'Deny' }).click();

      await page.waitForURL(onApp);
      const notice = page.getByRole('status');
      await notice.waitFor();
      expect((await notice.textContent())?.trim()).toBe('You did not allow the connection.');
      expect(await page.locator('section.org').count()).toBe(0);
      expect(await page.getByRole('link', { name: 'Connect to Ledgerly' }).isVisible()).toBe(true);
      for (const org of organisations) expect(await page.content()).not.toContain(org.name);
      expect(await liveConnections(user.id)).toEqual([]);

      // The notice is shown once; the app is still not connected.
      await page.reload();
      await page.getByRole('link', { name: 'Connect to Ledgerly' }).waitFor();
      expect(await page.locator('.notice').count()).toBe(0);
      expect(await page.locator('section.org').count()).toBe(0);
    });
  });

  it('Disconnect: after disconnecting one of two organisations in the app, it is gone from the page', async () => {
    const { user, organisations: [gone, kept] } = await freshUser();
    await inBrowser('disconnect', async (page) => {
      await connectAndSignIn(page, user);
      await page.getByLabel(gone.name).check();
      await page.getByLabel(kept.name).check();
      await page.getByRole('button', { name: 'Allow access' }).click();

      await page.waitForURL(onApp);
      await page.locator('section.org h2.org-name').first().waitFor();
      expect((await shownOrganisations(page)).sort()).toEqual([gone.name, kept.name].sort());
      expect(await liveConnections(user.id)).toEqual([gone.id, kept.id].sort());

      await page.getByRole('button', { name: `Disconnect ${gone.name}` }).click();
      const notice = page.getByRole('status').filter({ hasText: 'Disconnected.' });
      await notice.waitFor();
      expect(new URL(page.url()).origin).toBe(app.url);
      expect(await shownOrganisations(page)).toEqual([kept.name]);
      expect(await page.content()).not.toContain(gone.name);
      expect(await liveConnections(user.id)).toEqual([kept.id]);

      // A form posted without the page's anti-CSRF token (as another site would) is refused, and changes nothing.
      const forged = await page.request.post(`${app.url}/disconnect`, { form: { connectionId: 'any' }, maxRedirects: 0 });
      expect(forged.status()).toBe(403);
      expect(await liveConnections(user.id)).toEqual([kept.id]);

      // It stays gone.
      await page.reload();
      await page.locator('section.org h2.org-name').first().waitFor();
      expect(await shownOrganisations(page)).toEqual([kept.name]);
      expect(await page.locator('.notice').count()).toBe(0);
    });
  });
});
