import { Event } from '@ledgerly/proto/events/v1/events';
import {
  connect,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  nanos,
  type ConsumerMessages,
  type JetStreamClient,
  type KV,
  type JetStreamManager,
  type NatsConnection,
} from 'nats';
import { randomUUID } from 'node:crypto';
import type { DeepPartial } from './grpc-types.js';
import type { Logger } from './logger.js';

/** The one stream every event goes through (docs/events.md). */
export const EVENT_STREAM = 'LEDGERLY_EVENTS';
export const EVENT_SUBJECT_PREFIX = 'ledgerly.events.';

export type EventPayload = NonNullable<Event['payload']>;
export type EventType = EventPayload['$case'];

/** The catalogue: payload → subject suffix. Event names are constants. */
export const EVENT_NAMES: Readonly<Record<EventType, string>> = {
  connectionCreated: 'connection.created',
  connectionRevoked: 'connection.revoked',
  membershipChanged: 'membership.changed',
  grantRevoked: 'grant.revoked',
  tokenRevoked: 'token.revoked',
  clientSuspended: 'client.suspended',
  userDisabled: 'user.disabled',
  signingKeyRotated: 'signing_key.rotated',
  clientReinstated: 'client.reinstated',
};

export function eventSubject(type: EventType): string {
  return EVENT_SUBJECT_PREFIX + EVENT_NAMES[type];
}

export interface EventBusOptions {
  url: string;
  /** Client name shown by the NATS server, e.g. "edge". */
  name: string;
  logger: Logger;
  /** Replicas of the stream when this process has to create it (1 locally, 3 in production). */
  replicas?: number;
}

export type EventHandler = (event: Event) => void | Promise<void>;

export interface SubscribeOptions {
  /** Replay events that occurred since this instant, then follow new ones. */
  since: Date;
  handle: EventHandler;
}

export interface EventSubscription {
  /** Resolves once every event stored when subscribing has been handled. */
  readonly caughtUp: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Whether this instance can trust its event-fed views: connected to NATS, and
 * caught up with the stream (at start, and again after every reconnect).
 */
export interface FeedHealth {
  healthy(): boolean;
  /** Milliseconds the feed has been unhealthy (0 while healthy). */
  unhealthyForMs(): number;
}

/**
 * Publishes and consumes platform events through JetStream. Every instance
 * consumes through its own ordered consumer, so every instance of every
 * service sees every event, and one that was down replays what it missed.
 */
export class EventBus implements FeedHealth {
  private connected = true;
  /** Whether the subscription has handled everything the stream held when last checked. */
  private caughtUp = false;
  private subscribed = false;
  private unhealthySince: number | null = Date.now();
  private lastHandledSeq = 0;

  private constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly logger: Logger,
    readonly source: string,
  ) {}

  healthy(): boolean {
    return this.connected && (!this.subscribed || this.caughtUp);
  }

  /** Connected to NATS right now (publishing can be tried). */
  isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  unhealthyForMs(): number {
    return this.unhealthySince === null ? 0 : Date.now() - this.unhealthySince;
  }

  private updateHealth(): void {
    const healthy = this.healthy();
    if (healthy && this.unhealthySince !== null) {
      this.logger.info('Event feed healthy', { afterMs: Date.now() - this.unhealthySince });
      this.unhealthySince = null;
    } else if (!healthy && this.unhealthySince === null) {
      this.logger.warn('Event feed unhealthy', { connected: this.connected, caughtUp: this.caughtUp });
      this.unhealthySince = Date.now();
    }
  }

  /** After a reconnect: caught up again once everything stored meanwhile is handled. */
  private async recheckCaughtUp(): Promise<void> {
    if (!this.subscribed) return;
    try {
      const lastSeq = (await this.jsm.streams.info(EVENT_STREAM)).state.last_seq;
      this.pendingUntilSeq = lastSeq;
      if (this.lastHandledSeq >= lastSeq) this.caughtUp = true;
    } catch (err) {
      this.logger.warn('Could not check the event stream after reconnecting', { err });
    }
    this.updateHealth();
  }

  private pendingUntilSeq = 0;
  private readonly reconnectListeners: Array<() => void> = [];

  /** Called after every reconnect to NATS (the outbox relays at once then). */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  static async connect(options: EventBusOptions): Promise<EventBus> {
    const logger = options.logger.child({ component: 'events' });
    const nc = await connect({
      servers: options.url,
      name: options.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: false,
      // Notice a silent server (a partition) within about 2 s, not the default 4 minutes.
      pingInterval: 1000,
      maxPingOut: 2,
    });
    const jsm = await nc.jetstreamManager();
    const bus = new EventBus(nc, nc.jetstream(), jsm, logger, options.name);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'staleConnection') {
          logger.warn('NATS connection lost', { status: s.type });
          bus.connected = false;
          bus.caughtUp = false;
          bus.updateHealth();
        } else if (s.type === 'reconnect') {
          logger.info('NATS reconnected');
          bus.connected = true;
          void bus.recheckCaughtUp();
          for (const listener of bus.reconnectListeners) listener();
        }
      }
    })();
    await bus.ensureStream(options.replicas ?? 1);
    logger.info('NATS connected', { stream: EVENT_STREAM });
    return bus;
  }

  private async ensureStream(replicas: number): Promise<void> {
    try {
      await this.jsm.streams.info(EVENT_STREAM);
      return;
    } catch (err) {
      if (!/stream not found/i.test(String((err as Error).message))) throw err;
    }
    try {
      await this.jsm.streams.add({
        name: EVENT_STREAM,
        subjects: [EVENT_SUBJECT_PREFIX + '>'],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: replicas,
        // Longer than any token an event can affect may live (30 min), with room
        // for an instance that is down for a while to catch up.
        max_age: nanos(7 * 24 * 3600 * 1000),
        duplicate_window: nanos(2 * 60 * 1000),
      });
    } catch (err) {
      // Another instance created it first.
      if (!/already in use|exists/i.test(String((err as Error).message))) throw err;
    }
  }

  /**
   * Publishes an event and waits for JetStream to store it. State changes
   * that others must learn about go through an Outbox instead, which makes
   * sure the event is delivered even if this fails.
   */
  async publish(payload: DeepPartial<EventPayload> & { $case: EventType }, id: string = randomUUID()): Promise<Event> {
    const event = Event.fromPartial({ id, occurredAt: new Date(), source: this.source, payload } as never);
    await this.publishEvent(event);
    return event;
  }

  /** Publishes a built event (its id is the JetStream de-duplication id). */
  async publishEvent(event: Event): Promise<void> {
    const type = event.payload?.$case;
    if (!type) throw new TypeError('An event needs a payload');
    await this.js.publish(eventSubject(type), Event.encode(event).finish(), {
      msgID: event.id,
      expect: { streamName: EVENT_STREAM },
      timeout: 2000,
    });
    this.logger.debug('Event published', { type: EVENT_NAMES[type], eventId: event.id });
  }

  /**
   * Follows the stream from `since`. Each event id is handled at most once per
   * subscription, even when the ordered consumer re-delivers after a reset.
   */
  async subscribe(options: SubscribeOptions): Promise<EventSubscription> {
    const stream = await this.jsm.streams.info(EVENT_STREAM);
    const lastSeq = stream.state.last_seq;
    this.subscribed = true;
    this.pendingUntilSeq = lastSeq;
    let resolveCaughtUp!: () => void;
    const caughtUp = new Promise<void>((resolve) => (resolveCaughtUp = resolve));
    const markCaughtUp = () => {
      this.caughtUp = true;
      this.updateHealth();
      resolveCaughtUp();
    };
    if (lastSeq === 0) {
      markCaughtUp();
    } else {
      const last = await this.jsm.streams.getMessage(EVENT_STREAM, { seq: lastSeq }).catch(() => undefined);
      if (!last || last.time.getTime() < options.since.getTime()) markCaughtUp();
    }
    const consumer = await this.js.consumers.get(EVENT_STREAM, {
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: options.since.toISOString(),
    });
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 512, idle_heartbeat: 1000 });
    const seen = new BoundedSet(200_000);
    const done = (async () => {
      for await (const m of messages) {
        try {
          const event = Event.decode(m.data);
          if (event.id && !seen.has(event.id)) {
            seen.add(event.id);
            await options.handle(event);
          }
        } catch (err) {
          this.logger.error('Event handler failed', { err, seq: m.seq, subject: m.subject });
        }
        this.lastHandledSeq = Math.max(this.lastHandledSeq, m.seq);
        if (m.seq >= lastSeq) markCaughtUp();
        else if (!this.caughtUp && this.connected && m.seq >= this.pendingUntilSeq) markCaughtUp();
      }
    })();
    void (async () => {
      for await (const status of await messages.status()) {
        if (status.type === 'heartbeats_missed') {
          this.logger.warn('Event stream heartbeats missed', { missed: status.data });
          this.caughtUp = false;
          this.updateHealth();
          void this.recheckCaughtUp();
        }
      }
    })();
    return {
      caughtUp,
      stop: async () => {
        messages.stop();
        await done.catch(() => undefined);
      },
    };
  }

  /** Flushes what was published and closes the connection. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    await this.nc.drain();
  }
}

/**
 * Keys that may be used once within a time window, shared by every instance
 * of a service: a JetStream key-value bucket whose entries expire after the
 * window. `create` succeeds only if the key is absent, atomically on the
 * server, so of two instances offered the same key exactly one wins. Used for
 * DPoP proof ids (RFC 9449 §11.1). When NATS cannot answer, firstUse throws:
 * the caller fails closed.
 */
export class OnceKeys {
  private constructor(private readonly kv: KV) {}

  static async open(bus: EventBus, bucket: string, windowMs: number, maxBytes = 256 * 1024 * 1024): Promise<OnceKeys> {
    const kv = await bus.nc.jetstream().views.kv(bucket, { ttl: windowMs, history: 1, max_bytes: maxBytes, storage: StorageType.File });
    return new OnceKeys(kv);
  }

  /** True the first time `key` ([A-Za-z0-9_=-]) is offered within the window; false for a replay. */
  async firstUse(key: string): Promise<boolean> {
    try {
      await this.kv.create(key, EMPTY);
      return true;
    } catch (err) {
      // JetStream API error 10071: "wrong last sequence", i.e. the key exists.
      if (/wrong last sequence|10071/i.test((err as Error).message)) return false;
      throw err;
    }
  }
}

const EMPTY = new Uint8Array(0);

/** An insertion-ordered set that forgets its oldest members past a size. */
class BoundedSet {
  private readonly items = new Set<string>();
  constructor(private readonly max: number) {}
  has(value: string): boolean {
    return this.items.has(value);
  }
  add(value: string): void {
    this.items.add(value);
    if (this.items.size > this.max) {
      const oldest = this.items.values().next().value;
      if (oldest !== undefined) this.items.delete(oldest);
    }
  }
}
