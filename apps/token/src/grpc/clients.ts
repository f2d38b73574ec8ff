import { isKnownScope } from '@ledgerly/access';
import { FailedPreconditionError, hasUnsafeText, InvalidArgumentError, isRemoteError, NotFoundError, randomSecret, sha256, Status } from '@ledgerly/chassis';
import { ClientType, type Client, type CreateClientRequest } from '@ledgerly/proto/token/v1/token';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { randomBytes } from 'node:crypto';
import { checkRedirectUri } from '../domain/redirect-uris.js';
import type { ClientDoc, TokenEndpointAuthMethod } from '../store/clients.js';
import type { TokenDeps, TokenHandlers } from './deps.js';

const AUTH_METHODS: TokenEndpointAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'];

/** Registration (operators), metadata (the edge), suspension (the kill switch). */
export function clientHandlers(deps: TokenDeps): Pick<TokenHandlers, 'createClient' | 'getClient' | 'suspendClient' | 'reinstateClient'> {
  const { clients } = deps;
  return {
    createClient: async (req) => {
      const { doc, secret } = newClient(req);
      await clients.insert(doc);
      if (req.customConnection?.tenantId) {
        // The grant and the connection, made by the consent service, which checks the user belongs there.
        const { tenantId, userId, scopes } = req.customConnection;
        const unknown = scopes.filter((s) => !isKnownScope(s));
        try {
          if (scopes.length === 0 || unknown.length > 0) {
            throw new InvalidArgumentError(`A custom connection needs known scopes (unknown: ${unknown.join(' ') || 'none given'})`, 'invalid_scope');
          }
          // Nobody signs in and nothing is refreshed: identity scopes mean nothing here.
          const identity = scopes.filter((s) => ['openid', 'profile', 'email', 'offline_access'].includes(s));
          if (identity.length > 0) {
            throw new InvalidArgumentError(`A custom connection takes accounting scopes only, not ${identity.join(' ')}`, 'invalid_scope');
          }
          const { grant } = await deps.consent.createCustomConnection({ userId, clientId: doc._id, tenantId, scopes });
          doc.customConnection = { tenantId, userId, scopes, grantId: grant!.id };
          await clients.setCustomConnection(doc._id, doc.customConnection);
        } catch (err) {
          // No half-made client: without its connection it must not exist.
          await clients.delete(doc._id);
          // The consent service's refusal is the operator's to read, not an internal error.
          if (isRemoteError(err, Status.PERMISSION_DENIED) || isRemoteError(err, Status.INVALID_ARGUMENT) || isRemoteError(err, Status.NOT_FOUND)) {
            throw new FailedPreconditionError(`The custom connection cannot be made: ${err.details}`, err.reason ?? 'custom_connection_refused');
          }
          throw err;
        }
      }
      deps.logger.info('Client created', { clientId: doc._id, type: ClientType[doc.type], method: doc.tokenEndpointAuthMethod, custom: Boolean(doc.customConnection) });
      return { client: toClient(doc), clientSecret: secret };
    },

    getClient: async (req) => {
      const client = await clients.find(req.clientId);
      if (!client) throw new NotFoundError('No such client', 'invalid_client');
      return { client: toClient(client) };
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
  };
}

/** Validates a registration and builds the client, and its secret (shown once, stored only as a hash). */
function newClient(req: CreateClientRequest): { doc: ClientDoc; secret: string } {
  const name = req.name.trim();
  if (name.length < 1 || name.length > 100) throw new InvalidArgumentError('A name of 1 to 100 characters is required', 'invalid_name');
  // Users read this name on the consent page: no controls, no bidi tricks.
  if (hasUnsafeText(name)) throw new InvalidArgumentError('The name must not contain control characters or bidirectional formatting characters', 'invalid_name');
  const custom = Boolean(req.customConnection?.tenantId);
  if (!custom && (req.redirectUris.length < 1 || req.redirectUris.length > 20)) {
    throw new InvalidArgumentError('Between 1 and 20 redirect URIs are required', 'invalid_redirect_uri');
  }
  const redirectUris = [...new Set(req.redirectUris.map(checkRedirectUri))];
  const postLogoutRedirectUris = [...new Set(req.postLogoutRedirectUris.map(checkRedirectUri))];
  const type = req.type === ClientType.CLIENT_TYPE_PUBLIC ? ClientType.CLIENT_TYPE_PUBLIC : ClientType.CLIENT_TYPE_CONFIDENTIAL;
  const requested = (req.tokenEndpointAuthMethod || (type === ClientType.CLIENT_TYPE_PUBLIC ? 'none' : 'client_secret_basic')) as TokenEndpointAuthMethod;
  if (!AUTH_METHODS.includes(requested)) throw new InvalidArgumentError(`token_endpoint_auth_method must be one of ${AUTH_METHODS.join(', ')}`, 'invalid_client_metadata');
  if ((type === ClientType.CLIENT_TYPE_PUBLIC) !== (requested === 'none')) {
    throw new InvalidArgumentError('A public client authenticates with none; a confidential one with a secret or private_key_jwt', 'invalid_client_metadata');
  }
  if (req.pkceOptional && type === ClientType.CLIENT_TYPE_PUBLIC) {
    throw new InvalidArgumentError('PKCE is always required for public clients (OAuth 2.1)', 'invalid_client_metadata');
  }
  if (custom && type !== ClientType.CLIENT_TYPE_CONFIDENTIAL) {
    throw new InvalidArgumentError('A custom connection (client_credentials) must be a confidential client', 'invalid_client_metadata');
  }
  let jwks: JSONWebKeySet | null = null;
  if (requested === 'private_key_jwt') {
    jwks = parseJwks(req.jwksJson);
  } else if (req.jwksJson) {
    throw new InvalidArgumentError('jwks is only for private_key_jwt clients', 'invalid_client_metadata');
  }
  const secret = requested === 'client_secret_basic' || requested === 'client_secret_post' ? randomSecret(32) : '';
  const doc: ClientDoc = {
    _id: randomBytes(16).toString('hex').toUpperCase(),
    name,
    type,
    redirectUris,
    secretHash: secret ? sha256(secret) : '',
    tokenEndpointAuthMethod: requested,
    grantTypes: custom ? ['client_credentials'] : ['authorization_code', 'refresh_token'],
    createdAt: new Date(),
    pkceRequired: !req.pkceOptional,
    requirePar: req.requirePushedAuthorizationRequests,
    jwks,
    postLogoutRedirectUris,
    customConnection: null,
  };
  return { doc, secret };
}

/** A JWK Set of public signing keys only (no private parts, no symmetric keys). */
function parseJwks(json: string): JSONWebKeySet {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(json) as JSONWebKeySet;
  } catch {
    throw new InvalidArgumentError('jwks must be a JSON Web Key Set', 'invalid_client_metadata');
  }
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0 || jwks.keys.length > 10) {
    throw new InvalidArgumentError('jwks must hold 1 to 10 keys', 'invalid_client_metadata');
  }
  for (const key of jwks.keys) {
    if (key.kty === 'oct' || 'd' in key || 'p' in key || 'k' in key) {
      throw new InvalidArgumentError('jwks must hold public keys only', 'invalid_client_metadata');
    }
  }
  createLocalJWKSet(jwks);
  return jwks;
}

export function toClient(doc: ClientDoc): Client {
  return {
    clientId: doc._id,
    name: doc.name,
    type: doc.type,
    redirectUris: doc.redirectUris,
    tokenEndpointAuthMethod: doc.tokenEndpointAuthMethod,
    grantTypes: doc.grantTypes,
    createdAt: doc.createdAt,
    suspendedAt: doc.suspendedAt ?? undefined,
    pkceRequired: doc.pkceRequired !== false,
    requirePushedAuthorizationRequests: doc.requirePar === true,
    jwksJson: doc.jwks ? JSON.stringify(doc.jwks) : '',
    postLogoutRedirectUris: doc.postLogoutRedirectUris ?? [],
    ...(doc.customConnection ? { customConnection: doc.customConnection } : {}),
  };
}
