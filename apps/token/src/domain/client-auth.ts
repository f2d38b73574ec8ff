import { ASSERTION_ALGORITHMS } from '@ledgerly/access';
import { constantTimeEqual, sha256 } from '@ledgerly/chassis';
import { ClientType, type ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { ClientDoc, ClientStore } from '../store/clients.js';
import type { OneTimeStore } from '../store/one-time.js';
import { OAuthError } from './oauth-error.js';

/** Compared against when the client is unknown, so both failures cost the same. */
const DUMMY_HASH = sha256('not-a-client-secret');

/** Clock skew allowed on an assertion's exp/iat/nbf (RFC 7523 §3, bounded). */
const ASSERTION_LEEWAY_SECONDS = 30;
/** Longest lifetime an assertion may claim (and so the longest we remember its jti). */
const ASSERTION_MAX_LIFETIME_SECONDS = 600;

export interface ClientAuthContext {
  clients: ClientStore;
  /** Assertion ids already used (replay protection). */
  assertionIds: OneTimeStore;
  /** The issuer; an assertion's aud may be it or the endpoint it was sent to. */
  issuer: string;
}

/**
 * Authenticates the client at the token, revocation, introspection and PAR
 * endpoints (RFC 6749 §2.3, §3.2.1; RFC 7523 §2.2):
 *   - client_secret_basic / client_secret_post: the secret, compared in
 *     constant time as a SHA-256; an unknown client costs the same and gets
 *     the same invalid_client as a wrong secret;
 *   - private_key_jwt: an assertion signed with a key of the client's
 *     registered JWK Set, iss = sub = client_id, aud = the endpoint or the
 *     issuer, short-lived, and used once (its jti is remembered until exp);
 *   - none: a public client, which sends no secret (PKCE protects it).
 * A client registered for private_key_jwt must use it.
 */
export async function authenticateClient(ctx: ClientAuthContext, auth: ClientAuthentication | undefined): Promise<ClientDoc> {
  const fail = (why = 'Client authentication failed') => new OAuthError('invalid_client', why);
  if (!auth?.clientId) throw fail();
  const client = await ctx.clients.find(auth.clientId);
  if (auth.method === 'private_key_jwt') {
    if (!client || client.tokenEndpointAuthMethod !== 'private_key_jwt' || !client.jwks) throw fail();
    await verifyAssertion(ctx, client, auth);
    return client;
  }
  if (!client || client.type === ClientType.CLIENT_TYPE_CONFIDENTIAL || auth.clientSecret) {
    const matches = constantTimeEqual(sha256(auth.clientSecret ?? ''), client?.secretHash || DUMMY_HASH);
    if (!client || !matches || client.type !== ClientType.CLIENT_TYPE_CONFIDENTIAL) throw fail();
    if (auth.method !== 'client_secret_basic' && auth.method !== 'client_secret_post') throw fail();
    if (client.tokenEndpointAuthMethod === 'private_key_jwt') throw fail();
    return client;
  }
  // A public client: no secret, method "none".
  if (auth.method !== 'none') throw fail();
  return client;
}

async function verifyAssertion(ctx: ClientAuthContext, client: ClientDoc, auth: ClientAuthentication): Promise<void> {
  const fail = (why: string) => new OAuthError('invalid_client', `Client assertion: ${why}`);
  const audiences = [ctx.issuer, ...(auth.endpoint ? [auth.endpoint] : [])];
  let payload;
  try {
    ({ payload } = await jwtVerify(auth.clientAssertion, createLocalJWKSet(client.jwks!), {
      issuer: client._id,
      subject: client._id,
      audience: audiences,
      algorithms: ASSERTION_ALGORITHMS,
      clockTolerance: ASSERTION_LEEWAY_SECONDS,
      requiredClaims: ['exp', 'jti'],
    }));
  } catch (err) {
    const claims = (() => {
      try {
        return decodeJwt(auth.clientAssertion);
      } catch {
        return undefined;
      }
    })();
    throw fail(claims ? `not valid (${(err as Error).message})` : 'not a JWT');
  }
  const now = Math.floor(Date.now() / 1000);
  // One audience, this server (RFC 7523 §3; draft-ietf-oauth-rfc7523bis): an
  // assertion made for several servers could be replayed at any of them.
  if (Array.isArray(payload.aud) && payload.aud.length !== 1) throw fail('must have exactly one audience, this authorization server');
  // Not from the future beyond the allowed clock skew.
  if (payload.iat !== undefined && payload.iat > now + ASSERTION_LEEWAY_SECONDS) throw fail('is issued in the future');
  const exp = payload.exp!;
  if (exp - (payload.iat ?? now) > ASSERTION_MAX_LIFETIME_SECONDS || exp - now > ASSERTION_MAX_LIFETIME_SECONDS) {
    throw fail(`lives longer than ${ASSERTION_MAX_LIFETIME_SECONDS} s`);
  }
  const key = `${client._id}:${String(payload.jti)}`;
  const firstUse = await ctx.assertionIds.firstUse(key, new Date((exp + ASSERTION_LEEWAY_SECONDS) * 1000));
  if (!firstUse) throw fail('already used (jti replay)');
}
