import { isKnownScope } from '@ledgerly/access';
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
  type Logger,
  type PromiseClient,
  type ServiceImplementation,
} from '@ledgerly/chassis';
import type { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { ClientType, TokenServiceDefinition, type Client } from '@ledgerly/proto/token/v1/token';
import { randomBytes } from 'node:crypto';
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

export interface TokenDeps {
  config: TokenConfig;
  clients: ClientStore;
  codes: CodeStore;
  refreshTokens: RefreshTokenStore;
  keys: SigningKeys;
  issuer: TokenIssuer;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  logger: Logger;
}

export function tokenService(deps: TokenDeps): ServiceImplementation {
  const { clients, codes, refreshTokens, issuer } = deps;

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
  });
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
  };
}
