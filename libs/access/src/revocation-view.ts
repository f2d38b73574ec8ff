import type { Event } from '@ledgerly/proto/events/v1/events';
import { ACCESS_TOKEN_TTL_SECONDS, type AccessTokenClaims } from './access-token.js';
import { TtlCache } from './ttl-cache.js';

export type RevocationReason = 'token_revoked' | 'grant_revoked' | 'client_suspended' | 'user_disabled';

export interface RevocationViewOptions {
  /** Entries per kind before the oldest are dropped (default 1,000,000). */
  maxEntries?: number;
  now?: () => number;
}

/** Tokens live 30 minutes: a revocation older than this (plus skew) affects no valid token. */
const KEEP_MS = (ACCESS_TOKEN_TTL_SECONDS + 5 * 60) * 1000;

/**
 * The local view of token-level revocations, fed by events: revoked grants,
 * suspended clients, disabled users (each with the instant, so only tokens
 * issued before it are refused) and revoked token ids. Every entry is kept
 * only as long as a token it affects can be valid, so memory stays bounded;
 * past `maxEntries` per kind the oldest go first.
 *
 * Forgetting an entry after 35 minutes is safe because the issuers refuse new
 * tokens for suspended clients, disabled users and revoked grants, and a
 * revoked token id's entry lasts until that token's own expiry. An entry
 * dropped earlier, for room, makes the view incomplete (see complete()).
 */
export class RevocationView {
  private readonly grants: TtlCache<string, number>;
  private readonly clients: TtlCache<string, number>;
  private readonly users: TtlCache<string, number>;
  private readonly tokens: TtlCache<string, number>;
  private readonly now: () => number;

  constructor(options: RevocationViewOptions = {}) {
    this.now = options.now ?? Date.now;
    const max = options.maxEntries ?? 1_000_000;
    this.grants = new TtlCache(KEEP_MS, max, this.now);
    this.clients = new TtlCache(KEEP_MS, max, this.now);
    this.users = new TtlCache(KEEP_MS, max, this.now);
    this.tokens = new TtlCache(KEEP_MS, max, this.now);
  }

  /** Why the token is revoked, or undefined when nothing revokes it. */
  reasonFor(claims: AccessTokenClaims): RevocationReason | undefined {
    const issuedAtMs = claims.issuedAtMs;
    const before = (cache: TtlCache<string, number>, key: string) => {
      const at = key ? cache.get(key) : undefined;
      return at !== undefined && at >= issuedAtMs;
    };
    if (this.tokens.get(claims.tokenId) !== undefined) return 'token_revoked';
    if (before(this.grants, claims.grantId)) return 'grant_revoked';
    if (before(this.clients, claims.clientId)) return 'client_suspended';
    if (before(this.users, claims.userId)) return 'user_disabled';
    return undefined;
  }

  /** Applies a platform event; others are ignored. Idempotent. */
  apply(event: Event): void {
    const p = event.payload;
    const at = (d: Date | undefined) => (d ?? event.occurredAt ?? new Date(this.now())).getTime();
    switch (p?.$case) {
      case 'grantRevoked':
        this.grants.set(p.value.grantId, at(p.value.revokedAt));
        break;
      case 'clientSuspended':
        this.clients.set(p.value.clientId, at(p.value.suspendedAt));
        break;
      case 'userDisabled':
        this.users.set(p.value.userId, at(p.value.disabledAt));
        break;
      case 'tokenRevoked': {
        const expiresAt = p.value.expiresAt?.getTime() ?? this.now() + KEEP_MS;
        const ttl = Math.max(1, Math.min(KEEP_MS, expiresAt - this.now() + 5 * 60_000));
        this.tokens.set(p.value.tokenId, at(p.value.revokedAt), ttl);
        break;
      }
      default:
        break;
    }
  }

  /**
   * False while revocations had to be dropped for room before they expired
   * (more than maxEntries of a kind within 35 minutes): the view is then
   * incomplete, and access must be checked synchronously until they would
   * have expired (fail closed, never "forget" a revocation).
   */
  complete(): boolean {
    return this.grants.complete() && this.clients.complete() && this.users.complete() && this.tokens.complete();
  }

  get size(): { grants: number; clients: number; users: number; tokens: number } {
    return { grants: this.grants.size, clients: this.clients.size, users: this.users.size, tokens: this.tokens.size };
  }

  sweep(): void {
    for (const cache of [this.grants, this.clients, this.users, this.tokens]) cache.sweep();
  }
}
