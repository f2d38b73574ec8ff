import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readForm } from '../http/body.js';
import { InvalidClient, InvalidDpopProofError, InvalidRequest } from '../http/errors.js';
import { checkAuthorizationParameters, registeredRedirectUri } from './authorize.js';
import { readClientAuthentication } from './client-auth.js';
import { checkProof, dpopProof, withChallenge } from './token.js';

/** Client authentication parameters: not part of the authorization request that is stored. */
const AUTHENTICATION_PARAMETERS = ['client_secret', 'client_assertion', 'client_assertion_type'];

/**
 * POST /par (RFC 9126): the client pushes its authorization request, over
 * its authenticated back channel, and gets a one-time request_uri to send
 * the browser to /authorize with. The request is checked here exactly as
 * /authorize would (§2.1), and errors are JSON (§2.3), never redirects.
 */
export function parEndpoint(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    if (ctx.querystring) throw new InvalidRequest('Send the pushed authorization request in the body, not the query string');
    const form = await readForm(ctx);
    const auth = readClientAuthentication(ctx, form, `${deps.config.issuer}/par`);
    try {
      // §2.1: request_uri must not be pushed.
      if (form.has('request_uri')) throw new InvalidRequest('request_uri cannot be pushed');
      const parameters = new Map([...form].filter(([name]) => !AUTHENTICATION_PARAMETERS.includes(name)));
      parameters.set('client_id', auth.clientId);
      // RFC 9449 §10.1: a DPoP proof on the pushed request binds the code to its key.
      const proof = dpopProof(ctx);
      if (proof) {
        const jkt = await checkProof(proof, { method: 'POST', url: `${deps.config.issuer}/par`, replay: deps.dpopReplay });
        const asked = parameters.get('dpop_jkt');
        if (asked && asked !== jkt) throw new InvalidDpopProofError('dpop_jkt is not the thumbprint of the DPoP proof key');
        parameters.set('dpop_jkt', jkt);
      }
      // The token service authenticates the client first (the same 401, in the
      // same time, for an unknown client and a wrong secret) and keeps the
      // request; one that fails the checks below is never handed out, and
      // expires unused.
      const pushed = await deps.token.pushAuthorization({ client: auth, parametersJson: JSON.stringify(Object.fromEntries(parameters)) });
      const client = await deps.clients.find(auth.clientId);
      if (!client) throw new InvalidClient('Client authentication failed');
      // For the developer, not a person: say exactly what is wrong (RFC 9700 §4.1.3).
      registeredRedirectUri(parameters, client, () =>
        new InvalidRequest(parameters.has('redirect_uri') ? 'redirect_uri is not one of the client\'s registered redirect URIs (exact match)' : 'redirect_uri is required'),
      );
      checkAuthorizationParameters(parameters, client);
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 201;
      ctx.body = { request_uri: pushed.requestUri, expires_in: Number(pushed.expiresIn) };
    } catch (err) {
      throw withChallenge(err, auth.method === 'client_secret_basic');
    }
  };
}
