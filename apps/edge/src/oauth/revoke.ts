import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readTokenRequest } from './client-auth.js';
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
    const { form, client, token } = await readTokenRequest(ctx, `${deps.config.issuer}/revoke`, 'revocation');
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
