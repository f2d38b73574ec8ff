import { createClient, createLogger, EVENT_STREAM, EventBus, loadTls, type PromiseClient, type ServiceDefinition, type TlsMaterial } from '@ledgerly/chassis';
import { ensurePki, type Credentials } from '@ledgerly/pki';
import { Event } from '@ledgerly/proto/events/v1/events';
import type { Binary, Db } from 'mongodb';
import { join } from 'node:path';

/**
 * Helpers for the services' own suites, which run a service in-process on the
 * shared FerretDB and NATS of their vitest globalSetup.
 */

/**
 * A development PKI of a test file's own, under `dir` (test files run in
 * parallel: two of them creating one CA at once would race).
 */
export async function testPki(dir: string, identities: string[]) {
  const creds = await ensurePki(dir, identities);
  return {
    creds,
    tls: (identity: string): TlsMaterial => loadTls(creds[identity]!),
    /** The LEDGERLY_TLS_* settings of a service started with this identity's certificate. */
    env: (identity: string) => tlsEnv(creds[identity]!),
    /** A client over mutual TLS, presenting this identity's certificate. */
    client: <D extends ServiceDefinition>(definition: D, address: string, identity: string): PromiseClient<D> =>
      createClient(definition, address, { tls: loadTls(creds[identity]!) }),
  };
}

export function tlsEnv(c: Credentials): Record<string, string> {
  return { LEDGERLY_TLS_CA: c.caFile, LEDGERLY_TLS_CERT: c.certFile, LEDGERLY_TLS_KEY: c.keyFile };
}

/** A certificate with the right name but from another CA: the client trusts our CA, the server must refuse it. */
export async function foreignTls(dir: string, identity: string, trusted: TlsMaterial): Promise<TlsMaterial> {
  const other = await ensurePki(join(dir, `foreign-${identity.replace(':', '-')}`), [identity]);
  return { ...loadTls(other[identity]!), ca: trusted.ca };
}

/**
 * The raw JetStream stream, without the per-subscription de-duplication of
 * EventBus.subscribe: every stored copy of an event counts.
 */
export async function rawStream(natsUrl: string) {
  const bus = await EventBus.connect({ url: natsUrl, name: 'test-raw-stream', logger: createLogger({ service: 'test', level: 'error' }) });
  const jsm = await bus.nc.jetstreamManager();
  const lastSeq = async () => (await jsm.streams.info(EVENT_STREAM)).state.last_seq;
  return {
    lastSeq,
    /** Every event stored after sequence `after`. */
    async storedSince(after: number): Promise<Event[]> {
      const last = await lastSeq();
      const events: Event[] = [];
      for (let seq = after + 1; seq <= last; seq++) {
        const m = await jsm.streams.getMessage(EVENT_STREAM, { seq }).catch(() => undefined);
        if (m) events.push(Event.decode(m.data));
      }
      return events;
    },
    close: () => bus.close(),
  };
}

/** A record of a service's `outbox` collection (libs/chassis/src/outbox.ts). */
export interface OutboxRecord {
  _id: string;
  type: string;
  data: Binary;
  createdAt: Date;
  publishedAt: Date | null;
}

export function outboxOf(db: Db) {
  return db.collection<OutboxRecord>('outbox');
}

/** The events recorded in the outbox. */
export async function outboxEvents(db: Db, type: string): Promise<Event[]> {
  return (await outboxOf(db).find({ type }).toArray()).map((r) => Event.decode(r.data.buffer));
}
