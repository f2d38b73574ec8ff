import { userClaims } from '@ledgerly/access';
import { isRemoteError, Status } from '@ledgerly/chassis';
import type { Middleware } from 'koa';
import { caller } from '../api/bearer.js';
import type { EdgeDeps } from '../deps.js';
import { forbidden, unauthorized } from '../http/errors.js';

/**
 * GET or POST /userinfo (OpenID Connect Core §5.3): the signed-in user's
 * claims, as far as the access token's scopes allow: sub always, name and
 * its parts with profile, email with email. The token (Bearer or DPoP) is
 * checked like any API call, revocations included.
 */
export function userinfoEndpoint(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const { claims } = caller(ctx);
    if (!claims.scopes.has('openid')) throw forbidden('The access token was not issued for OpenID Connect (scope openid)', 'insufficient_scope');
    let user;
    try {
      ({ user } = await deps.identity.getUser({ userId: claims.userId }));
    } catch (err) {
      if (isRemoteError(err, Status.NOT_FOUND)) throw unauthorized('The user no longer exists', 'invalid_token');
      throw err;
    }
    if (!user || user.disabled) throw unauthorized('The user is disabled', 'invalid_token');
    const body = { sub: user.id, ...userClaims(user, claims.scopes) };
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    ctx.body = body;
  };
}
