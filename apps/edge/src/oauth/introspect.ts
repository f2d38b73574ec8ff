import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readTokenRequest } from './client-auth.js';
import { withChallenge } from './token.js';

/**
 * POST /introspect (RFC 7662): an authenticated client asks what one of its
 * tokens is. A token of another client, an unknown, expired or revoked one
 * is only {"active":false} (§2.2), so nothing leaks about it.
 */
export function introspectEndpoint(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const { form, client, token } = await readTokenRequest(ctx, `${deps.config.issuer}/introspect`, 'introspection');
    let answer;
    try {
      answer = await deps.token.introspectToken({ client, token, tokenTypeHint: form.get('token_type_hint') ?? '' });
    } catch (err) {
      throw withChallenge(err, client.method === 'client_secret_basic');
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    if (!answer.active) {
      ctx.body = { active: false };
      return;
    }
    const body: Record<string, unknown> = { active: true };
    const fields: Array<[string, string | number]> = [
      ['scope', answer.scope],
      ['client_id', answer.clientId],
      ['token_type', answer.tokenType],
      ['exp', answer.exp],
      ['iat', answer.iat],
      ['sub', answer.sub],
      ['aud', answer.aud],
      ['iss', answer.iss],
      ['jti', answer.jti],
    ];
    for (const [name, value] of fields) if (value) body[name] = value;
    if (answer.cnfJkt) body['cnf'] = { jkt: answer.cnfJkt };
    ctx.body = body;
  };
}
