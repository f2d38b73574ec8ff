import type { AccessTokenVerifier } from '@ledgerly/access';
import type { Logger, Outbox, PromiseClient, ServiceHandlers } from '@ledgerly/chassis';
import type { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import type { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import type { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import type { TokenConfig } from '../config.js';
import type { ClientAuthContext } from '../domain/client-auth.js';
import type { SigningKeys } from '../domain/signing-keys.js';
import type { TokenIssuer } from '../domain/token-issuer.js';
import type { ClientStore } from '../store/clients.js';
import type { CodeStore } from '../store/codes.js';
import type { OneTimeStore } from '../store/one-time.js';
import type { PushedRequestStore } from '../store/pushed-requests.js';
import type { RefreshTokenStore } from '../store/refresh-tokens.js';
import type { RevokedTokenStore } from '../store/revoked-tokens.js';
import type { TokenFamilyStore } from '../store/token-families.js';

export interface TokenDeps {
  config: TokenConfig;
  clients: ClientStore;
  codes: CodeStore;
  refreshTokens: RefreshTokenStore;
  revokedTokens: RevokedTokenStore;
  families: TokenFamilyStore;
  pushedRequests: PushedRequestStore;
  assertionIds: OneTimeStore;
  keys: SigningKeys;
  issuer: TokenIssuer;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  outbox: Outbox;
  /** Verifies our own access tokens (revocation, introspection). */
  ownTokens: AccessTokenVerifier;
  logger: Logger;
}

export type TokenHandlers = ServiceHandlers<typeof TokenServiceDefinition>;

export function clientAuthContext(deps: TokenDeps): ClientAuthContext {
  return { clients: deps.clients, assertionIds: deps.assertionIds, issuer: deps.config.LEDGERLY_ISSUER };
}
