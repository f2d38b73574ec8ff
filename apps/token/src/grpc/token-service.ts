import { isKnownScope, type AccessTokenVerifier } from '@ledgerly/access';
import {
  FailedPreconditionError,
  hasUnsafeText,
  implement,
  InvalidArgumentError,
  isRemoteError,
  NotFoundError,
  randomSecret,
  sha256,
  Status,
  OPERATOR,
  type AccessList,
  type Logger,
  type Outbox,
  type PromiseClient,
  type ServiceImplementation,
} from '@ledgerly/chassis';
import type { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import type { Event } from '@ledgerly/proto/events/v1/events';
import type { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { ClientType, TokenServiceDefinition, type Client } from '@ledgerly/proto/token/v1/token';
import { randomBytes, randomUUID } from 'node:crypto';
import type { TokenConfig } from '../config.js';
import { authenticateClient } from '../domain/client-auth.js';
import { OAuthError } from '../domain/oauth-error.js';
import { pkceMatches } from '../domain/pkce.js';
import { checkRedirectUri } from '../domain/redirect-uris.js';
import type { SigningKeys } from '../domain/signing-keys.js';
import type { TokenIssuer } from '../domain/token-issuer.js';
import type { ClientDoc, ClientStore } from '../store/clients.js';
import type { CodeStore } from '../store/codes.js';
import type { RefreshTokenStore } from '../store/refresh-tokens.js';
import type { RevokedTokenStore } from '../store/revoked-tokens.js';

export interface TokenDeps {
  config: TokenConfig;
  clients: ClientStore;
  codes: CodeStore;
  refreshTokens: RefreshTokenStore;
  revokedTokens: RevokedTokenStore;
  keys: SigningKeys;
  issuer: TokenIssuer;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  outbox: Outbox;
  /** Verifies our own access tokens (for RFC 7009 revocation). */
  ownTokens: AccessTokenVerifier;
  logger: Logger;
}

/** Who may call what (docs/security.md, "Who may call what"). */
export const TOKEN_ACCESS: AccessList<typeof TokenServiceDefinition> = {
  createClient: [OPERATOR],
  getClient: ['edge', OPERATOR],
  issueAuthorizationCode: ['edge'],
  exchangeAuthorizationCode: ['edge'],
  refreshAccessToken: ['edge'],
  getJwks: ['edge', 'accounting', OPERATOR],
  revokeToken: ['edge'],
  checkToken: ['edge', 'accounting'],
  suspendClient: [OPERATOR],
  reinstateClient: [OPERATOR],
  rotateSigningKey: [OPERATOR],
};

export function tokenService(deps: TokenDeps): ServiceImplementation {
  const { clients, codes, refreshTokens, issuer } = deps;

  /**
   * Issuing refuses a suspended client, a disabled user and a revoked grant,
   * and anything (a code, a refresh token) created before a suspension or a
   * disabling, even once lifted.
   */
  const checkStillAllowed = async (client: ClientDoc, userId: string, grantId: string, createdAt: Date) => {
    if (client.suspendedAt) throw new OAuthError('invalid_client', 'The client is suspended');
    if (client.lastSuspendedAt && client.lastSuspendedAt >= createdAt) throw new OAuthError('invalid_grant', 'Issued before the client was suspended');
    const orNone = <T>(call: Promise<T>) => call.catch((err: unknown) => (isRemoteError(err, Status.NOT_FOUND) ? undefined : Promise.reject(err)));
    const [user, grant] = await Promise.all([
      orNone(deps.identity.getUser({ userId }).then((r) => r.user)),
      grantId ? orNone(deps.consent.getGrant({ grantId }).then((r) => r.grant)) : Promise.resolve(undefined),
    ]);
    if (!user || user.disabled) throw new OAuthError('invalid_grant', 'The user is disabled or unknown');
    if (user.disabledAt && user.disabledAt >= createdAt) throw new OAuthError('invalid_grant', 'Issued before the user was disabled');
    if (!grant || grant.revokedAt) throw new OAuthError('invalid_grant', 'The user withdrew this authorization');
  };

  return implement(TokenServiceDefinition, {
    createClient: async (req) => {
      const name = req.name.trim();
      if (name.length < 1 || name.length > 100) throw new InvalidArgumentError('A name of 1 to 100 characters is required', 'invalid_name');
      // Users read this name on the consent page: no controls, no bidi tricks.
      if (hasUnsafeText(name)) throw new InvalidArgumentError('The name must not contain control characters or bidirectional formatting characters', 'invalid_name');
      if (req.redirectUris.length < 1 || req.redirectUris.length > 20) {
        throw new InvalidArgumentError('Between 1 and 20 redirect URIs are required', 'invalid_redirect_uri');
      }
      const redirectUris = [...new Set(req.redirectUris.map(checkRedirectUri))];
      const type = req.type === ClientType.CLIENT_TYPE_PUBLIC ? ClientType.CLIENT_TYPE_PUBLIC : ClientType.CLIENT_TYPE_CONFIDENTIAL;
      const secret = type === ClientType.CLIENT_TYPE_CONFIDENTIAL ? randomSecret(32) : '';
      const doc: ClientDoc = {
        _id: randomBytes(16).toString('hex').toUpperCase(),
        name,
        type,
        redirectUris,
        secretHash: secret ? sha256(secret) : '',
        tokenEndpointAuthMethod: secret ? 'client_secret_basic' : 'none',
        grantTypes: ['authorization_code', 'refresh_token'],
        createdAt: new Date(),
      };
      await clients.insert(doc);
      deps.logger.info('Client created', { clientId: doc._id, type: ClientType[type] });
      return { client: toClient(doc), clientSecret: secret };
    },

    getClient: async (req) => {
      const client = await clients.find(req.clientId);
      if (!client) throw new NotFoundError('No such client', 'invalid_client');
      return { client: toClient(client) };
    },

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
      if (!client || !client.redirectUris.includes(request.redirectUri)) {
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
        authTime: flow.authTime ?? new Date(),
        amr: flow.amr,
        sessionId: flow.sessionId,
        grantId: flow.grantId,
        authEventId: flow.authEventId,
        expiresAt: new Date(Date.now() + deps.config.LEDGERLY_CODE_TTL_SECONDS * 1000),
        consumedAt: null,
        createdAt: new Date(),
      });
      return { code, redirectUri: request.redirectUri, state: request.state };
    },

    exchangeAuthorizationCode: async (req) => {
      // Consumed before any other check: a failed attempt burns the code too.
      const code = req.code ? await codes.consume(sha256(req.code)) : null;
      const client = await authenticateClient(clients, req.client);
      if (!code) throw new OAuthError('invalid_grant', 'The authorization code is invalid, expired or already used');
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
      const codeCreatedAt = code.createdAt ?? new Date(code.expiresAt.getTime() - deps.config.LEDGERLY_CODE_TTL_SECONDS * 1000);
      await checkStillAllowed(client, code.userId, code.grantId, codeCreatedAt);
      const tokens = await issuer.issue({
        clientId: client._id,
        userId: code.userId,
        scopes: code.scopes,
        grantId: code.grantId,
        authEventId: code.authEventId,
        authTime: code.authTime,
        amr: code.amr,
        sessionId: code.sessionId,
        nonce: code.nonce,
      });
      deps.logger.info('Tokens issued', { grant: 'authorization_code', clientId: client._id, grantId: code.grantId });
      return { tokens };
    },

    refreshAccessToken: async (req) => {
      const client = await authenticateClient(clients, req.client);
      const hash = req.refreshToken ? sha256(req.refreshToken) : '';
      const current = hash ? await refreshTokens.find(hash) : null;
      if (!current || current.clientId !== client._id || current.expiresAt <= new Date()) {
        throw new OAuthError('invalid_grant', 'The refresh token is invalid or expired');
      }
      // RFC 6749 §6: a narrower scope is fine, a wider one is not.
      const requested = [...new Set(req.scopes)];
      const unknown = requested.filter((s) => !isKnownScope(s));
      if (unknown.length > 0) throw new OAuthError('invalid_scope', `Unknown scope: ${unknown.join(' ')}`);
      const wider = requested.filter((s) => !current.scopes.includes(s));
      if (wider.length > 0) throw new OAuthError('invalid_scope', `The refresh token was not granted: ${wider.join(' ')}`);
      await checkStillAllowed(client, current.userId, current.grantId, current.createdAt);
      // Rotation: exactly one use of a refresh token wins.
      const used = await refreshTokens.markUsed(hash);
      if (!used) throw new OAuthError('invalid_grant', 'The refresh token was already used');
      const tokens = await issuer.issue({
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
      });
      deps.logger.info('Tokens issued', { grant: 'refresh_token', clientId: client._id, grantId: current.grantId });
      return { tokens };
    },

    getJwks: async () => ({ jwksJson: JSON.stringify(deps.keys.publicJwks()) }),

    revokeToken: async (req) => {
      const client = await authenticateClient(clients, req.client);
      const token = req.token;
      if (!token) throw new OAuthError('invalid_request', 'token is required');
      // An access token of ours (a JWT), issued to this client: refused everywhere from now on.
      if (token.split('.').length === 3) {
        const claims = await deps.ownTokens.verify(token).catch(() => undefined);
        if (claims && claims.clientId === client._id) {
          await deps.outbox.commit({
            $case: 'tokenRevoked',
            value: {
              tokenId: claims.tokenId,
              clientId: claims.clientId,
              userId: claims.userId,
              expiresAt: new Date(claims.expiresAt * 1000),
              revokedAt: new Date(),
            },
          });
          deps.logger.info('Access token revoked', { clientId: client._id, tokenId: claims.tokenId });
        }
        return {};
      }
      // A refresh token: the whole authorization it belongs to ends.
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

    checkToken: async (req) => {
      const issuedAt = req.issuedAt?.getTime() ?? 0;
      if (await deps.revokedTokens.isRevoked(req.tokenId)) return { active: false, reason: 'token_revoked' };
      const client = await clients.find(req.clientId);
      if (!client || client.suspendedAt || (client.lastSuspendedAt && client.lastSuspendedAt.getTime() >= issuedAt)) {
        return { active: false, reason: 'client_suspended' };
      }
      const [user, grant] = await Promise.all([
        deps.identity.getUser({ userId: req.userId }).then(
          (r) => r.user,
          (err: unknown) => (isRemoteError(err, Status.NOT_FOUND) ? undefined : Promise.reject(err)),
        ),
        req.grantId
          ? deps.consent.getGrant({ grantId: req.grantId }).then(
              (r) => r.grant,
              (err: unknown) => (isRemoteError(err, Status.NOT_FOUND) ? undefined : Promise.reject(err)),
            )
          : Promise.resolve(undefined),
      ]);
      if (!user || user.disabled || (user.disabledAt && user.disabledAt.getTime() >= issuedAt)) return { active: false, reason: 'user_disabled' };
      if (!grant || grant.revokedAt) return { active: false, reason: 'grant_revoked' };
      return { active: true, reason: '' };
    },

    suspendClient: async (req) => {
      const client = await clients.find(req.clientId);
      if (!client) throw new NotFoundError('No such client', 'invalid_client');
      if (!client.suspendedAt) {
        await deps.outbox.commit({ $case: 'clientSuspended', value: { clientId: client._id, suspendedAt: new Date() } });
        deps.logger.warn('Client suspended', { clientId: client._id });
      }
      return { client: toClient((await clients.find(client._id))!) };
    },

    reinstateClient: async (req) => {
      const client = await clients.find(req.clientId);
      if (!client) throw new NotFoundError('No such client', 'invalid_client');
      if (client.suspendedAt) {
        await deps.outbox.commit({ $case: 'clientReinstated', value: { clientId: client._id, reinstatedAt: new Date() } });
        deps.logger.warn('Client reinstated', { clientId: client._id });
      }
      return { client: toClient((await clients.find(client._id))!) };
    },

    rotateSigningKey: async () => {
      const kid = randomUUID();
      const retiring = deps.keys.signingKeyIds();
      await deps.outbox.commit({ $case: 'signingKeyRotated', value: { newKeyId: kid, retiredKeyIds: retiring, rotatedAt: new Date() } });
      // The others still verify until their tokens have expired; they no longer sign.
      const stillPublished = deps.keys.publicJwks().keys.map((k) => String(k.kid)).filter((k) => k !== kid);
      return { keyId: kid, retiredKeyIds: stillPublished };
    },
  }, TOKEN_ACCESS);
}

/**
 * The state change of each event the token service publishes (the outbox
 * applies it, and applies it again if it has to relay the event later).
 */
export function applyTokenEvent(deps: Pick<TokenDeps, 'clients' | 'revokedTokens' | 'keys'>) {
  return async (event: Event): Promise<void> => {
    const p = event.payload;
    switch (p?.$case) {
      case 'clientSuspended':
        await deps.clients.setSuspended(p.value.clientId, p.value.suspendedAt ?? new Date());
        return;
      case 'tokenRevoked':
        await deps.revokedTokens.add({
          _id: p.value.tokenId,
          clientId: p.value.clientId,
          userId: p.value.userId,
          revokedAt: p.value.revokedAt ?? new Date(),
          expiresAt: p.value.expiresAt ?? new Date(Date.now() + 3600_000),
        });
        return;
      case 'signingKeyRotated':
        await deps.keys.rotateTo(p.value.newKeyId);
        return;
      case 'clientReinstated':
        await deps.clients.setSuspended(p.value.clientId, null);
        return;
      default:
        throw new TypeError(`The token service does not publish ${p?.$case ?? 'empty'} events`);
    }
  };
}

function toClient(doc: ClientDoc): Client {
  return {
    clientId: doc._id,
    name: doc.name,
    type: doc.type,
    redirectUris: doc.redirectUris,
    tokenEndpointAuthMethod: doc.tokenEndpointAuthMethod,
    grantTypes: doc.grantTypes,
    createdAt: doc.createdAt,
    suspendedAt: doc.suspendedAt ?? undefined,
  };
}
