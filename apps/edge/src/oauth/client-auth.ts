import type { ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import type { Context } from 'koa';
import { InvalidClient, InvalidRequest } from '../http/errors.js';

/** RFC 6749 Appendix B: application/x-www-form-urlencoded decoding of one part. */
function formDecode(part: string): string {
  return decodeURIComponent(part.replace(/\+/g, ' '));
}

function invalidClient(description: string, challenge: boolean): InvalidClient {
  const err = new InvalidClient(description);
  err.challenge = challenge;
  return err;
}

/**
 * How the client authenticates at the token endpoint (RFC 6749 §2.3):
 *   - client_secret_basic: HTTP Basic, id and secret each form-urlencoded
 *     before base64 (§2.3.1), so "+", "%" and ":" in them survive;
 *   - client_secret_post: client_id and client_secret in the body;
 *   - none: a public client sends only client_id.
 * Using more than one method is refused (§2.3).
 */
export function readClientAuthentication(ctx: Context, form: Map<string, string>): ClientAuthentication {
  const header = ctx.get('authorization');
  if (header) {
    const match = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
    if (!match) throw invalidClient('The Authorization header must be HTTP Basic with the client credentials', true);
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw invalidClient('The Basic credentials must be client_id:client_secret', true);
    let clientId: string;
    let clientSecret: string;
    try {
      clientId = formDecode(decoded.slice(0, colon));
      clientSecret = formDecode(decoded.slice(colon + 1));
    } catch {
      throw invalidClient('The Basic credentials are not correctly form-urlencoded (RFC 6749 §2.3.1)', true);
    }
    if (form.has('client_secret')) throw new InvalidRequest('Use one client authentication method, not both Basic and client_secret');
    const bodyId = form.get('client_id');
    if (bodyId !== undefined && bodyId !== clientId) throw new InvalidRequest('client_id in the body differs from the Basic credentials');
    return { clientId, clientSecret, method: 'client_secret_basic' };
  }
  const clientId = form.get('client_id');
  if (!clientId) throw invalidClient('Client authentication is required', false);
  const clientSecret = form.get('client_secret');
  if (clientSecret !== undefined) return { clientId, clientSecret, method: 'client_secret_post' };
  return { clientId, clientSecret: '', method: 'none' };
}
