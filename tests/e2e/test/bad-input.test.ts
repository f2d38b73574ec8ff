import { seed, startTestPlatform, authorizeInteractively, UserAgent, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Bad input gets a clear answer, never a crash: RFC 6749 errors for OAuth,
 * an error page (never a redirect) for an unknown client or redirect URI,
 * Xero-style errors for the API, and nothing executed when refused.
 */
let t: TestPlatform;
let s: Seed;
let tokens: { access_token: string };

const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');

function authorizeUrl(params: Record<string, string | undefined>): URL {
  const url = new URL('/authorize', t.issuer);
  const defaults = {
    client_id: s.client.clientId,
    redirect_uri: s.client.redirectUri,
    response_type: 'code',
    scope: 'openid accounting.contacts',
    state: 'xyz',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
  for (const [k, v] of Object.entries({ ...defaults, ...params })) if (v !== undefined) url.searchParams.set(k, v);
  return url;
}

async function token(form: Record<string, string>, auth = true): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth) headers['authorization'] = `Basic ${Buffer.from(`${s.client.clientId}:${s.client.clientSecret}`).toString('base64')}`;
  return fetch(new URL('/token', t.issuer), { method: 'POST', headers, body: new URLSearchParams(form).toString() });
}

/** A fresh authorization code for org 0, through the real pages. */
async function code(params: Record<string, string | undefined> = {}): Promise<string> {
  const { callback } = await authorizeInteractively(new UserAgent(), authorizeUrl(params), {
    email: s.user.email,
    password: s.user.password,
    organisations: [s.organisations[0].id],
  });
  return callback.searchParams.get('code')!;
}

function api(path: string, init: { method?: string; tenant?: string | null; body?: string; contentType?: string; token?: string } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${init.token ?? tokens.access_token}` };
  if (init.tenant !== null) headers['xero-tenant-id'] = init.tenant ?? s.organisations[0].id;
  if (init.body !== undefined) headers['content-type'] = init.contentType ?? 'application/json';
  return fetch(new URL(path, t.issuer), { method: init.method ?? 'GET', headers, ...(init.body !== undefined ? { body: init.body } : {}) });
}

beforeAll(async () => {
  t = await startTestPlatform();
  s = await seed(t.grpc);
  const res = await token({ grant_type: 'authorization_code', code: await code(), redirect_uri: s.client.redirectUri, code_verifier: verifier });
  tokens = (await res.json()) as { access_token: string };
});
afterAll(async () => {
  await t?.stop();
});

describe('the authorization endpoint', () => {
  it('shows an error page, never a redirect, for an unknown client', async () => {
    const res = await fetch(authorizeUrl({ client_id: '0123456789ABCDEF0123456789ABCDEF' }), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toContain('Unknown app');
  });

  it('shows an error page, never a redirect, for a redirect_uri that does not match exactly', async () => {
    for (const redirect of [`${s.client.redirectUri}/`, s.client.redirectUri.toUpperCase(), `${s.client.redirectUri}?x=1`, 'https://attacker.example/callback']) {
      const res = await fetch(authorizeUrl({ redirect_uri: redirect }), { redirect: 'manual' });
      expect(res.status, redirect).toBe(400);
      expect(res.headers.get('location'), redirect).toBeNull();
      expect(await res.text()).toContain('redirect_uri mismatch');
    }
  });

  it('redirects other errors back to the client with state and iss (RFC 6749 §4.1.2.1, RFC 9207)', async () => {
    const cases: Array<[Record<string, string | undefined>, string]> = [
      [{ code_challenge: undefined }, 'invalid_request'],
      [{ code_challenge_method: 'plain' }, 'invalid_request'],
      [{ code_challenge_method: undefined }, 'invalid_request'],
      [{ response_type: 'token' }, 'unsupported_response_type'],
      [{ scope: 'openid accounting.everything' }, 'invalid_scope'],
      [{ scope: undefined }, 'invalid_scope'],
    ];
    for (const [params, error] of cases) {
      const res = await fetch(authorizeUrl(params), { redirect: 'manual' });
      expect(res.status, JSON.stringify(params)).toBe(302);
      const location = new URL(res.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(s.client.redirectUri);
      expect(Object.fromEntries(location.searchParams)).toMatchObject({ error, state: 'xyz', iss: t.issuer });
    }
  });

  it('refuses repeated parameters', async () => {
    const url = authorizeUrl({});
    url.searchParams.append('client_id', s.client.clientId);
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  it('sends access_denied back when the user presses Deny', async () => {
    const { callback } = await authorizeInteractively(new UserAgent(), authorizeUrl({}), {
      email: s.user.email,
      password: s.user.password,
      organisations: [],
      decision: 'deny',
    });
    expect(Object.fromEntries(callback.searchParams)).toMatchObject({ error: 'access_denied', state: 'xyz', iss: t.issuer });
    expect(callback.searchParams.get('code')).toBeNull();
  });

  it('keeps the user on the consent page when no organisation is ticked (and none is connected yet)', async () => {
    const fresh = await seed(t.grpc);
    const ua = new UserAgent();
    const origin = t.issuer;
    let { res } = await ua.follow(authorizeUrl({}), origin);
    const login = await res.text();
    const field = (html: string, name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)![1]!;
    ({ res } = await ua.follow(new URL('/login', origin), origin, {
      form: new URLSearchParams({ flow: field(login, 'flow'), csrf: field(login, 'csrf'), email: fresh.user.email, password: fresh.user.password }),
    }));
    const consent = await res.text();
    const submit = await ua.request(new URL('/consent', origin), {
      form: new URLSearchParams({ flow: field(consent, 'flow'), csrf: field(consent, 'csrf'), decision: 'allow' }),
    });
    expect(submit.status).toBe(400);
    expect(await submit.text()).toContain('Choose at least one organisation');
  });

  it('shows organisations already connected as such on a new consent, and keeps them connected', async () => {
    // The owner connected organisation 0 in beforeAll; this consent ticks nothing new.
    const { consentPage, callback } = await authorizeInteractively(new UserAgent(), authorizeUrl({}), {
      email: s.user.email,
      password: s.user.password,
      organisations: [],
    });
    expect(consentPage).toContain(`<input type="checkbox" id="org-${s.organisations[0].id}" value="${s.organisations[0].id}" checked disabled>`);
    expect(consentPage).toContain('Already connected');
    expect(consentPage).toContain(`name="organisation" value="${s.organisations[1].id}"`);
    expect(callback.searchParams.get('code')).toBeTruthy();
    const list = (await (await api('/connections', { tenant: null })).json()) as Array<{ tenantId: string }>;
    expect(list.map((c) => c.tenantId)).toEqual([s.organisations[0].id]);
  });

  it('refuses a wrong password on the login page without saying which part was wrong', async () => {
    const ua = new UserAgent();
    const { res } = await ua.follow(authorizeUrl({}), t.issuer);
    const login = await res.text();
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(login)![1]!;
    for (const [email, password] of [[s.user.email, 'wrong password'], ['nobody@example.com', s.user.password]]) {
      const submit = await ua.request(new URL('/login', t.issuer), { form: new URLSearchParams({ flow: field('flow'), csrf: field('csrf'), email: email!, password: password! }) });
      expect(submit.status).toBe(401);
      expect(await submit.text()).toContain('The email or password is incorrect.');
    }
  });

  it('refuses a consent form posted from another browser (flow bound to the browser)', async () => {
    const ua = new UserAgent();
    const { res } = await ua.follow(authorizeUrl({}), t.issuer);
    const login = await res.text();
    const flow = new RegExp('name="flow" value="([^"]*)"').exec(login)![1]!;
    // A browser without the binding cookie, and one with its own: neither may use the flow.
    const bare = await new UserAgent().request(new URL(`/login?flow=${flow}`, t.issuer));
    expect(bare.status).toBe(403);
    expect(await bare.text()).toContain('started in another browser');
    const other = new UserAgent();
    await other.follow(authorizeUrl({}), t.issuer);
    expect(other.cookie(new URL(t.issuer).host, 'll_bb')).toBeTruthy();
    const stolen = await other.request(new URL(`/login?flow=${flow}`, t.issuer));
    expect(stolen.status).toBe(403);
    expect(await stolen.text()).toContain('started in another browser');
    // The right browser with a wrong anti-CSRF token: refused, and said so.
    const forged = await ua.request(new URL('/login', t.issuer), {
      form: new URLSearchParams({ flow, csrf: 'forged', email: s.user.email, password: s.user.password }),
    });
    expect(forged.status).toBe(403);
    expect(await forged.text()).toContain('This form has expired');
  });

  it('answers prompt=none with login_required without a session, and refuses prompt=none combined with other values', async () => {
    const none = await fetch(authorizeUrl({ prompt: 'none' }), { redirect: 'manual' });
    expect(new URL(none.headers.get('location')!).searchParams.get('error')).toBe('login_required');
    const mixed = await fetch(authorizeUrl({ prompt: 'none login' }), { redirect: 'manual' });
    expect(new URL(mixed.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
    const long = await fetch(authorizeUrl({ state: 'x'.repeat(2000) }), { redirect: 'manual' });
    const location = new URL(long.headers.get('location')!);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('state')).toBeNull();
  });
});

describe('sessions', () => {
  it('reuses the sign-in session for the next authorization, and lets the person sign out and use another account', async () => {
    const other = await seed(t.grpc);
    const ua = new UserAgent();
    await authorizeInteractively(ua, authorizeUrl({}), { email: s.user.email, password: s.user.password, organisations: [s.organisations[0].id] });
    // Signed in already: straight to the consent page.
    const again = await ua.follow(authorizeUrl({}), t.issuer);
    expect(again.url.pathname).toBe('/consent');
    const consent = await again.res.text();
    expect(consent).toContain(s.user.email);
    const host = new URL(t.issuer).host;
    expect(ua.cookie(host, 'll_session')).toBeTruthy();
    const hidden = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(consent)![1]!;
    // "Not you? Sign out" is a POST with the flow's anti-CSRF token; a forged one is refused.
    expect((await ua.request(new URL('/logout', t.issuer), { form: new URLSearchParams({ flow: hidden('flow'), csrf: 'x' }) })).status).toBe(403);
    const login = await ua.follow(new URL('/logout', t.issuer), t.issuer, { form: new URLSearchParams({ flow: hidden('flow'), csrf: hidden('csrf') }) });
    expect(login.url.pathname).toBe('/login');
    expect(ua.cookie(host, 'll_session')).toBeUndefined();
    const page = await login.res.text();
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page)![1]!;
    const after = await ua.follow(new URL('/login', t.issuer), t.issuer, {
      form: new URLSearchParams({ flow: field('flow'), csrf: field('csrf'), email: other.user.email, password: other.user.password }),
    });
    expect(after.url.pathname).toBe('/consent');
    const switched = await after.res.text();
    expect(switched).toContain(other.user.email);
    expect(switched).toContain(other.organisations[0].name);
    expect(switched).not.toContain(s.organisations[0].name);
  });

  it('asks to sign in again with prompt=login, and when the sign-in is older than max_age', async () => {
    const ua = new UserAgent();
    await authorizeInteractively(ua, authorizeUrl({}), { email: s.user.email, password: s.user.password, organisations: [s.organisations[0].id] });
    expect((await ua.follow(authorizeUrl({ prompt: 'login' }), t.issuer)).url.pathname).toBe('/login');
    await new Promise((r) => setTimeout(r, 1100));
    expect((await ua.follow(authorizeUrl({ max_age: '1' }), t.issuer)).url.pathname).toBe('/login');
    expect((await ua.follow(authorizeUrl({ max_age: '3600' }), t.issuer)).url.pathname).toBe('/consent');
  });
});

// The token endpoint's rules (PKCE, codes, refresh, client authentication, errors) are in oauth-rules.test.ts.

describe('the accounting API', () => {
  it('requires a bearer token, with an RFC 6750 challenge', async () => {
    const res = await fetch(new URL('/api.xro/2.0/Contacts', t.issuer), { headers: { 'xero-tenant-id': s.organisations[0].id } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ledgerly"');
    const bad = await api('/api.xro/2.0/Contacts', { token: `${tokens.access_token.slice(0, -4)}AAAA` });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });

  it('refuses a missing, malformed or unconnected xero-tenant-id, and executes nothing', async () => {
    const missing = await api('/api.xro/2.0/Contacts', { tenant: null });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ Status: 400, Detail: expect.stringContaining('xero-tenant-id') });
    expect((await api('/api.xro/2.0/Contacts', { tenant: 'not-a-guid' })).status).toBe(403);
    expect((await api('/api.xro/2.0/Contacts', { tenant: '00000000-0000-4000-8000-000000000000' })).status).toBe(403);
    const write = await api('/api.xro/2.0/Contacts', { method: 'PUT', tenant: s.organisations[1].id, body: JSON.stringify({ Contacts: [{ Name: 'Nope' }] }) });
    expect(write.status).toBe(403);
  });

  it('answers invalid JSON with a 400 and a message', async () => {
    const res = await api('/api.xro/2.0/Contacts', { method: 'PUT', body: '{"Contacts": [' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ ErrorNumber: 14, Type: 'PostDataInvalidException', Message: expect.stringContaining('JSON') });
    const shape = await api('/api.xro/2.0/Contacts', { method: 'PUT', body: '[1,2]' });
    expect(shape.status).toBe(400);
    const type = await api('/api.xro/2.0/Contacts', { method: 'PUT', body: 'Name=x', contentType: 'application/x-www-form-urlencoded' });
    expect(type.status).toBe(400);
  });

  it('answers invalid contacts with a Xero ValidationException and saves none of the batch', async () => {
    const name = `Batch ${Date.now()}`;
    const res = await api('/api.xro/2.0/Contacts', {
      method: 'PUT',
      body: JSON.stringify({ Contacts: [{ Name: name }, { Name: '' }, { Name: 'x'.repeat(300) }, { Name: 'Ok', EmailAddress: 'not-an-email' }] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { ErrorNumber: number; Type: string; Elements: Array<{ ValidationErrors?: Array<{ Message: string }> }> };
    expect(body).toMatchObject({ ErrorNumber: 10, Type: 'ValidationException', Message: 'A validation exception occurred' });
    expect(body.Elements).toHaveLength(4);
    expect(body.Elements[0]!.ValidationErrors ?? []).toEqual([]);
    expect(body.Elements[1]!.ValidationErrors).toEqual([{ Message: 'The contact name must be specified.' }]);
    expect(body.Elements[2]!.ValidationErrors![0]!.Message).toContain('must not be more than 255 characters');
    expect(body.Elements[3]!.ValidationErrors).toEqual([{ Message: 'Email address must be valid.' }]);
    const list = (await (await api(`/api.xro/2.0/Contacts?searchTerm=${encodeURIComponent(name)}`)).json()) as { Contacts: unknown[] };
    expect(list.Contacts).toEqual([]);
  });

  it('refuses an unknown enum value and a wrong type with per-field messages', async () => {
    const res = await api('/api.xro/2.0/Contacts', { method: 'PUT', body: JSON.stringify({ Contacts: [{ Name: { first: 'x' }, Phones: [{ PhoneType: 'PAGER' }] }] }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { Elements: Array<{ ValidationErrors: Array<{ Message: string }> }> };
    expect(body.Elements[0]!.ValidationErrors.map((e) => e.Message)).toEqual(['Name must be a string.', 'Phones[0].PhoneType must be one of DEFAULT, DDI, MOBILE, FAX, OFFICE.']);
  });

  it('refuses repeated or malformed list parameters instead of ignoring them', async () => {
    for (const query of ['searchTerm=a&searchTerm=b', 'includeArchived=maybe', 'page=0', 'page=x', 'IDs=not-a-uuid']) {
      const res = await api(`/api.xro/2.0/Contacts?${query}`);
      expect(res.status, query).toBe(400);
      expect(((await res.json()) as { Detail: string }).Detail, query).toMatch(/repeated|true or false|positive whole number|ContactIDs/);
    }
    expect((await api('/api.xro/2.0/Contacts?includeArchived=TRUE')).status).toBe(200);
  });

  it('returns 404 for an unknown contact and for unknown routes', async () => {
    const res = await api('/api.xro/2.0/Contacts/00000000-0000-4000-8000-000000000000');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ Title: 'NotFound', Status: 404 });
    expect((await api('/api.xro/2.0/Nope')).status).toBe(404);
    const wrongMethod = await api('/api.xro/2.0/Contacts', { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(await wrongMethod.json()).toMatchObject({ Title: 'MethodNotAllowed', Status: 405 });
    const getToken = await fetch(new URL('/token', t.issuer));
    expect(getToken.status).toBe(405);
    expect(await getToken.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('accepts the xero-tenant-id in any case, refuses compressed bodies with 415, and control or bidi characters in names', async () => {
    expect((await api('/api.xro/2.0/Contacts', { tenant: s.organisations[0].id.toUpperCase() })).status).toBe(200);
    const gz = await fetch(new URL('/api.xro/2.0/Contacts', t.issuer), {
      method: 'PUT',
      headers: { authorization: `Bearer ${tokens.access_token}`, 'xero-tenant-id': s.organisations[0].id, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: '{}',
    });
    expect(gz.status).toBe(415);
    const bidi = await api('/api.xro/2.0/Contacts', { method: 'PUT', body: JSON.stringify({ Contacts: [{ Name: 'Evil \u202Egnp.exe' }, { Name: 'Nul\u0000Byte' }] }) });
    expect(bidi.status).toBe(400);
    const body = (await bidi.json()) as { Elements: Array<{ ValidationErrors: Array<{ Message: string }> }> };
    for (const element of body.Elements) expect(element.ValidationErrors[0]!.Message).toContain('bidirectional formatting characters');
  });

  it('refuses a scope the token does not have (403 insufficient_scope)', async () => {
    // The token was granted accounting.contacts but not accounting.settings.
    const res = await api('/api.xro/2.0/Organisation');
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
  });

  it('refuses DELETE of a connection that is not the caller\'s', async () => {
    expect((await api('/connections/00000000-0000-4000-8000-000000000000', { method: 'DELETE', tenant: null })).status).toBe(404);
  });
});
