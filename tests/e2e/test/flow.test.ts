import { RemoteError, Status } from '@ledgerly/chassis';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed, startTestPlatform, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { authorizeInteractively, UserAgent } from '@ledgerly/testkit';

/**
 * The walking skeleton's whole story, driven by openid-client (a real OAuth
 * library nobody here wrote) against the real platform processes.
 */
let t: TestPlatform;
let s: Seed;
let config: oidc.Configuration;

beforeAll(async () => {
  t = await startTestPlatform();
  s = await seed(t.grpc);
});
afterAll(async () => {
  await t?.stop();
});

const SCOPE = 'openid profile email offline_access accounting.settings accounting.contacts';

async function api(token: string, path: string, init: { method?: string; tenantId?: string; body?: unknown } = {}) {
  const headers = new Headers({ accept: 'application/json' });
  if (init.tenantId) headers.set('xero-tenant-id', init.tenantId);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  try {
    return await oidc.fetchProtectedResource(config, token, new URL(path, t.issuer), init.method ?? 'GET', init.body === undefined ? undefined : JSON.stringify(init.body), headers);
  } catch (err) {
    // openid-client throws on a 401 with a Bearer challenge; the test wants to see the response.
    if (err instanceof oidc.WWWAuthenticateChallengeError) return err.response as Response;
    throw err;
  }
}

describe('a third-party app connects to one organisation, end to end', () => {
  let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
  let connectionId: string;
  let contactId: string;

  it('discovers the platform', async () => {
    config = await oidc.discovery(new URL(t.issuer), s.client.clientId, s.client.clientSecret, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(t.issuer);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.authorization_response_iss_parameter_supported).toBe(true);
  });

  it('authorizes with PKCE through the login and consent pages, choosing one of two organisations', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: s.client.redirectUri,
      scope: SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const ua = new UserAgent();
    const { loginPage, consentPage, callback } = await authorizeInteractively(ua, url, {
      email: s.user.email,
      password: s.user.password,
      organisations: [s.organisations[0].id],
    });
    // The pages are the platform's own, and name the app and what it asks for.
    expect(loginPage).toContain(s.client.name);
    expect(consentPage).toContain(`<bdi>${s.client.name}</bdi> wants to connect`);
    expect(consentPage).toContain('View and manage your contacts');
    for (const org of s.organisations) {
      expect(consentPage).toMatch(new RegExp(`<input type="checkbox" id="(org-${org.id})" name="organisation" value="${org.id}"[^>]*>`));
      expect(consentPage).toContain(`<label class="org" for="org-${org.id}">`);
      expect(consentPage).toContain(org.name);
    }
    expect(callback.origin + callback.pathname).toBe(s.client.redirectUri);
    expect(callback.searchParams.get('iss')).toBe(t.issuer);

    tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.claims()).toMatchObject({ sub: s.user.id, email: s.user.email, name: s.user.name, aud: s.client.clientId });
    // The access token is an RFC 9068 JWT with a kid.
    const [header, payload] = tokens.access_token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt', kid: expect.any(String) });
    expect(payload).toMatchObject({ sub: s.user.id, client_id: s.client.clientId, scope: SCOPE, authentication_event_id: expect.any(String) });
  });

  it('lists exactly the chosen organisation in GET /connections', async () => {
    const res = await api(tokens.access_token, '/connections');
    expect(res.status).toBe(200);
    const connections = (await res.json()) as Array<Record<string, string>>;
    expect(connections).toEqual([
      {
        id: expect.any(String),
        authEventId: expect.any(String),
        tenantId: s.organisations[0].id,
        tenantType: 'ORGANISATION',
        tenantName: s.organisations[0].name,
        createdDateUtc: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$/),
        updatedDateUtc: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$/),
      },
    ]);
    connectionId = connections[0]!['id']!;
  });

  it('reads the Organisation in Xero shape', async () => {
    const res = await api(tokens.access_token, '/api.xro/2.0/Organisation', { tenantId: s.organisations[0].id });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      Id: expect.any(String),
      Status: 'OK',
      ProviderName: s.client.name,
      DateTimeUTC: expect.stringMatching(/^\/Date\(\d+\)\/$/),
      Organisations: [{ OrganisationID: s.organisations[0].id, Name: s.organisations[0].name, BaseCurrency: 'NZD', CountryCode: 'NZ', OrganisationStatus: 'ACTIVE' }],
    });
  });

  it('creates and lists Contacts in it', async () => {
    const created = await api(tokens.access_token, '/api.xro/2.0/Contacts', {
      method: 'POST',
      tenantId: s.organisations[0].id,
      body: { Contacts: [{ Name: 'Aroha Ngata', EmailAddress: 'aroha@example.com', Phones: [{ PhoneType: 'MOBILE', PhoneNumber: '021 555 0100' }] }] },
    });
    expect(created.status).toBe(200);
    const body = (await created.json()) as { Contacts: Array<Record<string, unknown>> };
    expect(body.Contacts).toHaveLength(1);
    expect(body.Contacts[0]).toMatchObject({
      ContactID: expect.stringMatching(/^[0-9a-f-]{36}$/),
      ContactStatus: 'ACTIVE',
      Name: 'Aroha Ngata',
      EmailAddress: 'aroha@example.com',
      Phones: [{ PhoneType: 'MOBILE', PhoneNumber: '021 555 0100' }],
      UpdatedDateUTC: expect.stringMatching(/^\/Date\(\d+\+0000\)\/$/),
      HasValidationErrors: false,
    });
    contactId = body.Contacts[0]!['ContactID'] as string;

    const list = await api(tokens.access_token, '/api.xro/2.0/Contacts', { tenantId: s.organisations[0].id });
    expect(list.status).toBe(200);
    const listed = (await list.json()) as { Contacts: Array<{ ContactID: string; Name: string }> };
    expect(listed.Contacts.map((c) => c.Name)).toEqual(['Aroha Ngata']);

    const one = await api(tokens.access_token, `/api.xro/2.0/Contacts/${contactId}`, { tenantId: s.organisations[0].id });
    expect(((await one.json()) as { Contacts: Array<{ ContactID: string }> }).Contacts[0]!.ContactID).toBe(contactId);
  });

  it('refuses the other organisation, which was not chosen, and executes nothing there', async () => {
    const res = await api(tokens.access_token, '/api.xro/2.0/Contacts', {
      method: 'POST',
      tenantId: s.organisations[1].id,
      body: { Contacts: [{ Name: 'Should Not Exist' }] },
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ Title: 'Forbidden', Status: 403 });
    // Nothing was written there: ask the accounting service directly, with a token of an app connected to it.
    const direct = await t.grpc.accounting
      .listContacts({ tenantId: s.organisations[1].id }, { metadata: { authorization: `Bearer ${tokens.access_token}` } })
      .catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(RemoteError);
    expect((direct as RemoteError).code).toBe(Status.PERMISSION_DENIED);
  });

  it('refreshes with rotation: the new token works and the old refresh token is spent', async () => {
    const old = tokens;
    const refreshed = await oidc.refreshTokenGrant(config, old.refresh_token!);
    expect(refreshed.access_token).not.toBe(old.access_token);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(old.refresh_token);
    const res = await api(refreshed.access_token, '/api.xro/2.0/Contacts', { tenantId: s.organisations[0].id });
    expect(res.status).toBe(200);
    await expect(oidc.refreshTokenGrant(config, old.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('after DELETE /connections/{id}, the old access token is refused at the edge and at accounting', async () => {
    const del = await api(tokens.access_token, `/connections/${connectionId}`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    const deadline = Date.now() + 2000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await api(tokens.access_token, '/api.xro/2.0/Contacts', { tenantId: s.organisations[0].id })).status;
      if (status === 401) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(401);
    const res = await api(tokens.access_token, '/api.xro/2.0/Organisation', { tenantId: s.organisations[0].id });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="ledgerly", error="invalid_token"/);

    const direct = await t.grpc.accounting
      .getContact({ tenantId: s.organisations[0].id, contactId }, { metadata: { authorization: `Bearer ${tokens.access_token}` } })
      .catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(RemoteError);
    expect([Status.UNAUTHENTICATED, Status.PERMISSION_DENIED]).toContain((direct as RemoteError).code);

    const connections = await api(tokens.access_token, '/connections');
    expect(await connections.json()).toEqual([]);
  });
});
