import { appProcess, parseJsonLine } from '@ledgerly/devstack';
import { authorizeInteractively, eventually, seed, startTestPlatform, UserAgent, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * What operators rely on, checked on the real processes: no secret ever
 * reaches a log, a request id follows a request through every service,
 * health endpoints, config errors that name the key, and orderly shutdown.
 */
let t: TestPlatform;
let s: Seed;
const secrets: string[] = [];

function logs(): Record<string, string> {
  const dir = join(t.dir, 'logs');
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

beforeAll(async () => {
  t = await startTestPlatform({ logLevel: 'debug' });
  s = await seed(t.grpc);
  secrets.push(s.user.password, s.client.clientSecret);

  // A whole flow, at debug level, so every service logs as much as it can.
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL('/authorize', t.issuer);
  url.search = new URLSearchParams({
    client_id: s.client.clientId,
    redirect_uri: s.client.redirectUri,
    response_type: 'code',
    scope: 'openid email offline_access accounting.contacts',
    state: 'st',
    nonce: 'n',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  const ua = new UserAgent();
  const { callback } = await authorizeInteractively(ua, url, { email: s.user.email, password: s.user.password, organisations: [s.organisations[0].id] });
  const code = callback.searchParams.get('code')!;
  const basic = `Basic ${Buffer.from(`${s.client.clientId}:${s.client.clientSecret}`).toString('base64')}`;
  const tokenRes = await fetch(new URL('/token', t.issuer), {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: s.client.redirectUri, code_verifier: verifier }).toString(),
  });
  const tokens = (await tokenRes.json()) as { access_token: string; refresh_token: string; id_token: string };
  const refreshed = (await (
    await fetch(new URL('/token', t.issuer), {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).toString(),
    })
  ).json()) as { access_token: string; refresh_token: string };
  const host = new URL(t.issuer).host;
  secrets.push(code, verifier, tokens.access_token, tokens.refresh_token, tokens.id_token, refreshed.access_token, refreshed.refresh_token);
  secrets.push(ua.cookie(host, 'll_session')!, ua.cookie(host, 'll_bb')!);
  // Also a failed login and a failed token request: error paths log too.
  await fetch(new URL('/token', t.issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'not-a-token-' + randomBytes(8).toString('hex'), client_id: s.client.clientId, client_secret: s.client.clientSecret }).toString(),
  });
  await fetch(new URL('/api.xro/2.0/Contacts', t.issuer), { headers: { authorization: `Bearer ${refreshed.access_token}`, 'xero-tenant-id': s.organisations[0].id, 'x-request-id': 'trace-me-123' } });
});
afterAll(async () => {
  await t?.stop();
});

describe('operations', () => {
  it('never writes a password, secret, token, code or cookie to any log, at debug level', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const all = logs();
    expect(Object.keys(all)).toEqual(expect.arrayContaining(['edge.log', 'identity.log', 'consent.log', 'token.log', 'accounting.log']));
    expect(all['edge.log']!.length).toBeGreaterThan(1000);
    for (const [file, text] of Object.entries(all)) {
      for (const secret of secrets) {
        expect(secret.length).toBeGreaterThan(8);
        expect(text.includes(secret), `${file} contains a secret (${secret.slice(0, 6)}…)`).toBe(false);
      }
    }
  });

  it('carries a request id from the caller through the edge to the accounting service', async () => {
    const res = await fetch(new URL('/api.xro/2.0/Contacts', t.issuer), { headers: { 'x-request-id': 'abc-request-42' } });
    expect(res.headers.get('x-request-id')).toBe('abc-request-42');
    await eventually(() => logs()['accounting.log']!.includes('"requestId":"trace-me-123"'));
    const accountingLine = logs()['accounting.log']!.split('\n').map(parseJsonLine).find((r) => r?.['requestId'] === 'trace-me-123');
    expect(accountingLine).toMatchObject({ service: 'accounting', msg: expect.any(String) });
    const edgeLine = logs()['edge.log']!.split('\n').map(parseJsonLine).find((r) => r?.['requestId'] === 'trace-me-123' && r['msg'] === 'HTTP request');
    expect(edgeLine).toMatchObject({ path: '/api.xro/2.0/Contacts', status: 200 });
    // An id that could inject into logs is replaced.
    const evil = await fetch(new URL('/healthz', t.issuer), { headers: { 'x-request-id': 'a"b\\nc d' } });
    expect(evil.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves /healthz on the edge and grpc.health.v1 on every service', async () => {
    const res = await fetch(new URL('/healthz', t.issuer));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', events: { healthy: true, synchronousChecks: false }, views: { revocations: { grants: 0 } } });
    const { createClient, loadTls } = await import('@ledgerly/chassis');
    const { HealthDefinition } = await import('./support/health.js');
    const tls = loadTls(t.platform.operator);
    for (const app of ['identity', 'consent', 'token', 'accounting'] as const) {
      const health = createClient(HealthDefinition, t.platform.addresses[app], { tls, serverName: app });
      expect((await health.check({ service: '' })).status, app).toBe(1);
      health.close();
    }
  });

  it('stops a service on a bad config value, naming the key (exit 78)', async () => {
    const proc = appProcess('identity', { ...t.platform.envs.identity, LEDGERLY_GRPC_LISTEN: '127.0.0.1:0', LEDGERLY_MONGO_URL: 'postgres://nope' }, join(t.dir, 'logs', 'bad-config.log'));
    await expect(proc.start()).rejects.toThrow(/exited \(78\)/);
    expect(proc.recentOutput()).toContain('LEDGERLY_MONGO_URL: expected a mongodb:// URL');
    const typo = appProcess('identity', { ...t.platform.envs.identity, LEDGERLY_GRPC_LISTEN: '127.0.0.1:0', LEDGERLY_MONGO_ULR: 'x' }, join(t.dir, 'logs', 'bad-config.log'));
    await expect(typo.start()).rejects.toThrow(/exited \(78\)/);
    expect(typo.recentOutput()).toContain('LEDGERLY_MONGO_ULR: unknown configuration key');
  });

  it('shuts down in order on SIGTERM and exits 0', async () => {
    const identity = t.platform.processes.identity;
    await identity.stop();
    expect(await identity.exited()).toBe(0);
    const lines = logs()['identity.log']!.split('\n').map(parseJsonLine).filter(Boolean);
    const messages = lines.map((l) => l!['msg']);
    const from = messages.lastIndexOf('Signal received');
    expect(from).toBeGreaterThan(-1);
    expect(messages.slice(from)).toEqual(expect.arrayContaining(['Signal received', 'Service stopping', 'Service stopped']));
    await identity.start();
  });
});
