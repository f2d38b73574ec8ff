import { ClientType } from '@ledgerly/proto/token/v1/token';
import { authorizeInteractively, registerClient, seed, startTestPlatform, UserAgent, type RegisteredClient, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { exportJWK } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The authorization server's flows driven by openid-client (the certified
 * relying-party library nobody here wrote), beside the oauth4webapi suite:
 * client_secret_basic and _post, private_key_jwt, PAR, DPoP, client_credentials,
 * PKCE optional, "Sign in with", refresh rotation and reuse, introspection,
 * revocation, userinfo and RP-initiated logout.
 */
let t: TestPlatform;
let s: Seed;

beforeAll(async () => {
  t = await startTestPlatform();
  s = await seed(t.grpc);
});
afterAll(async () => {
  await t?.stop();
});

const SCOPE = 'openid profile email offline_access accounting.settings accounting.contacts';
const insecure = { execute: [oidc.allowInsecureRequests] };
const person = () => ({ email: s.user.email, password: s.user.password, organisations: [s.organisations[0].id] });

async function configFor(clientId: string, metadata: Partial<oidc.ClientMetadata> | string | undefined, auth?: oidc.ClientAuth) {
  return oidc.discovery(new URL(t.issuer), clientId, metadata, auth, insecure);
}

/** The person's part, then the code exchange by openid-client (PKCE, state, nonce, max_age checked). */
async function signIn(config: oidc.Configuration, client: RegisteredClient, options: { DPoP?: oidc.DPoPHandle; par?: boolean; ua?: UserAgent; scope?: string } = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const params = {
    redirect_uri: client.redirectUri,
    scope: options.scope ?? SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    max_age: '600',
  };
  const url = options.par ? await oidc.buildAuthorizationUrlWithPAR(config, params, options.DPoP ? { DPoP: options.DPoP } : {}) : oidc.buildAuthorizationUrl(config, params);
  const { callback } = await authorizeInteractively(options.ua ?? new UserAgent(), url, person());
  return oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, maxAge: 600 }, undefined, options.DPoP ? { DPoP: options.DPoP } : {});
}

async function status(call: Promise<Response>): Promise<number> {
  try {
    return (await call).status;
  } catch (err) {
    if (err instanceof oidc.WWWAuthenticateChallengeError) return (err.response as Response).status;
    throw err;
  }
}

async function oauthError(call: Promise<unknown>): Promise<{ status: number; error: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof oidc.ResponseBodyError) return { status: err.status, error: err.error };
  throw new Error(`Expected an OAuth error response, got ${String(err)}`);
}

describe('with openid-client', () => {
  it('client_secret_post: code flow, ID token claims, userinfo, refresh, introspection, revocation', async () => {
    const client = await registerClient(t.grpc, { tokenEndpointAuthMethod: 'client_secret_post' });
    const config = await configFor(client.clientId, client.clientSecret, oidc.ClientSecretPost(client.clientSecret));
    const tokens = await signIn(config, client);
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ iss: t.issuer, sub: s.user.id, aud: client.clientId, email: s.user.email });
    expect(claims.auth_time).toEqual(expect.any(Number));
    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    expect(info).toMatchObject({ sub: s.user.id, name: s.user.name, email: s.user.email });

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(await oidc.tokenIntrospection(config, refreshed.access_token)).toMatchObject({ active: true, client_id: client.clientId, sub: s.user.id, token_type: 'Bearer' });
    // The rotated one is no longer active.
    expect(await oidc.tokenIntrospection(config, tokens.refresh_token!)).toEqual({ active: false });

    // Revoking the refresh token ends the grant: its access tokens stop working everywhere.
    await oidc.tokenRevocation(config, refreshed.refresh_token!);
    expect(await oidc.tokenIntrospection(config, refreshed.access_token)).toEqual({ active: false });
    await expect.poll(() => status(oidc.fetchProtectedResource(config, refreshed.access_token, new URL('/connections', t.issuer), 'GET')), { timeout: 5000 }).toBe(401);
    // A client other than the token's learns nothing from introspection.
    const other = await configFor(s.client.clientId, s.client.clientSecret);
    expect(await oidc.tokenIntrospection(other, tokens.access_token)).toEqual({ active: false });
  });

  it('a public client with PAR and DPoP: the code, the tokens and every API call bound to its key', async () => {
    const client = await registerClient(t.grpc, { type: ClientType.CLIENT_TYPE_PUBLIC });
    const config = await configFor(client.clientId, { token_endpoint_auth_method: 'none' }, oidc.None());
    const DPoP = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await signIn(config, client, { DPoP, par: true });
    expect(tokens.token_type).toBe('dpop');
    const headers = new Headers({ 'xero-tenant-id': s.organisations[0].id, accept: 'application/json' });
    const organisation = await oidc.fetchProtectedResource(config, tokens.access_token, new URL('/api.xro/2.0/Organisation', t.issuer), 'GET', undefined, headers, { DPoP });
    expect(organisation.status).toBe(200);
    expect(((await organisation.json()) as { Organisations: Array<{ Name: string }> }).Organisations[0]!.Name).toBe(s.organisations[0].name);
    // Without the key, the same token is worth nothing.
    expect(await status(oidc.fetchProtectedResource(config, tokens.access_token, new URL('/connections', t.issuer), 'GET'))).toBe(401);
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, undefined, { DPoP });
    expect(refreshed.token_type).toBe('dpop');
    expect(await oidc.fetchUserInfo(config, refreshed.access_token, s.user.id, { DPoP })).toMatchObject({ sub: s.user.id });
  });

  it('private_key_jwt, and client_credentials for a custom connection', async () => {
    const { privateKey, publicKey } = await oidc.randomDPoPKeyPair('ES256', { extractable: true });
    const client = await registerClient(t.grpc, {
      redirectUris: [],
      tokenEndpointAuthMethod: 'private_key_jwt',
      jwksJson: JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] }),
      customConnection: { tenantId: s.organisations[1].id, userId: s.user.id, scopes: ['accounting.settings.read'], grantId: '' },
    });
    const config = await configFor(client.clientId, { token_endpoint_auth_method: 'private_key_jwt' }, oidc.PrivateKeyJwt({ key: privateKey, kid: 'k1' }));
    const tokens = await oidc.clientCredentialsGrant(config);
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope).toBe('accounting.settings.read');
    const res = await oidc.fetchProtectedResource(config, tokens.access_token, new URL('/api.xro/2.0/Organisation', t.issuer), 'GET', undefined, new Headers({ 'xero-tenant-id': s.organisations[1].id }));
    expect(res.status).toBe(200);
    // The same with a key that is not the client's: invalid_client.
    const { privateKey: stranger } = await oidc.randomDPoPKeyPair('ES256');
    const impostor = await configFor(client.clientId, { token_endpoint_auth_method: 'private_key_jwt' }, oidc.PrivateKeyJwt({ key: stranger, kid: 'k1' }));
    expect(await oauthError(oidc.clientCredentialsGrant(impostor))).toEqual({ status: 401, error: 'invalid_client' });
  });

  it('"Sign in with" (openid profile email, client_secret_basic): an ID token and userinfo, no organisations, no refresh token', async () => {
    const client = await registerClient(t.grpc);
    const config = await configFor(client.clientId, client.clientSecret);
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: client.redirectUri, scope: 'openid profile email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', nonce });
    const { consentPage, callback } = await authorizeInteractively(new UserAgent(), url, { ...person(), organisations: [] });
    expect(consentPage).not.toContain('name="organisation"');
    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce });
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.claims()).toMatchObject({ sub: s.user.id, name: s.user.name, email: s.user.email, nonce });
    expect(await oidc.fetchUserInfo(config, tokens.access_token, s.user.id)).toMatchObject({ sub: s.user.id, email: s.user.email });
    const connections = await oidc.fetchProtectedResource(config, tokens.access_token, new URL('/connections', t.issuer), 'GET');
    expect(await connections.json()).toEqual([]);
  });

  it('PKCE optional (as xero-node sends none), state checked; then a replayed refresh token ends the grant', async () => {
    const client = await registerClient(t.grpc, { pkceOptional: true });
    const config = await configFor(client.clientId, client.clientSecret);
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: client.redirectUri, scope: 'offline_access accounting.contacts', state });
    const { callback } = await authorizeInteractively(new UserAgent(), url, person());
    const tokens = await oidc.authorizationCodeGrant(config, callback, { expectedState: state });
    const rotated = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(await oauthError(oidc.refreshTokenGrant(config, tokens.refresh_token!))).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await oauthError(oidc.refreshTokenGrant(config, rotated.refresh_token!))).toEqual({ status: 400, error: 'invalid_grant' });
    await expect.poll(() => status(oidc.fetchProtectedResource(config, rotated.access_token, new URL('/connections', t.issuer), 'GET')), { timeout: 5000 }).toBe(401);
  });

  it('RP-initiated logout with buildEndSessionUrl', async () => {
    const logoutUri = 'http://127.0.0.1:8765/bye';
    const client = await registerClient(t.grpc, { postLogoutRedirectUris: [logoutUri] });
    const config = await configFor(client.clientId, client.clientSecret);
    const ua = new UserAgent();
    const tokens = await signIn(config, client, { ua });
    const url = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: logoutUri, state: 's-1' });
    const { left } = await ua.follow(url, t.issuer);
    expect(left?.href).toBe(`${logoutUri}?state=s-1`);
  });
});
