import { InvalidArgumentError, NotFoundError, randomSecret, sha256 } from '@ledgerly/chassis';
import { authenticateClient } from '../domain/client-auth.js';
import { clientAuthContext, type TokenDeps, type TokenHandlers } from './deps.js';

/** RFC 9126 §2.2: request_uri values are URNs of this form. */
export const REQUEST_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:';
/** RFC 9126 §2.2: short-lived (we keep 60 s, like a code). */
export const PUSHED_REQUEST_TTL_SECONDS = 60;
const MAX_PARAMETERS_BYTES = 16 * 1024;

/** Pushed authorization requests (RFC 9126): the edge validated them; we keep them once, briefly. */
export function parHandlers(deps: TokenDeps): Pick<TokenHandlers, 'pushAuthorization' | 'takePushedAuthorization'> {
  const auth = clientAuthContext(deps);
  return {
    pushAuthorization: async (req) => {
      const client = await authenticateClient(auth, req.client);
      if (req.parametersJson.length > MAX_PARAMETERS_BYTES) throw new InvalidArgumentError('The authorization request is too large', 'invalid_request');
      let parameters: unknown;
      try {
        parameters = JSON.parse(req.parametersJson);
      } catch {
        throw new InvalidArgumentError('parameters_json must be a JSON object of strings', 'invalid_request');
      }
      if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters) || Object.values(parameters).some((v) => typeof v !== 'string')) {
        throw new InvalidArgumentError('parameters_json must be a JSON object of strings', 'invalid_request');
      }
      const requestUri = REQUEST_URI_PREFIX + randomSecret(32);
      await deps.pushedRequests.insert({
        _id: sha256(requestUri),
        clientId: client._id,
        parameters: parameters as Record<string, string>,
        expiresAt: new Date(Date.now() + PUSHED_REQUEST_TTL_SECONDS * 1000),
      });
      return { requestUri, expiresIn: PUSHED_REQUEST_TTL_SECONDS };
    },

    takePushedAuthorization: async (req) => {
      // RFC 9126 §4: one-time use, bound to the client that pushed it.
      const parameters = req.requestUri.startsWith(REQUEST_URI_PREFIX) ? await deps.pushedRequests.take(sha256(req.requestUri), req.clientId) : null;
      if (!parameters) throw new NotFoundError('The request_uri is unknown, expired, already used or of another client', 'invalid_request_uri');
      return { parametersJson: JSON.stringify(parameters) };
    },
  };
}
