/**
 * "Payroll Demo": an example third-party app, written the way any app
 * developer would write one, with a standard OAuth library (openid-client)
 * and nothing from this repository. It connects to Ledgerly, then shows the
 * connected organisations and their contacts through the Xero-compatible API.
 *
 *   PAYROLL_ISSUER         the platform's issuer, e.g. http://localhost:3000
 *   PAYROLL_CLIENT_ID      from `npm run cli -- client create …`
 *   PAYROLL_CLIENT_SECRET
 *   PAYROLL_LISTEN         127.0.0.1:3001
 *   PAYROLL_PUBLIC_URL     http://localhost:3001 (the redirect URI is <this>/callback)
 */
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as oidc from 'openid-client';
import { connectedPage, errorPage, homePage, type Notice, type OrganisationView } from './pages.js';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (!value) {
    process.stderr.write(`payroll: ${name} is required\n`);
    process.exit(78);
  }
  return value;
};

const issuer = env('PAYROLL_ISSUER', 'http://localhost:3000');
const clientId = env('PAYROLL_CLIENT_ID');
const clientSecret = env('PAYROLL_CLIENT_SECRET');
const listen = env('PAYROLL_LISTEN', '127.0.0.1:3001');
const publicUrl = env('PAYROLL_PUBLIC_URL', 'http://localhost:3001');
const redirectUri = `${publicUrl}/callback`;
const SCOPE = 'openid profile email offline_access accounting.settings.read accounting.contacts';

const log = (msg: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', service: 'payroll', msg, ...fields }) + '\n');

/** Per-browser state, in memory: this is an example, not a production app. */
interface Session {
  pending?: { verifier: string; state: string; nonce: string };
  tokens?: { accessToken: string; refreshToken?: string; expiresAt: number; name?: string };
  notice?: Notice;
  /** Anti-CSRF token of this browser session, in every form. */
  csrf: string;
}
const sessions = new Map<string, Session>();

/** A form must carry this session's anti-CSRF token (SameSite=Lax alone leaves older browsers open). */
function checkCsrf(s: Session, form: Map<string, string> | URLSearchParams): void {
  const sent = Buffer.from(form.get('csrf') ?? '');
  const expected = Buffer.from(s.csrf);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
    throw Object.assign(new Error('This form has expired; reload the page and try again.'), { status: 403, expose: true });
  }
}

function session(ctx: Context): Session {
  let id = ctx.cookies.get('payroll_sid');
  if (!id || !sessions.has(id)) {
    id = randomBytes(24).toString('base64url');
    sessions.set(id, { csrf: randomBytes(24).toString('base64url') });
    ctx.cookies.set('payroll_sid', id, { httpOnly: true, sameSite: 'lax', path: '/' });
  }
  return sessions.get(id)!;
}

let configuration: oidc.Configuration | undefined;
async function oauth(): Promise<oidc.Configuration> {
  // Discovery (RFC 8414 / OpenID Connect); http is fine on localhost only.
  configuration ??= await oidc.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: issuer.startsWith('http://') ? [oidc.allowInsecureRequests] : [],
  });
  return configuration;
}

/** A valid access token, refreshed (with rotation) when it is about to expire. */
async function accessToken(s: Session): Promise<string | undefined> {
  if (!s.tokens) return undefined;
  if (Date.now() < s.tokens.expiresAt - 30_000) return s.tokens.accessToken;
  if (!s.tokens.refreshToken) return undefined;
  const refreshed = await oidc.refreshTokenGrant(await oauth(), s.tokens.refreshToken);
  s.tokens = {
    accessToken: refreshed.access_token,
    refreshToken: refreshed.refresh_token ?? s.tokens.refreshToken,
    expiresAt: Date.now() + (refreshed.expires_in ?? 1800) * 1000,
    ...(s.tokens.name ? { name: s.tokens.name } : {}),
  };
  return s.tokens.accessToken;
}

async function api(s: Session, path: string, init: { method?: string; tenantId?: string; body?: unknown } = {}): Promise<Response> {
  const token = await accessToken(s);
  if (!token) throw new Error('not connected');
  const headers = new Headers({ accept: 'application/json' });
  if (init.tenantId) headers.set('xero-tenant-id', init.tenantId);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  return oidc.fetchProtectedResource(
    await oauth(),
    token,
    new URL(path, issuer),
    init.method ?? 'GET',
    init.body === undefined ? undefined : JSON.stringify(init.body),
    headers,
  );
}

async function readForm(ctx: Context): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const router = new Router();

router.get('/', async (ctx) => {
  const s = session(ctx);
  ctx.type = 'html';
  const notice = s.notice;
  delete s.notice;
  if (!s.tokens) {
    ctx.body = homePage(notice);
    return;
  }
  const connections = (await (await api(s, '/connections')).json()) as Array<{ id: string; tenantId: string; tenantName: string }>;
  const organisations: OrganisationView[] = [];
  for (const c of connections) {
    const res = await api(s, '/api.xro/2.0/Contacts', { tenantId: c.tenantId });
    const body = (await res.json()) as { Contacts?: Array<{ Name: string; EmailAddress?: string }>; Detail?: string };
    organisations.push({
      connectionId: c.id,
      tenantId: c.tenantId,
      name: c.tenantName,
      contacts: body.Contacts ?? [],
      ...(res.ok ? {} : { error: body.Detail ?? `HTTP ${res.status}` }),
    });
  }
  ctx.body = connectedPage(s.tokens.name ?? '', organisations, s.csrf, notice);
});

router.get('/connect', async (ctx) => {
  const s = session(ctx);
  const verifier = oidc.randomPKCECodeVerifier();
  s.pending = { verifier, state: oidc.randomState(), nonce: oidc.randomNonce() };
  const url = oidc.buildAuthorizationUrl(await oauth(), {
    redirect_uri: redirectUri,
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: s.pending.state,
    nonce: s.pending.nonce,
  });
  ctx.redirect(url.href);
});

router.get('/callback', async (ctx) => {
  const s = session(ctx);
  const pending = s.pending;
  delete s.pending;
  if (!pending) {
    ctx.redirect('/');
    return;
  }
  if (ctx.query['error']) {
    s.notice =
      ctx.query['error'] === 'access_denied'
        ? { text: 'You did not allow the connection.' }
        : { text: `Connecting failed: ${String(ctx.query['error'])}`, error: true };
    ctx.redirect('/');
    return;
  }
  const tokens = await oidc.authorizationCodeGrant(await oauth(), new URL(ctx.originalUrl, publicUrl), {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  s.tokens = {
    accessToken: tokens.access_token,
    ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
    expiresAt: Date.now() + (tokens.expires_in ?? 1800) * 1000,
    ...(typeof claims?.['name'] === 'string' ? { name: claims['name'] } : {}),
  };
  log('Connected', { sub: claims?.sub });
  ctx.redirect('/');
});

router.post('/contacts', async (ctx) => {
  const s = session(ctx);
  const form = await readForm(ctx);
  checkCsrf(s, form);
  const res = await api(s, '/api.xro/2.0/Contacts', {
    method: 'PUT',
    tenantId: form.get('tenantId') ?? '',
    body: { Contacts: [{ Name: form.get('name') ?? '', EmailAddress: form.get('email') || undefined }] },
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { Elements?: Array<{ ValidationErrors?: Array<{ Message: string }> }>; Detail?: string };
    s.notice = { text: body.Elements?.[0]?.ValidationErrors?.map((e) => e.Message).join(' ') ?? body.Detail ?? `Saving failed (HTTP ${res.status})`, error: true };
  } else {
    s.notice = { text: 'Employee added as a contact.' };
  }
  ctx.redirect('/');
});

router.post('/disconnect', async (ctx) => {
  const s = session(ctx);
  const form = await readForm(ctx);
  checkCsrf(s, form);
  const res = await api(s, `/connections/${encodeURIComponent(form.get('connectionId') ?? '')}`, { method: 'DELETE' });
  s.notice = res.status === 204 ? { text: 'Disconnected.' } : { text: `Disconnecting failed (HTTP ${res.status})`, error: true };
  ctx.redirect('/');
});

router.post('/forget', async (ctx) => {
  const s = session(ctx);
  checkCsrf(s, await readForm(ctx));
  delete s.tokens;
  ctx.redirect('/');
});

const app = new Koa();
app.use(async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    ctx.status = (err as { expose?: boolean; status?: number }).expose ? ((err as { status: number }).status ?? 500) : 500;
    ctx.type = 'html';
    ctx.body = errorPage((err as Error).message);
    log('Request failed', { path: ctx.path, error: (err as Error).message });
  }
});
app.use(router.routes());
app.use(router.allowedMethods());

const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
const server = app.listen(port, host, () => log('Payroll app ready', { url: publicUrl }));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
