import type { EventBus, Logger } from '@ledgerly/chassis';
import type { ConnectionDoc, ConnectionStore } from '../store/connections.js';

/**
 * Gets connection.revoked events from the connections collection to NATS.
 * Each revocation is written together with its event (same document, one
 * atomic update); this publishes it at once, and a relay loop re-sends any
 * that did not make it (NATS down, a crash in between). The event keeps its
 * id across attempts, so JetStream and consumers see it once.
 */
export class RevocationRelay {
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly store: ConnectionStore,
    private readonly events: EventBus,
    private readonly logger: Logger,
  ) {}

  /**
   * Publishes the connection's revocation and waits for JetStream to store it.
   * With markInBackground the write that marks it published does not hold up
   * the caller: if it is lost, the relay re-sends the event with the same id,
   * and JetStream and consumers drop the copy.
   */
  async publish(connection: ConnectionDoc, options: { markInBackground?: boolean } = {}): Promise<void> {
    const event = connection.revocationEvent;
    if (!event || event.published || this.inFlight.has(connection._id)) return;
    this.inFlight.add(connection._id);
    try {
      await this.events.publish(
        {
          $case: 'connectionRevoked',
          value: {
            connectionId: connection._id,
            grantId: connection.grantId,
            userId: connection.userId,
            clientId: connection.clientId,
            tenantId: connection.tenantId,
            revokedAt: connection.revokedAt ?? new Date(),
          },
        },
        event.id,
      );
      const marked = this.store.markRevocationPublished(connection._id);
      if (options.markInBackground) {
        void marked.catch((err: unknown) => this.logger.warn('Marking connection.revoked published failed; the relay will re-send it', { err }));
      } else {
        await marked;
      }
    } finally {
      this.inFlight.delete(connection._id);
    }
  }

  /** One pass of the relay: re-sends what is still unpublished. */
  async relayPending(): Promise<number> {
    let sent = 0;
    for (const connection of await this.store.unpublishedRevocations(200)) {
      try {
        await this.publish(connection);
        sent++;
      } catch (err) {
        this.logger.warn('Relaying connection.revoked failed; will retry', { connectionId: connection._id, err });
        break;
      }
    }
    return sent;
  }
}
