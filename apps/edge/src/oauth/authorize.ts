import { isKnownScope, parseScope } from '@ledgerly/access';
import { FlowState } from '@ledgerly/proto/consent/v1/consent';
import type { Context, Middleware, Next } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readFormParams, singleValued } from '../http/body.js';
import { browserBinding, sessionToken } from '../http/cookies.js';
import { ConsentRequired, InvalidRequest, InvalidScope, LoginRequired, OAuthError, PageError, UnsupportedResponseType } from '../http/errors.js';
import { redirectToClient } from './redirect.js';

/** What the authorization endpoint has established so far, step by step. */
interface AuthorizeState {
  params: Map<string, string>;
  clientId?: string;
  /** Set once the redirect URI is known to be registered: from then on errors go back to it. */
  redirectUri?: string;
  scopes?: string[];
}

const state = (ctx: Context): AuthorizeState => ctx.state['authorize'] as AuthorizeState;

/** Longest state and nonce accepted (and echoed). */
const MAX_STATE = 1024;

/**
 * GET (or POST) /authorize: the authorization code flow with PKCE (RFC 6749
 * §4.1.1, RFC 7636, OAuth 2.1). One check per step, in order. Until the
 * client and its redirect URI are verified, errors are shown as a page and
 * never redirected (RFC 6749 §4.1.2.1); after that they go back to the client
 * with `state` and `iss`.
 */
export function authorize(deps: EdgeDeps): Middleware[] {
  return [
    redirectErrorsToClient(deps),
    readParameters,
    checkClient(deps),
    checkRedirectUri(deps),
    checkResponseType,
    checkScope,
    checkPkce,
    checkOtherParameters,
    startFlow(deps),
  ];
}

/** Errors raised after the redirect URI is trusted are sent back to the client. */
function redirectErrorsToClient(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const s = ctx.state['authorize'] as AuthorizeState | undefined;
      if (err instanceof OAuthError && err.expose && s?.redirectUri) {
        const state = s.params.get('state');
        redirectToClient(ctx, s.redirectUri, deps.config.issuer, {
          error: err.error,
          error_description: err.description,
          // An over-long state is itself the error: do not echo it.
          state: state && state.length <= MAX_STATE ? state : undefined,
        });
        return;
      }
      throw err;
    }
  };
}

async function readParameters(ctx: Context, next: Next): Promise<void> {
  // OpenID Connect Core §3.1.2.1: GET and POST (form) are both supported.
  const raw = ctx.method === 'POST' ? await readFormParams(ctx) : new URLSearchParams(ctx.querystring);
  let params: Map<string, string>;
  try {
    params = singleValued(raw);
  } catch (err) {
    throw new PageError(400, 'This request is not valid', (err as Error).message);
  }
  ctx.state['authorize'] = { params } satisfies AuthorizeState;
  await next();
}

function checkClient(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    const clientId = state(ctx).params.get('client_id');
    if (!clientId) throw new PageError(400, 'This request is not valid', 'The app did not say who it is (client_id is missing).');
    const client = await deps.clients.find(clientId);
    if (!client) throw new PageError(400, 'Unknown app', 'The app that sent you here is not registered (unknown client_id).');
    if (client.suspendedAt) throw new PageError(403, 'This app is suspended', 'The app that sent you here has been suspended by the platform and cannot connect.');
    state(ctx).clientId = client.clientId;
    await next();
  };
}

function checkRedirectUri(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    const s = state(ctx);
    const redirectUri = s.params.get('redirect_uri');
    const client = (await deps.clients.find(s.clientId!))!;
    if (!redirectUri) throw new PageError(400, 'This request is not valid', 'The app did not say where to send you back (redirect_uri is missing).');
    // RFC 9700 §4.1.3: exact string matching, nothing normalised.
    if (!client.redirectUris.includes(redirectUri)) {
      throw new PageError(400, 'This request is not valid', 'The app asked to send you back to an address it has not registered (redirect_uri mismatch).');
    }
    s.redirectUri = redirectUri;
    await next();
  };
}

async function checkResponseType(ctx: Context, next: Next): Promise<void> {
  const responseType = state(ctx).params.get('response_type');
  if (!responseType) throw new InvalidRequest('response_type is required');
  if (responseType !== 'code') throw new UnsupportedResponseType('Only response_type=code is supported');
  const responseMode = state(ctx).params.get('response_mode');
  if (responseMode && responseMode !== 'query') throw new InvalidRequest('Only response_mode=query is supported');
  await next();
}

async function checkScope(ctx: Context, next: Next): Promise<void> {
  const scopes = parseScope(state(ctx).params.get('scope'));
  if (scopes.length === 0) throw new InvalidScope('scope is required');
  const unknown = scopes.filter((s) => !isKnownScope(s));
  if (unknown.length > 0) throw new InvalidScope(`Unknown scope: ${unknown.join(' ')}`);
  state(ctx).scopes = scopes;
  await next();
}

/** RFC 7636 §4.3 and OAuth 2.1: PKCE with S256 for every client; "plain" is refused. */
async function checkPkce(ctx: Context, next: Next): Promise<void> {
  const { params } = state(ctx);
  const challenge = params.get('code_challenge');
  const method = params.get('code_challenge_method');
  if (!challenge) throw new InvalidRequest('code_challenge is required (PKCE with S256)');
  if (method !== 'S256') throw new InvalidRequest('code_challenge_method must be S256');
  if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) throw new InvalidRequest('code_challenge must be the base64url SHA-256 of the code_verifier');
  await next();
}

async function checkOtherParameters(ctx: Context, next: Next): Promise<void> {
  const { params } = state(ctx);
  for (const name of ['state', 'nonce']) {
    if ((params.get(name)?.length ?? 0) > MAX_STATE) throw new InvalidRequest(`${name} must be at most ${MAX_STATE} characters`);
  }
  if (params.has('request') || params.has('request_uri')) throw new InvalidRequest('Request objects are not supported');
  const prompt = (params.get('prompt') ?? '').split(' ').filter(Boolean);
  const known = ['none', 'login', 'consent', 'select_account'];
  if (prompt.some((p) => !known.includes(p))) throw new InvalidRequest(`prompt must be made of ${known.join(', ')}`);
  // OpenID Connect Core §3.1.2.1: none with any other value is an error.
  if (prompt.includes('none') && prompt.length > 1) throw new InvalidRequest('prompt=none cannot be combined with other values');
  if (prompt.includes('none')) {
    // Without a session the user would have to sign in; with one, they would still see the consent page.
    if (!sessionToken(ctx)) throw new LoginRequired('The user is not signed in (prompt=none)');
    throw new ConsentRequired('This app needs the user to consent (prompt=none is not possible)');
  }
  const maxAge = params.get('max_age');
  if (maxAge !== undefined && !/^\d{1,9}$/.test(maxAge)) throw new InvalidRequest('max_age must be a number of seconds');
  await next();
}

/** Hands the validated request to the consent service and sends the browser to sign in or consent. */
function startFlow(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const s = state(ctx);
    const prompt = (s.params.get('prompt') ?? '').split(' ').filter(Boolean);
    const token = prompt.includes('login') ? undefined : sessionToken(ctx);
    const { flow } = await deps.consent.createFlow({
      request: {
        clientId: s.clientId!,
        redirectUri: s.redirectUri!,
        scopes: s.scopes!,
        state: s.params.get('state') ?? '',
        nonce: s.params.get('nonce') ?? '',
        codeChallenge: s.params.get('code_challenge')!,
        codeChallengeMethod: 'S256',
        maxAge: s.params.has('max_age') ? Number(s.params.get('max_age')) : -1,
        prompt,
      },
      browserBinding: browserBinding(ctx, deps.config.secureCookies),
      ...(token ? { sessionToken: token } : {}),
    });
    const next = flow!.state === FlowState.FLOW_STATE_CONSENT_REQUIRED ? '/consent' : '/login';
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(`${next}?flow=${encodeURIComponent(flow!.id)}`);
  };
}
