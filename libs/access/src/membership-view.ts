import type { Event } from '@ledgerly/proto/events/v1/events';
import { type Role } from '@ledgerly/proto/identity/v1/identity';
import { TtlCache } from './ttl-cache.js';

export interface MembershipViewOptions {
  /** Asks the identity service for the user's role there (ROLE_UNSPECIFIED: none). */
  lookup: (userId: string, organisationId: string) => Promise<Role>;
  /** How long an answer is reused (default 60 s); membership.changed drops it at once. */
  ttlMs?: number;
  maxEntries?: number;
}

/**
 * The local view of users' roles in organisations, kept current by
 * membership.changed events, so "what can this person do here" is checked
 * on every call without a round trip each time.
 */
export class MembershipView {
  private readonly roles: TtlCache<string, Role>;
  /** Bumped by each event for a key, so an answer that raced an event is not cached. */
  private readonly epochs: TtlCache<string, number>;

  constructor(private readonly options: MembershipViewOptions) {
    const ttl = options.ttlMs ?? 60_000;
    this.roles = new TtlCache(ttl, options.maxEntries ?? 100_000);
    this.epochs = new TtlCache(ttl * 2, options.maxEntries ?? 100_000);
  }

  async role(userId: string, organisationId: string): Promise<Role> {
    const key = `${userId}\u0000${organisationId}`;
    const cached = this.roles.get(key);
    if (cached !== undefined) return cached;
    const epoch = this.epochs.get(key) ?? 0;
    const role = await this.options.lookup(userId, organisationId);
    if ((this.epochs.get(key) ?? 0) === epoch) this.roles.set(key, role);
    return role;
  }

  /** Asks the identity service now, trusting no cached answer (for when the event feed is stale). */
  roleNow(userId: string, organisationId: string): Promise<Role> {
    return this.options.lookup(userId, organisationId);
  }

  apply(event: Event): void {
    if (event.payload?.$case === 'membershipChanged') {
      const { userId, organisationId } = event.payload.value;
      const key = `${userId}\u0000${organisationId}`;
      this.roles.delete(key);
      this.epochs.set(key, (this.epochs.get(key) ?? 0) + 1);
    }
  }
}
