import type { AccessTokenClaims } from './access-token.js';
import type { ConnectionView } from './connection-view.js';
import type { MembershipView } from './membership-view.js';
import { roleAllows, scopeAllows, type Operation } from './permissions.js';

export type AccessDeniedReason = 'connection_revoked' | 'tenant_not_connected' | 'insufficient_scope' | 'insufficient_role';

export type AccessDecision = { allowed: true } | { allowed: false; reason: AccessDeniedReason; message: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * May this token do this operation in this organisation? In order:
 *   1. the app's connection to the organisation is live (revoked → 401, never connected → 403);
 *   2. the token's scopes allow the operation;
 *   3. the user's role there allows it (when a membership view is given).
 * The edge and the accounting service both run it; the accounting service
 * always with the role check.
 */
export async function checkTenantAccess(input: {
  claims: AccessTokenClaims;
  tenantId: string;
  operation: Operation;
  connections: ConnectionView;
  memberships?: MembershipView;
}): Promise<AccessDecision> {
  const { claims, tenantId, operation } = input;
  if (!UUID.test(tenantId)) {
    return { allowed: false, reason: 'tenant_not_connected', message: 'The xero-tenant-id is not a connected organisation' };
  }
  const status = await input.connections.status(claims, tenantId);
  if (status === 'revoked') {
    return { allowed: false, reason: 'connection_revoked', message: 'The connection to this organisation was revoked' };
  }
  if (status === 'not_connected') {
    return { allowed: false, reason: 'tenant_not_connected', message: 'The app is not connected to this organisation' };
  }
  if (!scopeAllows(operation, claims.scopes)) {
    return { allowed: false, reason: 'insufficient_scope', message: `This call needs one of the scopes: ${operation.scopes.join(', ')}` };
  }
  if (input.memberships) {
    const role = await input.memberships.role(claims.userId, tenantId);
    if (!roleAllows(operation, role)) {
      return { allowed: false, reason: 'insufficient_role', message: 'The user who connected the app may not do this in the organisation' };
    }
  }
  return { allowed: true };
}
