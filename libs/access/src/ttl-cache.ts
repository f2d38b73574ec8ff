/**
 * A bounded map whose entries expire. Insertion-ordered: past maxEntries the
 * oldest entry goes, so memory stays bounded whatever the traffic.
 */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();
  /** Until when an entry dropped for room would still have been valid (0: none). */
  private evictedValidUntil = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: K, value: V, ttlMs = this.ttlMs): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
    if (this.entries.size > this.maxEntries) this.evictOldest();
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * False while an entry dropped for room (not expired) would still be valid:
   * the cache then no longer holds everything it was given. A cache of
   * refusals must not be trusted alone while this is false.
   */
  complete(): boolean {
    return this.evictedValidUntil <= this.now();
  }

  /** Drops expired entries (call now and then; reads drop them lazily too). */
  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  private evictOldest(): void {
    const oldest = this.entries.entries().next();
    if (oldest.done) return;
    const [key, entry] = oldest.value;
    if (entry.expiresAt > this.now()) this.evictedValidUntil = Math.max(this.evictedValidUntil, entry.expiresAt);
    this.entries.delete(key);
  }
}
