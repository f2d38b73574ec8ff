import { implement, OPERATOR, type AccessList, type ServiceImplementation } from '@ledgerly/chassis';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import { clientHandlers } from './clients.js';
import type { TokenDeps } from './deps.js';
import { grantHandlers } from './grants.js';
import { parHandlers } from './par.js';
import { tokenHandlers } from './tokens.js';

export type { TokenDeps } from './deps.js';

/** Who may call what (docs/security.md, "Who may call what"). */
export const TOKEN_ACCESS: AccessList<typeof TokenServiceDefinition> = {
  createClient: [OPERATOR],
  getClient: ['edge', OPERATOR],
  issueAuthorizationCode: ['edge'],
  exchangeAuthorizationCode: ['edge'],
  refreshAccessToken: ['edge'],
  clientCredentialsGrant: ['edge'],
  getJwks: ['edge', 'accounting', OPERATOR],
  revokeToken: ['edge'],
  introspectToken: ['edge'],
  checkToken: ['edge', 'accounting'],
  pushAuthorization: ['edge'],
  takePushedAuthorization: ['edge'],
  suspendClient: [OPERATOR],
  reinstateClient: [OPERATOR],
  rotateSigningKey: [OPERATOR],
};

export function tokenService(deps: TokenDeps): ServiceImplementation {
  return implement(
    TokenServiceDefinition,
    { ...clientHandlers(deps), ...grantHandlers(deps), ...tokenHandlers(deps), ...parHandlers(deps) },
    TOKEN_ACCESS,
  );
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
