import { AccessDenied, OPERATIONS, type AccessTokenClaims, type OperationName } from '@ledgerly/access';
import type { Context, Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { badRequest, forbidden, unauthorized } from '../http/errors.js';

export interface Caller {
  claims: AccessTokenClaims;
  /** The Authorization header as received, passed on to the accounting service. */
  authorization: string;
  tenantId?: string;
}

export const caller = (ctx: Context): Caller => ctx.state['caller'] as Caller;

/** An AccessDenied as the API's 401 or 403 (RFC 6750 §3.1 error codes). */
function refusal(err: AccessDenied) {
  if (err.kind === 'unauthenticated') return unauthorized(err.message, 'invalid_token');
  return forbidden(err.message, err.reason === 'insufficient_scope' ? 'insufficient_scope' : undefined);
}

/**
 * RFC 6750 §2.1: the access token in the Authorization header (never the
 * query string), verified locally against the JWKS, and not revoked.
 */
export function requireBearer(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
    if (!match) {
      if (ctx.query['access_token'] !== undefined) throw badRequest('Send the access token in the Authorization header, not the query string');
      throw unauthorized(header ? 'The Authorization header must be "Bearer <access token>"' : 'An access token is required');
    }
    let claims: AccessTokenClaims;
    try {
      claims = await deps.access.authenticate(match[1]!);
    } catch (err) {
      throw err instanceof AccessDenied ? refusal(err) : err;
    }
    ctx.state['caller'] = { claims, authorization: `Bearer ${match[1]!}` } satisfies Caller;
    await next();
  };
}

/**
 * The organisation named by xero-tenant-id must be one the token's
 * connection covers, live now, and the token's scopes must allow the
 * operation. Checked here before anything is called, and again by the
 * accounting service (with the user's role).
 */
export function requireTenant(deps: EdgeDeps, operation: OperationName): Middleware {
  return async (ctx, next) => {
    // GUIDs compare case-insensitively (Xero's are lower-case; .NET SDKs may send upper-case).
    const tenantId = ctx.get('xero-tenant-id').trim().toLowerCase();
    if (!tenantId) throw badRequest('The xero-tenant-id header is required: the id of a connected organisation (see GET /connections)');
    const c = caller(ctx);
    try {
      await deps.access.authorizeTenant(c.claims, tenantId, OPERATIONS[operation]);
    } catch (err) {
      throw err instanceof AccessDenied ? refusal(err) : err;
    }
    c.tenantId = tenantId;
    await next();
  };
}
