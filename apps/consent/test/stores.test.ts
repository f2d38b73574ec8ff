// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createLogger, EVENT_STREAM, EventBus, sha256 } from '@ledgerly/chassis';
import { FlowState, type AuthorizationRequest } from '@ledgerly/proto/consent/v1/consent';
import { Event } from '@ledgerly/proto/events/v1/events';
import { MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RevocationRelay } from '../src/events/revocation-relay.js';
import { ConnectionStore, type ConnectionDoc } from '../src/store/connections.js';
import { FlowStore } from '../src/store/flows.js';

const logger = createLogger({ service: 'consent-test', level: 'error' });
let mongo: MongoClient;
let db: Db;
let flows: FlowStore;
let connections: ConnectionStore;

beforeAll(async () => {
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(`consent_stores_test_${Date.now()}`);
  flows = new FlowStore(db);
  connections = new ConnectionStore(db);
  await flows.ensureIndexes();
  await connections.ensureIndexes();
});

afterAll(async () => {
  await mongo?.close();
});

const request = (overrides: Partial<AuthorizationRequest> = {}): AuthorizationRequest => ({
  clientId: 'A'.repeat(32),
  redirectUri: 'https://app.example.com/callback',
  scopes: ['openid', 'accounting.contacts'],
  state: 'st',
  nonce: 'n',
  codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  codeChallengeMethod: 'S256',
  maxAge: -1,
  prompt: [],
  ...overrides,
});

const ids = () => ({
  userId: randomUUID(),
  clientId: randomUUID().replace(/-/g, '').toUpperCase(),
  tenantId: randomUUID(),
});

describe('FlowStore', () => {
  it('creates a flow in LOGIN_REQUIRED, or CONSENT_REQUIRED with a session, keeping only a hash of the browser binding', async () => {
    const binding = 'browser-binding-secret-value';
    const started = Date.now();
    const flow = await flows.create({
      request: request(),
      browserBinding: binding,
      ttlSeconds: 600,
    });
    expect(flow.state).toBe(FlowState.FLOW_STATE_LOGIN_REQUIRED);
    expect(flow.bindingHash).toBe(sha256(binding));
    expect(flow.csrfToken.length).toBeGreaterThanOrEqual(32);
    expect(flow.expiresAt.getTime() - started).toBeGreaterThanOrEqual(600_000 - 1000);
    expect(flow.expiresAt.getTime() - started).toBeLessThanOrEqual(600_000 + 1000);
    const stored = await flows.findLive(flow._id);
    expect(stored).toMatchObject({
      _id: flow._id,
      state: FlowState.FLOW_STATE_LOGIN_REQUIRED,
      request: request(),
    });
    expect(JSON.stringify(await db.collection('flows').findOne({ _id: flow._id as never }))).not.toContain(binding);

    const authTime = new Date(Date.now() - 60_000);
    const withSession = await flows.create({
      request: request(),
      browserBinding: binding,
      ttlSeconds: 600,
      session: { userId: 'u1', sessionId: 's1', authTime, amr: ['pwd'] },
    });
    expect(withSession).toMatchObject({
      state: FlowState.FLOW_STATE_CONSENT_REQUIRED,
      userId: 'u1',
      sessionId: 's1',
      amr: ['pwd'],
    });
    expect(withSession._id).not.toBe(flow._id);
    expect(await flows.findLive('')).toBeNull();
    expect(await flows.findLive('no-such-flow')).toBeNull();
  });

  it('transition is a compare-and-set under concurrency: of 10 racing transitions exactly one wins', async () => {
    for (let round = 0; round < 5; round++) {
      const flow = await flows.create({ request: request(), browserBinding: 'b'.repeat(20), ttlSeconds: 600 });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          flows.transition(flow._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED], { state: FlowState.FLOW_STATE_CONSENT_REQUIRED, userId: `user-${i}` }),
        ),
      );
      expect(results.filter((r) => r !== null)).toHaveLength(1);
    }
  });

  it('transition is a compare-and-set on the state: once moved on, a transition from the old state fails', async () => {
    const flow = await flows.create({
      request: request(),
      browserBinding: 'b'.repeat(20),
      ttlSeconds: 600,
    });
    const first = await flows.transition(flow._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED], {
      state: FlowState.FLOW_STATE_CONSENT_REQUIRED,
      userId: 'user-1',
    });
    expect(first).toMatchObject({
      _id: flow._id,
      state: FlowState.FLOW_STATE_CONSENT_REQUIRED,
      userId: 'user-1',
    });
    const second = await flows.transition(flow._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED], {
      state: FlowState.FLOW_STATE_CONSENT_REQUIRED,
      userId: 'user-2',
    });
    expect(second).toBeNull();
    expect(await flows.findLive(flow._id)).toMatchObject({
      state: FlowState.FLOW_STATE_CONSENT_REQUIRED,
      userId: 'user-1',
    });

    // A transition from a state the flow is not in changes nothing.
    expect(
      await flows.transition(flow._id, [FlowState.FLOW_STATE_CONSENTED], {
        state: FlowState.FLOW_STATE_COMPLETED,
      }),
    ).toBeNull();
    expect((await flows.findLive(flow._id))!.state).toBe(FlowState.FLOW_STATE_CONSENT_REQUIRED);
    // Any of several allowed states will do.
    const rejected = await flows.transition(flow._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED, FlowState.FLOW_STATE_CONSENT_REQUIRED], {
      state: FlowState.FLOW_STATE_REJECTED,
    });
    expect(rejected!.state).toBe(FlowState.FLOW_STATE_REJECTED);
  });

  it('does not find or transition an expired flow, and sweepExpired deletes only expired ones', async () => {
    const expired = await flows.create({
      request: request(),
      browserBinding: 'b'.repeat(20),
      ttlSeconds: 600,
    });
    const live = await flows.create({
      request: request(),
      browserBinding: 'b'.repeat(20),
      ttlSeconds: 600,
    });
    await db.collection('flows').updateOne({ _id: expired._id as never }, { $set: { expiresAt: new Date(Date.now() - 1) } });

    expect(await flows.findLive(expired._id)).toBeNull();
    expect(await flows.transition(expired._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED], { state: FlowState.FLOW_STATE_CONSENT_REQUIRED })).toBeNull();
    expect((await db.collection('flows').findOne({ _id: expired._id as never }))!['state']).toBe(FlowState.FLOW_STATE_LOGIN_REQUIRED);

    expect(await flows.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await db.collection('flows').countDocuments({ _id: expired._id as never })).toBe(0);
    expect(await flows.findLive(live._id)).not.toBeNull();
  });
});

describe('ConnectionStore', () => {
  it('upsertGrant keeps one grant per user and app, updating its scopes, even when first consents race', async () => {
    const { userId, clientId } = ids();
    const racing = await Promise.all(Array.from({ length: 5 }, () => connections.upsertGrant(userId, clientId, ['openid'])));
    expect(new Set(racing.map((g) => g._id)).size).toBe(1);
    const again = await connections.upsertGrant(userId, clientId, ['openid', 'accounting.contacts']);
    expect(again._id).toBe(racing[0]!._id);
    expect(again.scopes).toEqual(['openid', 'accounting.contacts']);
    expect(again.createdAt).toEqual(racing[0]!.createdAt);
    expect(await db.collection('grants').countDocuments({ userId, clientId })).toBe(1);

    const otherApp = await connections.upsertGrant(userId, `${clientId}X`, ['openid']);
    expect(otherApp._id).not.toBe(again._id);
  });

  it('a revocation racing a re-consent is never undone: what revoke reports stays revoked, with its event pending', async () => {
    for (let round = 0; round < 15; round++) {
      const { userId, clientId, tenantId } = ids();
      const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
      const base = { grantId: grant._id, userId, clientId, tenantId, tenantName: 'Race Ltd' };
      const { connection } = await connections.connect({ ...base, authEventId: 'e1' });
      const [revoked] = await Promise.all([connections.revoke(connection._id, userId, clientId), connections.connect({ ...base, authEventId: 'e2' })]);
      if (revoked) {
        const stored = await db.collection('connections').findOne({ _id: connection._id as never });
        expect(stored).toMatchObject({ key: `revoked:${connection._id}`, revokedAt: expect.any(Date), revocationEvent: { published: false } });
      }
    }
  });

  it('connect keeps one live connection per user, app and tenant, refreshing its auth event', async () => {
    const { userId, clientId, tenantId } = ids();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const base = {
      grantId: grant._id,
      userId,
      clientId,
      tenantId,
      tenantName: 'Demo Ltd',
    };
    const first = await connections.connect({
      ...base,
      authEventId: 'event-1',
    });
    expect(first.created).toBe(true);
    expect(first.connection).toMatchObject({
      userId,
      clientId,
      tenantId,
      tenantType: 'ORGANISATION',
      authEventId: 'event-1',
    });
    // Null, or absent: FerretDB 1.x drops null values written by $setOnInsert; every query treats both alike.
    expect(first.connection.revokedAt ?? null).toBeNull();
    const second = await connections.connect({
      ...base,
      tenantName: 'Renamed Ltd',
      authEventId: 'event-2',
    });
    expect(second.created).toBe(false);
    expect(second.connection).toMatchObject({
      _id: first.connection._id,
      tenantName: 'Renamed Ltd',
      authEventId: 'event-2',
    });
    expect(await db.collection('connections').countDocuments({ userId, clientId, tenantId })).toBe(1);
    expect((await connections.findLive(userId, clientId, tenantId))!._id).toBe(first.connection._id);

    // Racing connects of a new tenant still agree on one connection.
    const tenant2 = randomUUID();
    const racing = await Promise.all(Array.from({ length: 5 }, () => connections.connect({ ...base, tenantId: tenant2, authEventId: 'e3' })));
    expect(new Set(racing.map((r) => r.connection._id)).size).toBe(1);
    expect(racing.filter((r) => r.created)).toHaveLength(1);

    expect((await connections.listLive(userId, clientId)).map((c) => c.tenantId)).toEqual([tenantId, tenant2]);
    expect((await connections.listLive(userId, clientId, 'e3')).map((c) => c.tenantId)).toEqual([tenant2]);
    expect(await connections.listLive(userId, 'other-client')).toEqual([]);
  });

  it('revoke marks the connection revoked with a pending event, frees the key for a new connection, and records lastRevokedAt', async () => {
    const { userId, clientId, tenantId } = ids();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const base = {
      grantId: grant._id,
      userId,
      clientId,
      tenantId,
      tenantName: 'Demo Ltd',
      authEventId: 'e1',
    };
    const { connection } = await connections.connect(base);
    expect(await connections.lastRevokedAt(userId, clientId, tenantId)).toBeNull();

    // Only the owner (user and app) can revoke it.
    expect(await connections.revoke(connection._id, 'someone-else', clientId)).toBeNull();
    expect(await connections.revoke(connection._id, userId, 'another-app')).toBeNull();

    const revoked = await connections.revoke(connection._id, userId, clientId);
    expect(revoked).not.toBeNull();
    expect(revoked!.revokedAt).toBeInstanceOf(Date);
    expect(revoked!.key).toBe(`revoked:${connection._id}`);
    expect(revoked!.revocationEvent).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      published: false,
    });
    expect(await connections.findLive(userId, clientId, tenantId)).toBeNull();
    expect(await connections.listLive(userId, clientId)).toEqual([]);
    expect((await connections.lastRevokedAt(userId, clientId, tenantId))!.getTime()).toBe(revoked!.revokedAt!.getTime());
    // Revoking twice: there is no live connection any more.
    expect(await connections.revoke(connection._id, userId, clientId)).toBeNull();

    const reconnected = await connections.connect({
      ...base,
      authEventId: 'e2',
    });
    expect(reconnected.created).toBe(true);
    expect(reconnected.connection._id).not.toBe(connection._id);
    expect((await connections.listLive(userId, clientId)).map((c) => c._id)).toEqual([reconnected.connection._id]);

    await new Promise((r) => setTimeout(r, 5));
    const revokedAgain = await connections.revoke(reconnected.connection._id, userId, clientId);
    expect((await connections.lastRevokedAt(userId, clientId, tenantId))!.getTime()).toBe(revokedAgain!.revokedAt!.getTime());
    expect(revokedAgain!.revokedAt!.getTime()).toBeGreaterThan(revoked!.revokedAt!.getTime());
  });
});

describe('RevocationRelay (real NATS JetStream)', () => {
  let bus: EventBus;
  let relay: RevocationRelay;

  beforeAll(async () => {
    bus = await EventBus.connect({
      url: inject('natsUrl'),
      name: 'consent',
      logger,
    });
    relay = new RevocationRelay(connections, bus, logger);
  });
  afterAll(async () => {
    await bus?.close();
  });

  async function revokedConnection(): Promise<ConnectionDoc> {
    const { userId, clientId, tenantId } = ids();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const { connection } = await connections.connect({
      grantId: grant._id,
      userId,
      clientId,
      tenantId,
      tenantName: 'T',
      authEventId: 'e',
    });
    return (await connections.revoke(connection._id, userId, clientId))!;
  }

  /** Every event stored in the stream after sequence `after`. */
  async function storedSince(after: number): Promise<Event[]> {
    const jsm = await bus.nc.jetstreamManager();
    const last = (await jsm.streams.info(EVENT_STREAM)).state.last_seq;
    const events: Event[] = [];
    for (let seq = after + 1; seq <= last; seq++) {
      const m = await jsm.streams.getMessage(EVENT_STREAM, { seq }).catch(() => undefined);
      if (m) events.push(Event.decode(m.data));
    }
    return events;
  }
  const lastSeq = async () => (await (await bus.nc.jetstreamManager()).streams.info(EVENT_STREAM)).state.last_seq;

  it('publishes connection.revoked with the stored event id and marks it published', async () => {
    const revoked = await revokedConnection();
    const before = await lastSeq();
    await relay.publish(revoked);
    const mine = (await storedSince(before)).filter((e) => e.id === revoked.revocationEvent!.id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      source: 'consent',
      payload: {
        $case: 'connectionRevoked',
        value: {
          connectionId: revoked._id,
          grantId: revoked.grantId,
          userId: revoked.userId,
          clientId: revoked.clientId,
          tenantId: revoked.tenantId,
          revokedAt: revoked.revokedAt,
        },
      },
    });
    const doc = await db.collection<ConnectionDoc>('connections').findOne({ _id: revoked._id });
    expect(doc!.revocationEvent).toEqual({
      id: revoked.revocationEvent!.id,
      published: true,
    });
    expect((await connections.unpublishedRevocations(1000)).map((c) => c._id)).not.toContain(revoked._id);
  });

  it('relayPending re-sends unpublished revocations; a second send of the same event is de-duplicated by JetStream', async () => {
    const a = await revokedConnection();
    const b = await revokedConnection();
    const before = await lastSeq();
    expect((await connections.unpublishedRevocations(1000)).map((c) => c._id)).toEqual(expect.arrayContaining([a._id, b._id]));
    expect(await relay.relayPending()).toBeGreaterThanOrEqual(2);
    expect(await connections.unpublishedRevocations(1000)).toEqual([]);

    // As if the process died between publishing and marking: the relay sends it again, with the same id.
    await db.collection<ConnectionDoc>('connections').updateOne({ _id: a._id }, { $set: { 'revocationEvent.published': false } });
    expect(await relay.relayPending()).toBe(1);
    // And a direct publish of an already-published revocation is a no-op.
    await relay.publish((await db.collection<ConnectionDoc>('connections').findOne({ _id: b._id }))!);

    const stored = await storedSince(before);
    expect(stored.filter((e) => e.id === a.revocationEvent!.id)).toHaveLength(1);
    expect(stored.filter((e) => e.id === b.revocationEvent!.id)).toHaveLength(1);
    expect(stored.filter((e) => e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId === a._id)).toHaveLength(1);
  });
});
