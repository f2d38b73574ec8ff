import type {} from '@ledgerly/devstack/vitest-infra';
import { inject, describe, expect, it, afterAll } from 'vitest';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { createLogger, EventBus, eventSubject } from '../src/index.js';

const logger = createLogger({ service: 'events-test', level: 'warn' });
const buses: EventBus[] = [];
async function bus(name: string) {
  const b = await EventBus.connect({ url: inject('natsUrl'), name, logger });
  buses.push(b);
  return b;
}
afterAll(async () => {
  for (const b of buses) await b.close();
});

function waitFor(predicate: () => boolean, ms = 5000) {
  return new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > ms) return reject(new Error('timed out'));
      setTimeout(tick, 10);
    };
    tick();
  });
}

describe('EventBus (real NATS JetStream)', () => {
  it('names subjects from the catalogue', () => {
    expect(eventSubject('connectionRevoked')).toBe('ledgerly.events.connection.revoked');
  });

  it('replays stored events to a late subscriber, fans out to every subscriber, and de-duplicates by id', async () => {
    const publisher = await bus('publisher');
    const since = new Date(Date.now() - 1000);
    const marker = `t-${Date.now()}`;
    const first = await publisher.publish({ $case: 'connectionRevoked', value: { connectionId: `${marker}-1`, tenantId: 'T' } });
    // Same id again: JetStream drops it inside the duplicate window.
    await publisher.publish({ $case: 'connectionRevoked', value: { connectionId: `${marker}-1`, tenantId: 'T' } }, first.id);
    await publisher.publish({ $case: 'membershipChanged', value: { userId: 'u', organisationId: 'o', role: 2 } });

    const seenA: Event[] = [];
    const seenB: Event[] = [];
    const a = await (await bus('a')).subscribe({ since, handle: (e) => void seenA.push(e) });
    const b = await (await bus('b')).subscribe({ since, handle: (e) => void seenB.push(e) });
    await a.caughtUp;
    await b.caughtUp;
    const mine = (events: Event[]) =>
      events.filter((e) => (e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId.startsWith(marker)) || e.payload?.$case === 'membershipChanged');
    expect(mine(seenA)).toHaveLength(2);
    expect(mine(seenB)).toHaveLength(2);

    await publisher.publish({ $case: 'connectionRevoked', value: { connectionId: `${marker}-2`, tenantId: 'T' } });
    await waitFor(() => mine(seenA).length === 3 && mine(seenB).length === 3);
    expect(seenA.at(-1)).toMatchObject({ source: 'publisher', payload: { $case: 'connectionRevoked', value: { connectionId: `${marker}-2` } } });
    await a.stop();
    await b.stop();
  });
});
