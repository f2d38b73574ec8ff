import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readForm } from '../http/body.js';
import { InvalidRequest } from '../http/errors.js';
import { readClientAuthentication } from './client-auth.js';
import { withChallenge } from './token.js';

/**
 * POST /revoke (RFC 7009): the client revokes one of its tokens. An access
 * token is refused everywhere from the 200 on (token.revoked); a refresh
 * token ends its whole grant (grant.revoked). An unknown or foreign token is
 * answered 200 too (§2.2). If the revocation cannot be stored, the answer is
 * 503, never 200 (§2.2.1).
 */
export function revokeEndpoint(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    if (ctx.querystring) throw new InvalidRequest('Send revocation parameters in the body, not the query string');
    const form = await readForm(ctx);
    const client = readClientAuthentication(ctx, form, `${deps.config.issuer}/revoke`);
    const token = form.get('token');
    if (!token) throw new InvalidRequest('token is required');
    try {
      await deps.token.revokeToken({ client, token, tokenTypeHint: form.get('token_type_hint') ?? '' });
    } catch (err) {
      throw withChallenge(err, client.method === 'client_secret_basic');
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 200;
    ctx.body = '';
  };
}
