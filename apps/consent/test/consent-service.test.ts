import { eventually, failure } from '@ledgerly/testkit';
// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createClient, createLogger, EventBus, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import { ConsentServiceDefinition, FlowState, type AuthorizationRequest } from '@ledgerly/proto/consent/v1/consent';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { MongoClient, type Db } from 'mongodb';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { consent } from '../src/service.js';
import { ConnectionStore } from '../src/store/connections.js';

/**
 * The consent service in-process, with no identity service behind it
 * (LEDGERLY_IDENTITY_ADDR points at a port nothing listens on): everything
 * here is what the service decides on its own.
 */
const database = `consent_service_test_${Date.now()}`;
let handle: ServiceHandle;
let client: PromiseClient<typeof ConsentServiceDefinition>;
let mongo: MongoClient;
let db: Db;
let connections: ConnectionStore;

beforeAll(async () => {
  handle = await startService(
    consent,
    {
      LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
      LEDGERLY_MONGO_URL: inject('mongoUrl'),
      LEDGERLY_MONGO_DB: database,
      LEDGERLY_NATS_URL: inject('natsUrl'),
      LEDGERLY_IDENTITY_ADDR: '127.0.0.1:1',
      LEDGERLY_LOG_LEVEL: 'warn',
    },
    () => {},
  );
  client = createClient(ConsentServiceDefinition, handle.ready['address'] as string);
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
  connections = new ConnectionStore(db);
});

afterAll(async () => {
  client?.close();
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
    expect(await failure(client.completeFlow({ flowId: flow.id }))).toMatchObject({ code: Status.FAILED_PRECONDITION, reason: 'flow_state' });
    expect(await failure(client.completeFlow({ flowId: 'no-such-flow' }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'flow_not_found' });

    // As AcceptConsent would leave it (that step needs identity).
    await db.collection('flows').updateOne({ _id: flow.id as never }, { $set: { state: FlowState.FLOW_STATE_CONSENTED, userId: 'u1' } });
    const { flow: completed } = await client.completeFlow({ flowId: flow.id });
    expect(completed).toMatchObject({
      id: flow.id,
      state: FlowState.FLOW_STATE_COMPLETED,
      userId: 'u1',
    });
    expect(await failure(client.completeFlow({ flowId: flow.id }))).toMatchObject({ code: Status.FAILED_PRECONDITION, reason: 'flow_state' });

    // One consent yields one code, even when CompleteFlow calls race.
    await db.collection('flows').updateOne({ _id: flow.id as never }, { $set: { state: FlowState.FLOW_STATE_CONSENTED } });
    const raced = await Promise.allSettled(Array.from({ length: 8 }, () => client.completeFlow({ flowId: flow.id })));
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

    const bus = await EventBus.connect({
      url: inject('natsUrl'),
      name: 'consent-test',
      logger: createLogger({ service: 't', level: 'error' }),
    });
    const seen: Event[] = [];
    const subscription = await bus.subscribe({
      since,
      handle: (e) => {
        if (e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId === connection._id) seen.push(e);
      },
    });
    try {
      await subscription.caughtUp;
      await eventually(() => seen.length > 0);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.payload).toEqual({
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
      const doc = await db.collection('connections').findOne({ _id: connection._id as never });
      expect(doc!['revocationEvent']).toEqual({
        id: seen[0]!.id,
        published: true,
      });
    } finally {
      await subscription.stop();
      await bus.close();
    }
  });
});

