import { Event } from '@ledgerly/proto/events/v1/events';
import { describe, expect, it } from 'vitest';
import { ConnectionView, type AccessTokenClaims, type ConnectionCheck } from '../src/index.js';

const NOW = 1_800_000_000_000;

function claims(issuedAtMs: number): AccessTokenClaims {
  return {
    issuer: 'http://issuer',
    userId: 'u1',
    clientId: 'C1',
    scopes: new Set(['accounting.contacts']),
    tokenId: 'jti',
    issuedAt: Math.floor(issuedAtMs / 1000),
    issuedAtMs,
    expiresAt: Math.floor(issuedAtMs / 1000) + 1800,
    authTime: 0,
    authEventId: 'ae',
    grantId: 'g',
  };
}

function revoked(connectionId: string, at: number): Event {
  return Event.fromPartial({
    id: `e-${connectionId}-${at}`,
    payload: { $case: 'connectionRevoked', value: { connectionId, userId: 'u1', clientId: 'C1', tenantId: 'T1', revokedAt: new Date(at) } },
  });
}

function view(answers: ConnectionCheck[], clock = { now: NOW }) {
  const calls: string[] = [];
  const v = new ConnectionView({
    now: () => clock.now,
    check: async (userId, clientId, tenantId) => {
      calls.push(`${userId}/${clientId}/${tenantId}`);
      return answers.shift() ?? { connectionId: undefined, lastRevokedAt: undefined };
    },
  });
  return { v, calls, clock };
}

describe('ConnectionView', () => {
  it('asks the consent service once, then answers live from the view', async () => {
    const { v, calls } = view([{ connectionId: 'c1', lastRevokedAt: undefined }]);
    expect(await v.status(claims(NOW), 'T1')).toBe('live');
    expect(await v.status(claims(NOW), 'T1')).toBe('live');
    expect(calls).toEqual(['u1/C1/T1']);
  });

  it('refuses at once after a revocation event, as revoked for tokens issued before it', async () => {
    const { v, calls } = view([{ connectionId: 'c1', lastRevokedAt: undefined }, { connectionId: undefined, lastRevokedAt: NOW + 10 }]);
    expect(await v.status(claims(NOW - 1000), 'T1')).toBe('live');
    v.apply(revoked('c1', NOW + 10));
    expect(await v.status(claims(NOW - 1000), 'T1')).toBe('revoked');
    // Answered from the view: no second look-up.
    expect(await v.status(claims(NOW - 1000), 'T1')).toBe('revoked');
    expect(calls).toHaveLength(1);
  });

  it('never lets an answer that raced the revocation resurrect the connection', async () => {
    // The consent service answered "live, c1" just before the revocation, but the event arrives first.
    const { v } = view([{ connectionId: 'c1', lastRevokedAt: undefined }, { connectionId: 'c1', lastRevokedAt: undefined }]);
    v.apply(revoked('c1', NOW));
    expect(await v.status(claims(NOW - 5000), 'T1')).toBe('revoked');
  });

  it('tells "never connected" (403) from "revoked after the token was issued" (401)', async () => {
    const { v } = view([{ connectionId: undefined, lastRevokedAt: undefined }, { connectionId: undefined, lastRevokedAt: NOW - 60_000 }]);
    expect(await v.status(claims(NOW), 'T1')).toBe('not_connected');
    // A token issued after an old revocation never covered the tenant.
    expect(await v.status(claims(NOW), 'T2')).toBe('not_connected');
    const { v: v2 } = view([{ connectionId: undefined, lastRevokedAt: NOW - 60_000 }]);
    expect(await v2.status(claims(NOW - 120_000), 'T1')).toBe('revoked');
  });

  it('a reconnection (connection.created) is seen at once, not after the absent-answer cache expires', async () => {
    const { v, calls } = view([{ connectionId: undefined, lastRevokedAt: undefined }, { connectionId: 'c2', lastRevokedAt: undefined }]);
    expect(await v.status(claims(NOW), 'T1')).toBe('not_connected');
    v.apply(
      Event.fromPartial({ id: 'e2', payload: { $case: 'connectionCreated', value: { connectionId: 'c2', userId: 'u1', clientId: 'C1', tenantId: 'T1' } } }),
    );
    expect(await v.status(claims(NOW), 'T1')).toBe('live');
    // The event itself says which connection is live: no second look-up.
    expect(calls).toHaveLength(1);
  });

  it('a new connection supersedes a cached one that ended with its grant, so revoking the new one refuses at once', async () => {
    // c1 ended when its grant was revoked (grant.revoked: no connection event); the user consented again (c2).
    const { v } = view([{ connectionId: 'c1', lastRevokedAt: undefined }, { connectionId: undefined, lastRevokedAt: NOW + 20 }]);
    expect(await v.status(claims(NOW), 'T1')).toBe('live');
    const created = (id: string) => Event.fromPartial({ id: `e-${id}`, payload: { $case: 'connectionCreated', value: { connectionId: id, userId: 'u1', clientId: 'C1', tenantId: 'T1' } } });
    v.apply(created('c2'));
    expect(await v.status(claims(NOW + 10), 'T1')).toBe('live');
    v.apply(revoked('c2', NOW + 20));
    expect(await v.status(claims(NOW + 10), 'T1')).toBe('revoked');
    // A late revocation of an older connection never refuses a newer live one: it is asked again.
    const { v: v2, calls } = view([{ connectionId: 'c3', lastRevokedAt: undefined }]);
    v2.apply(created('c3'));
    v2.apply(revoked('c1', NOW - 5));
    expect(await v2.status(claims(NOW), 'T1')).toBe('live');
    expect(calls).toHaveLength(1);
  });

  it('keeps a token issued before a disconnect refused for that organisation after the user reconnects it', async () => {
    const created = (id: string) => Event.fromPartial({ id: `e-${id}`, payload: { $case: 'connectionCreated', value: { connectionId: id, userId: 'u1', clientId: 'C1', tenantId: 'T1' } } });
    const { v } = view([{ connectionId: 'c1', lastRevokedAt: undefined }]);
    expect(await v.status(claims(NOW), 'T1')).toBe('live');
    v.apply(revoked('c1', NOW + 10));
    v.apply(created('c2'));
    expect(await v.status(claims(NOW), 'T1')).toBe('revoked');
    expect(await v.status(claims(NOW + 20), 'T1')).toBe('live');
    // The same from the consent service's answer alone (a fresh instance), and when checking synchronously.
    const { v: fresh } = view([{ connectionId: 'c2', lastRevokedAt: NOW + 10 }, { connectionId: 'c2', lastRevokedAt: NOW + 10 }]);
    expect(await fresh.status(claims(NOW), 'T1')).toBe('revoked');
    expect(await fresh.statusNow(claims(NOW + 20), 'T1')).toBe('live');
  });

  it('re-checks a live answer after its TTL, and forgets tombstones once no token they affect can be valid', async () => {
    const clock = { now: NOW };
    const { v, calls } = view(
      [
        { connectionId: 'c1', lastRevokedAt: undefined },
        { connectionId: 'c1', lastRevokedAt: undefined },
      ],
      clock,
    );
    await v.status(claims(NOW), 'T1');
    clock.now += 61_000;
    await v.status(claims(NOW), 'T1');
    expect(calls).toHaveLength(2);
    v.apply(revoked('old', NOW));
    expect(v.size.tombstones).toBe(1);
    clock.now += 36 * 60_000;
    v.sweep();
    expect(v.size.tombstones).toBe(0);
  });

  it('stays bounded under a burst of revocations', () => {
    const v = new ConnectionView({ maxEntries: 1000, check: async () => ({ connectionId: undefined, lastRevokedAt: undefined }) });
    for (let i = 0; i < 20_000; i++) {
      v.apply(
        Event.fromPartial({
          id: `b${i}`,
          payload: { $case: 'connectionRevoked', value: { connectionId: `c${i}`, userId: 'u1', clientId: 'C1', tenantId: `T${i}`, revokedAt: new Date(NOW) } },
        }),
      );
    }
    expect(v.size.tombstones).toBeLessThanOrEqual(1_000_000);
    expect(v.size.absent).toBeLessThanOrEqual(1000);
  });
});

describe('bounded views never forget a revocation silently', () => {
  it('a view that had to drop live revocations for room says it is incomplete until they would have expired', async () => {
    const { RevocationView } = await import('../src/index.js');
    const clock = { now: NOW };
    const view = new RevocationView({ maxEntries: 100, now: () => clock.now });
    for (let i = 0; i < 100; i++) {
      view.apply(Event.fromPartial({ id: `t${i}`, payload: { $case: 'tokenRevoked', value: { tokenId: `jti-${i}`, expiresAt: new Date(NOW + 30 * 60_000), revokedAt: new Date(NOW) } } }));
    }
    expect(view.complete()).toBe(true);
    view.apply(Event.fromPartial({ id: 't-extra', payload: { $case: 'tokenRevoked', value: { tokenId: 'jti-extra', expiresAt: new Date(NOW + 30 * 60_000), revokedAt: new Date(NOW) } } }));
    expect(view.size.tokens).toBe(100);
    expect(view.complete()).toBe(false);
    clock.now += 36 * 60_000;
    expect(view.complete()).toBe(true);
  });

  it('the guard checks synchronously while a view is incomplete', async () => {
    const { AccessGuard, RevocationView } = await import('../src/index.js');
    const revocations = new RevocationView({ maxEntries: 1 });
    const guard = new AccessGuard({
      verifier: {} as never,
      connections: new ConnectionView({ check: async () => ({ connectionId: 'c', lastRevokedAt: undefined }) }),
      revocations,
      feed: { healthy: () => true, unhealthyForMs: () => 0 },
      staleAfterMs: 2000,
      checkToken: async () => ({ active: true, reason: '' }),
    });
    expect(guard.synchronous()).toBe(false);
    for (const id of ['g1', 'g2']) {
      revocations.apply(Event.fromPartial({ id, payload: { $case: 'grantRevoked', value: { grantId: id, revokedAt: new Date() } } }));
    }
    expect(guard.synchronous()).toBe(true);
  });
});
