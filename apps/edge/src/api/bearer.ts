import { checkTenantAccess, InvalidTokenError, OPERATIONS, type AccessTokenClaims, type OperationName } from '@ledgerly/access';
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

/**
 * RFC 6750 §2.1: the access token in the Authorization header (never the
 * query string), verified locally against the JWKS.
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
      claims = await deps.verifier.verify(match[1]!);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw unauthorized(err.message, 'invalid_token');
      throw err;
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
    const decision = await checkTenantAccess({ claims: c.claims, tenantId, operation: OPERATIONS[operation], connections: deps.connections });
    if (!decision.allowed) {
      if (decision.reason === 'connection_revoked') throw unauthorized(decision.message, 'invalid_token');
      throw forbidden(decision.message, decision.reason === 'insufficient_scope' ? 'insufficient_scope' : undefined);
    }
    c.tenantId = tenantId;
    await next();
  };
}
