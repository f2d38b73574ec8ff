// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { apiAudience } from '@ledgerly/access';
import { createClient, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import { AccountingServiceDefinition } from '@ledgerly/proto/accounting/v1/accounting';
import { generateKeyPair, SignJWT } from 'jose';
import { MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ACCOUNTING_ACCESS } from '../src/grpc/accounting-service.js';
import { accounting } from '../src/service.js';
import { eventually, failure, foreignTls, testPki } from './support.js';

/**
 * The accounting service in-process, over mutual TLS, with no token, consent
 * or identity service behind it (their addresses point at a port nothing
 * listens on): what is tested here is who may call at all, what an operator
 * call leaves in the audit log, and that a call the service cannot check is
 * refused rather than served.
 */
const ISSUER = 'http://localhost:3000';
const database = `accounting_service_test_${Date.now()}`;
let pki: Awaited<ReturnType<typeof testPki>>;
let handle: ServiceHandle;
let address: string;
let edge: PromiseClient<typeof AccountingServiceDefinition>;
let operator: PromiseClient<typeof AccountingServiceDefinition>;
let mongo: MongoClient;
let db: Db;

beforeAll(async () => {
  pki = await testPki('accounting-service', ['accounting', 'edge', 'token', 'operator:test']);
  handle = await startService(
    accounting,
    {
      LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
      LEDGERLY_MONGO_URL: inject('mongoUrl'),
      LEDGERLY_MONGO_DB: database,
      LEDGERLY_NATS_URL: inject('natsUrl'),
      LEDGERLY_IDENTITY_ADDR: '127.0.0.1:1',
      LEDGERLY_CONSENT_ADDR: '127.0.0.1:1',
      LEDGERLY_TOKEN_ADDR: '127.0.0.1:1',
      LEDGERLY_ISSUER: ISSUER,
      LEDGERLY_LOG_LEVEL: 'warn',
      ...pki.env('accounting'),
    },
    () => {},
  );
  address = handle.ready['address'] as string;
  edge = pki.client(AccountingServiceDefinition, address, 'edge');
  operator = pki.client(AccountingServiceDefinition, address, 'operator:test');
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
});

afterAll(async () => {
  for (const c of [edge, operator]) c?.close();
  await handle?.stop();
  await mongo?.close();
});

/** A well-formed ES256 access token (the service cannot know yet whether its key is the token service's). */
async function wellFormedToken(): Promise<string> {
  const { privateKey } = await generateKeyPair('ES256');
  return new SignJWT({ client_id: 'A'.repeat(32), scope: 'accounting.contacts', grant_id: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: randomUUID() })
    .setIssuer(ISSUER)
    .setAudience(apiAudience(ISSUER))
    .setSubject(randomUUID())
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
}

describe('mutual TLS and access lists', () => {
  it('lets only the edge and operators call, each call still needing the user access token', async () => {
    for (const method of Object.values(ACCOUNTING_ACCESS)) expect(method).toEqual(['edge', 'operator']);
    const tenantId = randomUUID();
    const token = pki.client(AccountingServiceDefinition, address, 'token');
    try {
      expect(await failure(token.listContacts({ tenantId }))).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'caller_not_allowed',
        details: 'token may not call ListContacts',
      });
      expect(await failure(token.createContacts({ tenantId, contacts: [{ name: 'Sneaky Ltd' }] }))).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'caller_not_allowed',
      });
    } finally {
      token.close();
    }
    // An allowed caller gets past the access list, to the access token check.
    for (const c of [edge, operator]) {
      expect(await failure(c.listContacts({ tenantId }))).toMatchObject({ code: Status.UNAUTHENTICATED, reason: 'invalid_token' });
    }
    expect(await db.collection('contacts').countDocuments({ tenantId })).toBe(0);
  });

  it('fails closed: a token it cannot check (the token service is unreachable) is refused with UNAVAILABLE, never served', async () => {
    const tenantId = randomUUID();
    const err = await failure(
      edge.createContacts({ tenantId, contacts: [{ name: 'Unchecked Ltd' }] }, { metadata: { authorization: `Bearer ${await wellFormedToken()}` } }),
    );
    expect(err).toMatchObject({ code: Status.UNAVAILABLE, reason: 'dependency_unavailable' });
    expect(await db.collection('contacts').countDocuments({ tenantId })).toBe(0);
  });

  it('refuses a plain-text client, and a client certificate from another CA, with UNAVAILABLE', async () => {
    const plain = createClient(AccountingServiceDefinition, address, { deadlineMs: 2000 });
    const foreign = createClient(AccountingServiceDefinition, address, { tls: await foreignTls('accounting', 'edge', pki.tls('edge')), deadlineMs: 2000 });
    try {
      expect(await failure(plain.listContacts({ tenantId: randomUUID() }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(foreign.listContacts({ tenantId: randomUUID() }))).toMatchObject({ code: Status.UNAVAILABLE });
    } finally {
      plain.close();
      foreign.close();
    }
  });

  it('writes every operator call to audit_log with its outcome, never the access token; the edge is not audited', async () => {
    const tenantId = randomUUID();
    const bearer = await wellFormedToken();
    await failure(edge.getOrganisation({ tenantId }));
    await failure(operator.listContacts({ tenantId, searchTerm: 'acme' }));
    await failure(operator.getContact({ tenantId, contactId: randomUUID() }, { metadata: { authorization: `Bearer ${bearer}` } }));

    const audit = db.collection('audit_log');
    await eventually(async () => (await audit.countDocuments({ 'request.tenantId': tenantId })) >= 2);
    const entries = await audit.find({ 'request.tenantId': tenantId }).sort({ at: 1 }).toArray();
    expect(entries.map((e) => [e['operator'], e['method'], e['outcome']])).toEqual([
      ['operator:test', 'ListContacts', 'UNAUTHENTICATED'],
      ['operator:test', 'GetContact', 'UNAVAILABLE'],
    ]);
    expect(entries[0]).toMatchObject({
      service: 'accounting.v1.AccountingService',
      requestId: expect.any(String),
      at: expect.any(Date),
      request: { tenantId, searchTerm: 'acme' },
    });
    expect(JSON.stringify(await audit.find().toArray())).not.toContain(bearer);
  });
});
