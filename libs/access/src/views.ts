import { isRemoteError, Status, type EventBus, type EventSubscription, type PromiseClient } from '@ledgerly/chassis';
import type { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { Role, type IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { ACCESS_TOKEN_TTL_SECONDS } from './access-token.js';
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
