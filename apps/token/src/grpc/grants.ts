import { isKnownScope, isRegisteredRedirectUri } from '@ledgerly/access';
import { FailedPreconditionError, isRemoteError, randomSecret, sha256, Status, UnavailableError } from '@ledgerly/chassis';
import type { TokenSet } from '@ledgerly/proto/token/v1/token';
import { randomUUID } from 'node:crypto';
import { authenticateClient } from '../domain/client-auth.js';
import { openGraceResponse, sealGraceResponse } from '../domain/grace.js';
import { OAuthError } from '../domain/oauth-error.js';
import { pkceMatches } from '../domain/pkce.js';
import type { Authorization, Issued } from '../domain/token-issuer.js';
import type { ClientDoc } from '../store/clients.js';
import { clientAuthContext, type TokenDeps, type TokenHandlers } from './deps.js';
import { standing } from './standing.js';

/**
 * A used refresh token presented again within this long of its use is a race
 * or a retry (answered invalid_grant, or the grace answer); later, it is a
 * replay of a rotated token, and the whole grant is revoked (RFC 9700 §4.14.2).
 */
const REUSE_AFTER_MS = 2000;

/** The grants of the token endpoint: authorization_code, refresh_token, client_credentials. */
export function grantHandlers(
  deps: TokenDeps,
): Pick<TokenHandlers, 'issueAuthorizationCode' | 'exchangeAuthorizationCode' | 'refreshAccessToken' | 'clientCredentialsGrant'> {
  const { clients, codes, refreshTokens, issuer, families, config } = deps;
  const auth = clientAuthContext(deps);

  /**
   * Issuing refuses a suspended client, a disabled user and a revoked grant,
   * and anything (a code, a refresh token) created before a suspension or a
   * disabling, even once lifted.
   */
  const checkStillAllowed = async (client: ClientDoc, userId: string, grantId: string, createdAt: Date) => {
    const { lapse, user } = await standing(deps, client, userId, grantId, createdAt.getTime());
    switch (lapse) {
      case undefined:
        return user;
      case 'client_suspended':
        throw new OAuthError('invalid_client', 'The client is suspended');
      case 'suspended_since':
        throw new OAuthError('invalid_grant', 'Issued before the client was suspended');
      case 'user_disabled':
        throw new OAuthError('invalid_grant', 'The user is disabled or unknown');
      case 'disabled_since':
        throw new OAuthError('invalid_grant', 'Issued before the user was disabled');
      case 'grant_revoked':
        // A custom connection's grant ends when its connection is disconnected.
        throw new OAuthError('invalid_grant', client.customConnection ? 'This custom connection was disconnected; register the integration again to reconnect' : 'The user withdrew this authorization');
    }
  };

  const familyRecord = (authorization: { clientId: string; userId: string; grantId: string }, familyId: string) => ({
    _id: familyId,
    clientId: authorization.clientId,
    userId: authorization.userId,
    grantId: authorization.grantId,
    expiresAt: new Date(Date.now() + config.LEDGERLY_REFRESH_TOKEN_TTL_SECONDS * 1000),
  });

  /** Revokes every token issued from one code: refresh tokens spent, access tokens revoked everywhere. */
  const revokeFamily = async (family: ReturnType<typeof familyRecord>, why: string) => {
    const before = await families.revoke(family, new Date());
    if (!before) return;
    await refreshTokens.revokeFamily(family._id);
    for (const token of before.accessTokens.filter((t) => t.exp > new Date())) await revokeAccessToken(family, token);
    deps.logger.warn('Token family revoked', { familyId: family._id, why, accessTokenCount: before.accessTokens.length });
  };

  const revokeAccessToken = (family: { clientId: string; userId: string }, token: { jti: string; exp: Date }) =>
    deps.outbox.commit({
      $case: 'tokenRevoked',
      value: { tokenId: token.jti, clientId: family.clientId, userId: family.userId, expiresAt: token.exp, revokedAt: new Date() },
    });

  /**
   * Issues, and records the access token in its family, so a replay can
   * revoke it. If a replay revoked the family while this was being issued,
   * what was just issued is revoked too and nothing is handed out.
   */
  const issue = async (authorization: Authorization): Promise<Issued> => {
    const issued = await issuer.issue(authorization);
    const token = { jti: issued.accessTokenId, exp: issued.accessTokenExpiresAt };
    const family = familyRecord(authorization, issued.familyId);
    if (!(await families.addAccessToken(family, token))) {
      await refreshTokens.revokeFamily(family._id);
      await revokeAccessToken(family, token);
      throw new OAuthError('invalid_grant', 'The authorization code was used more than once; everything issued from it is revoked');
    }
    return issued;
  };

  const checkScopes = (requested: string[], granted: string[]) => {
    const unknown = requested.filter((s) => !isKnownScope(s));
    if (unknown.length > 0) throw new OAuthError('invalid_scope', `Unknown scope: ${unknown.join(' ')}`);
    const wider = requested.filter((s) => !granted.includes(s));
    if (wider.length > 0) throw new OAuthError('invalid_scope', `Not granted: ${wider.join(' ')}`);
  };

  return {
    issueAuthorizationCode: async (req) => {
      // The flow must really be consented; completing it is single-use.
      let flow;
      try {
        flow = (await deps.consent.completeFlow({ flowId: req.flowId })).flow!;
      } catch (err) {
        if (isRemoteError(err, Status.FAILED_PRECONDITION) || isRemoteError(err, Status.NOT_FOUND)) {
          throw new FailedPreconditionError('The authorization flow is not consented or was already used', 'flow_state');
        }
        throw err;
      }
      const request = flow.request!;
      const client = await clients.find(request.clientId);
      if (!client || !isRegisteredRedirectUri(client.redirectUris, request.redirectUri)) {
        throw new FailedPreconditionError('The client or its redirect URI is no longer registered', 'invalid_client');
      }
      if (client.suspendedAt) throw new FailedPreconditionError('The client is suspended', 'client_suspended');
      const code = randomSecret(32);
      await codes.insert({
        _id: sha256(code),
        clientId: client._id,
        userId: flow.userId,
        redirectUri: request.redirectUri,
        scopes: flow.grantedScopes,
        codeChallenge: request.codeChallenge,
        codeChallengeMethod: request.codeChallengeMethod,
        nonce: request.nonce,
        ...(request.dpopJkt ? { dpopJkt: request.dpopJkt } : {}),
        authTime: flow.authTime ?? new Date(),
        amr: flow.amr,
        sessionId: flow.sessionId,
        grantId: flow.grantId,
        authEventId: flow.authEventId,
        expiresAt: new Date(Date.now() + config.LEDGERLY_CODE_TTL_SECONDS * 1000),
        consumedAt: null,
        createdAt: new Date(),
        // Known before the first exchange, so a replay racing it revokes it too.
        familyId: randomUUID(),
      });
      return { code, redirectUri: request.redirectUri, state: request.state };
    },

    exchangeAuthorizationCode: async (req) => {
      // Consumed before any other check: a failed attempt burns the code too.
      const hash = req.code ? sha256(req.code) : '';
      const code = hash ? await codes.consume(hash) : null;
      const client = await authenticateClient(auth, req.client);
      if (!req.code) throw new OAuthError('invalid_request', 'code is required');
      if (!req.redirectUri) throw new OAuthError('invalid_request', 'redirect_uri is required');
      if (!code) {
        // RFC 6749 §4.1.2: a code used twice revokes every token issued from it.
        const spent = hash ? await codes.find(hash) : null;
        if (spent?.familyId && spent.clientId === client._id) await revokeFamily(familyRecord(spent, spent.familyId), 'authorization code replayed');
        throw new OAuthError('invalid_grant', 'The authorization code is invalid, expired or already used');
      }
      if (code.clientId !== client._id) throw new OAuthError('invalid_grant', 'The authorization code was issued to another client');
      // RFC 6749 §4.1.3: the same redirect_uri as in the authorization request.
      if (req.redirectUri !== code.redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request');
      if (code.codeChallenge) {
        if (!req.codeVerifier) throw new OAuthError('invalid_grant', 'code_verifier is required (PKCE)');
        if (!pkceMatches(req.codeVerifier, code.codeChallenge)) throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge');
      } else if (req.codeVerifier) {
        // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
        throw new OAuthError('invalid_grant', 'code_verifier sent, but the authorization request had no code_challenge');
      }
      // RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof of that key.
      if (code.dpopJkt && code.dpopJkt !== req.dpopJkt) throw new OAuthError('invalid_dpop_proof', 'The authorization code is bound to another DPoP key (dpop_jkt)');
      const user = await checkStillAllowed(client, code.userId, code.grantId, code.createdAt ?? new Date(code.expiresAt.getTime() - config.LEDGERLY_CODE_TTL_SECONDS * 1000));
      const issued = await issue({
        user,
        clientId: client._id,
        userId: code.userId,
        scopes: code.scopes,
        grantId: code.grantId,
        authEventId: code.authEventId,
        authTime: code.authTime,
        amr: code.amr,
        sessionId: code.sessionId,
        nonce: code.nonce,
        ...(code.familyId ? { familyId: code.familyId } : {}),
        ...(req.dpopJkt ? { dpopJkt: req.dpopJkt, bindRefreshToken: client.tokenEndpointAuthMethod === 'none' } : {}),
      });
      deps.logger.info('Tokens issued', { grant: 'authorization_code', clientId: client._id, grantId: code.grantId, dpop: Boolean(req.dpopJkt) });
      return { tokens: issued.tokens };
    },

    refreshAccessToken: async (req, call) => {
      const client = await authenticateClient(auth, req.client);
      if (!req.refreshToken) throw new OAuthError('invalid_request', 'refresh_token is required');
      const hash = sha256(req.refreshToken);
      const current = await refreshTokens.find(hash);
      if (!current || current.clientId !== client._id || current.expiresAt <= new Date()) {
        throw new OAuthError('invalid_grant', 'The refresh token is invalid or expired');
      }
      // RFC 9449 §5: a bound refresh token needs a proof with its key.
      if (current.dpopJkt && current.dpopJkt !== req.dpopJkt) throw new OAuthError('invalid_grant', 'The refresh token is bound to another DPoP key');
      // RFC 6749 §6: a narrower scope is fine, a wider one is not.
      const requested = [...new Set(req.scopes)];
      checkScopes(requested, current.scopes);

      const alreadyUsed = async (usedAt: Date): Promise<TokenSet> => {
        const graceMs = config.LEDGERLY_REFRESH_GRACE_SECONDS * 1000;
        const latest = await refreshTokens.find(hash);
        if (graceMs > 0 && latest?.graceResponse && latest.graceUntil && latest.graceUntil > new Date()) {
          const same = openGraceResponse(req.refreshToken, current.familyId, latest.graceResponse);
          if (same) return same;
        }
        if (Date.now() - usedAt.getTime() > REUSE_AFTER_MS) {
          // A rotated token came back: someone has a copy. End the whole grant.
          await refreshTokens.revokeGrant(current.grantId);
          await deps.consent.revokeGrant({ grantId: current.grantId }).catch((err: unknown) => {
            if (!isRemoteError(err, Status.NOT_FOUND)) throw err;
          });
          deps.logger.warn('Refresh token reused: grant revoked', { clientId: client._id, grantId: current.grantId });
        }
        throw new OAuthError('invalid_grant', 'The refresh token was already used');
      };
      if (current.usedAt) return { tokens: await alreadyUsed(current.usedAt) };

      const user = await checkStillAllowed(client, current.userId, current.grantId, current.createdAt);
      // A caller that has given up (deadline passed, cancelled) would never see
      // the new token: do not rotate, so its retry with the same token works.
      if (call?.signal.aborted) throw new UnavailableError('The request was cancelled before the refresh token was rotated');
      // Rotation: exactly one use of a refresh token wins.
      const used = await refreshTokens.markUsed(hash);
      if (!used) return { tokens: await alreadyUsed(new Date()) };
      const dpopJkt = req.dpopJkt || current.dpopJkt;
      const issued = await issue({
        user,
        clientId: client._id,
        userId: current.userId,
        scopes: current.scopes,
        ...(requested.length > 0 ? { accessScopes: current.scopes.filter((s) => requested.includes(s)) } : {}),
        grantId: current.grantId,
        authEventId: current.authEventId,
        authTime: current.authTime,
        amr: current.amr,
        sessionId: current.sessionId,
        familyId: current.familyId,
        ...(dpopJkt ? { dpopJkt, bindRefreshToken: Boolean(current.dpopJkt) || client.tokenEndpointAuthMethod === 'none' } : {}),
      });
      if (config.LEDGERLY_REFRESH_GRACE_SECONDS > 0) {
        const until = new Date(Date.now() + config.LEDGERLY_REFRESH_GRACE_SECONDS * 1000);
        await refreshTokens.setGraceResponse(hash, sealGraceResponse(req.refreshToken, current.familyId, issued.tokens), until);
      }
      deps.logger.info('Tokens issued', { grant: 'refresh_token', clientId: client._id, grantId: current.grantId, dpop: Boolean(dpopJkt) });
      return { tokens: issued.tokens };
    },

    clientCredentialsGrant: async (req) => {
      const client = await authenticateClient(auth, req.client);
      const custom = client.customConnection;
      // RFC 6749 §4.4: only a confidential client registered for it.
      if (!custom || !client.grantTypes.includes('client_credentials')) {
        throw new OAuthError('unauthorized_client', 'This client is not a custom connection (client_credentials is not allowed)');
      }
      const requested = [...new Set(req.scopes)];
      checkScopes(requested, custom.scopes);
      await checkStillAllowed(client, custom.userId, custom.grantId, client.createdAt);
      // No code and no refresh token: nothing can be replayed, so no token family. The token
      // dies with its grant, its client or its user, and by POST /revoke, like any other.
      const issued = await issuer.issue({
        clientId: client._id,
        userId: custom.userId,
        scopes: requested.length > 0 ? requested : custom.scopes,
        grantId: custom.grantId,
        authEventId: custom.grantId,
        authTime: client.createdAt,
        amr: [],
        sessionId: '',
        noRefreshToken: true,
        noIdToken: true,
        ...(req.dpopJkt ? { dpopJkt: req.dpopJkt } : {}),
      });
      deps.logger.info('Tokens issued', { grant: 'client_credentials', clientId: client._id, grantId: custom.grantId, dpop: Boolean(req.dpopJkt) });
      return { tokens: issued.tokens };
    },
  };
}
