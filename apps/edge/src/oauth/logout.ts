import { constantTimeEqual, sha256 } from '@ledgerly/chassis';
import type { Client } from '@ledgerly/proto/token/v1/token';
import { compactVerify, createLocalJWKSet, decodeJwt, type JSONWebKeySet } from 'jose';
import type { Context, Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readFormParams, singleValued } from '../http/body.js';
import { browserBinding, clearSessionCookie, existingBrowserBinding, sessionToken } from '../http/cookies.js';
import { PageError } from '../http/errors.js';
import { loggedOutPage, logoutPage } from '../views/logout-page.js';
import { sendPage } from './flow-pages.js';
import { seeOther } from './redirect.js';

const bad = (detail: string) => new PageError(400, 'This sign-out request is not valid', detail);

/** What a sign-out request established: the client, where to go after, and the hint's session. */
interface LogoutRequest {
  client?: Client;
  postLogoutRedirectUri: string;
  state: string;
  /** The sid of a valid id_token_hint. */
  hintSessionId?: string;
}

/**
 * GET or POST /session/end: OpenID Connect RP-Initiated Logout 1.0.
 *   - id_token_hint must be an ID token we issued (an expired one is fine:
 *     §2); its aud is the client, and client_id, if sent, must agree;
 *   - post_logout_redirect_uri must be one the client registered, exactly
 *     (§3), or the request is refused with a page, never a redirect;
 *   - when the hint is for the session of this browser, it is ended at once;
 *     otherwise the person is asked first (§2: the OP MUST ask then), with a
 *     form no other site can submit.
 */
export function endSession(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const params = singleValued(ctx.method === 'POST' ? await readFormParams(ctx) : new URLSearchParams(ctx.querystring));
    const request = await checkRequest(deps, params);
    const token = sessionToken(ctx);
    if (token && request.hintSessionId) {
      const session = await deps.identity.getSession({ sessionToken: token }).then(
        (r) => r.session,
        () => undefined,
      );
      if (session && session.id === request.hintSessionId) {
        await signOut(deps, ctx, token);
        finish(deps, ctx, request, true);
        return;
      }
    }
    sendPage(
      ctx,
      logoutPage({
        platformName: deps.config.LEDGERLY_PLATFORM_NAME,
        ...(request.client ? { appName: request.client.name } : {}),
        csrfToken: logoutCsrf(browserBinding(ctx, deps.config.secureCookies)),
        clientId: request.client?.clientId ?? '',
        postLogoutRedirectUri: request.postLogoutRedirectUri,
        state: request.state,
      }),
    );
  };
}

/** POST /session/end/confirm: the person's answer to the question. */
export function confirmEndSession(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const form = singleValued(await readFormParams(ctx));
    const binding = existingBrowserBinding(ctx);
    if (!binding || !constantTimeEqual(form.get('csrf') ?? '', logoutCsrf(binding))) {
      throw new PageError(403, 'This form has expired', 'The page was open too long or in another browser. Go back to the app and sign out again.');
    }
    // Checked again: the form's fields came back from the browser.
    const request = await checkRequest(deps, form);
    const leave = form.get('decision') === 'logout';
    const token = sessionToken(ctx);
    if (leave && token) await signOut(deps, ctx, token);
    else if (leave) clearSessionCookie(ctx, deps.config.secureCookies);
    finish(deps, ctx, request, leave);
  };
}

async function checkRequest(deps: EdgeDeps, params: Map<string, string>): Promise<LogoutRequest> {
  const hint = params.get('id_token_hint');
  let clientId = params.get('client_id');
  let hintSessionId: string | undefined;
  if (hint) {
    const claims = await verifyIdTokenHint(deps, hint);
    if (!claims) throw bad('The app sent an ID token that the platform did not issue (id_token_hint).');
    if (clientId && clientId !== claims.aud) throw bad('client_id does not match the ID token (id_token_hint).');
    clientId = claims.aud;
    hintSessionId = claims.sid;
  }
  const client = clientId ? ((await deps.clients.find(clientId)) ?? undefined) : undefined;
  if (clientId && !client) throw bad('The app that sent you here is not registered (unknown client_id).');
  const postLogoutRedirectUri = params.get('post_logout_redirect_uri') ?? '';
  if (postLogoutRedirectUri) {
    if (!client) throw bad('post_logout_redirect_uri needs id_token_hint or client_id, to know which app registered it.');
    // Exact string comparison, like redirect URIs (RFC 9700 §4.1.3).
    if (!client.postLogoutRedirectUris.includes(postLogoutRedirectUri)) {
      throw bad('The app asked to send you back to an address it has not registered (post_logout_redirect_uri).');
    }
  }
  const state = params.get('state') ?? '';
  if (state.length > 1024) throw bad('state must be at most 1024 characters');
  return { ...(client ? { client } : {}), postLogoutRedirectUri, state, ...(hintSessionId ? { hintSessionId } : {}) };
}

/** An ID token we signed (expired or not), with one audience: its aud and sid. */
async function verifyIdTokenHint(deps: EdgeDeps, hint: string): Promise<{ aud: string; sid: string } | undefined> {
  if (hint.length > 8192) return undefined;
  try {
    const jwks = JSON.parse((await deps.token.getJwks({})).jwksJson) as JSONWebKeySet;
    const { protectedHeader } = await compactVerify(hint, createLocalJWKSet(jwks), { algorithms: ['ES256'] });
    if (protectedHeader.typ !== 'JWT') return undefined;
    const claims = decodeJwt(hint);
    if (claims.iss !== deps.config.issuer || typeof claims.aud !== 'string' || typeof claims.sub !== 'string') return undefined;
    return { aud: claims.aud, sid: typeof claims['sid'] === 'string' ? claims['sid'] : '' };
  } catch {
    return undefined;
  }
}

async function signOut(deps: EdgeDeps, ctx: Context, token: string): Promise<void> {
  await deps.identity.endSession({ sessionToken: token });
  clearSessionCookie(ctx, deps.config.secureCookies);
}

function finish(deps: EdgeDeps, ctx: Context, request: LogoutRequest, signedOut: boolean): void {
  if (request.postLogoutRedirectUri) {
    const url = new URL(request.postLogoutRedirectUri);
    if (request.state) url.searchParams.set('state', request.state);
    seeOther(ctx, url.toString());
    return;
  }
  sendPage(ctx, loggedOutPage(deps.config.LEDGERLY_PLATFORM_NAME, signedOut));
}

/** The confirmation form's anti-CSRF token: derived from the browser's secret binding cookie, which no other site can read. */
function logoutCsrf(binding: string): string {
  return sha256(`${binding}:end-session`);
}
