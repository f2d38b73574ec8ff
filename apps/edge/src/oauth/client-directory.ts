import { TtlCache } from '@ledgerly/access';
import { isRemoteError, Status, type PromiseClient } from '@ledgerly/chassis';
import type { Event } from '@ledgerly/proto/events/v1/events';
import type { Client, TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';

/**
 * Public client metadata (name, redirect URIs), from the token service,
 * remembered for a minute: /authorize and every API response's ProviderName
 * need it.
 */
export class ClientDirectory {
  private readonly cache = new TtlCache<string, Client | null>(60_000, 10_000);

  constructor(private readonly token: PromiseClient<typeof TokenServiceDefinition>) {}

  /** A suspended or reinstated client is looked up again at once. */
  apply(event: Event): void {
    const p = event.payload;
    if (p?.$case === 'clientSuspended' || p?.$case === 'clientReinstated') this.cache.delete(p.value.clientId);
  }

  async find(clientId: string): Promise<Client | null> {
    if (!/^[0-9A-F]{32}$/.test(clientId)) return null;
    const cached = this.cache.get(clientId);
    if (cached !== undefined) return cached;
    try {
      const { client } = await this.token.getClient({ clientId });
      this.cache.set(clientId, client ?? null);
      return client ?? null;
    } catch (err) {
      if (isRemoteError(err, Status.NOT_FOUND)) {
        this.cache.set(clientId, null, 5_000);
        return null;
      }
      throw err;
    }
  }
}
