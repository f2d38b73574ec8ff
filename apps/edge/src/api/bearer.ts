import { AccessDenied, OPERATIONS, type AccessTokenClaims, type OperationName } from '@ledgerly/access';
import type { Context, Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { badRequest, forbidden, unauthorized, unavailable } from '../http/errors.js';
import { dpopHeader, InvalidDpopProof, verifyDpopProof } from '../oauth/dpop.js';

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
 * The access token in the Authorization header (never the query string),
 * verified locally against the JWKS, and not revoked:
 *   - "Bearer <token>" (RFC 6750 §2.1), for tokens not bound to a key;
 *   - "DPoP <token>" with a DPoP proof (RFC 9449 §7), whose key must be the
 *     one the token is bound to (cnf.jkt), checked on every call: htm, htu,
 *     iat, jti (never twice), and ath.
 */
export function requireBearer(deps: EdgeDeps): Middleware {
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    const match = /^(Bearer|DPoP) +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
    if (!match) {
      if (ctx.query['access_token'] !== undefined) throw badRequest('Send the access token in the Authorization header, not the query string');
      if (/^DPoP\b/i.test(header)) ctx.state['authScheme'] = 'DPoP';
      throw unauthorized(header ? 'The Authorization header must be "Bearer <access token>" or "DPoP <access token>"' : 'An access token is required');
    }
    const scheme = match[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
    const token = match[2]!;
    ctx.state['authScheme'] = scheme;
    let claims: AccessTokenClaims;
    try {
      claims = await deps.access.authenticate(token);
    } catch (err) {
      throw err instanceof AccessDenied ? refusal(err) : err;
    }
    if (scheme === 'Bearer') {
      // RFC 9449 §7.2: a bound token used as a bearer token is refused.
      if (claims.dpopJkt) {
        ctx.state['authScheme'] = 'DPoP';
        throw unauthorized('This access token is bound to a DPoP key: send it as "DPoP <token>" with a DPoP proof', 'invalid_token');
      }
      if (ctx.get('dpop')) throw badRequest('A DPoP proof was sent with a Bearer token');
    } else {
      await checkDpop(deps, ctx, token, claims);
    }
    ctx.state['caller'] = { claims, authorization: `${scheme} ${token}` } satisfies Caller;
    await next();
  };
}

async function checkDpop(deps: EdgeDeps, ctx: Context, token: string, claims: AccessTokenClaims): Promise<void> {
  if (!claims.dpopJkt) throw unauthorized('This access token is not bound to a DPoP key: send it as "Bearer <token>"', 'invalid_token');
  let jkt: string;
  try {
    const proof = dpopHeader(ctx);
    if (!proof) throw new InvalidDpopProof('A DPoP proof is required with a DPoP token');
    jkt = await verifyDpopProof(proof, { method: ctx.method, url: `${deps.config.issuer}${ctx.path}`, accessToken: token, replay: deps.dpopReplay });
  } catch (err) {
    if (err instanceof InvalidDpopProof) throw unauthorized(err.message, 'invalid_dpop_proof');
    // The shared replay cache cannot answer: fail closed.
    throw unavailable('The DPoP proof cannot be checked right now. Try again shortly.');
  }
  if (jkt !== claims.dpopJkt) throw unauthorized('The DPoP proof is signed with another key than the one the token is bound to', 'invalid_dpop_proof');
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
