import Router from '@koa/router';
import Koa from 'koa';
import { createContacts, getContact, getOrganisation, listContacts } from './api/accounting.js';
import { requireBearer, requireTenant } from './api/bearer.js';
import { deleteConnection, listConnections } from './api/connections.js';
import type { EdgeDeps } from './deps.js';
import { apiErrors, oauthJsonErrors, pageErrors, readinessGate, requestContext, securityHeaders } from './http/middleware.js';
import { authorize } from './oauth/authorize.js';
import { showConsent, submitConsent } from './oauth/consent.js';
import { discovery, jwks } from './oauth/discovery.js';
import { showLogin, submitLogin, submitLogout } from './oauth/login.js';
import { introspectEndpoint } from './oauth/introspect.js';
import { confirmEndSession, endSession } from './oauth/logout.js';
import { parEndpoint } from './oauth/par.js';
import { revokeEndpoint } from './oauth/revoke.js';
import { userinfoEndpoint } from './oauth/userinfo.js';
import { tokenEndpoint } from './oauth/token.js';
import { STYLESHEET } from './views/style.js';

/** The edge's HTTP surface. Each route family has its own error format. */
export function createApp(deps: EdgeDeps): Koa {
  const app = new Koa({ proxy: deps.config.secureCookies });
  const { logger } = deps;
  const platform = deps.config.LEDGERLY_PLATFORM_NAME;
  const pages = pageErrors(logger, platform);
  const oauth = oauthJsonErrors(logger);
  const api = apiErrors(logger);
  const bearer = requireBearer(deps);
  const router = new Router({ sensitive: false, strict: false });

  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.status = deps.isReady() ? 200 : 503;
    ctx.body = { status: deps.isReady() ? 'ok' : 'starting', ...deps.health() };
  });
  router.get('/assets/ledgerly.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = STYLESHEET;
  });

  // OAuth 2.1 / OpenID Connect
  router.get(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'], oauth, discovery(deps));
  router.get('/.well-known/jwks.json', oauth, jwks(deps));
  router.get('/authorize', pages, ...authorize(deps));
  router.post('/authorize', pages, ...authorize(deps));
  router.get('/login', pages, showLogin(deps));
  router.post('/login', pages, submitLogin(deps));
  router.get('/consent', pages, showConsent(deps));
  router.post('/consent', pages, submitConsent(deps));
  router.post('/logout', pages, submitLogout(deps));
  router.post('/token', oauth, tokenEndpoint(deps));
  router.post('/revoke', oauth, revokeEndpoint(deps));
  router.post('/introspect', oauth, introspectEndpoint(deps));
  router.post('/par', oauth, parEndpoint(deps));
  router.get('/userinfo', api, bearer, userinfoEndpoint(deps));
  router.post('/userinfo', api, bearer, userinfoEndpoint(deps));
  router.get('/session/end', pages, endSession(deps));
  router.post('/session/end', pages, endSession(deps));
  router.post('/session/end/confirm', pages, confirmEndSession(deps));

  // Xero identity API: connections
  router.get('/connections', api, bearer, listConnections(deps));
  router.delete('/connections/:id', api, bearer, deleteConnection(deps));

  // Xero Accounting API 2.0
  const xro = '/api.xro/2.0';
  router.get(`${xro}/Organisation`, api, bearer, requireTenant(deps, 'GetOrganisation'), getOrganisation(deps));
  router.get(`${xro}/Contacts`, api, bearer, requireTenant(deps, 'ListContacts'), listContacts(deps));
  router.put(`${xro}/Contacts`, api, bearer, requireTenant(deps, 'CreateContacts'), createContacts(deps));
  router.post(`${xro}/Contacts`, api, bearer, requireTenant(deps, 'CreateContacts'), createContacts(deps));
  router.get(`${xro}/Contacts/:id`, api, bearer, requireTenant(deps, 'GetContact'), getContact(deps));

  app.use(requestContext(logger));
  app.use(securityHeaders());
  app.use(crossOrigin());
  app.use(readinessGate(deps.isReady));
  app.use(unmatchedRoutes());
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/**
 * CORS for what a browser app (a public client, PKCE only) calls from its own
 * origin: discovery, the JWKS, /token, /revoke, /par, /userinfo, /connections
 * and the API. These take no cookies, only credentials the app sends itself
 * (its client_id, a bearer or DPoP token), so any origin may call them
 * (Access-Control-Allow-Origin: *, never with credentials). The pages that
 * rest on the sign-in cookie (/authorize, /login, /consent, /session/end)
 * and /introspect (for resource servers) get no CORS headers.
 */
const CORS_PATHS = /^\/(\.well-known\/|token$|revoke$|par$|userinfo$|connections(\/|$)|api\.xro\/)/i;

function crossOrigin(): Koa.Middleware {
  return async (ctx, next) => {
    if (!ctx.get('origin') || !CORS_PATHS.test(ctx.path)) return next();
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate, Retry-After, X-Request-Id, DPoP-Nonce');
    if (ctx.method === 'OPTIONS' && ctx.get('access-control-request-method')) {
      ctx.set('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE');
      ctx.set('Access-Control-Allow-Headers', 'Authorization, Content-Type, DPoP, Xero-Tenant-Id, If-Modified-Since, Accept');
      ctx.set('Access-Control-Max-Age', '600');
      ctx.status = 204;
      return;
    }
    await next();
  };
}

/** Endpoints whose 405 is an OAuth error (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1, RFC 9126 §2). */
const OAUTH_POST_ONLY = new Set(['/token', '/revoke', '/introspect', '/par']);

/** Bodies for what no route answered: 404, and the 405 that allowedMethods sets on the way out. */
function unmatchedRoutes(): Koa.Middleware {
  return async (ctx, next) => {
    await next();
    const requestId = String(ctx.state['requestId'] ?? '');
    if (ctx.status === 405) {
      // allowedMethods set the status and the Allow header; the body follows the route's family.
      ctx.body =
        OAUTH_POST_ONLY.has(ctx.path.toLowerCase())
          ? { error: 'invalid_request', error_description: `${ctx.path} accepts POST only` }
          : { Type: null, Title: 'MethodNotAllowed', Status: 405, Detail: `${ctx.method} is not allowed here; allowed: ${ctx.response.get('Allow')}`, Instance: requestId, Extensions: {} };
      return;
    }
    if (ctx.status === 404 && ctx.body === undefined) {
      ctx.status = 404;
      ctx.body = { Type: null, Title: 'NotFound', Status: 404, Detail: "The resource you're looking for cannot be found", Instance: requestId, Extensions: {} };
    }
  };
}
