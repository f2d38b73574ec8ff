import { Event } from '@ledgerly/proto/events/v1/events';
import { Binary, type Collection, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { EVENT_NAMES, type EventBus, type EventPayload } from './events.js';
import type { DeepPartial } from './grpc-types.js';
import type { Logger } from './logger.js';
import { SingleWriter } from './single-writer.js';

interface OutboxDoc {
  /** The event id. */
  _id: string;
  type: string;
  /** The protobuf-encoded Event. */
  data: Binary;
  createdAt: Date;
  publishedAt: Date | null;
}

/**
 * Applies an event's change to the service's own state. Must be idempotent:
 * the relay applies it again if the process died before the event was out.
 * Throwing a ServiceError (e.g. NOT_FOUND) means "nothing to do": the event
 * is dropped and the error goes to the caller.
 */
export type ApplyEvent = (event: Event) => Promise<void>;

export interface OutboxOptions {
  db: Db;
  events: EventBus;
  logger: Logger;
  /** Makes the state change of an event (see ApplyEvent). */
  apply: ApplyEvent;
  /** Pending events older than this are the relay's (default 2 s). */
  relayAfterMs?: number;
}

/**
 * Reliable publishing: an event is not lost when NATS is down, or the process
 * dies, at the moment of the change (docs/events.md, "Reliability").
 *
 * `commit` first writes the event, as an intent, to the service's own
 * `outbox` collection; then applies its change to the state; then publishes
 * it and waits for JetStream's acknowledgement. If NATS is down the call still
 * succeeds (the change is durable) and a relay, every second, applies again and
 * publishes whatever is still pending, with the same event id: JetStream and
 * the consumers drop the copies. Published events are forgotten after an hour
 * (the stream keeps them for 7 days).
 */
export class Outbox {
  private readonly outbox: Collection<OutboxDoc>;
  private readonly writer = new SingleWriter();
  private readonly relayAfterMs: number;

  /** Events whose immediate publish failed: relayed at the next chance, whatever their age. */
  private readonly deferred = new Set<string>();

  constructor(private readonly options: OutboxOptions) {
    this.outbox = options.db.collection<OutboxDoc>('outbox');
    this.relayAfterMs = options.relayAfterMs ?? 2000;
    // Back on NATS: deliver what waited at once, not at the next relay tick.
    options.events.onReconnect(() => {
      void this.relayPending().catch((err: unknown) => options.logger.warn('Outbox relay after reconnect failed', { err }));
    });
  }

  async ensureIndexes(): Promise<void> {
    await this.outbox.createIndex({ publishedAt: 1, createdAt: 1 }, { name: 'pending' });
  }

  /**
   * Records, applies and publishes one event. Resolves once the change is
   * durable; `published` says whether JetStream already has the event (when
   * false, the relay will deliver it).
   */
  async commit(payload: DeepPartial<EventPayload> & { $case: EventPayload['$case'] }): Promise<{ event: Event; published: boolean }> {
    const event = Event.fromPartial({ id: randomUUID(), occurredAt: new Date(), source: this.options.events.source, payload } as never);
    await this.outbox.insertOne({
      _id: event.id,
      type: EVENT_NAMES[payload.$case],
      data: new Binary(Event.encode(event).finish()),
      createdAt: new Date(),
      publishedAt: null,
    });
    try {
      await this.options.apply(event);
    } catch (err) {
      await this.outbox.deleteOne({ _id: event.id });
      throw err;
    }
    if (!this.options.events.isConnected()) {
      // Do not make the caller wait for a publish timeout: the relay sends it once NATS is back.
      this.options.logger.warn('NATS is down: publishing deferred to the outbox relay', { type: EVENT_NAMES[payload.$case], eventId: event.id });
      this.deferred.add(event.id);
      return { event, published: false };
    }
    const published = await this.publish(event).then(
      () => true,
      (err: unknown) => {
        this.options.logger.warn('Publishing deferred to the outbox relay', { type: EVENT_NAMES[payload.$case], eventId: event.id, err });
        this.deferred.add(event.id);
        return false;
      },
    );
    return { event, published };
  }

  private async publish(event: Event): Promise<void> {
    await this.writer.run(event.id, async () => {
      await this.options.events.publishEvent(event);
      await this.outbox.updateOne({ _id: event.id }, { $set: { publishedAt: new Date() } });
    });
  }

  /** One pass of the relay: applies again and publishes what is still pending. */
  async relayPending(limit = 500): Promise<number> {
    if (!this.options.events.isConnected()) return 0;
    const before = new Date(Date.now() - this.relayAfterMs);
    const pending = (await this.outbox.find({ publishedAt: null }).sort({ createdAt: 1 }).limit(limit).toArray()).filter(
      (doc) => doc.createdAt <= before || this.deferred.has(doc._id),
    );
    let sent = 0;
    for (const doc of pending) {
      const event = Event.decode(doc.data.buffer);
      try {
        await this.options.apply(event);
      } catch (err) {
        this.options.logger.warn('Outbox event no longer applies; dropped', { eventId: doc._id, type: doc.type, err });
        await this.outbox.deleteOne({ _id: doc._id });
        this.deferred.delete(doc._id);
        continue;
      }
      try {
        await this.publish(event);
        this.deferred.delete(doc._id);
        sent++;
      } catch (err) {
        this.options.logger.warn('Outbox relay could not publish; will retry', { eventId: doc._id, type: doc.type, err });
        break;
      }
    }
    return sent;
  }

  /** How many events wait for the relay. */
  pendingCount(): Promise<number> {
    return this.outbox.countDocuments({ publishedAt: null });
  }

  async sweepPublished(olderThanMs = 3600_000): Promise<number> {
    const result = await this.outbox.deleteMany({ publishedAt: { $ne: null, $lte: new Date(Date.now() - olderThanMs) } });
    return result.deletedCount;
  }
}
