import { isKnownScope, isRegisteredRedirectUri, parseScope } from '@ledgerly/access';
import { isRemoteError, Status } from '@ledgerly/chassis';
import { FlowState } from '@ledgerly/proto/consent/v1/consent';
import { ClientType, type Client } from '@ledgerly/proto/token/v1/token';
import type { Context, Middleware, Next } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readFormParams, singleValued } from '../http/body.js';
import { browserBinding, sessionToken } from '../http/cookies.js';
import { ConsentRequired, InvalidRequest, InvalidScope, LoginRequired, OAuthError, PageError, UnsupportedResponseType } from '../http/errors.js';
import { redirectToClient } from './redirect.js';

/** What the authorization endpoint has established so far, step by step. */
interface AuthorizeState {
  params: Map<string, string>;
  /** The parameters came from a pushed request (RFC 9126). */
  pushed?: boolean;
  client?: Client;
  /** Set once the redirect URI is known to be registered: from then on errors go back to it. */
  redirectUri?: string;
  checked?: CheckedRequest;
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
    resolvePushedRequest(deps),
    checkClient(deps),
    checkRedirect(),
    checkRequest,
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

/**
 * RFC 9126 §4: with request_uri, the parameters are the ones the client
 * pushed (once, within 60 s), and only those; client_id must be the same.
 */
function resolvePushedRequest(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    const s = state(ctx);
    const requestUri = s.params.get('request_uri');
    if (requestUri !== undefined) {
      const clientId = s.params.get('client_id');
      if (!clientId) throw new PageError(400, 'This request is not valid', 'The app did not say who it is (client_id is missing).');
      let pushed: Map<string, string>;
      try {
        const { parametersJson } = await deps.token.takePushedAuthorization({ requestUri, clientId });
        pushed = new Map(Object.entries(JSON.parse(parametersJson) as Record<string, string>));
      } catch (err) {
        if (isRemoteError(err, Status.NOT_FOUND)) {
          throw new PageError(400, 'This sign-in link has expired', 'The app prepared this request more than a minute ago, or it was already used. Go back to the app and start again.');
        }
        throw err;
      }
      s.params = new Map([...pushed, ['client_id', clientId]]);
      s.pushed = true;
    }
    await next();
  };
}

function checkClient(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    const s = state(ctx);
    const clientId = s.params.get('client_id');
    if (!clientId) throw new PageError(400, 'This request is not valid', 'The app did not say who it is (client_id is missing).');
    const client = await deps.clients.find(clientId);
    if (!client) throw new PageError(400, 'Unknown app', 'The app that sent you here is not registered (unknown client_id).');
    if (client.suspendedAt) throw new PageError(403, 'This app is suspended', 'The app that sent you here has been suspended by the platform and cannot connect.');
    // RFC 9126 §5: a client registered for PAR must push; its query parameters are not trusted.
    if (client.requirePushedAuthorizationRequests && !s.pushed) {
      throw new PageError(400, 'This request is not valid', 'This app must prepare its sign-in requests with the platform first (pushed authorization request required).');
    }
    s.client = client;
    await next();
  };
}

function checkRedirect(): Middleware {
  return async (ctx, next) => {
    const s = state(ctx);
    s.redirectUri = registeredRedirectUri(s.params, s.client!, (description) => new PageError(400, 'This request is not valid', description));
    await next();
  };
}

/** The redirect URI, if the client registered it (RFC 9700 §4.1.3 exact match; RFC 8252 §7.3 loopback ports). */
export function registeredRedirectUri(params: Map<string, string>, client: Client, fail: (description: string) => Error): string {
  const redirectUri = params.get('redirect_uri');
  if (!redirectUri) throw fail('The app did not say where to send you back (redirect_uri is missing).');
  if (!isRegisteredRedirectUri(client.redirectUris, redirectUri)) {
    throw fail('The app asked to send you back to an address it has not registered (redirect_uri mismatch).');
  }
  return redirectUri;
}

/** An authorization request whose client and redirect URI are known to be good. */
export interface CheckedRequest {
  scopes: string[];
  prompt: string[];
  codeChallenge: string;
  maxAge: number;
  dpopJkt: string;
}

/**
 * Every other parameter of an authorization request (RFC 6749 §4.1.1,
 * RFC 7636, OpenID Connect Core §3.1.2.1), for /authorize and for PAR.
 * Throws the OAuth error to send back.
 */
export function checkAuthorizationParameters(params: Map<string, string>, client: Client): CheckedRequest {
  const responseType = params.get('response_type');
  if (!responseType) throw new InvalidRequest('response_type is required');
  if (responseType !== 'code') throw new UnsupportedResponseType('Only response_type=code is supported');
  const responseMode = params.get('response_mode');
  if (responseMode && responseMode !== 'query') throw new InvalidRequest('Only response_mode=query is supported');

  const scopes = parseScope(params.get('scope'));
  if (scopes.length === 0) throw new InvalidScope('scope is required');
  const unknown = scopes.filter((s) => !isKnownScope(s));
  if (unknown.length > 0) throw new InvalidScope(`Unknown scope: ${unknown.join(' ')}`);

  // RFC 7636 §4.3 and OAuth 2.1: PKCE with S256, required unless a confidential
  // client was registered with it optional; "plain" is refused.
  const challenge = params.get('code_challenge');
  const method = params.get('code_challenge_method');
  if (challenge !== undefined || method !== undefined || client.pkceRequired || client.type !== ClientType.CLIENT_TYPE_CONFIDENTIAL) {
    if (!challenge) throw new InvalidRequest('code_challenge is required (PKCE with S256)');
    if (method !== 'S256') throw new InvalidRequest('code_challenge_method must be S256');
    if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) throw new InvalidRequest('code_challenge must be the base64url SHA-256 of the code_verifier');
  }

  for (const name of ['state', 'nonce']) {
    if ((params.get(name)?.length ?? 0) > MAX_STATE) throw new InvalidRequest(`${name} must be at most ${MAX_STATE} characters`);
  }
  if (params.has('request')) throw new InvalidRequest('Request objects are not supported');
  if (params.has('request_uri')) throw new InvalidRequest('request_uri is only accepted at the authorization endpoint, for a pushed request');
  const prompt = (params.get('prompt') ?? '').split(' ').filter(Boolean);
  const known = ['none', 'login', 'consent', 'select_account'];
  if (prompt.some((p) => !known.includes(p))) throw new InvalidRequest(`prompt must be made of ${known.join(', ')}`);
  // OpenID Connect Core §3.1.2.1: none with any other value is an error.
  if (prompt.includes('none') && prompt.length > 1) throw new InvalidRequest('prompt=none cannot be combined with other values');
  const maxAge = params.get('max_age');
  if (maxAge !== undefined && !/^\d{1,9}$/.test(maxAge)) throw new InvalidRequest('max_age must be a number of seconds');
  // RFC 9449 §10: the JWK SHA-256 thumbprint (RFC 7638) of the key the code will be bound to.
  const dpopJkt = params.get('dpop_jkt') ?? '';
  if (dpopJkt && !/^[A-Za-z0-9_-]{43}$/.test(dpopJkt)) throw new InvalidRequest('dpop_jkt must be a base64url JWK SHA-256 thumbprint');
  return { scopes, prompt, codeChallenge: challenge ?? '', maxAge: maxAge !== undefined ? Number(maxAge) : -1, dpopJkt };
}

async function checkRequest(ctx: Context, next: Next): Promise<void> {
  const s = state(ctx);
  s.checked = checkAuthorizationParameters(s.params, s.client!);
  await next();
}

/** Hands the validated request to the consent service and sends the browser to sign in or consent. */
function startFlow(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const s = state(ctx);
    const { prompt, scopes, codeChallenge, maxAge, dpopJkt } = s.checked!;
    const token = prompt.includes('login') ? undefined : sessionToken(ctx);
    if (prompt.includes('none')) {
      // Without a session the user would have to sign in; with one, they would still see the consent page.
      if (!token) throw new LoginRequired('The user is not signed in (prompt=none)');
      throw new ConsentRequired('This app needs the user to consent (prompt=none is not possible)');
    }
    const { flow } = await deps.consent.createFlow({
      request: {
        clientId: s.client!.clientId,
        redirectUri: s.redirectUri!,
        scopes,
        state: s.params.get('state') ?? '',
        nonce: s.params.get('nonce') ?? '',
        codeChallenge,
        codeChallengeMethod: codeChallenge ? 'S256' : '',
        maxAge,
        prompt,
        dpopJkt,
      },
      browserBinding: browserBinding(ctx, deps.config.secureCookies),
      ...(token ? { sessionToken: token } : {}),
    });
    const next = flow!.state === FlowState.FLOW_STATE_CONSENT_REQUIRED ? '/consent' : '/login';
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(`${next}?flow=${encodeURIComponent(flow!.id)}`);
  };
}
