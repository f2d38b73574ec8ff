import { needsOrganisation } from '@ledgerly/access';
import { isRemoteError, Status } from '@ledgerly/chassis';
import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { notFound } from '../http/errors.js';
import { caller } from './bearer.js';
import { toXeroConnection } from './xero-json.js';

/** GET /connections[?authEventId=…]: the organisations this token's grant is connected to (Xero identity API). */
export function listConnections(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const { claims } = caller(ctx);
    ctx.set('Cache-Control', 'no-store');
    // A sign-in-only token (no accounting scope) can act on no organisation, so it is shown none.
    if (!needsOrganisation([...claims.scopes])) {
      ctx.body = [];
      return;
    }
    const authEventId = typeof ctx.query['authEventId'] === 'string' ? ctx.query['authEventId'] : '';
    const { connections } = await deps.consent.listConnections({ userId: claims.userId, clientId: claims.clientId, authEventId });
    ctx.body = connections.map(toXeroConnection);
  };
}

/** DELETE /connections/{id}: disconnect one organisation; every service refuses the app there from now on. */
export function deleteConnection(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const { claims } = caller(ctx);
    const connectionId = String(ctx.params['id'] ?? '');
    try {
      await deps.consent.revokeConnection({ connectionId, userId: claims.userId, clientId: claims.clientId });
    } catch (err) {
      if (isRemoteError(err, Status.NOT_FOUND)) throw notFound('No such connection');
      throw err;
    }
    ctx.status = 204;
  };
}
