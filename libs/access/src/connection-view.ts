import type { Event } from '@ledgerly/proto/events/v1/events';
import { ACCESS_TOKEN_TTL_SECONDS, type AccessTokenClaims } from './access-token.js';
import { TtlCache } from './ttl-cache.js';

/** What the consent service says about (user, app, organisation) now. */
export interface ConnectionCheck {
  /** The live connection's id, if there is one. */
  connectionId: string | undefined;
  /** When the latest connection for the key was revoked (ms), if ever. */
  lastRevokedAt: number | undefined;
}

/**
 * - live: the token may act on the organisation.
 * - revoked: it could, until the user disconnected the app after the token
 *   was issued (RFC 6750 invalid_token, 401).
 * - not_connected: the user never connected the app to it (403).
 */
export type ConnectionStatus = 'live' | 'revoked' | 'not_connected';

export interface ConnectionViewOptions {
  /** Asks the consent service (over gRPC). */
  check: (userId: string, clientId: string, tenantId: string) => Promise<ConnectionCheck>;
  /** How long a live answer is reused (default 60 s). A revocation event drops it at once. */
  liveTtlMs?: number;
  /** How long a "no live connection" answer is reused (default 5 s). A connection event drops it. */
  absentTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

/**
 * The local view of which connections are live, kept current by
 * connection.* events. Revocations are kept as tombstones, by connection id,
 * for as long as any token they affect can be valid: an answer that was in
 * flight while a revocation arrived can never resurrect the connection.
 */
export class ConnectionView {
  private readonly live: TtlCache<string, string>;
  private readonly absent: TtlCache<string, number | undefined>;
  private readonly tombstones: TtlCache<string, number>;
  /** Bumped by each connection.created for a key, so an answer that raced it is not cached. */
  private readonly epochs: TtlCache<string, number>;
  /**
   * When a connection of the key was last revoked (ms), for as long as a
   * token issued before it can be valid: a token issued before a disconnect
   * stays refused for that organisation even after the user reconnects it.
   */
  private readonly lastRevoked: TtlCache<string, number>;
  private readonly now: () => number;

  constructor(private readonly options: ConnectionViewOptions) {
    this.now = options.now ?? Date.now;
    const max = options.maxEntries ?? 200_000;
    this.live = new TtlCache(options.liveTtlMs ?? 60_000, max, this.now);
    this.absent = new TtlCache(options.absentTtlMs ?? 5_000, max, this.now);
    // Tokens live 30 minutes; keep tombstones a little longer for clock skew.
    this.tombstones = new TtlCache((ACCESS_TOKEN_TTL_SECONDS + 5 * 60) * 1000, Math.max(max, 1_000_000), this.now);
    this.epochs = new TtlCache(60_000, max, this.now);
    this.lastRevoked = new TtlCache((ACCESS_TOKEN_TTL_SECONDS + 5 * 60) * 1000, Math.max(max, 1_000_000), this.now);
  }

  /** Live, unless a connection of the key was revoked after this token was issued. */
  private liveFor(key: string, claims: AccessTokenClaims, revokedAt = 0): ConnectionStatus {
    const last = Math.max(this.lastRevoked.get(key) ?? 0, revokedAt);
    return last > 0 && last >= claims.issuedAtMs ? 'revoked' : 'live';
  }

  private noteRevoked(key: string, at: number | undefined): void {
    if (at && at > (this.lastRevoked.get(key) ?? 0)) this.lastRevoked.set(key, at);
  }

  async status(claims: AccessTokenClaims, tenantId: string): Promise<ConnectionStatus> {
    const key = connectionKey(claims.userId, claims.clientId, tenantId);
    const liveId = this.live.get(key);
    if (liveId !== undefined) {
      if (this.tombstones.get(liveId) === undefined) return this.liveFor(key, claims);
      this.live.delete(key);
    } else {
      const revokedAt = this.absent.get(key);
      if (revokedAt !== undefined) return classify(revokedAt, claims);
    }
    const epoch = this.epochs.get(key) ?? 0;
    const result = await this.options.check(claims.userId, claims.clientId, tenantId);
    this.noteRevoked(key, result.lastRevokedAt);
    const tombstone = result.connectionId ? this.tombstones.get(result.connectionId) : undefined;
    if (result.connectionId && tombstone === undefined) {
      this.live.set(key, result.connectionId);
      return this.liveFor(key, claims);
    }
    const revokedAt = Math.max(result.lastRevokedAt ?? 0, tombstone ?? 0);
    if ((this.epochs.get(key) ?? 0) === epoch) this.absent.set(key, revokedAt);
    return classify(revokedAt, claims);
  }

  /**
   * Asks the consent service now, trusting no cached answer (for when the
   * event feed is stale). Tombstones still apply: they only ever refuse.
   */
  async statusNow(claims: AccessTokenClaims, tenantId: string): Promise<ConnectionStatus> {
    const key = connectionKey(claims.userId, claims.clientId, tenantId);
    const result = await this.options.check(claims.userId, claims.clientId, tenantId);
    const tombstone = result.connectionId ? this.tombstones.get(result.connectionId) : undefined;
    if (result.connectionId && tombstone === undefined) return this.liveFor(key, claims, result.lastRevokedAt);
    return classify(Math.max(result.lastRevokedAt ?? 0, tombstone ?? 0), claims);
  }

  /** Applies a platform event; others are ignored. Idempotent. */
  apply(event: Event): void {
    const payload = event.payload;
    if (payload?.$case === 'connectionRevoked') {
      const { connectionId, userId, clientId, tenantId, revokedAt } = payload.value;
      const at = (revokedAt ?? event.occurredAt ?? new Date(this.now())).getTime();
      this.tombstones.set(connectionId, at);
      const key = connectionKey(userId, clientId, tenantId);
      this.noteRevoked(key, at);
      // Whatever is cached for the key is asked again: it may be this
      // connection, or one that a grant revocation ended without a
      // connection event of its own. "Absent" only when this was the one.
      const cached = this.live.get(key);
      this.live.delete(key);
      if (cached === undefined || cached === connectionId) this.absent.set(key, at);
    } else if (payload?.$case === 'connectionCreated') {
      const { connectionId, userId, clientId, tenantId } = payload.value;
      const key = connectionKey(userId, clientId, tenantId);
      this.absent.delete(key);
      // The new connection supersedes any cached one (an older connection of
      // the key can only have ended, e.g. with its grant).
      if (connectionId && this.tombstones.get(connectionId) === undefined) this.live.set(key, connectionId);
      else this.live.delete(key);
      this.epochs.set(key, (this.epochs.get(key) ?? 0) + 1);
    }
  }

  /** False while revocation tombstones were dropped for room before they expired (see RevocationView.complete). */
  complete(): boolean {
    return this.tombstones.complete() && this.lastRevoked.complete();
  }

  /** Entries held, for benchmarks and bounds tests. */
  get size(): { live: number; absent: number; tombstones: number } {
    return { live: this.live.size, absent: this.absent.size, tombstones: this.tombstones.size };
  }

  sweep(): void {
    this.live.sweep();
    this.absent.sweep();
    this.tombstones.sweep();
    this.lastRevoked.sweep();
  }
}

function connectionKey(userId: string, clientId: string, tenantId: string): string {
  return `${userId}\u0000${clientId}\u0000${tenantId}`;
}

/** A token issued (iat, seconds) before the revocation (ms) was revoked; otherwise it never covered the tenant. */
function classify(revokedAtMs: number, claims: AccessTokenClaims): ConnectionStatus {
  return revokedAtMs > 0 && revokedAtMs >= claims.issuedAtMs ? 'revoked' : 'not_connected';
}
