import { RemoteError, Status } from '@ledgerly/chassis';
import { ClientType } from '@ledgerly/proto/token/v1/token';
import { authorizeInteractively, eventually, failure, registerClient, seed, startTestPlatform, UserAgent, type RegisteredClient, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { MongoClient } from 'mongodb';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The negative suite of the authorization server: one test per rule, each
 * asserting the exact status and OAuth `error`, over raw HTTP (no client
 * library smoothing anything over). The rules and their sources are in
 * docs/security.md, "The authorization server's rules". The concurrency
 * cases are real concurrent requests.
 *
 * Two platforms: `t` with the defaults, and `short` with a 2 s code, a 3 s
 * refresh token and a 5 s refresh grace window, for the lifetimes.
 */
let t: TestPlatform;
let s: Seed;
let short: TestPlatform;
let ss: Seed;

beforeAll(async () => {
  t = await startTestPlatform();
  s = await seed(t.grpc);
  short = await startTestPlatform({ env: { token: { LEDGERLY_CODE_TTL_SECONDS: '2', LEDGERLY_REFRESH_TOKEN_TTL_SECONDS: '3', LEDGERLY_REFRESH_GRACE_SECONDS: '5' } } });
  ss = await seed(short.grpc);
}, 120_000);
afterAll(async () => {
  await Promise.all([t?.stop(), short?.stop()]);
});

type Client = Pick<RegisteredClient, 'clientId' | 'clientSecret' | 'redirectUri'>;
type Tokens = { access_token: string; refresh_token?: string; id_token?: string; scope: string; token_type: string; expires_in: number };

const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');

/** RFC 6749 §2.3.1: each part form-urlencoded, then base64 of "id:secret". */
const formEncode = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;

function authorizeUrl(p: TestPlatform, client: Client, params: Record<string, string | undefined> = {}): URL {
  const url = new URL('/authorize', p.issuer);
  const all = { client_id: client.clientId, redirect_uri: client.redirectUri, response_type: 'code', scope: 'offline_access accounting.contacts', state: 'st-1', code_challenge: challenge, code_challenge_method: 'S256', ...params };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) url.searchParams.set(k, v);
  return url;
}

/** Through the real login and consent pages; the callback URL. */
async function callback(p: TestPlatform, seedOf: Seed, client: Client, params: Record<string, string | undefined> = {}, ua = new UserAgent()): Promise<URL> {
  const { callback: cb } = await authorizeInteractively(ua, authorizeUrl(p, client, params), {
    email: seedOf.user.email,
    password: seedOf.user.password,
    organisations: [seedOf.organisations[0].id],
  });
  return cb;
}

async function code(p: TestPlatform, seedOf: Seed, client: Client, params: Record<string, string | undefined> = {}): Promise<string> {
  return (await callback(p, seedOf, client, params)).searchParams.get('code')!;
}

/** POST /token with a form body, client_secret_basic unless `authorization` says otherwise (null: none). */
function token(p: TestPlatform, client: Client | null, form: Record<string, string>, init: { authorization?: string | null; dpop?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const authorization = init.authorization === undefined ? (client?.clientSecret ? basic(client.clientId, client.clientSecret) : null) : init.authorization;
  if (authorization) headers['authorization'] = authorization;
  if (init.dpop) headers['dpop'] = init.dpop;
  return fetch(new URL('/token', p.issuer), { method: 'POST', headers, body: new URLSearchParams(form).toString() });
}

async function exchange(p: TestPlatform, client: Client, c: string, extra: Record<string, string> = {}, init: { authorization?: string | null; dpop?: string } = {}) {
  return token(p, client, { grant_type: 'authorization_code', code: c, redirect_uri: client.redirectUri, code_verifier: verifier, ...extra }, init);
}

async function tokensFor(p: TestPlatform, seedOf: Seed, client: Client, params: Record<string, string | undefined> = {}): Promise<Tokens> {
  const res = await exchange(p, client, await code(p, seedOf, client, params));
  expect(res.status).toBe(200);
  return (await res.json()) as Tokens;
}

/** The status and body of an OAuth error response. */
async function oauthError(res: Response | Promise<Response>): Promise<{ status: number; error: string }> {
  const r = await res;
  const body = (await r.json()) as { error: string; error_description: unknown };
  expect(typeof body.error_description).toBe('string');
  return { status: r.status, error: body.error };
}

function api(p: TestPlatform, accessToken: string, path = '/connections', headers: Record<string, string> = {}) {
  return fetch(new URL(path, p.issuer), { headers: { authorization: `Bearer ${accessToken}`, ...headers } });
}

/** What the accounting service says when called directly (gRPC) with this token. */
async function accountingSays(p: TestPlatform, accessToken: string, tenantId: string): Promise<string> {
  try {
    await p.grpc.accounting.listContacts({ tenantId }, { metadata: { authorization: `Bearer ${accessToken}` } });
    return 'OK';
  } catch (err) {
    return err instanceof RemoteError ? Status[err.code] : String(err);
  }
}

/** The authorization response's parameters (a redirect to the client). */
async function authorizationError(url: URL): Promise<URLSearchParams> {
  const res = await fetch(url, { redirect: 'manual' });
  expect(res.status).toBe(302);
  const location = new URL(res.headers.get('location')!);
  expect(`${location.origin}${location.pathname}`).toBe(url.searchParams.get('redirect_uri'));
  return location.searchParams;
}

/** An error page, and no redirect anywhere. */
async function errorPage(url: URL, text: string | RegExp): Promise<void> {
  const res = await fetch(url, { redirect: 'manual' });
  expect(res.status).toBe(400);
  expect(res.headers.get('location')).toBeNull();
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  expect(await res.text()).toMatch(text);
}

async function withDb<T>(p: TestPlatform, db: string, use: (db: ReturnType<MongoClient['db']>) => Promise<T>): Promise<T> {
  const mongo = new MongoClient(p.mongo.url);
  try {
    return await use(mongo.db(db));
  } finally {
    await mongo.close();
  }
}

const sha256 = (v: string) => createHash('sha256').update(v).digest('base64url');

describe('authorization_code with PKCE', () => {
  it('requires PKCE of a public client always and of a confidential one by default (invalid_request, with state and iss)', async () => {
    const pub = await registerClient(t.grpc, { type: ClientType.CLIENT_TYPE_PUBLIC });
    for (const client of [pub, s.client]) {
      const params = await authorizationError(authorizeUrl(t, client, { code_challenge: undefined, code_challenge_method: undefined }));
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/code_challenge/);
      expect(params.get('state')).toBe('st-1');
      expect(params.get('iss')).toBe(t.issuer);
    }
    // A public client cannot even be registered with PKCE optional.
    expect(await failure(t.grpc.token.createClient({ name: 'P', redirectUris: ['http://127.0.0.1/cb'], type: ClientType.CLIENT_TYPE_PUBLIC, pkceOptional: true, tokenEndpointAuthMethod: '', requirePushedAuthorizationRequests: false, jwksJson: '', postLogoutRedirectUris: [] }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
  });

  it('refuses code_challenge_method=plain, and a missing method (RFC 7636 §4.3: only S256)', async () => {
    for (const method of ['plain', undefined]) {
      const params = await authorizationError(authorizeUrl(t, s.client, { code_challenge: method === 'plain' ? verifier : challenge, code_challenge_method: method }));
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/S256/);
    }
  });

  it('refuses a code_verifier when the authorization request had no code_challenge (RFC 9700 §4.8.2)', async () => {
    const optional = await registerClient(t.grpc, { pkceOptional: true });
    const c = await code(t, s, optional, { code_challenge: undefined, code_challenge_method: undefined });
    expect(await oauthError(exchange(t, optional, c))).toEqual({ status: 400, error: 'invalid_grant' });
    // Without the verifier the same kind of code works: PKCE really is optional for this client.
    const ok = await token(t, optional, { grant_type: 'authorization_code', code: await code(t, s, optional, { code_challenge: undefined, code_challenge_method: undefined }), redirect_uri: optional.redirectUri });
    expect(ok.status).toBe(200);
  });

  it('refuses a missing or wrong code_verifier when the request had a challenge', async () => {
    expect(await oauthError(token(t, s.client, { grant_type: 'authorization_code', code: await code(t, s, s.client), redirect_uri: s.client.redirectUri }))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(exchange(t, s.client, await code(t, s, s.client), { code_verifier: randomBytes(32).toString('base64url') }))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('gives a code 60 s of life (stored so), and refuses it once expired', async () => {
    const c = await code(t, s, s.client);
    const stored = await withDb(t, 'ledgerly_token', (db) => db.collection('authorization_codes').findOne({ _id: sha256(c) as never }));
    expect(stored).not.toBeNull();
    expect((stored!['expiresAt'] as Date).getTime() - (stored!['createdAt'] as Date).getTime()).toBe(60_000);
    // The short platform's codes live 2 s.
    const expiring = await code(short, ss, ss.client);
    await sleep(2300);
    expect(await oauthError(exchange(short, ss.client, expiring))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('redeems a code once: the second use is invalid_grant', async () => {
    const c = await code(t, s, s.client);
    expect((await exchange(t, s.client, c)).status).toBe(200);
    expect(await oauthError(exchange(t, s.client, c))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('consumes the code before any other check: a failed attempt burns it', async () => {
    const c = await code(t, s, s.client);
    // Wrong redirect_uri, then wrong verifier, then a wrong client: each spends the code.
    expect(await oauthError(exchange(t, s.client, c, { redirect_uri: 'http://127.0.0.1:8765/other' }))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(exchange(t, s.client, c))).toEqual({ status: 400, error: 'invalid_grant' });
    const c2 = await code(t, s, s.client);
    const other = await registerClient(t.grpc);
    expect(await oauthError(exchange(t, other, c2))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(exchange(t, s.client, c2))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('revokes every token issued from a code that is used again (RFC 6749 §4.1.2), at the edge and at accounting', async () => {
    const c = await code(t, s, s.client);
    const first = (await (await exchange(t, s.client, c)).json()) as Tokens;
    expect((await api(t, first.access_token)).status).toBe(200);
    expect(await oauthError(exchange(t, s.client, c))).toEqual({ status: 400, error: 'invalid_grant' });
    await expect.poll(async () => (await api(t, first.access_token)).status, { timeout: 5000 }).toBe(401);
    await expect.poll(() => accountingSays(t, first.access_token, s.organisations[0].id), { timeout: 5000 }).not.toBe('OK');
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('lets at most one of ten concurrent redemptions of a code get tokens; the nine replays get 400 invalid_grant and revoke what it gave', async () => {
    const c = await code(t, s, s.client);
    const exchanges = await Promise.all(Array.from({ length: 10 }, () => exchange(t, s.client, c)));
    // A replay may land before the winner's tokens are minted, and then nobody gets any.
    const statuses = exchanges.map((r) => r.status).sort();
    expect(statuses.slice(1)).toEqual(Array(9).fill(400));
    expect([200, 400]).toContain(statuses[0]);
    for (const loser of exchanges.filter((r) => r.status !== 200)) expect(await oauthError(loser)).toEqual({ status: 400, error: 'invalid_grant' });
    const won = exchanges.find((r) => r.status === 200);
    if (won) {
      const winner = (await won.json()) as Tokens;
      await expect.poll(async () => (await api(t, winner.access_token)).status, { timeout: 5000 }).toBe(401);
      expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: winner.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
    }
  });

  it('requires the token request redirect_uri to be the authorization request one (RFC 6749 §4.1.3)', async () => {
    expect(await oauthError(exchange(t, s.client, await code(t, s, s.client), { redirect_uri: `${s.client.redirectUri}/` }))).toEqual({ status: 400, error: 'invalid_grant' });
    const missing = await token(t, s.client, { grant_type: 'authorization_code', code: await code(t, s, s.client), code_verifier: verifier });
    expect(await oauthError(missing)).toEqual({ status: 400, error: 'invalid_request' });
  });
});

describe('refresh_token', () => {
  it('rotates on every use: the new token works, the old one is invalid_grant', async () => {
    const first = await tokensFor(t, s, s.client);
    const second = (await (await token(t, s.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token! })).json()) as Tokens;
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.access_token).not.toBe(first.access_token);
    expect((await token(t, s.client, { grant_type: 'refresh_token', refresh_token: second.refresh_token! })).status).toBe(200);
  });

  it('lets exactly one of ten concurrent refreshes with the same token win; the other nine get 400 invalid_grant and no token', async () => {
    const first = await tokensFor(t, s, s.client);
    const results = await Promise.all(Array.from({ length: 10 }, () => token(t, s.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token! })));
    expect(results.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(400)]);
    const bodies = (await Promise.all(results.map((r) => r.json()))) as Array<Tokens & { error?: string }>;
    const losers = bodies.filter((b) => b.error);
    expect(losers.map((b) => b.error)).toEqual(Array(9).fill('invalid_grant'));
    for (const loser of losers) expect(loser.access_token).toBeUndefined();
    // A race is not a theft: the winner's token still works.
    const winner = bodies.find((b) => !b.error)!;
    expect((await token(t, s.client, { grant_type: 'refresh_token', refresh_token: winner.refresh_token! })).status).toBe(200);
  });

  it('revokes the whole grant when a rotated token comes back (RFC 9700 §4.14.2): every refresh and access token of it', async () => {
    const first = await tokensFor(t, s, s.client);
    const second = (await (await token(t, s.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token! })).json()) as Tokens;
    expect((await api(t, second.access_token)).status).toBe(200);
    await sleep(2100); // past the race window: this is a replay
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: second.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
    for (const access of [first.access_token, second.access_token]) {
      await expect.poll(async () => (await api(t, access)).status, { timeout: 5000 }).toBe(401);
    }
  });

  it('answers a retry inside the grace window with the same tokens, not a new branch (off by default)', async () => {
    const first = await tokensFor(short, ss, ss.client);
    const answers = [];
    for (let i = 0; i < 2; i++) {
      const res = await token(short, ss.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token! });
      expect(res.status).toBe(200);
      answers.push((await res.json()) as Tokens);
    }
    expect(answers[1]).toEqual(answers[0]);
    // Off by default: the same retry on the default platform is refused.
    const other = await tokensFor(t, s, s.client);
    expect((await token(t, s.client, { grant_type: 'refresh_token', refresh_token: other.refresh_token! })).status).toBe(200);
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: other.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('may narrow the scope, never widen it (invalid_scope), and refuses unknown scopes', async () => {
    const first = await tokensFor(t, s, s.client, { scope: 'offline_access accounting.contacts accounting.settings' });
    const narrowed = await token(t, s.client, { grant_type: 'refresh_token', refresh_token: first.refresh_token!, scope: 'accounting.contacts' });
    expect(narrowed.status).toBe(200);
    const body = (await narrowed.json()) as Tokens;
    expect(body.scope).toBe('accounting.contacts');
    expect(decodeJwt(body.access_token)['scope']).toBe('accounting.contacts');
    for (const scope of ['accounting.contacts accounting.transactions', 'accounting.nonsense']) {
      expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: body.refresh_token!, scope }))).toEqual({ status: 400, error: 'invalid_scope' });
    }
  });

  it('lets an unused refresh token expire: 60 days by default (stored so), refused once past', async () => {
    const first = await tokensFor(t, s, s.client);
    const stored = await withDb(t, 'ledgerly_token', (db) => db.collection('refresh_tokens').findOne({ _id: sha256(first.refresh_token!) as never }));
    expect((stored!['expiresAt'] as Date).getTime() - Date.now()).toBeGreaterThan(60 * 86_400_000 - 60_000);
    expect((stored!['expiresAt'] as Date).getTime() - Date.now()).toBeLessThanOrEqual(60 * 86_400_000);
    const expiring = await tokensFor(short, ss, ss.client);
    await sleep(3300);
    expect(await oauthError(token(short, ss.client, { grant_type: 'refresh_token', refresh_token: expiring.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
  });
});

describe('client_credentials', () => {
  it('gives a custom connection a token for its one organisation and no refresh token; refuses other clients (unauthorized_client) and wider scopes', async () => {
    const custom = await registerClient(t.grpc, { redirectUris: [], customConnection: { tenantId: s.organisations[0].id, userId: s.user.id, scopes: ['accounting.contacts.read'], grantId: '' } });
    const res = await token(t, custom, { grant_type: 'client_credentials' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Tokens;
    expect(body.refresh_token).toBeUndefined();
    expect(body.scope).toBe('accounting.contacts.read');
    const connections = (await (await api(t, body.access_token)).json()) as Array<{ tenantId: string }>;
    expect(connections.map((c) => c.tenantId)).toEqual([s.organisations[0].id]);
    expect((await api(t, body.access_token, '/api.xro/2.0/Contacts', { 'xero-tenant-id': s.organisations[1].id })).status).toBe(403);
    expect(await oauthError(token(t, custom, { grant_type: 'client_credentials', scope: 'accounting.contacts' }))).toEqual({ status: 400, error: 'invalid_scope' });
    expect(await oauthError(token(t, s.client, { grant_type: 'client_credentials' }))).toEqual({ status: 400, error: 'unauthorized_client' });
    // Nobody signs in: a custom connection cannot hold identity scopes (so no ID token).
    expect(await failure(registerClient(t.grpc, { redirectUris: [], customConnection: { tenantId: s.organisations[0].id, userId: s.user.id, scopes: ['openid', 'accounting.contacts'], grantId: '' } }))).toMatchObject({ code: Status.INVALID_ARGUMENT, reason: 'invalid_scope' });
    // Disconnected (DELETE /connections/{id}): its token is refused, and it gets no new one.
    const [connection] = (await (await api(t, body.access_token)).json()) as Array<{ id: string }>;
    expect((await fetch(new URL(`/connections/${connection!.id}`, t.issuer), { method: 'DELETE', headers: { authorization: `Bearer ${body.access_token}` } })).status).toBe(204);
    await expect.poll(async () => (await api(t, body.access_token, '/api.xro/2.0/Contacts', { 'xero-tenant-id': s.organisations[0].id })).status, { timeout: 5000 }).toBe(401);
    expect(await oauthError(token(t, custom, { grant_type: 'client_credentials' }))).toEqual({ status: 400, error: 'invalid_grant' });
  });
});

describe('client authentication', () => {
  it('form-urldecodes each part of client_secret_basic (RFC 6749 §2.3.1): +, %, :, spaces and non-ASCII in id and secret', async () => {
    const clientId = `id +%:é ü-${randomUUID()}`;
    const clientSecret = 'se cr+et%:ä/ß==';
    await withDb(t, 'ledgerly_token', (db) =>
      db.collection('clients').insertOne({
        _id: clientId as never,
        name: 'Odd Characters',
        type: ClientType.CLIENT_TYPE_CONFIDENTIAL,
        redirectUris: ['https://odd.example/cb'],
        secretHash: sha256(clientSecret),
        tokenEndpointAuthMethod: 'client_secret_basic',
        grantTypes: ['authorization_code', 'refresh_token'],
        createdAt: new Date(),
      }),
    );
    const probe = (authorization: string) => token(t, null, { grant_type: 'refresh_token', refresh_token: 'not-a-token' }, { authorization });
    // Authenticated: the grant itself is what fails.
    expect(await oauthError(probe(basic(clientId, clientSecret)))).toEqual({ status: 400, error: 'invalid_grant' });
    // Not form-encoded: "+" means a space, so the raw secret is a different one.
    expect(await oauthError(probe(`Basic ${Buffer.from(`${formEncode(clientId)}:${clientSecret.replace(/%/g, '%25')}`).toString('base64')}`))).toEqual({ status: 401, error: 'invalid_client' });
    // A malformed % sequence: 401, never a 500.
    const malformed = await probe(`Basic ${Buffer.from('abc%zz:secret%').toString('base64')}`);
    expect(malformed.status).toBe(401);
    expect(malformed.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect((await malformed.json()) as object).toMatchObject({ error: 'invalid_client' });
    // Not Basic at all, or no colon.
    for (const authorization of ['Bearer abc', `Basic ${Buffer.from('no-colon').toString('base64')}`, 'Basic !!!']) {
      expect(await oauthError(probe(authorization))).toEqual({ status: 401, error: 'invalid_client' });
    }
  });

  it('refuses two Authorization headers (which one authenticates would be a guess)', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(new URL('/token', t.issuer), { method: 'POST', headers: ['authorization', basic(s.client.clientId, 'wrong'), 'authorization', basic(s.client.clientId, s.client.clientSecret), 'content-type', 'application/x-www-form-urlencoded'] as unknown as Record<string, string> }, (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode!, body }));
      });
      req.on('error', reject);
      req.end('grant_type=refresh_token&refresh_token=x');
    });
    // Node's HTTP parser already answers 400 to a repeated Authorization header; the edge would too (invalid_request).
    expect(res.status).toBe(400);
    expect(res.body).not.toContain('access_token');
  });

  it('accepts client_secret_post, and refuses two methods at once (RFC 6749 §2.3)', async () => {
    const c = await code(t, s, s.client);
    const post = await token(t, s.client, { grant_type: 'authorization_code', code: c, redirect_uri: s.client.redirectUri, code_verifier: verifier, client_id: s.client.clientId, client_secret: s.client.clientSecret }, { authorization: null });
    expect(post.status).toBe(200);
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: 'x', client_secret: s.client.clientSecret }))).toEqual({ status: 400, error: 'invalid_request' });
  });

  it('private_key_jwt (RFC 7523): a signed assertion is accepted once; a replayed jti, a wrong key or an expired one (beyond 30 s leeway) is invalid_client', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const client = await registerClient(t.grpc, { tokenEndpointAuthMethod: 'private_key_jwt', jwksJson: JSON.stringify({ keys: [jwk] }) });
    const assertion = (key: CryptoKey, claims: { jti?: string; exp?: number; iat?: number } = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ jti: claims.jti ?? randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(client.clientId)
        .setSubject(client.clientId)
        .setAudience(`${t.issuer}/token`)
        .setIssuedAt(claims.iat ?? now)
        .setExpirationTime(claims.exp ?? now + 60)
        .sign(key);
    };
    const probe = async (a: string) =>
      token(t, null, { grant_type: 'refresh_token', refresh_token: 'not-a-token', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: a }, { authorization: null });
    const once = await assertion(privateKey);
    expect(await oauthError(probe(once))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(probe(once))).toEqual({ status: 401, error: 'invalid_client' });
    const now = Math.floor(Date.now() / 1000);
    // Leeway: expired 10 s ago is still within the allowed skew; 90 s ago is not.
    expect(await oauthError(probe(await assertion(privateKey, { iat: now - 70, exp: now - 10 })))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(probe(await assertion(privateKey, { iat: now - 150, exp: now - 90 })))).toEqual({ status: 401, error: 'invalid_client' });
    const stranger = await generateKeyPair('ES256');
    expect(await oauthError(probe(await assertion(stranger.privateKey)))).toEqual({ status: 401, error: 'invalid_client' });
    // One audience only, and not from the future.
    const twoAudiences = await new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(client.clientId).setSubject(client.clientId).setAudience(['https://other.example', t.issuer]).setIssuedAt().setExpirationTime('1m').sign(privateKey);
    expect(await oauthError(probe(twoAudiences))).toEqual({ status: 401, error: 'invalid_client' });
    expect(await oauthError(probe(await assertion(privateKey, { iat: now + 300, exp: now + 360 })))).toEqual({ status: 401, error: 'invalid_client' });
    // The jti is remembered until the assertion's exp (and swept after).
    const stored = await withDb(t, 'ledgerly_token', (db) => db.collection('client_assertion_ids').countDocuments({}));
    expect(stored).toBeGreaterThanOrEqual(2);
    // A private_key_jwt client cannot fall back to a secret.
    expect(await oauthError(token(t, null, { grant_type: 'refresh_token', refresh_token: 'x' }, { authorization: basic(client.clientId, '') }))).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('a public client authenticates with PKCE only: one that sends a secret is invalid_client', async () => {
    const pub = await registerClient(t.grpc, { type: ClientType.CLIENT_TYPE_PUBLIC });
    expect(pub.clientSecret).toBe('');
    const c = await code(t, s, pub);
    expect(await oauthError(exchange(t, pub, c, { client_id: pub.clientId, client_secret: 'anything' }, { authorization: null }))).toEqual({ status: 401, error: 'invalid_client' });
    const ok = await exchange(t, pub, await code(t, s, pub), { client_id: pub.clientId }, { authorization: null });
    expect(ok.status).toBe(200);
    // Without client_id, it is nobody.
    expect(await oauthError(token(t, null, { grant_type: 'refresh_token', refresh_token: 'x' }, { authorization: null }))).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('gives an unknown client and a wrong secret the same 401 invalid_client body', async () => {
    const answers = [];
    for (const authorization of [basic(s.client.clientId, 'wrong'), basic('0123456789ABCDEF0123456789ABCDEF', s.client.clientSecret), basic(s.client.clientId, '')]) {
      const res = await token(t, null, { grant_type: 'refresh_token', refresh_token: 'x' }, { authorization });
      expect(res.status).toBe(401);
      answers.push(await res.json());
    }
    expect(answers[0]).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed' });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  it('generates secrets with at least 256 bits of entropy and stores only their hash', async () => {
    const a = await registerClient(t.grpc);
    const b = await registerClient(t.grpc);
    expect(a.clientSecret).not.toBe(b.clientSecret);
    expect(Buffer.from(a.clientSecret, 'base64url').length).toBeGreaterThanOrEqual(32);
    const doc = await withDb(t, 'ledgerly_token', (db) => db.collection('clients').findOne({ _id: a.clientId as never }));
    expect(JSON.stringify(doc)).not.toContain(a.clientSecret);
    expect(doc!['secretHash']).toBe(sha256(a.clientSecret));
  });
});

describe('consents', () => {
  it('add up: a second consent shows what an earlier one already allows, for every organisation connected; a sign-in-only token sees no organisations', async () => {
    const client = await registerClient(t.grpc);
    const person = { email: s.user.email, password: s.user.password };
    const first = await authorizeInteractively(new UserAgent(), authorizeUrl(t, client, { scope: 'accounting.contacts' }), { ...person, organisations: [s.organisations[0].id] });
    expect(first.consentPage).not.toContain('You already allowed');
    const firstTokens = (await (await exchange(t, client, first.callback.searchParams.get('code')!)).json()) as Tokens;
    const second = await authorizeInteractively(new UserAgent(), authorizeUrl(t, client, { scope: 'accounting.settings.read' }), { ...person, organisations: [s.organisations[1].id] });
    // The page says that contacts access, allowed before, will apply to the organisation chosen now too.
    expect(second.consentPage).toMatch(/You already allowed[\s\S]*contacts[\s\S]*applies to every organisation you connect/i);
    await exchange(t, client, second.callback.searchParams.get('code')!);
    // As the page said: the first consent's token works in the organisation connected by the second.
    expect((await api(t, firstTokens.access_token, '/api.xro/2.0/Contacts', { 'xero-tenant-id': s.organisations[1].id })).status).toBe(200);
    // A sign-in-only token of the same app and person: no organisations.
    const signIn = await tokensFor(t, s, client, { scope: 'openid profile' });
    expect(await (await api(t, signIn.access_token)).json()).toEqual([]);
  });
});

describe('redirect URIs', () => {
  it('matches exactly and case-sensitively; anything else is an error page, never a redirect', async () => {
    const client = await registerClient(t.grpc, { redirectUris: ['https://app.example/cb/done'] });
    for (const uri of ['https://app.example/cb/done/', 'https://APP.example/cb/done', 'https://app.example/CB/done', 'https://app.example/cb/done?x=1', 'https://app.example:443/cb/done', 'https://app.example/cb/x/../done', 'https://app.example/cb%2Fdone', 'https://u@app.example/cb/done', 'https://app.example/cb/done#f']) {
      await errorPage(authorizeUrl(t, { ...client, redirectUri: uri }), /redirect_uri mismatch/);
    }
    expect((await fetch(authorizeUrl(t, client), { redirect: 'manual' })).status).toBe(302);
  });

  it('refuses to register userinfo, fragments, dot-segments and encoded slashes', async () => {
    for (const uri of ['https://user:pw@app.example/cb', 'https://app.example/cb#frag', 'https://app.example/a/../cb', 'https://app.example/./cb', 'https://app.example/a%2Fb', 'https://app.example/%2e%2e/cb', 'https://app.example/a/%2E/cb', 'http://app.example/cb', 'https://*.example/cb', 'https:app.example/cb', 'https://app.example\\@evil.example/cb', 'http://0x7f000001/cb', 'https://app.example/cb%00', 'https://APP.example/cb']) {
      const err = await failure(registerClient(t.grpc, { redirectUris: [uri] }));
      expect(err, uri).toMatchObject({ code: Status.INVALID_ARGUMENT, reason: 'invalid_redirect_uri' });
    }
  });

  it('applies the loopback exception (any port, RFC 8252 §7.3) only to a registered http loopback IP literal', async () => {
    const loopback = await registerClient(t.grpc, { redirectUris: ['http://127.0.0.1:7000/cb'] });
    const other = await fetch(authorizeUrl(t, { ...loopback, redirectUri: 'http://127.0.0.1:51234/cb' }), { redirect: 'manual' });
    expect(other.status).toBe(302);
    expect(other.headers.get('location')).toMatch(/^\/login\?flow=/);
    // And all the way: consent sends the browser back to that port, and the code is redeemed with it.
    const onPort = { ...loopback, redirectUri: 'http://127.0.0.1:51234/cb' };
    const cb = await callback(t, s, onPort);
    expect(`${cb.origin}${cb.pathname}`).toBe('http://127.0.0.1:51234/cb');
    expect((await exchange(t, onPort, cb.searchParams.get('code')!)).status).toBe(200);
    await errorPage(authorizeUrl(t, { ...loopback, redirectUri: 'http://127.0.0.1:51234/other' }), /redirect_uri mismatch/);
    // Not a port at all: no match, an error page (never a 500).
    await errorPage(authorizeUrl(t, { ...loopback, redirectUri: 'http://127.0.0.1:99999/cb' }), /redirect_uri mismatch/);
    const named = await registerClient(t.grpc, { redirectUris: ['http://localhost:7000/cb'] });
    await errorPage(authorizeUrl(t, { ...named, redirectUri: 'http://localhost:51234/cb' }), /redirect_uri mismatch/);
    const https = await registerClient(t.grpc, { redirectUris: ['https://app.example:8443/cb'] });
    await errorPage(authorizeUrl(t, { ...https, redirectUri: 'https://app.example:9443/cb' }), /redirect_uri mismatch/);
  });

  it('answers a bad client_id or redirect_uri with an error page, never a redirect', async () => {
    await errorPage(authorizeUrl(t, { ...s.client, clientId: '0123456789ABCDEF0123456789ABCDEF' }), /Unknown app/);
    await errorPage(authorizeUrl(t, { ...s.client, clientId: '' }), /client_id is missing/);
    await errorPage(authorizeUrl(t, { ...s.client, redirectUri: 'https://attacker.example/cb' }), /redirect_uri mismatch/);
    await errorPage(authorizeUrl(t, { ...s.client, redirectUri: '' }), /redirect_uri is missing/);
  });

  it('puts state and iss (RFC 9207) on every authorization response, success or error, and discovery says so', async () => {
    const success = await callback(t, s, s.client, { state: 'ok-state' });
    expect(success.searchParams.get('state')).toBe('ok-state');
    expect(success.searchParams.get('iss')).toBe(t.issuer);
    expect(success.searchParams.get('code')).toBeTruthy();
    for (const params of [{ scope: 'accounting.unknown' }, { response_type: 'token' }, { prompt: 'none' }]) {
      const answer = await authorizationError(authorizeUrl(t, s.client, { ...params, state: 'err-state' }));
      expect(answer.get('state')).toBe('err-state');
      expect(answer.get('iss')).toBe(t.issuer);
    }
    const ua = new UserAgent();
    const denied = await authorizeInteractively(ua, authorizeUrl(t, s.client, { state: 'deny-state' }), { email: s.user.email, password: s.user.password, organisations: [s.organisations[0].id], decision: 'deny' });
    expect(Object.fromEntries(denied.callback.searchParams)).toMatchObject({ error: 'access_denied', state: 'deny-state', iss: t.issuer });
    const discovery = (await (await fetch(new URL('/.well-known/openid-configuration', t.issuer))).json()) as Record<string, unknown>;
    expect(discovery['authorization_response_iss_parameter_supported']).toBe(true);
  });
});

describe('endpoints', () => {
  it('discovery (RFC 8414, OpenID Connect Discovery) says exactly what is supported', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const d = (await (await fetch(new URL(path, t.issuer))).json()) as Record<string, unknown>;
      expect(d['issuer']).toBe(t.issuer);
      expect(d['code_challenge_methods_supported']).toEqual(['S256']);
      expect(d['response_types_supported']).toEqual(['code']);
      expect([...(d['grant_types_supported'] as string[])].sort()).toEqual(['authorization_code', 'client_credentials', 'refresh_token']);
      expect([...(d['token_endpoint_auth_methods_supported'] as string[])].sort()).toEqual(['client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt']);
      expect(d['id_token_signing_alg_values_supported']).toEqual(['ES256']);
      expect(d['dpop_signing_alg_values_supported']).toContain('ES256');
      expect(d['require_pushed_authorization_requests']).toBe(false);
      expect(d['scopes_supported']).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'offline_access', 'accounting.transactions.read', 'accounting.reports.read', 'accounting.invoices', 'accounting.reports.balancesheet.read']));
      for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'revocation_endpoint', 'introspection_endpoint', 'pushed_authorization_request_endpoint']) {
        expect(d[endpoint], endpoint).toMatch(new RegExp(`^${t.issuer}/`));
      }
    }
  });

  it('rotates signing keys: a new kid signs, and tokens signed by the old one stay valid while the old key stays published', async () => {
    const before = await tokensFor(t, s, s.client);
    const oldKid = decodeProtectedHeader(before.access_token).kid;
    const { keyId } = await t.grpc.token.rotateSigningKey({});
    expect(keyId).not.toBe(oldKid);
    const after = await tokensFor(t, s, s.client);
    expect(decodeProtectedHeader(after.access_token).kid).toBe(keyId);
    const jwks = (await (await fetch(new URL('/.well-known/jwks.json', t.issuer))).json()) as { keys: JWK[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, keyId]));
    for (const k of jwks.keys) expect(k.d).toBeUndefined();
    await expect.poll(async () => (await api(t, after.access_token)).status, { timeout: 5000 }).toBe(200);
    expect((await api(t, before.access_token)).status).toBe(200);
  });

  it('revokes a refresh token (RFC 7009) and with it the access tokens of its grant, at the edge and at accounting', async () => {
    const tokens = await tokensFor(t, s, s.client);
    const revoke = (form: Record<string, string>, authorization = basic(s.client.clientId, s.client.clientSecret)) =>
      fetch(new URL('/revoke', t.issuer), { method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
    expect((await revoke({ token: tokens.refresh_token!, token_type_hint: 'refresh_token' })).status).toBe(200);
    await expect.poll(async () => (await api(t, tokens.access_token)).status, { timeout: 5000 }).toBe(401);
    await expect.poll(() => accountingSays(t, tokens.access_token, s.organisations[0].id), { timeout: 5000 }).toMatch(/UNAUTHENTICATED|PERMISSION_DENIED/);
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }))).toEqual({ status: 400, error: 'invalid_grant' });
    // An unknown token: 200 all the same (RFC 7009 §2.2); no client authentication: 401.
    expect((await revoke({ token: 'never-issued' })).status).toBe(200);
    expect(await oauthError(revoke({ token: 'x' }, basic(s.client.clientId, 'wrong')))).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('introspection (RFC 7662) needs client authentication, and says only {"active":false} of a token of another client, an unknown or a revoked one', async () => {
    const mine = await tokensFor(t, s, s.client);
    const introspect = (tokenValue: string, authorization: string | null = basic(s.client.clientId, s.client.clientSecret)) =>
      fetch(new URL('/introspect', t.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
        body: new URLSearchParams({ token: tokenValue }).toString(),
      });
    const live = await introspect(mine.access_token);
    expect(live.headers.get('cache-control')).toBe('no-store');
    expect(await live.json()).toMatchObject({ active: true, client_id: s.client.clientId, sub: s.user.id, token_type: 'Bearer' });
    const other = await registerClient(t.grpc);
    expect(await (await introspect(mine.access_token, basic(other.clientId, other.clientSecret))).json()).toEqual({ active: false });
    expect(await (await introspect('not-a-token')).json()).toEqual({ active: false });
    await fetch(new URL('/revoke', t.issuer), { method: 'POST', headers: { authorization: basic(s.client.clientId, s.client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${mine.access_token}` });
    expect(await (await introspect(mine.access_token)).json()).toEqual({ active: false });
    expect(await oauthError(introspect(mine.access_token, null))).toEqual({ status: 401, error: 'invalid_client' });
    // A public client cannot authenticate, so it cannot introspect (RFC 7662 §2.1), even its own token.
    const pub = await registerClient(t.grpc, { type: ClientType.CLIENT_TYPE_PUBLIC });
    const own = (await (await exchange(t, pub, await code(t, s, pub), { client_id: pub.clientId }, { authorization: null })).json()) as Tokens;
    const asPublic = await fetch(new URL('/introspect', t.issuer), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: own.access_token, client_id: pub.clientId }).toString() });
    expect(await oauthError(asPublic)).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('OpenID Connect: an ID token with nonce, auth_time, at_hash and sid; /userinfo refuses a token without openid (403 insufficient_scope)', async () => {
    const tokens = await tokensFor(t, s, s.client, { scope: 'openid profile email', nonce: 'n-123' });
    const id = decodeJwt(tokens.id_token!);
    expect(id).toMatchObject({ iss: t.issuer, aud: s.client.clientId, sub: s.user.id, nonce: 'n-123' });
    expect(typeof id['auth_time']).toBe('number');
    expect(typeof id['sid']).toBe('string');
    expect(id['at_hash']).toBe(createHash('sha256').update(tokens.access_token).digest().subarray(0, 16).toString('base64url'));
    const info = await api(t, tokens.access_token, '/userinfo');
    expect(await info.json()).toMatchObject({ sub: s.user.id, email: s.user.email, name: s.user.name });
    const noOpenid = await tokensFor(t, s, s.client, { scope: 'accounting.contacts' });
    const refused = await api(t, noOpenid.access_token, '/userinfo');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    expect((await fetch(new URL('/userinfo', t.issuer))).status).toBe(401);
  });

  it('prompt=none answers login_required without a session; prompt=login and max_age=0 ask to sign in again', async () => {
    expect((await authorizationError(authorizeUrl(t, s.client, { prompt: 'none' }))).get('error')).toBe('login_required');
    const ua = new UserAgent();
    await callback(t, s, s.client, {}, ua);
    for (const params of [{ prompt: 'login' }, { max_age: '0' }]) {
      const res = await ua.follow(authorizeUrl(t, s.client, params), t.issuer);
      expect(res.url.pathname, JSON.stringify(params)).toBe('/login');
    }
    expect((await ua.follow(authorizeUrl(t, s.client, {}), t.issuer)).url.pathname).toBe('/consent');
  });

  it('RP-initiated logout never redirects to an unregistered post_logout_redirect_uri, and refuses an ID token it did not issue', async () => {
    const back = 'http://127.0.0.1:8765/bye';
    const client = await registerClient(t.grpc, { postLogoutRedirectUris: [back] });
    const ua = new UserAgent();
    const tokens = await tokensFor(t, s, client, { scope: 'openid' });
    const end = (params: Record<string, string>) => {
      const url = new URL('/session/end', t.issuer);
      url.search = new URLSearchParams(params).toString();
      return url;
    };
    await errorPage(end({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://attacker.example/bye' }), /has not registered/);
    await errorPage(end({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${back}/` }), /has not registered/);
    await errorPage(end({ client_id: client.clientId, post_logout_redirect_uri: 'https://attacker.example/bye' }), /has not registered/);
    const forged = await new SignJWT({ sid: 'x' }).setProtectedHeader({ alg: 'ES256', kid: decodeProtectedHeader(tokens.id_token!).kid! }).setIssuer(t.issuer).setAudience(client.clientId).setSubject(s.user.id).setIssuedAt().sign((await generateKeyPair('ES256')).privateKey);
    await errorPage(end({ id_token_hint: forged, post_logout_redirect_uri: back }), /did not issue/);
    // With the hint of another browser's session, the person confirms first: no sign-out by a link alone.
    const page = await ua.follow(end({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: back, state: 'z' }), t.issuer);
    expect(page.left).toBeUndefined();
    expect(page.res.status).toBe(200);
    expect(await page.res.text()).toMatch(/<form[^>]+method="post"/);
  });

  it('prompt=consent shows the consent page even to a signed-in person who already connected the app', async () => {
    const ua = new UserAgent();
    await callback(t, s, s.client, {}, ua);
    expect((await ua.follow(authorizeUrl(t, s.client, { prompt: 'consent' }), t.issuer)).url.pathname).toBe('/consent');
  });

  it('PAR (RFC 9126): a request_uri is single-use and bound to its client; a client that requires PAR cannot use the front channel', async () => {
    const push = (client: Client, params: Record<string, string>, authorization: string | null = basic(client.clientId, client.clientSecret)) =>
      fetch(new URL('/par', t.issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
        body: new URLSearchParams({ response_type: 'code', redirect_uri: client.redirectUri, scope: 'accounting.contacts', code_challenge: challenge, code_challenge_method: 'S256', ...params }).toString(),
      });
    const pushed = await push(s.client, {});
    expect(pushed.status).toBe(201);
    expect(pushed.headers.get('cache-control')).toBe('no-store');
    const { request_uri, expires_in } = (await pushed.json()) as { request_uri: string; expires_in: number };
    expect(request_uri).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    expect(expires_in).toBe(60);
    const other = await registerClient(t.grpc);
    const use = (clientId: string) => {
      const url = new URL('/authorize', t.issuer);
      url.search = new URLSearchParams({ client_id: clientId, request_uri }).toString();
      return url;
    };
    await errorPage(use(other.clientId), /expired/);
    expect((await fetch(use(s.client.clientId), { redirect: 'manual' })).status).toBe(302);
    await errorPage(use(s.client.clientId), /expired/);
    expect(await oauthError(push(s.client, { scope: 'accounting.unknown' }))).toEqual({ status: 400, error: 'invalid_scope' });
    expect(await oauthError(push(s.client, { code_challenge_method: 'plain' }))).toEqual({ status: 400, error: 'invalid_request' });
    expect(await oauthError(push(s.client, {}, basic(s.client.clientId, 'wrong')))).toEqual({ status: 401, error: 'invalid_client' });
    const strict = await registerClient(t.grpc, { requirePushedAuthorizationRequests: true });
    await errorPage(authorizeUrl(t, strict), /pushed authorization request required/);
  });
});

describe('DPoP (RFC 9449)', () => {
  const proof = async (keys: { privateKey: CryptoKey; jwk: JWK }, claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
    new SignJWT({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000), ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: keys.jwk, ...header }).sign(keys.privateKey);
  const keyPair = async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    return { privateKey, jwk: await exportJWK(publicKey) };
  };
  const ath = (accessToken: string) => createHash('sha256').update(accessToken).digest('base64url');

  it('binds the tokens to the proof key (cnf.jkt) at /token, and refuses bad proofs there with 400 invalid_dpop_proof', async () => {
    const keys = await keyPair();
    const tokenUrl = `${t.issuer}/token`;
    for (const claims of [{ htm: 'GET', htu: tokenUrl }, { htm: 'POST', htu: `${t.issuer}/revoke` }, { htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000) - 600 }]) {
      expect(await oauthError(exchange(t, s.client, await code(t, s, s.client), {}, { dpop: await proof(keys, claims) }))).toEqual({ status: 400, error: 'invalid_dpop_proof' });
    }
    expect(await oauthError(exchange(t, s.client, await code(t, s, s.client), {}, { dpop: await proof(keys, { htm: 'POST', htu: tokenUrl }, { typ: 'JWT' }) }))).toEqual({ status: 400, error: 'invalid_dpop_proof' });
    const good = await proof(keys, { htm: 'POST', htu: tokenUrl });
    const res = await exchange(t, s.client, await code(t, s, s.client), {}, { dpop: good });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Tokens;
    expect(body.token_type).toBe('DPoP');
    expect(decodeJwt(body.access_token)['cnf']).toEqual({ jkt: await calculateJwkThumbprint(keys.jwk) });
    const introspected = await fetch(new URL('/introspect', t.issuer), { method: 'POST', headers: { authorization: basic(s.client.clientId, s.client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: body.access_token }).toString() });
    expect(await introspected.json()).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: await calculateJwkThumbprint(keys.jwk) } });
    // The same proof again: a replayed jti.
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: body.refresh_token! }, { dpop: good }))).toEqual({ status: 400, error: 'invalid_dpop_proof' });
  });

  it('checks the proof on every API call: htm, htu, iat, jti replay and ath (401 invalid_dpop_proof); a bound token is never a bearer token', async () => {
    const keys = await keyPair();
    const dpop = await proof(keys, { htm: 'POST', htu: `${t.issuer}/token` });
    const tokens = (await (await exchange(t, s.client, await code(t, s, s.client), {}, { dpop })).json()) as Tokens;
    const url = `${t.issuer}/connections`;
    const call = (proofJwt: string | null, scheme = 'DPoP') =>
      fetch(url, { headers: { authorization: `${scheme} ${tokens.access_token}`, ...(proofJwt ? { dpop: proofJwt } : {}) } });
    const good = await proof(keys, { htm: 'GET', htu: url, ath: ath(tokens.access_token) });
    expect((await call(good)).status).toBe(200);
    const refusals = [
      await call(good), // jti replay
      await call(await proof(keys, { htm: 'POST', htu: url, ath: ath(tokens.access_token) })),
      await call(await proof(keys, { htm: 'GET', htu: `${t.issuer}/userinfo`, ath: ath(tokens.access_token) })),
      await call(await proof(keys, { htm: 'GET', htu: url, ath: ath(tokens.access_token), iat: Math.floor(Date.now() / 1000) - 600 })),
      await call(await proof(keys, { htm: 'GET', htu: url, ath: ath('another token') })),
      await call(await proof(keys, { htm: 'GET', htu: url })),
      await call(await proof(await keyPair(), { htm: 'GET', htu: url, ath: ath(tokens.access_token) })),
    ];
    for (const [i, res] of refusals.entries()) {
      expect(res.status, `refusal ${i}`).toBe(401);
      expect(res.headers.get('www-authenticate'), `refusal ${i}`).toMatch(/^DPoP .*error="invalid_dpop_proof"/);
    }
    const noProof = await call(null);
    expect(noProof.status).toBe(401);
    const asBearer = await call(await proof(keys, { htm: 'GET', htu: url, ath: ath(tokens.access_token) }), 'Bearer');
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP .*error="invalid_token"/);
  });
});

describe('access tokens', () => {
  it('are RFC 9068 JWTs (typ at+jwt, ES256, kid) living 30 minutes, with every claim', async () => {
    const tokens = await tokensFor(t, s, s.client);
    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256', kid: expect.any(String) });
    const claims = decodeJwt(tokens.access_token);
    for (const claim of ['iss', 'sub', 'aud', 'client_id', 'scope', 'jti', 'iat', 'exp', 'auth_time', 'authentication_event_id']) expect(claims[claim], claim).toBeDefined();
    expect(claims.exp! - claims.iat!).toBe(1800);
    expect(tokens.expires_in).toBe(1800);
    expect(claims['client_id']).toBe(s.client.clientId);
  });

  it('are verified with an algorithm allow-list: none, HS256 keyed with the public key, and a foreign key are 401 invalid_token', async () => {
    const real = await tokensFor(t, s, s.client);
    const header = decodeProtectedHeader(real.access_token);
    const payload = decodeJwt(real.access_token);
    const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const jwks = (await (await fetch(new URL('/.well-known/jwks.json', t.issuer))).json()) as { keys: JWK[] };
    const publicJwk = jwks.keys.find((k) => k.kid === header.kid)!;
    const forged = [
      `${b64({ ...header, alg: 'none' })}.${b64(payload)}.`,
      await new SignJWT(payload).setProtectedHeader({ ...header, alg: 'HS256' }).sign(new TextEncoder().encode(JSON.stringify(publicJwk))),
      await new SignJWT(payload).setProtectedHeader({ ...header, alg: 'ES256' }).sign((await generateKeyPair('ES256')).privateKey),
      await new SignJWT({ ...payload, exp: Math.floor(Date.now() / 1000) - 120 }).setProtectedHeader({ ...header, alg: 'ES256', kid: 'unknown' }).sign((await generateKeyPair('ES256')).privateKey),
    ];
    for (const [i, fake] of forged.entries()) {
      const res = await api(t, fake);
      expect(res.status, `forgery ${i}`).toBe(401);
      expect(res.headers.get('www-authenticate'), `forgery ${i}`).toMatch(/error="invalid_token"/);
    }
  });

  it('refuses unknown scopes with invalid_scope at /authorize and /token', async () => {
    expect((await authorizationError(authorizeUrl(t, s.client, { scope: 'accounting.contacts accounting.everything' }))).get('error')).toBe('invalid_scope');
    const custom = await registerClient(t.grpc, { redirectUris: [], customConnection: { tenantId: s.organisations[0].id, userId: s.user.id, scopes: ['accounting.contacts'], grantId: '' } });
    expect(await oauthError(token(t, custom, { grant_type: 'client_credentials', scope: 'accounting.reports.nonsense.read' }))).toEqual({ status: 400, error: 'invalid_scope' });
  });
});

describe('responses', () => {
  it('are RFC 6749 §5.2 JSON errors: 400 for invalid_request, invalid_grant, unsupported_grant_type, invalid_scope; 401 for invalid_client, with WWW-Authenticate only after Basic', async () => {
    expect(await oauthError(token(t, s.client, {}))).toEqual({ status: 400, error: 'invalid_request' });
    expect(await oauthError(token(t, s.client, { grant_type: 'refresh_token', refresh_token: 'x' }))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(token(t, s.client, { grant_type: 'password', username: 'a', password: 'b' }))).toEqual({ status: 400, error: 'unsupported_grant_type' });
    // The client is authenticated before the request is judged: a wrong secret is 401 whatever else is wrong.
    for (const form of [{ grant_type: 'authorization_code', code: 'x' }, { grant_type: 'refresh_token' }] as Array<Record<string, string>>) {
      expect(await oauthError(token(t, null, form, { authorization: basic(s.client.clientId, 'wrong') }))).toEqual({ status: 401, error: 'invalid_client' });
      expect(await oauthError(token(t, s.client, form))).toEqual({ status: 400, error: 'invalid_request' });
    }
    const basicFail = await token(t, null, { grant_type: 'refresh_token', refresh_token: 'x' }, { authorization: basic(s.client.clientId, 'wrong') });
    expect(basicFail.status).toBe(401);
    expect(basicFail.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const postFail = await token(t, null, { grant_type: 'refresh_token', refresh_token: 'x', client_id: s.client.clientId, client_secret: 'wrong' }, { authorization: null });
    expect(postFail.status).toBe(401);
    expect(postFail.headers.get('www-authenticate')).toBeNull();
    expect(((await postFail.json()) as { error: string }).error).toBe('invalid_client');
  });

  it('send Cache-Control: no-store and Pragma: no-cache with every token or secret, and with token errors', async () => {
    const c = await code(t, s, s.client);
    const responses = [await exchange(t, s.client, c), await exchange(t, s.client, c)];
    const custom = await registerClient(t.grpc, { redirectUris: [], customConnection: { tenantId: s.organisations[0].id, userId: s.user.id, scopes: ['accounting.contacts'], grantId: '' } });
    responses.push(await token(t, custom, { grant_type: 'client_credentials' }));
    for (const [i, res] of responses.entries()) {
      expect(res.headers.get('cache-control'), `response ${i}`).toBe('no-store');
      expect(res.headers.get('pragma'), `response ${i}`).toBe('no-cache');
    }
    expect(responses.map((r) => r.status)).toEqual([200, 400, 200]);
  });

  it('take /token as POST with a form body only: GET is 405, query-string parameters and other bodies are 400 invalid_request', async () => {
    const get = await fetch(new URL('/token?grant_type=client_credentials', t.issuer));
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const query = await fetch(new URL(`/token?client_secret=${s.client.clientSecret}`, t.issuer), {
      method: 'POST',
      headers: { authorization: basic(s.client.clientId, s.client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=refresh_token&refresh_token=x',
    });
    expect(await oauthError(query)).toEqual({ status: 400, error: 'invalid_request' });
    const json = await fetch(new URL('/token', t.issuer), {
      method: 'POST',
      headers: { authorization: basic(s.client.clientId, s.client.clientSecret), 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'x' }),
    });
    expect(await oauthError(json)).toEqual({ status: 400, error: 'invalid_request' });
    const repeated = await token(t, s.client, { grant_type: 'refresh_token' });
    expect(repeated.status).toBe(400);
  });
});

describe('browser apps (CORS)', () => {
  it('let a browser app call /token, /userinfo and the API from its own origin, never the cookie pages or /introspect', async () => {
    const origin = { origin: 'https://spa.example' };
    const preflight = await fetch(new URL('/token', t.issuer), { method: 'OPTIONS', headers: { ...origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, dpop' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/DPoP/);
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    const tokens = await tokensFor(t, s, s.client);
    for (const path of ['/api.xro/2.0/Contacts', '/connections']) {
      const res = await fetch(new URL(path, t.issuer), { headers: { ...origin, authorization: `Bearer ${tokens.access_token}`, 'xero-tenant-id': s.organisations[0].id } });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('access-control-allow-origin'), path).toBe('*');
    }
    for (const path of ['/authorize', '/login', '/introspect']) {
      const res = await fetch(new URL(path, t.issuer), { method: 'OPTIONS', headers: { ...origin, 'access-control-request-method': 'POST' }, redirect: 'manual' });
      expect(res.headers.get('access-control-allow-origin'), path).toBeNull();
    }
  });
});

describe('storage failing', () => {
  it('does not answer 200 to a revocation it could not store (RFC 7009 §2.2.1), and the token stays valid after recovery', async () => {
    const tokens = await tokensFor(short, ss, ss.client);
    await short.mongo.process.kill();
    try {
      const res = await fetch(new URL('/revoke', short.issuer), {
        method: 'POST',
        headers: { authorization: basic(ss.client.clientId, ss.client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: tokens.refresh_token! }).toString(),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(((await res.json()) as { error: string }).error).toBe('temporarily_unavailable');
    } finally {
      await short.mongo.process.start();
    }
    await eventually(async () => (await api(short, tokens.access_token)).status === 200, 20_000, 200);
  });
});
