import { ClientType } from '@ledgerly/proto/token/v1/token';
import { authorizeInteractively, registerClient, seed, startTestPlatform, UserAgent, type RegisteredClient, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { exportJWK } from 'jose';
import { createHash } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Every flow of the authorization server, driven by oauth4webapi, the
 * strictest spec-following OAuth client on npm (nobody here wrote it): it
 * checks iss on authorization responses (RFC 9207), ID tokens, token
 * responses, DPoP and PAR exactly as the RFCs say.
 */
let t: TestPlatform;
let s: Seed;
let as: oauth.AuthorizationServer;
const insecure = { [oauth.allowInsecureRequests]: true } as const;

beforeAll(async () => {
  t = await startTestPlatform();
  s = await seed(t.grpc);
  const issuer = new URL(t.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
});
afterAll(async () => {
  await t?.stop();
});

const SCOPE = 'openid profile email offline_access accounting.settings accounting.contacts';
const person = () => ({ email: s.user.email, password: s.user.password, organisations: [s.organisations[0].id] });

/** The authorization step as a person does it; returns the callback URL. */
async function authorize(client: RegisteredClient, params: Record<string, string>, ua = new UserAgent(), organisations = [s.organisations[0].id]) {
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({ client_id: client.clientId, redirect_uri: client.redirectUri, response_type: 'code', ...params }).toString();
  const { callback } = await authorizeInteractively(ua, url, { ...person(), organisations });
  return callback;
}

async function pkce() {
  const verifier = oauth.generateRandomCodeVerifier();
  return { verifier, challenge: await oauth.calculatePKCECodeChallenge(verifier) };
}

/** The whole code flow for a confidential client_secret_basic client; returns the validated token response. */
async function codeFlow(client: RegisteredClient, scope = SCOPE, options: { DPoP?: oauth.DPoPHandle; ua?: UserAgent } = {}) {
  const c: oauth.Client = { client_id: client.clientId };
  const auth = client.clientSecret ? oauth.ClientSecretBasic(client.clientSecret) : oauth.None();
  const { verifier, challenge } = await pkce();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const callback = await authorize(client, { scope, state, nonce, code_challenge: challenge, code_challenge_method: 'S256' }, options.ua);
  const params = oauth.validateAuthResponse(as, c, callback, state);
  const response = await oauth.authorizationCodeGrantRequest(as, c, auth, params, client.redirectUri, verifier, { ...insecure, ...(options.DPoP ? { DPoP: options.DPoP } : {}) });
  return oauth.processAuthorizationCodeResponse(as, c, response, { expectedNonce: nonce, maxAge: 300 });
}

async function apiGet(token: string, path: string, options: { tenantId?: string; DPoP?: oauth.DPoPHandle } = {}) {
  const headers = new Headers({ accept: 'application/json' });
  if (options.tenantId) headers.set('xero-tenant-id', options.tenantId);
  try {
    return await oauth.protectedResourceRequest(token, 'GET', new URL(path, t.issuer), headers, null, { ...insecure, ...(options.DPoP ? { DPoP: options.DPoP } : {}) });
  } catch (err) {
    // oauth4webapi throws on a 401 with a challenge; the tests want to see the response.
    if (err instanceof oauth.WWWAuthenticateChallengeError) return err.response;
    throw err;
  }
}

/** A failed oauth4webapi call's OAuth error and status. */
async function oauthError(call: Promise<unknown>): Promise<{ status: number; error: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof oauth.ResponseBodyError) return { status: err.status, error: err.error };
  if (err instanceof oauth.AuthorizationResponseError) return { status: 0, error: err.error };
  throw new Error(`Expected an OAuth error response, got ${String(err)}`);
}

describe('with oauth4webapi', () => {
  it('discovers exactly what is supported (RFC 8414, OpenID Connect Discovery)', () => {
    expect(as.issuer).toBe(t.issuer);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.grant_types_supported).toEqual(['authorization_code', 'refresh_token', 'client_credentials']);
    expect(as.token_endpoint_auth_methods_supported).toEqual(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']);
    expect(as.dpop_signing_alg_values_supported).toContain('ES256');
    expect(as.pushed_authorization_request_endpoint).toBe(`${t.issuer}/par`);
    expect(as.introspection_endpoint).toBe(`${t.issuer}/introspect`);
    expect(as.userinfo_endpoint).toBe(`${t.issuer}/userinfo`);
    expect(as.end_session_endpoint).toBe(`${t.issuer}/session/end`);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
  });

  it('authorization code with PKCE: a validated ID token (nonce, auth_time, at_hash, sid), userinfo, and an RFC 9068 access token', async () => {
    const tokens = await codeFlow(s.client);
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.expires_in).toBe(1800);
    const id = oauth.getValidatedIdTokenClaims(tokens)!;
    expect(id.sub).toBe(s.user.id);
    expect(id.aud).toBe(s.client.clientId);
    expect(typeof id.auth_time).toBe('number');
    expect(typeof id['sid']).toBe('string');
    // OpenID Connect Core §3.1.3.6: at_hash is the left half of the SHA-256 of the access token.
    expect(id['at_hash']).toBe(createHash('sha256').update(tokens.access_token).digest().subarray(0, 16).toString('base64url'));

    const info = await oauth.processUserInfoResponse(as, { client_id: s.client.clientId }, id.sub, await oauth.userInfoRequest(as, { client_id: s.client.clientId }, tokens.access_token, insecure));
    expect(info).toMatchObject({ sub: s.user.id, name: s.user.name, email: s.user.email, email_verified: expect.any(Boolean) });

    // oauth4webapi's own RFC 9068 resource-server validation: typ at+jwt, iss, aud, exp, iat, sub, jti, client_id.
    const claims = await oauth.validateJwtAccessToken(as, new Request(`${t.issuer}/connections`, { headers: { authorization: `Bearer ${tokens.access_token}` } }), `${t.issuer}/resources`, insecure);
    expect(claims).toMatchObject({ iss: t.issuer, sub: s.user.id, client_id: s.client.clientId, aud: `${t.issuer}/resources` });
    expect(claims['authentication_event_id']).toEqual(expect.any(String));
    expect(claims['auth_time']).toEqual(id.auth_time);
    expect(claims.exp - claims.iat).toBe(1800);
  });

  it('refresh rotates on every use, may narrow scope but never widen it, and a reused token ends the grant', async () => {
    const c = { client_id: s.client.clientId };
    const auth = oauth.ClientSecretBasic(s.client.clientSecret);
    const first = await codeFlow(s.client);
    const second = await oauth.processRefreshTokenResponse(as, c, await oauth.refreshTokenGrantRequest(as, c, auth, first.refresh_token!, insecure));
    expect(second.refresh_token).toBeDefined();
    expect(second.refresh_token).not.toBe(first.refresh_token);

    const narrowed = await oauth.processRefreshTokenResponse(
      as,
      c,
      await oauth.refreshTokenGrantRequest(as, c, auth, second.refresh_token!, { ...insecure, additionalParameters: { scope: 'offline_access accounting.contacts' } }),
    );
    expect(narrowed.scope).toBe('offline_access accounting.contacts');
    expect(await oauthError(oauth.refreshTokenGrantRequest(as, c, auth, narrowed.refresh_token!, { ...insecure, additionalParameters: { scope: 'accounting.transactions' } }).then((r) => oauth.processRefreshTokenResponse(as, c, r)))).toEqual({
      status: 400,
      error: 'invalid_scope',
    });

    // The access token of the narrowed refresh still works; then the first refresh token comes back.
    expect((await apiGet(narrowed.access_token, '/connections')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2100));
    expect(await oauthError(oauth.refreshTokenGrantRequest(as, c, auth, first.refresh_token!, insecure).then((r) => oauth.processRefreshTokenResponse(as, c, r)))).toEqual({ status: 400, error: 'invalid_grant' });
    // RFC 9700 §4.14.2: the whole grant is revoked, the newest tokens with it.
    await expect.poll(async () => (await apiGet(narrowed.access_token, '/connections')).status, { timeout: 5000 }).toBe(401);
  });

  it('introspection (RFC 7662): the fields for its own live token; only active=false for a revoked one (RFC 7009)', async () => {
    const c = { client_id: s.client.clientId };
    const auth = oauth.ClientSecretBasic(s.client.clientSecret);
    const tokens = await codeFlow(s.client);
    const live = await oauth.processIntrospectionResponse(as, c, await oauth.introspectionRequest(as, c, auth, tokens.access_token, insecure));
    expect(live).toMatchObject({ active: true, client_id: s.client.clientId, sub: s.user.id, token_type: 'Bearer', iss: t.issuer, aud: `${t.issuer}/resources` });
    expect(live.scope).toBe(SCOPE);
    const refresh = await oauth.processIntrospectionResponse(as, c, await oauth.introspectionRequest(as, c, auth, tokens.refresh_token!, insecure));
    expect(refresh).toMatchObject({ active: true, token_type: 'refresh_token', client_id: s.client.clientId });

    await oauth.processRevocationResponse(await oauth.revocationRequest(as, c, auth, tokens.access_token, insecure));
    const revoked = await oauth.processIntrospectionResponse(as, c, await oauth.introspectionRequest(as, c, auth, tokens.access_token, insecure));
    expect(revoked).toEqual({ active: false });
    await expect.poll(async () => (await apiGet(tokens.access_token, '/connections')).status, { timeout: 5000 }).toBe(401);
  });

  it('client_credentials: a custom connection gets a token for its one organisation, and no refresh token', async () => {
    const custom = await registerClient(t.grpc, {
      redirectUris: [],
      customConnection: { tenantId: s.organisations[0].id, userId: s.user.id, scopes: ['accounting.contacts', 'accounting.settings.read'], grantId: '' },
    });
    const c = { client_id: custom.clientId };
    const auth = oauth.ClientSecretPost(custom.clientSecret);
    const tokens = await oauth.processClientCredentialsResponse(as, c, await oauth.clientCredentialsGrantRequest(as, c, auth, {}, insecure));
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope).toBe('accounting.contacts accounting.settings.read');
    const connections = (await (await apiGet(tokens.access_token, '/connections')).json()) as Array<{ tenantId: string }>;
    expect(connections.map((x) => x.tenantId)).toEqual([s.organisations[0].id]);
    expect((await apiGet(tokens.access_token, '/api.xro/2.0/Contacts', { tenantId: s.organisations[0].id })).status).toBe(200);
    expect((await apiGet(tokens.access_token, '/api.xro/2.0/Contacts', { tenantId: s.organisations[1].id })).status).toBe(403);
    // A narrower scope is fine; one the connection was not set up with is not.
    const narrow = await oauth.processClientCredentialsResponse(as, c, await oauth.clientCredentialsGrantRequest(as, c, auth, { scope: 'accounting.settings.read' }, insecure));
    expect(narrow.scope).toBe('accounting.settings.read');
    expect(await oauthError(oauth.clientCredentialsGrantRequest(as, c, auth, { scope: 'accounting.transactions' }, insecure).then((r) => oauth.processClientCredentialsResponse(as, c, r)))).toEqual({
      status: 400,
      error: 'invalid_scope',
    });
    // An ordinary (authorization code) client may not use client_credentials.
    const ordinary = { client_id: s.client.clientId };
    expect(
      await oauthError(oauth.clientCredentialsGrantRequest(as, ordinary, oauth.ClientSecretBasic(s.client.clientSecret), {}, insecure).then((r) => oauth.processClientCredentialsResponse(as, ordinary, r))),
    ).toEqual({ status: 400, error: 'unauthorized_client' });
  });

  it('private_key_jwt (RFC 7523): the client signs an assertion with its own key, registered as a JWK Set', async () => {
    const { privateKey, publicKey } = await oauth.generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'app-key-1', alg: 'ES256', use: 'sig' };
    const client = await registerClient(t.grpc, { tokenEndpointAuthMethod: 'private_key_jwt', jwksJson: JSON.stringify({ keys: [jwk] }) });
    expect(client.clientSecret).toBe('');
    const c = { client_id: client.clientId };
    const auth = oauth.PrivateKeyJwt({ key: privateKey, kid: 'app-key-1' });
    const { verifier, challenge } = await pkce();
    const state = oauth.generateRandomState();
    const callback = await authorize(client, { scope: 'offline_access accounting.contacts', state, code_challenge: challenge, code_challenge_method: 'S256' });
    const tokens = await oauth.processAuthorizationCodeResponse(as, c, await oauth.authorizationCodeGrantRequest(as, c, auth, oauth.validateAuthResponse(as, c, callback, state), client.redirectUri, verifier, insecure));
    const refreshed = await oauth.processRefreshTokenResponse(as, c, await oauth.refreshTokenGrantRequest(as, c, auth, tokens.refresh_token!, insecure));
    expect(refreshed.access_token).toBeDefined();
    // Another key, not registered: invalid_client.
    const { privateKey: other } = await oauth.generateKeyPair('ES256');
    expect(
      await oauthError(oauth.refreshTokenGrantRequest(as, c, oauth.PrivateKeyJwt({ key: other, kid: 'app-key-1' }), refreshed.refresh_token!, insecure).then((r) => oauth.processRefreshTokenResponse(as, c, r))),
    ).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('PAR (RFC 9126) and DPoP (RFC 9449): a pushed request, DPoP-bound tokens, a proof on every API call, and bound refresh', async () => {
    const client = await registerClient(t.grpc, { type: ClientType.CLIENT_TYPE_PUBLIC, requirePushedAuthorizationRequests: true });
    const c: oauth.Client = { client_id: client.clientId };
    const auth = oauth.None();
    const DPoP = oauth.DPoP(c, await oauth.generateKeyPair('ES256'));
    const { verifier, challenge } = await pkce();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const pushed = await oauth.processPushedAuthorizationResponse(
      as,
      c,
      await oauth.pushedAuthorizationRequest(
        as,
        c,
        auth,
        { redirect_uri: client.redirectUri, response_type: 'code', scope: SCOPE, state, nonce, code_challenge: challenge, code_challenge_method: 'S256' },
        { ...insecure, DPoP },
      ),
    );
    expect(pushed.request_uri).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    expect(pushed.expires_in).toBe(60);

    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: client.clientId, request_uri: pushed.request_uri }).toString();
    const { callback } = await authorizeInteractively(new UserAgent(), url, person());
    const params = oauth.validateAuthResponse(as, c, callback, state);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c, await oauth.authorizationCodeGrantRequest(as, c, auth, params, client.redirectUri, verifier, { ...insecure, DPoP }), {
      expectedNonce: nonce,
    });
    expect(tokens.token_type).toBe('dpop');
    // Bound to the key: cnf.jkt is its RFC 7638 thumbprint. (A public client cannot introspect: RFC 7662 §2.1.)
    expect(JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString())).toMatchObject({ cnf: { jkt: expect.any(String) } });
    expect(await oauthError(oauth.introspectionRequest(as, c, auth, tokens.access_token, insecure).then((r) => oauth.processIntrospectionResponse(as, c, r)))).toEqual({ status: 401, error: 'invalid_client' });

    const connections = await apiGet(tokens.access_token, '/connections', { DPoP });
    expect(connections.status).toBe(200);
    expect((await apiGet(tokens.access_token, '/api.xro/2.0/Organisation', { tenantId: s.organisations[0].id, DPoP })).status).toBe(200);
    // RFC 9449 §7.2: a bound token used as a bearer token is refused, with a DPoP challenge.
    const asBearer = await fetch(`${t.issuer}/connections`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get('www-authenticate')).toMatch(/^DPoP algs="[^"]*ES256[^"]*", error="invalid_token"/);
    // And DPoP without a proof.
    expect((await fetch(`${t.issuer}/connections`, { headers: { authorization: `DPoP ${tokens.access_token}` } })).status).toBe(401);

    const info = await oauth.processUserInfoResponse(as, c, s.user.id, await oauth.userInfoRequest(as, c, tokens.access_token, { ...insecure, DPoP }));
    expect(info.email).toBe(s.user.email);

    // A public client's refresh token is bound to the key (RFC 9449 §5): with the key it refreshes, without it not.
    const refreshed = await oauth.processRefreshTokenResponse(as, c, await oauth.refreshTokenGrantRequest(as, c, auth, tokens.refresh_token!, { ...insecure, DPoP }));
    expect(refreshed.token_type).toBe('dpop');
    expect(await oauthError(oauth.refreshTokenGrantRequest(as, c, auth, refreshed.refresh_token!, insecure).then((r) => oauth.processRefreshTokenResponse(as, c, r)))).toEqual({ status: 400, error: 'invalid_grant' });
    const otherKey = oauth.DPoP(c, await oauth.generateKeyPair('ES256'));
    expect(
      await oauthError(oauth.refreshTokenGrantRequest(as, c, auth, refreshed.refresh_token!, { ...insecure, DPoP: otherKey }).then((r) => oauth.processRefreshTokenResponse(as, c, r))),
    ).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('a client registered for PAR cannot send its request on the front channel', async () => {
    const client = await registerClient(t.grpc, { requirePushedAuthorizationRequests: true });
    const { challenge } = await pkce();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: client.clientId, redirect_uri: client.redirectUri, response_type: 'code', scope: SCOPE, code_challenge: challenge, code_challenge_method: 'S256' }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toContain('pushed authorization request required');
  });

  it('PKCE optional for a confidential client registered so (as xero-node needs): state protects the flow', async () => {
    const client = await registerClient(t.grpc, { pkceOptional: true });
    const c = { client_id: client.clientId };
    const state = oauth.generateRandomState();
    const callback = await authorize(client, { scope: 'offline_access accounting.contacts', state });
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      c,
      await oauth.authorizationCodeGrantRequest(as, c, oauth.ClientSecretBasic(client.clientSecret), oauth.validateAuthResponse(as, c, callback, state), client.redirectUri, oauth.nopkce, insecure),
    );
    expect(tokens.refresh_token).toBeDefined();
  });

  it('"Sign in with" for an app that only wants identity (openid profile email): no organisations, no refresh token', async () => {
    const client = await registerClient(t.grpc);
    const c = { client_id: client.clientId };
    const ua = new UserAgent();
    const nonce = oauth.generateRandomNonce();
    const state = oauth.generateRandomState();
    const { verifier, challenge } = await pkce();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: client.clientId, redirect_uri: client.redirectUri, response_type: 'code', scope: 'openid profile email', state, nonce, code_challenge: challenge, code_challenge_method: 'S256' }).toString();
    const { consentPage, callback } = await authorizeInteractively(ua, url, { ...person(), organisations: [] });
    expect(consentPage).not.toContain('name="organisation"');
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      c,
      await oauth.authorizationCodeGrantRequest(as, c, oauth.ClientSecretBasic(client.clientSecret), oauth.validateAuthResponse(as, c, callback, state), client.redirectUri, verifier, insecure),
      { expectedNonce: nonce },
    );
    expect(tokens.refresh_token).toBeUndefined();
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ sub: s.user.id, email: s.user.email, name: s.user.name, nonce });
    expect(await (await apiGet(tokens.access_token, '/connections')).json()).toEqual([]);
  });

  it('prompt=login and max_age make a signed-in person sign in again; prompt=none answers login_required or consent_required, with iss and state', async () => {
    const ua = new UserAgent();
    await codeFlow(s.client, SCOPE, { ua });
    const base = async (extra: Record<string, string>) => {
      const { challenge } = await pkce();
      const url = new URL(as.authorization_endpoint!);
      url.search = new URLSearchParams({ client_id: s.client.clientId, redirect_uri: s.client.redirectUri, response_type: 'code', scope: SCOPE, state: 'st-9', code_challenge: challenge, code_challenge_method: 'S256', ...extra }).toString();
      return ua.follow(url, t.issuer);
    };
    // Signed in already: straight to consent.
    expect((await base({})).url.pathname).toBe('/consent');
    expect((await base({ prompt: 'login' })).url.pathname).toBe('/login');
    expect((await base({ max_age: '0' })).url.pathname).toBe('/login');
    expect((await base({ max_age: '3600' })).url.pathname).toBe('/consent');
    const none = await base({ prompt: 'none' });
    expect(none.left).toBeDefined();
    const c = { client_id: s.client.clientId };
    expect(await oauthError(Promise.resolve().then(() => oauth.validateAuthResponse(as, c, none.left!, 'st-9')))).toEqual({ status: 0, error: 'consent_required' });
    const fresh = await new UserAgent().follow(
      new URL(`${as.authorization_endpoint!}?${new URLSearchParams({ client_id: s.client.clientId, redirect_uri: s.client.redirectUri, response_type: 'code', scope: SCOPE, state: 'st-10', prompt: 'none', code_challenge: (await pkce()).challenge, code_challenge_method: 'S256' })}`),
      t.issuer,
    );
    expect(await oauthError(Promise.resolve().then(() => oauth.validateAuthResponse(as, c, fresh.left!, 'st-10')))).toEqual({ status: 0, error: 'login_required' });
  });

  it('RP-initiated logout: with the ID token of this session, the platform signs the person out and returns to the app with state', async () => {
    const logoutUri = 'http://127.0.0.1:8765/signed-out';
    const client = await registerClient(t.grpc, { postLogoutRedirectUris: [logoutUri] });
    const ua = new UserAgent();
    const tokens = await codeFlow(client, SCOPE, { ua });
    const end = new URL(as.end_session_endpoint!);
    end.search = new URLSearchParams({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: logoutUri, state: 'bye-1' }).toString();
    const { left, res } = await ua.follow(end, t.issuer);
    expect(left?.href, await res.text()).toBe(`${logoutUri}?state=bye-1`);
    expect(ua.cookie(new URL(t.issuer).host, 'll_session')).toBeUndefined();
    // Signed out: the next authorization asks for the password again.
    const { challenge } = await pkce();
    const again = new URL(as.authorization_endpoint!);
    again.search = new URLSearchParams({ client_id: client.clientId, redirect_uri: client.redirectUri, response_type: 'code', scope: SCOPE, code_challenge: challenge, code_challenge_method: 'S256' }).toString();
    expect((await ua.follow(again, t.issuer)).url.pathname).toBe('/login');
    // An unregistered post_logout_redirect_uri is refused with a page, never followed.
    end.search = new URLSearchParams({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://evil.example/', state: 'x' }).toString();
    const refused = await ua.request(end);
    expect(refused.status).toBe(400);
    expect(refused.headers.get('location')).toBeNull();
  });
});
