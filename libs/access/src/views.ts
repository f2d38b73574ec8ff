import { isRemoteError, Status, type EventBus, type EventSubscription, type PromiseClient } from '@ledgerly/chassis';
import type { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { Role, type IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import type { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import type { JSONWebKeySet } from 'jose';
import { ACCESS_TOKEN_TTL_SECONDS, AccessTokenVerifier } from './access-token.js';
import { AccessGuard } from './check-access.js';
import { RevocationView } from './revocation-view.js';
import { ConnectionView } from './connection-view.js';
import { MembershipView } from './membership-view.js';

/** A connection view that asks the consent service on a miss. */
export function connectionViewOf(consent: PromiseClient<typeof ConsentServiceDefinition>): ConnectionView {
  return new ConnectionView({
    check: async (userId, clientId, tenantId) => {
      const res = await consent.checkConnection({ userId, clientId, tenantId });
      return { connectionId: res.connection?.id, lastRevokedAt: res.lastRevokedAt?.getTime() };
    },
  });
}

/** A membership view that asks the identity service on a miss. */
export function membershipViewOf(identity: PromiseClient<typeof IdentityServiceDefinition>): MembershipView {
  return new MembershipView({
    lookup: async (userId, organisationId) => {
      try {
        return (await identity.getMembership({ userId, organisationId })).membership?.role ?? Role.ROLE_UNSPECIFIED;
      } catch (err) {
        if (isRemoteError(err, Status.NOT_FOUND)) return Role.ROLE_UNSPECIFIED;
        throw err;
      }
    },
  });
}

/**
 * Feeds the views from the event stream, replaying every event that can
 * still matter (any token issued since could still be valid), so a restarted
 * instance refuses what was revoked while it was down. Serve only once
 * `caughtUp` has resolved.
 */
export function followEvents(events: EventBus, views: Array<{ apply(event: Event): void }>): Promise<EventSubscription> {
  return events.subscribe({
    since: new Date(Date.now() - (ACCESS_TOKEN_TTL_SECONDS + 5 * 60) * 1000),
    handle: (event) => {
      for (const view of views) view.apply(event);
    },
  });
}

export interface AccessDeps {
  token: PromiseClient<typeof TokenServiceDefinition>;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  /** Given, roles are checked too (the accounting service). */
  identity?: PromiseClient<typeof IdentityServiceDefinition>;
  events: EventBus;
  issuer: string;
  audience: string;
  staleAfterMs: number;
  /** Other views of this service fed by the same subscription. */
  alsoFeed?: Array<{ apply(event: Event): void }>;
}

/**
 * Everything a service needs to check access tokens, wired to the token,
 * consent (and identity) services and fed by the event stream: the guard,
 * and the subscription whose `caughtUp` the service must await before
 * reporting ready.
 */
export interface AccessChecks {
  guard: AccessGuard;
  subscription: EventSubscription;
  sweep: () => void;
  /** Entries in the views (for /healthz and the bounds tests). */
  sizes: () => { connections: ConnectionView['size']; revocations: RevocationView['size'] };
}

export async function startAccessChecks(deps: AccessDeps): Promise<AccessChecks> {
  const verifier = new AccessTokenVerifier({
    issuer: deps.issuer,
    audience: deps.audience,
    fetchJwks: async () => JSON.parse((await deps.token.getJwks({})).jwksJson) as JSONWebKeySet,
  });
  const connections = connectionViewOf(deps.consent);
  const revocations = new RevocationView();
  const memberships = deps.identity ? membershipViewOf(deps.identity) : undefined;
  const views: Array<{ apply(event: Event): void }> = [connections, revocations, ...(memberships ? [memberships] : [])];
  const subscription = await followEvents(deps.events, [
    ...views,
    ...(deps.alsoFeed ?? []),
    // A rotated key: fetch the JWKS again now rather than at the next unknown kid.
    { apply: (event) => void (event.payload?.$case === 'signingKeyRotated' && verifier.refreshSoon()) },
  ]);
  const guard = new AccessGuard({
    verifier,
    connections,
    revocations,
    ...(memberships ? { memberships } : {}),
    feed: deps.events,
    staleAfterMs: deps.staleAfterMs,
    checkToken: async (claims) =>
      deps.token.checkToken({
        tokenId: claims.tokenId,
        clientId: claims.clientId,
        userId: claims.userId,
        grantId: claims.grantId,
        issuedAt: new Date(claims.issuedAtMs),
      }),
  });
  return {
    guard,
    subscription,
    sweep: () => {
      connections.sweep();
      revocations.sweep();
    },
    sizes: () => ({ connections: connections.size, revocations: revocations.size }),
  };
}
