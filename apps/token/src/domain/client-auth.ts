import { constantTimeEqual, sha256 } from '@ledgerly/chassis';
import { ClientType, type ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import type { ClientDoc, ClientStore } from '../store/clients.js';
import { OAuthError } from './oauth-error.js';

/** Compared against when the client is unknown, so both failures cost the same. */
const DUMMY_HASH = sha256('not-a-client-secret');

/**
 * Authenticates the client at the token endpoint (RFC 6749 §2.3, §3.2.1).
 * Confidential clients prove their secret (client_secret_basic or
 * client_secret_post), compared in constant time as a SHA-256 of the secret;
 * public clients send none (PKCE protects them). An unknown client and a
 * wrong secret give the same invalid_client.
 */
export async function authenticateClient(clients: ClientStore, auth: ClientAuthentication | undefined): Promise<ClientDoc> {
  const fail = () => new OAuthError('invalid_client', 'Client authentication failed');
  if (!auth?.clientId) throw fail();
  const client = await clients.find(auth.clientId);
  if (!client || client.type === ClientType.CLIENT_TYPE_CONFIDENTIAL || auth.clientSecret) {
    const matches = constantTimeEqual(sha256(auth.clientSecret ?? ''), client?.secretHash || DUMMY_HASH);
    if (!client || !matches || client.type !== ClientType.CLIENT_TYPE_CONFIDENTIAL) throw fail();
    if (auth.method !== 'client_secret_basic' && auth.method !== 'client_secret_post') throw fail();
    return client;
  }
  // A public client: no secret, method "none".
  if (auth.method !== 'none') throw fail();
  return client;
}
