import { createClient, createLogger, EventBus, EVENT_STREAM, loadTls, RemoteError, Status } from '@ledgerly/chassis';
import { appProcess, parseJsonLine, type ManagedProcess } from '@ledgerly/devstack';
import { ensurePki } from '@ledgerly/pki';
import { Event } from '@ledgerly/proto/events/v1/events';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import { connectApp, eventually, seed, startTestPlatform, type AppTokens, type Seed, type TestPlatform } from '@ledgerly/testkit';
import { MongoClient } from 'mongodb';
import { connect as natsConnect } from 'nats';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Revocation when parts fail, and the internal surface's trust rules, on the
 * real processes: NATS and FerretDB killed and restarted, an edge restarted,
 * two edges, a burst of ten thousand revocations.
 */
let t: TestPlatform;
const FEED_STALE_MS = 2000;

beforeAll(async () => {
  t = await startTestPlatform({ env: { edge: { LEDGERLY_FEED_STALE_MS: String(FEED_STALE_MS) }, accounting: { LEDGERLY_FEED_STALE_MS: String(FEED_STALE_MS) } } });
});
afterAll(async () => {
  await t?.stop();
});

interface App {
  s: Seed;
  tokens: AppTokens;
  connectionId: string;
}

async function connectedApp(): Promise<App> {
  const s = await seed(t.grpc);
  const tokens = await connectApp(t.issuer, s, { scope: 'accounting.contacts', organisations: [s.organisations[0].id] });
  const list = (await (await fetch(new URL('/connections', t.issuer), { headers: { authorization: `Bearer ${tokens.access_token}` } })).json()) as Array<{ id: string }>;
  const app = { s, tokens, connectionId: list[0]!.id };
  expect((await contacts(app)).status).toBe(200);
  expect(await direct(app)).toBe('OK');
  return app;
}

function contacts(app: App, issuer = t.issuer) {
  return fetch(new URL('/api.xro/2.0/Contacts', issuer), { headers: { authorization: `Bearer ${app.tokens.access_token}`, 'xero-tenant-id': app.s.organisations[0].id } });
}

async function direct(app: App): Promise<string> {
  try {
    await t.grpc.accounting.listContacts({ tenantId: app.s.organisations[0].id }, { metadata: { authorization: `Bearer ${app.tokens.access_token}` } });
    return 'OK';
  } catch (err) {
    return err instanceof RemoteError ? Status[err.code]! : String(err);
  }
}

const refusedAtEdge = async (app: App, issuer = t.issuer) => (await contacts(app, issuer)).status === 401;
const refusedAtAccounting = async (app: App) => ['UNAUTHENTICATED', 'PERMISSION_DENIED'].includes(await direct(app));

async function timeUntil(condition: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = Date.now();
  await eventually(condition, limitMs, 10);
  return Date.now() - started;
}

async function health(issuer = t.issuer) {
  return (await (await fetch(new URL('/healthz', issuer))).json()) as {
    events: { healthy: boolean; synchronousChecks: boolean };
    views: { connections: { tombstones: number } };
  };
}

/** The stored copies of events about a connection, read straight from the stream. */
async function storedRevocations(connectionId: string): Promise<number> {
  const nc = await natsConnect({ servers: t.nats.url });
  const jsm = await nc.jetstreamManager();
  const last = (await jsm.streams.info(EVENT_STREAM)).state.last_seq;
  let count = 0;
  for (let seq = 1; seq <= last; seq++) {
    const m = await jsm.streams.getMessage(EVENT_STREAM, { seq }).catch(() => undefined);
    if (!m) continue;
    const e = Event.decode(m.data);
    if (e.payload?.$case === 'connectionRevoked' && e.payload.value.connectionId === connectionId) count++;
  }
  await nc.close();
  return count;
}

function rssMb(proc: ManagedProcess): number {
  const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

describe('the internal gRPC surface trusts nobody by default', () => {
  it('refuses a plain-text client and a certificate from another CA', async () => {
    const plain = createClient(IdentityServiceDefinition, t.platform.addresses.identity, { deadlineMs: 1500 });
    expect(await plain.getUser({ userId: 'x' }).catch((e: RemoteError) => e.code)).toBe(Status.UNAVAILABLE);
    plain.close();
    const other = await ensurePki(join(t.dir, 'foreign-pki'), ['operator:mallory']);
    const foreign = createClient(IdentityServiceDefinition, t.platform.addresses.identity, { deadlineMs: 1500, tls: loadTls(other['operator:mallory']!) });
    expect(await foreign.getUser({ userId: 'x' }).catch((e: RemoteError) => e.code)).toBe(Status.UNAVAILABLE);
    foreign.close();
  });

  it("refuses a method to a caller not on its access list (the edge's certificate cannot register apps)", async () => {
    const edgeTls = loadTls({ caFile: t.platform.envs.edge['LEDGERLY_TLS_CA']!, certFile: t.platform.envs.edge['LEDGERLY_TLS_CERT']!, keyFile: t.platform.envs.edge['LEDGERLY_TLS_KEY']! });
    const asEdge = createClient(TokenServiceDefinition, t.platform.addresses.token, { tls: edgeTls });
    const err = (await asEdge.createClient({ name: 'Sneaky', redirectUris: ['https://x.example/cb'] }).catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed' });
    expect((await asEdge.getJwks({})).jwksJson).toContain('"keys"');
    asEdge.close();
  });

  it('writes every operator action to the audit log, without secrets', async () => {
    const s = await seed(t.grpc);
    const mongo = new MongoClient(t.mongo.url);
    try {
      const entries = await mongo.db('ledgerly_identity').collection('audit_log').find({ method: 'CreateUser' }).toArray();
      const mine = entries.find((e) => (e['request'] as { email?: string }).email === s.user.email);
      expect(mine).toMatchObject({ operator: 'operator:local', service: 'identity.v1.IdentityService', outcome: 'OK', request: { password: '[REDACTED]' } });
      expect(JSON.stringify(entries)).not.toContain(s.user.password);
      const clients = await mongo.db('ledgerly_token').collection('audit_log').find({ method: 'CreateClient', outcome: 'OK' }).toArray();
      expect(clients.length).toBeGreaterThan(0);
    } finally {
      await mongo.close();
    }
  });

  it('the accounting service refuses an operator without a user token', async () => {
    const s = await seed(t.grpc);
    const err = (await t.grpc.accounting.listContacts({ tenantId: s.organisations[0].id }).catch((e: unknown) => e)) as RemoteError;
    expect(err).toMatchObject({ code: Status.UNAUTHENTICATED, reason: 'invalid_token' });
  });
});

describe('revocation when parts fail', () => {
  it('NATS down at the moment of revocation: refused within the fail-closed bound; on recovery applied exactly once', async () => {
    const app = await connectedApp();
    await t.nats.process.kill();
    const del = await fetch(new URL(`/connections/${app.connectionId}`, t.issuer), { method: 'DELETE', headers: { authorization: `Bearer ${app.tokens.access_token}` } });
    expect(del.status).toBe(204);
    const edgeMs = await timeUntil(() => refusedAtEdge(app), FEED_STALE_MS + 3000);
    const accountingMs = await timeUntil(() => refusedAtAccounting(app), FEED_STALE_MS + 3000);
    expect(edgeMs).toBeLessThan(FEED_STALE_MS + 1500);
    expect(accountingMs).toBeLessThan(FEED_STALE_MS + 1500);
    expect((await health()).events).toMatchObject({ healthy: false, synchronousChecks: true });

    await t.nats.process.start();
    await eventually(async () => (await health()).events.healthy, 15_000, 100);
    await eventually(async () => (await storedRevocations(app.connectionId)) === 1, 10_000, 200);
    // Relayed once by the outbox, stored once, and refused by the views again (not only by synchronous checks).
    expect((await health()).events.synchronousChecks).toBe(false);
    expect(await refusedAtEdge(app)).toBe(true);
    expect(await refusedAtAccounting(app)).toBe(true);
    await new Promise((r) => setTimeout(r, 2500));
    expect(await storedRevocations(app.connectionId)).toBe(1);
  });

  it('an edge restarted refuses, from its first served request, a token revoked while it was down', async () => {
    const app = await connectedApp();
    await t.platform.processes.edge.stop();
    await t.grpc.consent.revokeConnection({ connectionId: app.connectionId, userId: app.s.user.id, clientId: app.s.client.clientId });
    await t.platform.processes.edge.start();
    expect(await refusedAtEdge(app)).toBe(true);
  });

  it('two edge instances: revoke through one, and both refuse within the propagation bound', async () => {
    const second = appProcess('edge', { ...t.platform.envs.edge, LEDGERLY_HTTP_LISTEN: '127.0.0.1:0' }, join(t.dir, 'logs', 'edge-2.log'));
    const ready = await second.start();
    try {
      const other = `http://${String(ready['address'])}`;
      const app = await connectedApp();
      expect((await contacts(app, other)).status).toBe(200);
      const del = await fetch(new URL(`/connections/${app.connectionId}`, t.issuer), { method: 'DELETE', headers: { authorization: `Bearer ${app.tokens.access_token}` } });
      expect(del.status).toBe(204);
      const [first, secondMs] = await Promise.all([timeUntil(() => refusedAtEdge(app), 1000), timeUntil(() => refusedAtEdge(app, other), 1000)]);
      expect(first).toBeLessThan(500);
      expect(secondMs).toBeLessThan(500);
    } finally {
      await second.stop();
    }
  });

  it('the database down: 503 with Retry-After within 1 s, nothing half-written, and recovery by itself', async () => {
    const app = await connectedApp();
    await t.mongo.process.kill();
    try {
      for (const request of [
        () => contacts(app),
        () =>
          fetch(new URL('/api.xro/2.0/Contacts', t.issuer), {
            method: 'PUT',
            headers: { authorization: `Bearer ${app.tokens.access_token}`, 'xero-tenant-id': app.s.organisations[0].id, 'content-type': 'application/json' },
            body: JSON.stringify({ Contacts: [{ Name: 'Written While Down' }] }),
          }),
      ]) {
        const started = Date.now();
        const res = await request();
        const text = await res.text();
        expect(Date.now() - started).toBeLessThan(1000);
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(text).not.toMatch(/at \w+ \(|node:internal|Mongo/);
      }
    } finally {
      await t.mongo.process.start();
    }
    await eventually(async () => (await contacts(app)).status === 200, 20_000, 200);
    const body = (await (await contacts(app)).json()) as { Contacts: Array<{ Name: string }> };
    expect(body.Contacts.map((c) => c.Name)).not.toContain('Written While Down');
  });

  it('a burst of 10,000 revocations is applied in full, with bounded memory', async () => {
    const app = await connectedApp();
    const edgeBefore = rssMb(t.platform.processes.edge);
    const accountingBefore = rssMb(t.platform.processes.accounting);
    const tombstonesBefore = (await health()).views.connections.tombstones;
    const bus = await EventBus.connect({ url: t.nats.url, name: 'burst', logger: createLogger({ service: 'burst', level: 'error' }) });
    const started = Date.now();
    // The events as the consent service publishes them (the contract), ten thousand at once.
    const burst: Array<Promise<unknown>> = [];
    for (let i = 0; i < 10_000; i++) {
      burst.push(
        bus.publish({
          $case: 'connectionRevoked',
          value: { connectionId: randomUUID(), grantId: randomUUID(), userId: randomUUID(), clientId: app.s.client.clientId, tenantId: randomUUID(), revokedAt: new Date() },
        }),
      );
      if (burst.length >= 500) await Promise.all(burst.splice(0));
    }
    await Promise.all(burst);
    await bus.close();
    // The real revocation last: applied after all the others.
    await t.grpc.consent.revokeConnection({ connectionId: app.connectionId, userId: app.s.user.id, clientId: app.s.client.clientId });
    await eventually(async () => (await health()).views.connections.tombstones >= tombstonesBefore + 10_001, 60_000, 200);
    await eventually(() => refusedAtEdge(app), 5000, 20);
    await eventually(() => refusedAtAccounting(app), 5000, 20);
    const elapsed = Date.now() - started;
    const edgeGrowth = rssMb(t.platform.processes.edge) - edgeBefore;
    const accountingGrowth = rssMb(t.platform.processes.accounting) - accountingBefore;
    // 10,000 tombstones are a few MB; a leak or an unbounded queue would be far more.
    expect(edgeGrowth).toBeLessThan(150);
    expect(accountingGrowth).toBeLessThan(150);
    expect(elapsed).toBeLessThan(60_000);
    const lines = readFileSync(join(t.dir, 'logs', 'edge.log'), 'utf8').split('\n').map(parseJsonLine);
    expect(lines.filter((l) => l?.['msg'] === 'Event handler failed')).toEqual([]);
  });
});
