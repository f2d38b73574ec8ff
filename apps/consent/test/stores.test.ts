// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createLogger, EventBus, NotFoundError, Outbox, sha256 } from '@ledgerly/chassis';
import { FlowState, type AuthorizationRequest } from '@ledgerly/proto/consent/v1/consent';
import { Event } from '@ledgerly/proto/events/v1/events';
import { Binary, MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applyConsentEvent } from '../src/grpc/consent-service.js';
import { ConnectionStore } from '../src/store/connections.js';
import { FlowStore } from '../src/store/flows.js';
import { outboxOf, rawStream } from './support.js';

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
  dpopJkt: '',
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
  /** A grant, and a live connection of it to a new tenant. */
  async function connectedTenant(key = ids()) {
    const { userId, clientId, tenantId } = key;
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const base = { grantId: grant._id, userId, clientId, tenantId, tenantName: 'Demo Ltd', authEventId: 'e1' };
    const { connection, created } = await connections.connect({ ...base, connectionId: randomUUID() });
    expect(created).toBe(true);
    return { userId, clientId, tenantId, grant, base, connection };
  }

  it('upsertGrant keeps one grant per user and app, updating its scopes, even when first consents race', async () => {
    const { userId, clientId } = ids();
    const racing = await Promise.all(Array.from({ length: 5 }, () => connections.upsertGrant(userId, clientId, ['openid'])));
    expect(new Set(racing.map((g) => g._id)).size).toBe(1);
    const again = await connections.upsertGrant(userId, clientId, ['openid', 'accounting.contacts']);
    expect(again._id).toBe(racing[0]!._id);
    expect(again.scopes).toEqual(['openid', 'accounting.contacts']);
    expect(again.createdAt).toEqual(racing[0]!.createdAt);
    expect(await db.collection('grants').countDocuments({ userId, clientId })).toBe(1);
    expect(await connections.findLiveGrant(userId, clientId)).toMatchObject({ _id: again._id, key: `${userId}|${clientId}` });
    expect(await connections.findGrant(again._id)).toMatchObject({ _id: again._id, scopes: ['openid', 'accounting.contacts'] });
    expect(await connections.findGrant(randomUUID())).toBeNull();

    const otherApp = await connections.upsertGrant(userId, `${clientId}X`, ['openid']);
    expect(otherApp._id).not.toBe(again._id);
  });

  it('connect creates the connection with the id given, then keeps one live connection per user, app and tenant, refreshing its auth event', async () => {
    const { userId, clientId, tenantId } = ids();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const base = {
      grantId: grant._id,
      userId,
      clientId,
      tenantId,
      tenantName: 'Demo Ltd',
    };
    const connectionId = randomUUID();
    const first = await connections.connect({
      ...base,
      connectionId,
      authEventId: 'event-1',
    });
    expect(first.created).toBe(true);
    expect(first.connection).toMatchObject({
      _id: connectionId,
      key: `${userId}|${clientId}|${tenantId}`,
      userId,
      clientId,
      tenantId,
      tenantType: 'ORGANISATION',
      authEventId: 'event-1',
    });
    // Null, or absent: FerretDB 1.x drops null values written by $setOnInsert; every query treats both alike.
    expect(first.connection.revokedAt ?? null).toBeNull();
    // Another id for the same key: the live connection is refreshed, not replaced.
    const second = await connections.connect({
      ...base,
      connectionId: randomUUID(),
      tenantName: 'Renamed Ltd',
      authEventId: 'event-2',
    });
    expect(second.created).toBe(false);
    expect(second.connection).toMatchObject({
      _id: connectionId,
      tenantName: 'Renamed Ltd',
      authEventId: 'event-2',
    });
    expect(await db.collection('connections').countDocuments({ userId, clientId, tenantId })).toBe(1);
    expect((await connections.findLive(userId, clientId, tenantId))!._id).toBe(connectionId);
    expect(await connections.find(connectionId)).toMatchObject({ _id: connectionId, authEventId: 'event-2' });
    expect(await connections.find(randomUUID())).toBeNull();

    // Racing connects of a new tenant, each with its own new id, still agree on one connection.
    const tenant2 = randomUUID();
    const racing = await Promise.all(
      Array.from({ length: 5 }, () => connections.connect({ ...base, connectionId: randomUUID(), tenantId: tenant2, authEventId: 'e3' })),
    );
    expect(new Set(racing.map((r) => r.connection._id)).size).toBe(1);
    expect(racing.filter((r) => r.created)).toHaveLength(1);
    expect(racing.find((r) => r.created)!.connection._id).toBe(racing[0]!.connection._id);

    expect((await connections.listLive(userId, clientId)).map((c) => c.tenantId)).toEqual([tenantId, tenant2]);
    expect((await connections.listLive(userId, clientId, 'e3')).map((c) => c.tenantId)).toEqual([tenant2]);
    expect(await connections.listLive(userId, 'other-client')).toEqual([]);
  });

  it('revoke marks the connection revoked as of the given time, idempotently, frees the key for a new connection, and records lastRevokedAt', async () => {
    const { userId, clientId, tenantId, base, connection } = await connectedTenant();
    expect(await connections.lastRevokedAt(userId, clientId, tenantId)).toBeNull();
    expect(await connections.revoke(randomUUID(), new Date())).toBe(false);

    const at = new Date(Date.now() - 5000);
    expect(await connections.revoke(connection._id, at)).toBe(true);
    const revoked = (await connections.find(connection._id))!;
    expect(revoked).toMatchObject({ key: `revoked:${connection._id}`, revokedAt: at, updatedAt: at });
    expect(await connections.findLive(userId, clientId, tenantId)).toBeNull();
    expect(await connections.listLive(userId, clientId)).toEqual([]);
    expect(await connections.lastRevokedAt(userId, clientId, tenantId)).toEqual(at);
    // Revoking again (the outbox relay applies an event again) keeps the first revocation.
    expect(await connections.revoke(connection._id, new Date())).toBe(true);
    expect((await connections.find(connection._id))!.revokedAt).toEqual(at);

    const reconnected = await connections.connect({
      ...base,
      connectionId: randomUUID(),
      authEventId: 'e2',
    });
    expect(reconnected.created).toBe(true);
    expect(reconnected.connection._id).not.toBe(connection._id);
    expect((await connections.listLive(userId, clientId)).map((c) => c._id)).toEqual([reconnected.connection._id]);

    const later = new Date();
    expect(await connections.revoke(reconnected.connection._id, later)).toBe(true);
    expect(await connections.lastRevokedAt(userId, clientId, tenantId)).toEqual(later);
  });

  it('a revocation racing a re-consent is never undone: the revoked connection stays revoked, and at most one live one remains', async () => {
    for (let round = 0; round < 15; round++) {
      const { userId, clientId, tenantId, base, connection } = await connectedTenant();
      const newId = randomUUID();
      const [revoked, reconnect] = await Promise.all([
        connections.revoke(connection._id, new Date()),
        connections.connect({ ...base, connectionId: newId, authEventId: 'e2' }),
      ]);
      expect(revoked).toBe(true);
      expect(await db.collection('connections').findOne({ _id: connection._id as never })).toMatchObject({
        key: `revoked:${connection._id}`,
        revokedAt: expect.any(Date),
      });
      const live = await connections.findLive(userId, clientId, tenantId);
      // Either the re-consent came first (it refreshed the connection, which was then revoked), or it made a new one.
      if (reconnect.created) expect(live?._id).toBe(newId);
      else expect(live).toBeNull();
      expect(await connections.listLive(userId, clientId)).toHaveLength(reconnect.created ? 1 : 0);
    }
  });

  it('revokeGrant revokes the grant and all its live connections, idempotently; a later consent starts a new grant', async () => {
    const { userId, clientId, tenantId, grant, base, connection } = await connectedTenant();
    const { connection: second } = await connections.connect({ ...base, connectionId: randomUUID(), tenantId: randomUUID() });
    const { connection: earlier } = await connections.connect({ ...base, connectionId: randomUUID(), tenantId: randomUUID() });
    const earlierAt = new Date(Date.now() - 60_000);
    await connections.revoke(earlier._id, earlierAt);
    // Another user's grant to the same app, and its connection.
    const bystander = await connectedTenant({ ...ids(), clientId });

    expect(await connections.revokeGrant(randomUUID(), new Date())).toBe(false);
    const at = new Date(Date.now() - 1000);
    expect(await connections.revokeGrant(grant._id, at)).toBe(true);
    expect(await connections.findGrant(grant._id)).toMatchObject({ _id: grant._id, key: `revoked:${grant._id}`, revokedAt: at });
    expect(await connections.findLiveGrant(userId, clientId)).toBeNull();
    for (const c of [connection, second]) {
      expect(await connections.find(c._id)).toMatchObject({ key: `revoked:${c._id}`, revokedAt: at });
    }
    // A connection revoked before keeps its own revocation time.
    expect((await connections.find(earlier._id))!.revokedAt).toEqual(earlierAt);
    expect(await connections.listLive(userId, clientId)).toEqual([]);
    expect(await connections.lastRevokedAt(userId, clientId, tenantId)).toEqual(at);
    expect(await connections.findLiveGrant(bystander.userId, clientId)).toMatchObject({ _id: bystander.grant._id });
    expect((await connections.find(bystander.connection._id))!.revokedAt ?? null).toBeNull();

    // Again: nothing changes.
    expect(await connections.revokeGrant(grant._id, new Date())).toBe(true);
    expect((await connections.findGrant(grant._id))!.revokedAt).toEqual(at);

    // Consent after the revocation: a new grant, so the old one's tokens stay dead.
    const fresh = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    expect(fresh._id).not.toBe(grant._id);
    expect(fresh.revokedAt ?? null).toBeNull();
    expect(await connections.findLiveGrant(userId, clientId)).toMatchObject({ _id: fresh._id });
    expect((await connections.findGrant(grant._id))!.revokedAt).toEqual(at);
    expect(await db.collection('grants').countDocuments({ userId, clientId })).toBe(2);
  });
});

describe('Outbox with applyConsentEvent (real NATS JetStream)', () => {
  let bus: EventBus;
  let outbox: Outbox;
  let stream: Awaited<ReturnType<typeof rawStream>>;

  beforeAll(async () => {
    bus = await EventBus.connect({
      url: inject('natsUrl'),
      name: 'consent',
      logger,
    });
    outbox = new Outbox({ db, events: bus, logger, apply: applyConsentEvent(connections) });
    await outbox.ensureIndexes();
    stream = await rawStream();
  });
  afterAll(async () => {
    await stream?.close();
    await bus?.close();
  });

  async function liveConnection() {
    const { userId, clientId, tenantId } = ids();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const { connection } = await connections.connect({
      connectionId: randomUUID(),
      grantId: grant._id,
      userId,
      clientId,
      tenantId,
      tenantName: 'T',
      authEventId: 'e',
    });
    return connection;
  }
  const revocationOf = (c: Awaited<ReturnType<typeof liveConnection>>, revokedAt = new Date()) =>
    ({
      $case: 'connectionRevoked',
      value: { connectionId: c._id, grantId: c.grantId, userId: c.userId, clientId: c.clientId, tenantId: c.tenantId, revokedAt },
    }) as const;
  /** As if the process died between writing the event and publishing it, a while ago. */
  const makePending = (id: string) =>
    outboxOf(db).updateOne({ _id: id }, { $set: { publishedAt: null, createdAt: new Date(Date.now() - 10_000) } });

  it('commit revokes the connection, then publishes connection.revoked with the outbox event id, once', async () => {
    const connection = await liveConnection();
    const before = await stream.lastSeq();
    const revokedAt = new Date();
    const { event, published } = await outbox.commit(revocationOf(connection, revokedAt));
    expect(published).toBe(true);
    expect((await connections.find(connection._id))!.revokedAt).toEqual(revokedAt);
    expect(await outboxOf(db).findOne({ _id: event.id })).toMatchObject({ type: 'connection.revoked', publishedAt: expect.any(Date) });
    const mine = (await stream.storedSince(before)).filter((e) => e.id === event.id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      source: 'consent',
      payload: {
        $case: 'connectionRevoked',
        value: {
          connectionId: connection._id,
          grantId: connection.grantId,
          userId: connection.userId,
          clientId: connection.clientId,
          tenantId: connection.tenantId,
          revokedAt,
        },
      },
    });
  });

  it('commit of an event that does not apply fails with its error, and neither keeps nor publishes it', async () => {
    const connection = await liveConnection();
    const before = await stream.lastSeq();
    const beforeCount = await outboxOf(db).countDocuments();
    const ghost = { ...connection, _id: randomUUID() };
    await expect(outbox.commit(revocationOf(ghost))).rejects.toBeInstanceOf(NotFoundError);
    expect(await outboxOf(db).countDocuments()).toBe(beforeCount);
    const stored = await stream.storedSince(before);
    expect(stored.filter((e) => e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId === ghost._id)).toEqual([]);
  });

  it('commit of connection.created connects with the event\'s connection id, and grant.revoked revokes the grant and its connections', async () => {
    const { userId, clientId, tenantId } = ids();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const connectionId = randomUUID();
    const before = await stream.lastSeq();
    const created = await outbox.commit({
      $case: 'connectionCreated',
      value: { connectionId, grantId: grant._id, userId, clientId, tenantId, tenantName: 'Evented Ltd', authEventId: 'ae' },
    });
    expect(created.published).toBe(true);
    expect(await connections.findLive(userId, clientId, tenantId)).toMatchObject({ _id: connectionId, tenantName: 'Evented Ltd', authEventId: 'ae' });

    const revokedAt = new Date();
    const revoked = await outbox.commit({ $case: 'grantRevoked', value: { grantId: grant._id, userId, clientId, revokedAt } });
    expect(revoked.published).toBe(true);
    expect((await connections.findGrant(grant._id))!.revokedAt).toEqual(revokedAt);
    expect((await connections.find(connectionId))!.revokedAt).toEqual(revokedAt);
    const types = (await stream.storedSince(before)).filter((e) => e.id === created.event.id || e.id === revoked.event.id).map((e) => e.payload?.$case);
    expect(types).toEqual(['connectionCreated', 'grantRevoked']);
  });

  it('relayPending re-sends an event left unpublished with the same id, and JetStream keeps one copy; a recent one waits', async () => {
    const a = await liveConnection();
    const b = await liveConnection();
    const before = await stream.lastSeq();
    const firstAt = new Date(Date.now() - 3000);
    const first = await outbox.commit(revocationOf(a, firstAt));
    const second = await outbox.commit(revocationOf(b));
    expect(await outbox.pendingCount()).toBe(0);

    await makePending(first.event.id);
    // Younger than 2 s: the commit may still be publishing it; the relay leaves it alone.
    await outboxOf(db).updateOne({ _id: second.event.id }, { $set: { publishedAt: null } });
    expect(await outbox.pendingCount()).toBe(2);
    expect(await outbox.relayPending()).toBe(1);
    expect((await outboxOf(db).findOne({ _id: first.event.id }))!.publishedAt).toBeInstanceOf(Date);
    expect((await outboxOf(db).findOne({ _id: second.event.id }))!.publishedAt).toBeNull();

    await makePending(second.event.id);
    expect(await outbox.relayPending()).toBe(1);
    expect(await outbox.pendingCount()).toBe(0);

    const stored = await stream.storedSince(before);
    expect(stored.filter((e) => e.id === first.event.id)).toHaveLength(1);
    expect(stored.filter((e) => e.id === second.event.id)).toHaveLength(1);
    expect(stored.filter((e) => e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId === a._id)).toHaveLength(1);
    // Applying again kept the first revocation.
    expect((await connections.find(a._id))!.revokedAt).toEqual(firstAt);
  });

  it('relayPending applies an event the process wrote but never applied, and drops one that no longer applies', async () => {
    const connection = await liveConnection();
    const before = await stream.lastSeq();
    const record = (event: Event) => ({
      _id: event.id,
      type: 'connection.revoked',
      data: new Binary(Event.encode(event).finish()),
      createdAt: new Date(Date.now() - 10_000),
      publishedAt: null,
    });
    const pending = Event.fromPartial({ id: randomUUID(), occurredAt: new Date(), source: 'consent', payload: revocationOf(connection) });
    const stale = Event.fromPartial({ id: randomUUID(), occurredAt: new Date(), source: 'consent', payload: revocationOf({ ...connection, _id: randomUUID() }) });
    await outboxOf(db).insertMany([record(pending), record(stale)]);

    expect(await outbox.relayPending()).toBe(1);
    expect((await connections.find(connection._id))!.revokedAt).toEqual(expect.any(Date));
    expect((await outboxOf(db).findOne({ _id: pending.id }))!.publishedAt).toBeInstanceOf(Date);
    expect(await outboxOf(db).findOne({ _id: stale.id })).toBeNull();
    const stored = await stream.storedSince(before);
    expect(stored.filter((e) => e.id === pending.id)).toEqual([pending]);
    expect(stored.filter((e) => e.id === stale.id)).toEqual([]);
  });
});
