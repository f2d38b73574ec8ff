import { AccessDenied, OPERATIONS, type AccessGuard, type AccessTokenClaims, type OperationName } from '@ledgerly/access';
import { PermissionDeniedError, UnauthenticatedError, type CallContext } from '@ledgerly/chassis';

/**
 * The accounting service trusts no caller: each call carries the user's
 * access token ("authorization: Bearer <jwt>"), which is verified here, then
 * revocations, the connection, the scopes and the user's role are checked
 * (libs/access AccessGuard) before anything is read or written.
 */
export class PrincipalGuard {
  constructor(private readonly access: AccessGuard) {}

  async authorize(ctx: CallContext, tenantId: string, operation: OperationName): Promise<AccessTokenClaims> {
    const header = ctx.header('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
    if (!match) throw new UnauthenticatedError('An access token is required ("authorization: Bearer <token>")', 'invalid_token');
    try {
      const claims = await this.access.authenticate(match[1]!);
      await this.access.authorizeTenant(claims, tenantId, OPERATIONS[operation]);
      return claims;
    } catch (err) {
      if (err instanceof AccessDenied) {
        throw err.kind === 'unauthenticated' ? new UnauthenticatedError(err.message, err.reason) : new PermissionDeniedError(err.message, err.reason);
      }
      throw err;
    }
  }
}
