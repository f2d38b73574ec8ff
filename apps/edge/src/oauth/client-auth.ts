import { CLIENT_ASSERTION_TYPE } from '@ledgerly/access';
import type { ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import { decodeJwt } from 'jose';
import type { Context } from 'koa';
import { readForm } from '../http/body.js';
import { InvalidClient, InvalidRequest } from '../http/errors.js';

/** RFC 6749 Appendix B: application/x-www-form-urlencoded decoding of one part. */
function formDecode(part: string): string {
  return decodeURIComponent(part.replace(/\+/g, ' '));
}


/** The assertion's sub (= its client_id), read without verifying: the token service verifies it. */
function assertionSubject(assertion: string): string | undefined {
  if (assertion.length > 8192) return undefined;
  try {
    const claims = decodeJwt(assertion);
    return typeof claims.sub === 'string' && claims.sub === claims.iss ? claims.sub : undefined;
  } catch {
    return undefined;
  }
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
 *   - private_key_jwt: a signed assertion (RFC 7523 §2.2, OpenID Connect
 *     Core §9), checked by the token service;
 *   - none: a public client sends only client_id.
 * Using more than one method is refused (§2.3). `endpoint` is the URL the
 * request was sent to (an assertion's aud may name it).
 */
export function readClientAuthentication(ctx: Context, form: Map<string, string>, endpoint: string): ClientAuthentication {
  // One Authorization header: with two, which one authenticates would be a guess.
  if ((ctx.req?.headersDistinct?.['authorization']?.length ?? 0) > 1) throw new InvalidRequest('Send one Authorization header');
  const header = ctx.get('authorization');
  const assertionType = form.get('client_assertion_type');
  const assertion = form.get('client_assertion');
  if (assertionType !== undefined || assertion !== undefined) {
    if (header || form.has('client_secret')) throw new InvalidRequest('Use one client authentication method, not a client assertion and a secret');
    if (assertionType !== CLIENT_ASSERTION_TYPE) throw new InvalidRequest(`client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
    if (!assertion) throw new InvalidRequest('client_assertion is required with client_assertion_type');
    const subject = assertionSubject(assertion);
    if (!subject) throw invalidClient('The client assertion is not a JWT with iss and sub', false);
    const bodyId = form.get('client_id');
    // RFC 7523 §3: sub is the client_id; a client_id sent beside it must agree.
    if (bodyId !== undefined && bodyId !== subject) throw invalidClient('client_id differs from the client assertion', false);
    return { clientId: subject, clientSecret: '', method: 'private_key_jwt', clientAssertion: assertion, endpoint };
  }
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
    return { clientId, clientSecret, method: 'client_secret_basic', clientAssertion: '', endpoint };
  }
  const clientId = form.get('client_id');
  if (!clientId) throw invalidClient('Client authentication is required', false);
  const clientSecret = form.get('client_secret');
  if (clientSecret !== undefined) return { clientId, clientSecret, method: 'client_secret_post', clientAssertion: '', endpoint };
  return { clientId, clientSecret: '', method: 'none', clientAssertion: '', endpoint };
}

/**
 * The request of /revoke (RFC 7009 §2.1) and /introspect (RFC 7662 §2.1):
 * a form body (parameters in the query string are refused), the client's
 * authentication, and the token asked about.
 */
export async function readTokenRequest(ctx: Context, endpoint: string, what: string): Promise<{ form: Map<string, string>; client: ClientAuthentication; token: string }> {
  if (ctx.querystring) throw new InvalidRequest(`Send ${what} parameters in the body, not the query string`);
  const form = await readForm(ctx);
  const client = readClientAuthentication(ctx, form, endpoint);
  const token = form.get('token');
  if (!token) throw new InvalidRequest('token is required');
  return { form, client, token };
}
