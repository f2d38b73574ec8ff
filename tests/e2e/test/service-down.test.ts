import { connectApp, eventually, seed, startTestPlatform, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * A service that is down gives a 503 with Retry-After, quickly, with no stack
 * trace; the routes that do not need it keep working; and it recovers by
 * itself when the service is back. Real processes are killed and restarted.
 */
let t: TestPlatform;
let s: Seed;
let accessToken: string;

async function timed(fn: () => Promise<Response>): Promise<{ res: Response; ms: number; text: string }> {
  const started = Date.now();
  const res = await fn();
  const text = await res.text();
  return { res, ms: Date.now() - started, text };
}

const contacts = () =>
  fetch(new URL('/api.xro/2.0/Contacts', t.issuer), { headers: { authorization: `Bearer ${accessToken}`, 'xero-tenant-id': s.organisations[0].id } });
const connections = () => fetch(new URL('/connections', t.issuer), { headers: { authorization: `Bearer ${accessToken}` } });

beforeAll(async () => {
  t = await startTestPlatform();
  s = await seed(t.grpc);
  accessToken = (await connectApp(t.issuer, s, { scope: 'accounting.contacts', organisations: [s.organisations[0].id] })).access_token;
  expect((await contacts()).status).toBe(200);
});
afterAll(async () => {
  await t?.stop();
});

describe('when a backend service is down', () => {
  it('the edge answers 503 with Retry-After for routes that need accounting, and keeps serving the others', async () => {
    await t.platform.processes.accounting.kill();
    const { res, ms, text } = await timed(contacts);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(ms).toBeLessThan(3000);
    expect(JSON.parse(text)).toMatchObject({ Title: 'ServiceUnavailable', Status: 503 });
    expect(text).not.toMatch(/at \w+ \(|node:internal|\.ts:\d+/);
    expect((await connections()).status).toBe(200);
  });

  it('recovers by itself when the service is back', async () => {
    await t.platform.processes.accounting.start();
    await eventually(async () => (await contacts()).status === 200, 10_000, 100);
  });

  it('the token endpoint answers 503 temporarily_unavailable while the token service is down', async () => {
    await t.platform.processes.token.kill();
    const { res, ms, text } = await timed(() =>
      fetch(new URL('/token', t.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x', client_id: s.client.clientId, client_secret: s.client.clientSecret }).toString(),
      }),
    );
    expect(res.status).toBe(503);
    expect(ms).toBeLessThan(3000);
    expect(JSON.parse(text)).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    await t.platform.processes.token.start();
  });

  it('the login page answers 503 (a page, not a stack trace) while the consent service is down', async () => {
    await t.platform.processes.consent.kill();
    const url = new URL('/authorize', t.issuer);
    url.search = new URLSearchParams({
      client_id: s.client.clientId,
      redirect_uri: s.client.redirectUri,
      response_type: 'code',
      scope: 'accounting.contacts',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const { res, ms, text } = await timed(() => fetch(url, { redirect: 'manual' }));
    expect(res.status).toBe(503);
    expect(ms).toBeLessThan(3000);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(text).toContain('Temporarily unavailable');
    await t.platform.processes.consent.start();
    await eventually(async () => (await fetch(url, { redirect: 'manual' })).status === 302, 10_000, 100);
  });

  it('the API answers 503 within a couple of seconds while the database is down, and recovers', async () => {
    await t.mongo.process.kill();
    const { res, ms } = await timed(contacts);
    expect(res.status).toBe(503);
    expect(ms).toBeLessThan(3000);
    await t.mongo.process.start();
    await eventually(async () => (await contacts()).status === 200, 20_000, 100);
  });
});
