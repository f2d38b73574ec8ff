import {
  checkTenantAccess,
  InvalidTokenError,
  OPERATIONS,
  type AccessTokenClaims,
  type AccessTokenVerifier,
  type ConnectionView,
  type MembershipView,
  type OperationName,
} from '@ledgerly/access';
import { PermissionDeniedError, UnauthenticatedError, type CallContext } from '@ledgerly/chassis';

/**
 * The accounting service trusts no caller: each call carries the user's
 * access token ("authorization: Bearer <jwt>"), which is verified here
 * (signature, issuer, audience, expiry), then the connection, the scopes and
 * the user's role are checked before anything is read or written.
 */
export class PrincipalGuard {
  constructor(
    private readonly verifier: AccessTokenVerifier,
    private readonly connections: ConnectionView,
    private readonly memberships: MembershipView,
  ) {}

  async authorize(ctx: CallContext, tenantId: string, operation: OperationName): Promise<AccessTokenClaims> {
    const header = ctx.header('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
    if (!match) throw new UnauthenticatedError('An access token is required ("authorization: Bearer <token>")', 'invalid_token');
    let claims: AccessTokenClaims;
    try {
      claims = await this.verifier.verify(match[1]!);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw new UnauthenticatedError(err.message, 'invalid_token');
      throw err;
    }
    const decision = await checkTenantAccess({
      claims,
      tenantId,
      operation: OPERATIONS[operation],
      connections: this.connections,
      memberships: this.memberships,
    });
    if (!decision.allowed) {
      if (decision.reason === 'connection_revoked') throw new UnauthenticatedError(decision.message, decision.reason);
      throw new PermissionDeniedError(decision.message, decision.reason);
    }
    return claims;
  }
}
