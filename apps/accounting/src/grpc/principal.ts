import { AccessDenied, OPERATIONS, type AccessGuard, type AccessTokenClaims, type OperationName } from '@ledgerly/access';
import { PermissionDeniedError, UnauthenticatedError, type CallContext } from '@ledgerly/chassis';

/**
 * The accounting service trusts no caller: each call carries the user's
 * access token ("authorization: Bearer <jwt>"), which is verified here, then
 * revocations, the connection, the scopes and the user's role are checked
 * (libs/access AccessGuard) before anything is read or written.
 *
 * A DPoP-bound token ("authorization: DPoP <jwt>", RFC 9449) is accepted only
 * from the edge, which checked the proof of possession against the HTTP
 * request it came with; a bound token is never accepted as a bearer token.
 */
export class PrincipalGuard {
  constructor(private readonly access: AccessGuard) {}

  async authorize(ctx: CallContext, tenantId: string, operation: OperationName): Promise<AccessTokenClaims> {
    const header = ctx.header('authorization') ?? '';
    const match = /^(Bearer|DPoP) ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
    if (!match) throw new UnauthenticatedError('An access token is required ("authorization: Bearer <token>")', 'invalid_token');
    const dpop = match[1] === 'DPoP';
    if (dpop && ctx.caller !== 'edge') throw new UnauthenticatedError('A DPoP-bound token is accepted only through the edge, which checks its proof', 'invalid_token');
    try {
      const claims = await this.access.authenticate(match[2]!);
      if (Boolean(claims.dpopJkt) !== dpop) {
        throw new UnauthenticatedError(dpop ? 'The access token is not DPoP-bound' : 'The access token is DPoP-bound: it cannot be used as a bearer token', 'invalid_token');
      }
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
