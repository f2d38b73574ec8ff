import { collectEvents, eventually, failure } from '@ledgerly/testkit';
// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createClient, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import { ConsentServiceDefinition, FlowState, type AuthorizationRequest } from '@ledgerly/proto/consent/v1/consent';
import { Event } from '@ledgerly/proto/events/v1/events';
import { Binary, MongoClient, type Db } from 'mongodb';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { consent } from '../src/service.js';
import { ConnectionStore } from '../src/store/connections.js';
import { foreignTls, outboxEvents, outboxOf, rawStream, testPki } from './support.js';

type Consent = PromiseClient<typeof ConsentServiceDefinition>;

/**
 * The consent service in-process, over mutual TLS, with no identity service
 * behind it (LEDGERLY_IDENTITY_ADDR points at a port nothing listens on):
 * everything here is what the service decides on its own. Each client
 * presents the certificate of a caller the method's access list allows.
 */
const database = `consent_service_test_${Date.now()}`;
let pki: Awaited<ReturnType<typeof testPki>>;
let handle: ServiceHandle;
let address: string;
/** The edge: the browser-driven flow steps and the user's connections. */
let client: Consent;
/** The token service: CompleteFlow, GetGrant, RevokeGrant. */
let token: Consent;
/** operator:test. */
let operator: Consent;
let mongo: MongoClient;
let db: Db;
let connections: ConnectionStore;

beforeAll(async () => {
  pki = await testPki('consent-service', ['consent', 'edge', 'token', 'accounting', 'operator:test']);
  handle = await startService(
    consent,
    {
      LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
      LEDGERLY_MONGO_URL: inject('mongoUrl'),
      LEDGERLY_MONGO_DB: database,
      LEDGERLY_NATS_URL: inject('natsUrl'),
      LEDGERLY_IDENTITY_ADDR: '127.0.0.1:1',
      LEDGERLY_LOG_LEVEL: 'warn',
      ...pki.env('consent'),
    },
    () => {},
  );
  address = handle.ready['address'] as string;
  client = pki.client(ConsentServiceDefinition, address, 'edge');
  token = pki.client(ConsentServiceDefinition, address, 'token');
  operator = pki.client(ConsentServiceDefinition, address, 'operator:test');
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
  connections = new ConnectionStore(db);
});

afterAll(async () => {
  for (const c of [client, token, operator]) c?.close();
  await handle?.stop();
  await mongo?.close();
});

const authRequest = (): AuthorizationRequest => ({
  clientId: randomBytes(16).toString('hex').toUpperCase(),
  redirectUri: 'https://app.example.com/callback',
  scopes: ['openid', 'offline_access', 'accounting.contacts'],
  state: 'xyz',
  nonce: 'nonce-1',
  codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  codeChallengeMethod: 'S256',
  maxAge: -1,
  prompt: ['consent'],
  dpopJkt: '',
});
const newBinding = () => randomBytes(24).toString('base64url');

async function newFlow() {
  const browserBinding = newBinding();
  const request = authRequest();
  const { flow } = await client.createFlow({ request, browserBinding });
  return { flow: flow!, browserBinding, request };
}

describe('flows', () => {
  it('createFlow starts in LOGIN_REQUIRED; getFlow returns it to the browser that started it', async () => {
    const started = Date.now();
    const { flow, browserBinding, request } = await newFlow();
    expect(flow).toMatchObject({
      state: FlowState.FLOW_STATE_LOGIN_REQUIRED,
      request,
      userId: '',
      tenantIds: [],
    });
    expect(flow.id.length).toBeGreaterThanOrEqual(24);
    expect(flow.csrfToken.length).toBeGreaterThanOrEqual(32);
    expect(flow.expiresAt!.getTime() - started).toBeGreaterThan(590_000);
    expect(flow.expiresAt!.getTime() - started).toBeLessThan(610_000);

    const { flow: again } = await client.getFlow({
      flowId: flow.id,
      browserBinding,
    });
    expect(again).toEqual(flow);
  });

  it('getFlow from another browser is PERMISSION_DENIED; an unknown or expired flow is NOT_FOUND', async () => {
    const { flow } = await newFlow();
    for (const browserBinding of [newBinding(), '']) {
      expect(await failure(client.getFlow({ flowId: flow.id, browserBinding }))).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'flow_binding_mismatch',
      });
    }
    expect(
      await failure(
        client.getFlow({
          flowId: 'no-such-flow',
          browserBinding: newBinding(),
        }),
      ),
    ).toMatchObject({
      code: Status.NOT_FOUND,
      reason: 'flow_not_found',
    });

    const { flow: old, browserBinding } = await newFlow();
    await db.collection('flows').updateOne({ _id: old.id as never }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    expect(await failure(client.getFlow({ flowId: old.id, browserBinding }))).toMatchObject({ code: Status.NOT_FOUND });
  });

  it('createFlow refuses a request without client or redirect URI, and a weak browser binding', async () => {
    const request = authRequest();
    expect(
      await failure(
        client.createFlow({
          request: { ...request, clientId: '' },
          browserBinding: newBinding(),
        }),
      ),
    ).toMatchObject({
      code: Status.INVALID_ARGUMENT,
    });
    expect(
      await failure(
        client.createFlow({
          request: { ...request, redirectUri: '' },
          browserBinding: newBinding(),
        }),
      ),
    ).toMatchObject({
      code: Status.INVALID_ARGUMENT,
    });
    expect(await failure(client.createFlow({ browserBinding: newBinding() }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(await failure(client.createFlow({ request, browserBinding: 'short' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(await db.collection('flows').countDocuments({ 'request.clientId': request.clientId })).toBe(0);
  });

  it('createFlow with a session token while identity is unreachable is UNAVAILABLE, not a silent new login', async () => {
    const request = authRequest();
    const err = await failure(
      client.createFlow({
        request,
        browserBinding: newBinding(),
        sessionToken: 'some-session-token',
      }),
    );
    expect(err).toMatchObject({
      code: Status.UNAVAILABLE,
      reason: 'dependency_unavailable',
    });
    expect(await db.collection('flows').countDocuments({ 'request.clientId': request.clientId })).toBe(0);
  });

  it('a posted form needs the flow csrf token: rejectFlow with a wrong one is PERMISSION_DENIED, with the right one REJECTED once', async () => {
    const { flow, browserBinding } = await newFlow();
    for (const csrfToken of ['', 'forged-token']) {
      expect(await failure(client.rejectFlow({ flowId: flow.id, browserBinding, csrfToken }))).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'csrf_mismatch',
      });
    }
    // Checked before the session is resolved with identity (which is down).
    expect(
      await failure(
        client.acceptLogin({
          flowId: flow.id,
          browserBinding,
          csrfToken: 'forged',
          sessionToken: 's',
        }),
      ),
    ).toMatchObject({
      code: Status.PERMISSION_DENIED,
      reason: 'csrf_mismatch',
    });
    expect((await client.getFlow({ flowId: flow.id, browserBinding })).flow!.state).toBe(FlowState.FLOW_STATE_LOGIN_REQUIRED);

    const { flow: rejected } = await client.rejectFlow({
      flowId: flow.id,
      browserBinding,
      csrfToken: flow.csrfToken,
    });
    expect(rejected!.state).toBe(FlowState.FLOW_STATE_REJECTED);
    expect(
      await failure(
        client.rejectFlow({
          flowId: flow.id,
          browserBinding,
          csrfToken: flow.csrfToken,
        }),
      ),
    ).toMatchObject({
      code: Status.FAILED_PRECONDITION,
      reason: 'flow_state',
    });
    expect(
      await failure(
        client.acceptConsent({
          flowId: flow.id,
          browserBinding,
          csrfToken: flow.csrfToken,
          tenantIds: [randomUUID()],
        }),
      ),
    ).toMatchObject({ code: Status.FAILED_PRECONDITION });
  });

  it('completeFlow succeeds exactly once, and only from CONSENTED', async () => {
    const { flow } = await newFlow();
    expect(await failure(token.completeFlow({ flowId: flow.id }))).toMatchObject({ code: Status.FAILED_PRECONDITION, reason: 'flow_state' });
    expect(await failure(token.completeFlow({ flowId: 'no-such-flow' }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'flow_not_found' });

    // As AcceptConsent would leave it (that step needs identity).
    await db.collection('flows').updateOne({ _id: flow.id as never }, { $set: { state: FlowState.FLOW_STATE_CONSENTED, userId: 'u1' } });
    const { flow: completed } = await token.completeFlow({ flowId: flow.id });
    expect(completed).toMatchObject({
      id: flow.id,
      state: FlowState.FLOW_STATE_COMPLETED,
      userId: 'u1',
    });
    expect(await failure(token.completeFlow({ flowId: flow.id }))).toMatchObject({ code: Status.FAILED_PRECONDITION, reason: 'flow_state' });

    // One consent yields one code, even when CompleteFlow calls race.
    await db.collection('flows').updateOne({ _id: flow.id as never }, { $set: { state: FlowState.FLOW_STATE_CONSENTED } });
    const raced = await Promise.allSettled(Array.from({ length: 8 }, () => token.completeFlow({ flowId: flow.id })));
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});

describe('connections', () => {
  it('checkConnection and listConnections require their keys', async () => {
    const full = { userId: 'u', clientId: 'c', tenantId: randomUUID() };
    for (const missing of ['userId', 'clientId', 'tenantId'] as const) {
      expect(await failure(client.checkConnection({ ...full, [missing]: '' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    }
    expect(await failure(client.listConnections({ userId: 'u' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(await failure(client.listConnections({ clientId: 'c' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(await client.checkConnection(full)).toEqual({
      connection: undefined,
      lastRevokedAt: undefined,
    });
  });

  it('revokeConnection revokes a live connection, publishes connection.revoked, and checkConnection then reports when', async () => {
    const userId = randomUUID();
    const clientId = randomBytes(16).toString('hex').toUpperCase();
    const tenantId = randomUUID();
    const grant = await connections.upsertGrant(userId, clientId, ['accounting.contacts']);
    const { connection } = await connections.connect({
      connectionId: randomUUID(),
      grantId: grant._id,
      userId,
      clientId,
      tenantId,
      tenantName: 'Demo Ltd',
      authEventId: 'ae-1',
    });

    const live = await client.checkConnection({ userId, clientId, tenantId });
    expect(live.connection).toMatchObject({
      id: connection._id,
      tenantName: 'Demo Ltd',
      tenantType: 'ORGANISATION',
    });
    expect((await client.listConnections({ userId, clientId })).connections.map((c) => c.id)).toEqual([connection._id]);
    expect((await client.listConnections({ userId, clientId, authEventId: 'other' })).connections).toEqual([]);

    // Someone else's, or an unknown one: NOT_FOUND.
    expect(
      await failure(
        client.revokeConnection({
          connectionId: connection._id,
          userId: 'intruder',
          clientId,
        }),
      ),
    ).toMatchObject({
      code: Status.NOT_FOUND,
    });
    expect(
      await failure(
        client.revokeConnection({
          connectionId: randomUUID(),
          userId,
          clientId,
        }),
      ),
    ).toMatchObject({ code: Status.NOT_FOUND });

    const since = new Date(Date.now() - 1000);
    const { connection: revoked } = await client.revokeConnection({
      connectionId: connection._id,
      userId,
      clientId,
    });
    expect(revoked).toMatchObject({
      id: connection._id,
      revokedAt: expect.any(Date),
    });

    const after = await client.checkConnection({ userId, clientId, tenantId });
    expect(after.connection).toBeUndefined();
    expect(after.lastRevokedAt).toEqual(revoked!.revokedAt);
    expect((await client.listConnections({ userId, clientId })).connections).toEqual([]);
    expect(
      await failure(
        client.revokeConnection({
          connectionId: connection._id,
          userId,
          clientId,
        }),
      ),
    ).toMatchObject({
      code: Status.NOT_FOUND,
    });

    const observed = await collectEvents(
      inject('natsUrl'),
      since,
      (e) => e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId === connection._id,
    );
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]!.source).toBe('consent');
      expect(observed.events[0]!.payload).toEqual({
        $case: 'connectionRevoked',
        value: {
          connectionId: connection._id,
          grantId: grant._id,
          userId,
          clientId,
          tenantId,
          revokedAt: revoked!.revokedAt,
        },
      });
      // Published through the outbox: the event id is the outbox record's, marked published.
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({
        type: 'connection.revoked',
        publishedAt: expect.any(Date),
      });
    } finally {
      await observed.stop();
    }
  });
});


/** A user's grant to an app, with live connections to `tenants` organisations, made as AcceptConsent would. */
async function consented(tenants = 1) {
  const userId = randomUUID();
  const clientId = randomBytes(16).toString('hex').toUpperCase();
  const grant = await connections.upsertGrant(userId, clientId, ['offline_access', 'accounting.contacts']);
  const made = [];
  for (let i = 0; i < tenants; i++) {
    const { connection } = await connections.connect({
      connectionId: randomUUID(),
      grantId: grant._id,
      userId,
      clientId,
      tenantId: randomUUID(),
      tenantName: `Org ${i}`,
      authEventId: randomUUID(),
    });
    made.push(connection);
  }
  return { userId, clientId, grant, connections: made };
}

describe('grants', () => {
  it('GetGrant returns the grant to the token service; an unknown or missing id is NOT_FOUND grant_not_found', async () => {
    const { userId, clientId, grant } = await consented(0);
    const { grant: got } = await token.getGrant({ grantId: grant._id });
    expect(got).toMatchObject({
      id: grant._id,
      userId,
      clientId,
      scopes: ['offline_access', 'accounting.contacts'],
      createdAt: grant.createdAt,
      revokedAt: undefined,
    });
    for (const grantId of [randomUUID(), '']) {
      expect(await failure(token.getGrant({ grantId }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'grant_not_found' });
    }
  });

  it('RevokeGrant revokes the grant and every live connection it opened, and publishes grant.revoked through the outbox', async () => {
    const since = new Date(Date.now() - 1000);
    const target = await consented(2);
    const bystander = await consented(1);
    const { grant: revoked } = await token.revokeGrant({ grantId: target.grant._id });
    expect(revoked).toMatchObject({ id: target.grant._id, revokedAt: expect.any(Date) });
    expect((await token.getGrant({ grantId: target.grant._id })).grant!.revokedAt).toEqual(revoked!.revokedAt);

    for (const c of target.connections) {
      const now = await client.checkConnection({ userId: target.userId, clientId: target.clientId, tenantId: c.tenantId });
      expect(now.connection).toBeUndefined();
      expect(now.lastRevokedAt).toEqual(revoked!.revokedAt);
    }
    expect((await client.listConnections({ userId: target.userId, clientId: target.clientId })).connections).toEqual([]);
    // Another user's grant and connection are untouched.
    expect((await token.getGrant({ grantId: bystander.grant._id })).grant!.revokedAt).toBeUndefined();
    const other = bystander.connections[0]!;
    expect((await client.checkConnection({ userId: bystander.userId, clientId: bystander.clientId, tenantId: other.tenantId })).connection).toMatchObject({
      id: other._id,
    });

    // Once revoked it is gone: revoking again is NOT_FOUND, and publishes nothing more.
    expect(await failure(token.revokeGrant({ grantId: target.grant._id }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'grant_not_found' });
    expect(await failure(token.revokeGrant({ grantId: randomUUID() }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'grant_not_found' });
    expect(await failure(token.revokeGrant({}))).toMatchObject({ code: Status.NOT_FOUND, reason: 'grant_not_found' });

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'grantRevoked' && e.payload.value.grantId === target.grant._id);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]).toMatchObject({
        source: 'consent',
        payload: {
          $case: 'grantRevoked',
          value: { grantId: target.grant._id, userId: target.userId, clientId: target.clientId, revokedAt: revoked!.revokedAt },
        },
      });
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({ type: 'grant.revoked', publishedAt: expect.any(Date) });
    } finally {
      await observed.stop();
    }
    const recorded = (await outboxEvents(db, 'grant.revoked')).filter((e) => e.payload?.$case === 'grantRevoked' && e.payload.value.grantId === target.grant._id);
    expect(recorded).toHaveLength(1);
  });

  it('an operator can revoke the live grant of a user and app by their ids', async () => {
    const { userId, clientId, grant, connections: made } = await consented(1);
    expect(await failure(operator.revokeGrant({ userId, clientId: 'F'.repeat(32) }))).toMatchObject({ code: Status.NOT_FOUND });
    expect(await failure(operator.revokeGrant({ userId }))).toMatchObject({ code: Status.NOT_FOUND });
    const { grant: revoked } = await operator.revokeGrant({ userId, clientId });
    expect(revoked).toMatchObject({ id: grant._id, revokedAt: expect.any(Date) });
    expect((await client.checkConnection({ userId, clientId, tenantId: made[0]!.tenantId })).connection).toBeUndefined();
    // The live grant is gone: there is nothing left to revoke by user and app.
    expect(await failure(operator.revokeGrant({ userId, clientId }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'grant_not_found' });
  });
});

describe('outbox relay', () => {
  it('applies and publishes a revocation left in the outbox (the process died before applying it), with its own event id', async () => {
    const { userId, clientId, grant, connections: made } = await consented(1);
    const connection = made[0]!;
    const stream = await rawStream();
    try {
      const start = await stream.lastSeq();
      const event = Event.fromPartial({
        id: randomUUID(),
        occurredAt: new Date(),
        source: 'consent',
        payload: {
          $case: 'connectionRevoked',
          value: { connectionId: connection._id, grantId: grant._id, userId, clientId, tenantId: connection.tenantId, revokedAt: new Date() },
        },
      });
      await outboxOf(db).insertOne({
        _id: event.id,
        type: 'connection.revoked',
        data: new Binary(Event.encode(event).finish()),
        createdAt: new Date(Date.now() - 10_000),
        publishedAt: null,
      });
      await eventually(async () => (await outboxOf(db).findOne({ _id: event.id }))?.publishedAt instanceof Date, 10_000);
      expect((await connections.find(connection._id))!.revokedAt).toEqual(expect.any(Date));
      expect((await client.checkConnection({ userId, clientId, tenantId: connection.tenantId })).connection).toBeUndefined();
      expect((await stream.storedSince(start)).filter((e) => e.id === event.id)).toEqual([event]);
    } finally {
      await stream.close();
    }
  });
});

describe('mutual TLS and access lists', () => {
  it('refuses a caller its access list does not name with PERMISSION_DENIED caller_not_allowed, before doing anything', async () => {
    const { userId, clientId, grant, connections: made } = await consented(1);
    const connection = made[0]!;
    const accounting = pki.client(ConsentServiceDefinition, address, 'accounting');
    try {
      const denied = { code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed' };
      // Only the edge starts flows; only the token service completes them and reads grants.
      expect(await failure(token.createFlow({ request: authRequest(), browserBinding: newBinding() }))).toMatchObject({
        ...denied,
        details: 'token may not call CreateFlow',
      });
      expect(await failure(client.completeFlow({ flowId: 'any' }))).toMatchObject(denied);
      expect(await failure(client.getGrant({ grantId: grant._id }))).toMatchObject(denied);
      expect(await failure(client.revokeGrant({ grantId: grant._id }))).toMatchObject(denied);
      expect(await failure(operator.getGrant({ grantId: grant._id }))).toMatchObject(denied);
      expect(await failure(operator.createFlow({ request: authRequest(), browserBinding: newBinding() }))).toMatchObject(denied);
      // The accounting service may check a connection, not revoke it.
      await expect(accounting.checkConnection({ userId, clientId, tenantId: connection.tenantId })).resolves.toMatchObject({
        connection: { id: connection._id },
      });
      expect(await failure(accounting.revokeConnection({ connectionId: connection._id, userId, clientId }))).toMatchObject(denied);
      expect(await failure(accounting.listConnections({ userId, clientId }))).toMatchObject(denied);
    } finally {
      accounting.close();
    }
    expect((await connections.find(connection._id))!.revokedAt ?? null).toBeNull();
    expect((await connections.findGrant(grant._id))!.revokedAt ?? null).toBeNull();
  });

  it('refuses a plain-text client, and a client certificate from another CA, with UNAVAILABLE', async () => {
    const plain = createClient(ConsentServiceDefinition, address, { deadlineMs: 2000 });
    const foreign = createClient(ConsentServiceDefinition, address, { tls: await foreignTls('consent', 'edge', pki.tls('edge')), deadlineMs: 2000 });
    try {
      const request = { request: authRequest(), browserBinding: newBinding() };
      expect(await failure(plain.createFlow(request))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(plain.checkConnection({ userId: 'u', clientId: 'c', tenantId: randomUUID() }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(foreign.createFlow(request))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await db.collection('flows').countDocuments({ 'request.clientId': request.request.clientId })).toBe(0);
      await expect(client.createFlow(request)).resolves.toBeDefined();
    } finally {
      plain.close();
      foreign.close();
    }
  });

  it('writes every operator call to audit_log, secrets redacted, with its outcome; service calls are not audited', async () => {
    const { userId, clientId, connections: made } = await consented(1);
    const connection = made[0]!;
    // First the edge's own call, which is not an operator action.
    await client.listConnections({ userId, clientId, authEventId: 'edge-call' });
    await operator.listConnections({ userId, clientId });
    await operator.revokeConnection({ connectionId: connection._id, userId, clientId });
    await failure(operator.revokeConnection({ connectionId: connection._id, userId, clientId }));
    const sessionToken = randomBytes(32).toString('base64url');
    const browserBinding = newBinding();
    await failure(operator.acceptLogin({ flowId: 'f', browserBinding, csrfToken: 'csrf-value-123', sessionToken }));

    const audit = db.collection('audit_log');
    await eventually(async () => (await audit.countDocuments({ 'request.userId': userId })) >= 3);
    await eventually(async () => (await audit.countDocuments({ method: 'AcceptLogin', 'request.flowId': 'f' })) >= 1);
    const entries = await audit.find({ 'request.userId': userId }).sort({ at: 1 }).toArray();
    expect(entries.map((e) => [e['operator'], e['method'], e['outcome']])).toEqual([
      ['operator:test', 'ListConnections', 'OK'],
      ['operator:test', 'RevokeConnection', 'OK'],
      ['operator:test', 'RevokeConnection', 'NOT_FOUND'],
    ]);
    expect(entries[1]).toMatchObject({
      service: 'consent.v1.ConsentService',
      requestId: expect.any(String),
      request: { connectionId: connection._id, userId, clientId },
    });
    expect(await audit.findOne({ method: 'AcceptLogin', 'request.flowId': 'f' })).toMatchObject({
      operator: 'operator:test',
      outcome: 'PERMISSION_DENIED',
      request: { flowId: 'f', browserBinding: '[REDACTED]', csrfToken: '[REDACTED]', sessionToken: '[REDACTED]' },
    });
    const all = JSON.stringify(await audit.find().toArray());
    for (const secret of [sessionToken, browserBinding, 'csrf-value-123']) expect(all).not.toContain(secret);
    expect(await audit.countDocuments({ 'request.authEventId': 'edge-call' })).toBe(0);
  });
});
