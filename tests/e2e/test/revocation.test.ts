import { RemoteError, Status } from '@ledgerly/chassis';
import { connectApp, eventually, seed, startTestPlatform, type AppTokens, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Every kind of revocation in the event catalogue, end to end on the real
 * processes: the token is refused at the edge (401) and by the accounting
 * service called directly (UNAUTHENTICATED), and the refresh token is dead.
 */
let t: TestPlatform;

beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(async () => {
  await t?.stop();
});

const SCOPE = 'offline_access accounting.contacts';

async function connected(): Promise<{ s: Seed; tokens: AppTokens }> {
  const s = await seed(t.grpc);
  const tokens = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
  expect((await edge(tokens.access_token, s)).status).toBe(200);
  expect(await accounting(tokens.access_token, s)).toBe('OK');
  return { s, tokens };
}

function edge(accessToken: string, s: Seed) {
  return fetch(new URL('/api.xro/2.0/Contacts', t.issuer), { headers: { authorization: `Bearer ${accessToken}`, 'xero-tenant-id': s.organisations[0].id } });
}

async function accounting(accessToken: string, s: Seed): Promise<string> {
  try {
    await t.grpc.accounting.listContacts({ tenantId: s.organisations[0].id }, { metadata: { authorization: `Bearer ${accessToken}` } });
    return 'OK';
  } catch (err) {
    return err instanceof RemoteError ? `${Status[err.code]}:${err.reason ?? ''}` : String(err);
  }
}

function tokenRequest(s: Seed, form: Record<string, string>) {
  return fetch(new URL('/token', t.issuer), {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${s.client.clientId}:${s.client.clientSecret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form).toString(),
  });
}

/** Refused everywhere within a bound well under the fail-closed one. */
async function refusedEverywhere(accessToken: string, s: Seed, reason: string): Promise<void> {
  await eventually(async () => (await edge(accessToken, s)).status === 401, 1000, 5);
  const res = await edge(accessToken, s);
  expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  await eventually(async () => (await accounting(accessToken, s)) === `UNAUTHENTICATED:${reason}`, 1000, 5);
}

describe('revocation everywhere', () => {
  it('grant.revoked: withdrawing the whole authorization refuses the token and kills the refresh token', async () => {
    const { s, tokens } = await connected();
    await t.grpc.consent.revokeGrant({ userId: s.user.id, clientId: s.client.clientId });
    await refusedEverywhere(tokens.access_token, s, 'grant_revoked');
    const refresh = await tokenRequest(s, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
    expect(refresh.status).toBe(400);
    expect(await refresh.json()).toMatchObject({ error: 'invalid_grant' });
    const list = await fetch(new URL('/connections', t.issuer), { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(list.status).toBe(401);
    // A new consent starts a new grant, whose tokens work.
    const again = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
    expect((await edge(again.access_token, s)).status).toBe(200);
  });

  it('a connection opened after a grant revocation is disconnected at once too (the view never keeps the grant\'s old connection)', async () => {
    const { s, tokens } = await connected();
    // The app revokes its refresh token: the grant ends, and with it its connection (no connection event of its own).
    await t.grpc.consent.revokeGrant({ userId: s.user.id, clientId: s.client.clientId });
    await refusedEverywhere(tokens.access_token, s, 'grant_revoked');
    const again = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
    expect((await edge(again.access_token, s)).status).toBe(200);
    expect(await accounting(again.access_token, s)).toBe('OK');
    const [connection] = (await (await fetch(new URL('/connections', t.issuer), { headers: { authorization: `Bearer ${again.access_token}` } })).json()) as Array<{ id: string }>;
    const del = await fetch(new URL(`/connections/${connection!.id}`, t.issuer), { method: 'DELETE', headers: { authorization: `Bearer ${again.access_token}` } });
    expect(del.status).toBe(204);
    await eventually(async () => (await edge(again.access_token, s)).status === 401, 1000, 5);
    await eventually(async () => (await accounting(again.access_token, s)) !== 'OK', 1000, 5);
  });

  it('a token issued before a disconnect stays refused for that organisation after the user reconnects it', async () => {
    const { s, tokens } = await connected();
    const [connection] = (await (await fetch(new URL('/connections', t.issuer), { headers: { authorization: `Bearer ${tokens.access_token}` } })).json()) as Array<{ id: string }>;
    expect((await fetch(new URL(`/connections/${connection!.id}`, t.issuer), { method: 'DELETE', headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(204);
    await eventually(async () => (await edge(tokens.access_token, s)).status === 401, 1000, 5);
    const again = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
    expect((await edge(again.access_token, s)).status).toBe(200);
    // The old token stays dead there, at the edge and at accounting, now and after the views are rebuilt from the consent service.
    expect((await edge(tokens.access_token, s)).status).toBe(401);
    expect(await accounting(tokens.access_token, s)).not.toBe('OK');
  });

  it('client.suspended: the kill switch refuses every token of the app, and no new one is issued until reinstated', async () => {
    const { s, tokens } = await connected();
    const { client } = await t.grpc.token.suspendClient({ clientId: s.client.clientId });
    expect(client!.suspendedAt).toBeInstanceOf(Date);
    await refusedEverywhere(tokens.access_token, s, 'client_suspended');
    expect((await tokenRequest(s, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! })).status).toBe(401);
    const authorize = await fetch(
      new URL(`/authorize?client_id=${s.client.clientId}&redirect_uri=${encodeURIComponent(s.client.redirectUri)}&response_type=code&scope=openid`, t.issuer),
      { redirect: 'manual' },
    );
    expect(authorize.status).toBe(403);
    expect(await authorize.text()).toContain('This app is suspended');
    await t.grpc.token.reinstateClient({ clientId: s.client.clientId });
    const fresh = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
    expect((await edge(fresh.access_token, s)).status).toBe(200);
    // Tokens issued before the suspension stay refused.
    expect((await edge(tokens.access_token, s)).status).toBe(401);
  });

  it('user.disabled: every token of the user is refused, and they cannot sign in or refresh', async () => {
    const { s, tokens } = await connected();
    await t.grpc.identity.disableUser({ userId: s.user.id });
    await refusedEverywhere(tokens.access_token, s, 'user_disabled');
    expect(await (await tokenRequest(s, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! })).json()).toMatchObject({ error: 'invalid_grant' });
    await expect(connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] })).rejects.toThrow(/Expected the login or consent page, got 401/);
    await t.grpc.identity.enableUser({ userId: s.user.id });
    const after = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
    expect((await edge(after.access_token, s)).status).toBe(200);
    expect((await edge(tokens.access_token, s)).status).toBe(401);
  });

  it('token.revoked: POST /revoke of an access token refuses it everywhere; other tokens of the grant keep working', async () => {
    const { s, tokens } = await connected();
    const second = await tokenRequest(s, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
    const other = (await second.json()) as AppTokens;
    const revoke = await fetch(new URL('/revoke', t.issuer), {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${s.client.clientId}:${s.client.clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: tokens.access_token, token_type_hint: 'access_token' }).toString(),
    });
    expect(revoke.status).toBe(200);
    expect(revoke.headers.get('cache-control')).toBe('no-store');
    await refusedEverywhere(tokens.access_token, s, 'token_revoked');
    expect((await edge(other.access_token, s)).status).toBe(200);
  });

  it('POST /revoke of a refresh token ends the whole grant; unknown tokens get 200; a wrong secret gets 401', async () => {
    const { s, tokens } = await connected();
    const revoke = (token: string, secret = s.client.clientSecret) =>
      fetch(new URL('/revoke', t.issuer), {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${s.client.clientId}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      });
    expect((await revoke('not-a-token-of-ours')).status).toBe(200);
    expect((await revoke(tokens.refresh_token!, 'wrong')).status).toBe(401);
    expect((await revoke(tokens.refresh_token!)).status).toBe(200);
    await refusedEverywhere(tokens.access_token, s, 'grant_revoked');
    expect((await tokenRequest(s, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! })).status).toBe(400);
  });

  it('signing_key.rotated: new tokens carry the new kid and verify everywhere; tokens signed before still verify', async () => {
    const { s, tokens } = await connected();
    const kid = (jwt: string) => (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    const { keyId, retiredKeyIds } = await t.grpc.token.rotateSigningKey({});
    expect(retiredKeyIds).toContain(kid(tokens.access_token));
    const fresh = await connectApp(t.issuer, s, { scope: SCOPE, organisations: [s.organisations[0].id] });
    expect(kid(fresh.access_token)).toBe(keyId);
    expect((await edge(fresh.access_token, s)).status).toBe(200);
    expect(await accounting(fresh.access_token, s)).toBe('OK');
    expect((await edge(tokens.access_token, s)).status).toBe(200);
    const jwks = (await (await fetch(new URL('/.well-known/jwks.json', t.issuer))).json()) as { keys: Array<{ kid: string; d?: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([keyId, kid(tokens.access_token)]));
    expect(jwks.keys.every((k) => k.d === undefined)).toBe(true);
  });
});
