import { isRemoteError, sha256, Status } from '@ledgerly/chassis';
import type { IntrospectTokenResponse } from '@ledgerly/proto/token/v1/token';
import { randomUUID } from 'node:crypto';
import { authenticateClient } from '../domain/client-auth.js';
import { OAuthError } from '../domain/oauth-error.js';
import { clientAuthContext, type TokenDeps, type TokenHandlers } from './deps.js';
import { standing, type Lapse } from './standing.js';

const INACTIVE: IntrospectTokenResponse = {
  active: false, scope: '', clientId: '', tokenType: '', exp: 0, iat: 0, sub: '', aud: '', iss: '', jti: '', cnfJkt: '',
};

/** The CheckToken reasons (the edge's and accounting's refusal messages key on them). */
const REASONS: Record<Lapse, string> = {
  client_suspended: 'client_suspended',
  suspended_since: 'client_suspended',
  user_disabled: 'user_disabled',
  disabled_since: 'user_disabled',
  grant_revoked: 'grant_revoked',
};

/** Keys, revocation (RFC 7009), the synchronous check, introspection (RFC 7662). */
export function tokenHandlers(deps: TokenDeps): Pick<TokenHandlers, 'getJwks' | 'revokeToken' | 'checkToken' | 'introspectToken' | 'rotateSigningKey'> {
  const { clients, refreshTokens } = deps;
  const auth = clientAuthContext(deps);

  /** Is a token of this user, client and grant, issued at issuedAtMs, still good? */
  const stillActive = async (tokenId: string, clientId: string, userId: string, grantId: string, issuedAtMs: number): Promise<{ active: boolean; reason: string }> => {
    if (tokenId && (await deps.revokedTokens.isRevoked(tokenId))) return { active: false, reason: 'token_revoked' };
    const { lapse } = await standing(deps, await clients.find(clientId), userId, grantId, issuedAtMs);
    if (!lapse) return { active: true, reason: '' };
    return { active: false, reason: REASONS[lapse] };
  };

  return {
    getJwks: async () => ({ jwksJson: JSON.stringify(deps.keys.publicJwks()) }),

    revokeToken: async (req) => {
      const client = await authenticateClient(auth, req.client);
      const token = req.token;
      if (!token) throw new OAuthError('invalid_request', 'token is required');
      // An access token of ours (a JWT), issued to this client: refused everywhere from now on.
      if (token.split('.').length === 3) {
        const claims = await deps.ownTokens.verify(token).catch(() => undefined);
        if (claims && claims.clientId === client._id) {
          await deps.outbox.commit({
            $case: 'tokenRevoked',
            value: { tokenId: claims.tokenId, clientId: claims.clientId, userId: claims.userId, expiresAt: new Date(claims.expiresAt * 1000), revokedAt: new Date() },
          });
          deps.logger.info('Access token revoked', { clientId: client._id, tokenId: claims.tokenId });
        }
        return {};
      }
      // A refresh token: the whole authorization it belongs to ends, with every access token of it.
      const refresh = await refreshTokens.find(sha256(token));
      if (refresh && refresh.clientId === client._id) {
        await refreshTokens.revokeGrant(refresh.grantId);
        await deps.consent.revokeGrant({ grantId: refresh.grantId }).catch((err: unknown) => {
          if (!isRemoteError(err, Status.NOT_FOUND)) throw err;
        });
        deps.logger.info('Refresh token revoked: grant revoked', { clientId: client._id, grantId: refresh.grantId });
      }
      // RFC 7009 §2.2: an unknown token, or another client's, is not an error.
      return {};
    },

    checkToken: async (req) => stillActive(req.tokenId, req.clientId, req.userId, req.grantId, req.issuedAt?.getTime() ?? 0),

    introspectToken: async (req) => {
      // RFC 7662 §2.1: the caller must authenticate; a public client cannot.
      if (req.client?.method === 'none') throw new OAuthError('invalid_client', 'Introspection needs client authentication; a public client cannot introspect');
      const client = await authenticateClient(auth, req.client);
      const token = req.token;
      if (!token) throw new OAuthError('invalid_request', 'token is required');
      // RFC 7662 §2.2: anything not active, or not this client's, is only active=false.
      if (token.split('.').length === 3) {
        const claims = await deps.ownTokens.verify(token).catch(() => undefined);
        if (!claims || claims.clientId !== client._id) return INACTIVE;
        const state = await stillActive(claims.tokenId, claims.clientId, claims.userId, claims.grantId, claims.issuedAtMs);
        if (!state.active) return INACTIVE;
        return {
          active: true,
          scope: [...claims.scopes].join(' '),
          clientId: claims.clientId,
          tokenType: claims.dpopJkt ? 'DPoP' : 'Bearer',
          exp: claims.expiresAt,
          iat: Math.floor(claims.issuedAtMs / 1000),
          sub: claims.userId,
          aud: deps.config.audience,
          iss: deps.config.LEDGERLY_ISSUER,
          jti: claims.tokenId,
          cnfJkt: claims.dpopJkt ?? '',
        };
      }
      const refresh = await refreshTokens.find(sha256(token));
      if (!refresh || refresh.clientId !== client._id || refresh.usedAt || refresh.expiresAt <= new Date()) return INACTIVE;
      const state = await stillActive('', refresh.clientId, refresh.userId, refresh.grantId, refresh.createdAt.getTime());
      if (!state.active) return INACTIVE;
      return {
        ...INACTIVE,
        active: true,
        scope: refresh.scopes.join(' '),
        clientId: refresh.clientId,
        tokenType: 'refresh_token',
        exp: Math.floor(refresh.expiresAt.getTime() / 1000),
        iat: Math.floor(refresh.createdAt.getTime() / 1000),
        sub: refresh.userId,
        iss: deps.config.LEDGERLY_ISSUER,
        cnfJkt: refresh.dpopJkt ?? '',
      };
    },

    rotateSigningKey: async () => {
      const kid = randomUUID();
      const retiring = deps.keys.signingKeyIds();
      await deps.outbox.commit({ $case: 'signingKeyRotated', value: { newKeyId: kid, retiredKeyIds: retiring, rotatedAt: new Date() } });
      // The others still verify until their tokens have expired; they no longer sign.
      const stillPublished = deps.keys.publicJwks().keys.map((k) => String(k.kid)).filter((k) => k !== kid);
      return { keyId: kid, retiredKeyIds: stillPublished };
    },
  };
}
