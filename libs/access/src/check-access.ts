import type { FeedHealth } from '@ledgerly/chassis';
import { InvalidTokenError, type AccessTokenClaims, type AccessTokenVerifier } from './access-token.js';
import type { ConnectionView } from './connection-view.js';
import type { MembershipView } from './membership-view.js';
import { roleAllows, scopeAllows, type Operation } from './permissions.js';
import type { RevocationReason, RevocationView } from './revocation-view.js';

export type AccessDeniedReason = 'invalid_token' | RevocationReason | 'connection_revoked' | 'tenant_not_connected' | 'insufficient_scope' | 'insufficient_role';

/**
 * A refusal. `unauthenticated` (401) when the token is not, or no longer,
 * good; `forbidden` (403) when it is good but does not cover the call.
 */
export class AccessDenied extends Error {
  override readonly name = 'AccessDenied';
  constructor(
    readonly kind: 'unauthenticated' | 'forbidden',
    readonly reason: AccessDeniedReason,
    message: string,
  ) {
    super(message);
  }
}

const MESSAGES: Record<RevocationReason, string> = {
  token_revoked: 'The access token was revoked',
  grant_revoked: "The app's access was withdrawn (by the user, or because a used refresh token came back)",
  client_suspended: 'The app was suspended after this token was issued',
  user_disabled: 'The user was disabled after this token was issued',
};

export interface AccessGuardOptions {
  verifier: AccessTokenVerifier;
  connections: ConnectionView;
  revocations: RevocationView;
  /** Given, the user's role in the organisation is checked too (the accounting service). */
  memberships?: MembershipView;
  /** The event feed the views depend on. */
  feed: FeedHealth;
  /** Past this long unhealthy, the views are not trusted (docs/security.md, "Fail closed"). */
  staleAfterMs: number;
  /** The synchronous revocation check (token.CheckToken). */
  checkToken: (claims: AccessTokenClaims) => Promise<{ active: boolean; reason: string }>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * May this token make this call? The one implementation of the rule, used by
 * the edge and (with the role check) by the accounting service:
 *   1. the token verifies (signature, issuer, audience, expiry, typ);
 *   2. nothing revoked it: token id, grant, client, user;
 *   3. the app's connection to the organisation is live (revoked after the
 *      token was issued → 401; never connected → 403);
 *   4. the token's scopes allow the operation;
 *   5. the user's role there allows it.
 * Steps 2, 3 and 5 use the local event-fed views while the feed is healthy;
 * once it has been unhealthy for longer than staleAfterMs they ask the token,
 * consent and identity services instead, and if those cannot answer the call
 * fails (503), never guessing "allow".
 */
export class AccessGuard {
  constructor(private readonly options: AccessGuardOptions) {}

  /**
   * True while the views cannot be trusted: the feed has been unhealthy for
   * longer than staleAfterMs, or a view had to drop revocations for room.
   */
  synchronous(): boolean {
    const { feed, staleAfterMs, revocations, connections } = this.options;
    if (!revocations.complete() || !connections.complete()) return true;
    return !feed.healthy() && feed.unhealthyForMs() > staleAfterMs;
  }

  async authenticate(token: string): Promise<AccessTokenClaims> {
    let claims: AccessTokenClaims;
    try {
      claims = await this.options.verifier.verify(token);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw new AccessDenied('unauthenticated', 'invalid_token', err.message);
      throw err;
    }
    const local = this.options.revocations.reasonFor(claims);
    if (local) throw new AccessDenied('unauthenticated', local, MESSAGES[local]);
    if (this.synchronous()) {
      const status = await this.options.checkToken(claims);
      if (!status.active) {
        const reason = (status.reason in MESSAGES ? status.reason : 'token_revoked') as RevocationReason;
        throw new AccessDenied('unauthenticated', reason, MESSAGES[reason]);
      }
    }
    return claims;
  }

  async authorizeTenant(claims: AccessTokenClaims, tenantId: string, operation: Operation): Promise<void> {
    if (!UUID.test(tenantId)) throw new AccessDenied('forbidden', 'tenant_not_connected', 'The xero-tenant-id is not a connected organisation');
    const sync = this.synchronous();
    const { connections, memberships } = this.options;
    const status = sync ? await connections.statusNow(claims, tenantId) : await connections.status(claims, tenantId);
    if (status === 'revoked') throw new AccessDenied('unauthenticated', 'connection_revoked', 'The connection to this organisation was revoked');
    if (status === 'not_connected') throw new AccessDenied('forbidden', 'tenant_not_connected', 'The app is not connected to this organisation');
    if (!scopeAllows(operation, claims.scopes)) {
      throw new AccessDenied('forbidden', 'insufficient_scope', `This call needs one of the scopes: ${operation.scopes.join(', ')}`);
    }
    if (memberships) {
      const role = sync ? await memberships.roleNow(claims.userId, tenantId) : await memberships.role(claims.userId, tenantId);
      if (!roleAllows(operation, role)) {
        throw new AccessDenied('forbidden', 'insufficient_role', 'The user who connected the app may not do this in the organisation');
      }
    }
  }
}
