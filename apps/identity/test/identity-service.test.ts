import { collectEvents, eventually, failure } from '@ledgerly/testkit';
// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createClient, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import { Event } from '@ledgerly/proto/events/v1/events';
import { IdentityServiceDefinition, Role } from '@ledgerly/proto/identity/v1/identity';
import { Binary, MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { IDENTITY_ACCESS } from '../src/grpc/identity-service.js';
import { identity } from '../src/service.js';
import { foreignTls, outboxEvents, outboxOf, rawStream, testPki } from './support.js';

type Identity = PromiseClient<typeof IdentityServiceDefinition>;

/**
 * The identity service in-process, over mutual TLS with certificates from a
 * test PKI. Each client presents the certificate of the caller the method's
 * access list allows: operator tools create users and organisations, the
 * edge signs people in, the consent service resolves sessions.
 */
const database = `identity_test_${Date.now()}`;
let pki: Awaited<ReturnType<typeof testPki>>;
const env = () => ({
  LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
  LEDGERLY_MONGO_URL: inject('mongoUrl'),
  LEDGERLY_MONGO_DB: database,
  LEDGERLY_NATS_URL: inject('natsUrl'),
  LEDGERLY_LOG_LEVEL: 'warn',
  ...pki.env('identity'),
});

let handle: ServiceHandle;
let address: string;
/** operator:test: users, organisations, memberships, disabling. */
let client: Identity;
/** The edge: passwords and sessions. */
let edge: Identity;
/** The consent service: GetSession. */
let consent: Identity;
let mongo: MongoClient;
let db: Db;

beforeAll(async () => {
  pki = await testPki('identity-service', ['identity', 'edge', 'consent', 'token', 'operator:test']);
  handle = await startService(identity, env(), () => {});
  address = handle.ready['address'] as string;
  client = pki.client(IdentityServiceDefinition, address, 'operator:test');
  edge = pki.client(IdentityServiceDefinition, address, 'edge');
  consent = pki.client(IdentityServiceDefinition, address, 'consent');
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
});

afterAll(async () => {
  for (const c of [client, edge, consent]) c?.close();
  await handle?.stop();
  await mongo?.close();
});

let counter = 0;
const uniqueEmail = (prefix = 'user') => `${prefix}-${Date.now()}-${++counter}@example.com`;

async function newUser(password = 'correct horse battery') {
  const email = uniqueEmail();
  const { user } = await client.createUser({
    email,
    password,
    name: 'Ada Lovelace',
  });
  return { user: user!, email, password };
}

describe('users', () => {
  it('creates a user, and refuses the same email in another case with ALREADY_EXISTS', async () => {
    const email = uniqueEmail('Mixed.Case');
    const { user } = await client.createUser({
      email: `  ${email}  `,
      password: 'long enough pw',
      name: ' Grace Hopper ',
    });
    expect(user).toMatchObject({
      email,
      name: 'Grace Hopper',
      emailVerified: false,
      disabled: false,
    });
    expect(user!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await client.getUser({ userId: user!.id })).user).toMatchObject({
      id: user!.id,
      email,
    });

    const err = await failure(
      client.createUser({
        email: email.toUpperCase(),
        password: 'another password',
        name: 'Impostor',
      }),
    );
    expect(err).toMatchObject({
      code: Status.ALREADY_EXISTS,
      reason: 'email_taken',
    });
    expect(await db.collection('users').countDocuments({ emailKey: email.toLowerCase() })).toBe(1);
  });

  it('refuses an invalid email, an invalid name and a password shorter than 8 characters', async () => {
    for (const email of ['not-an-email', 'a@b', 'two words@example.com', '']) {
      const err = await failure(client.createUser({ email, password: 'long enough pw', name: 'N' }));
      expect(err, email).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        reason: 'invalid_email',
      });
    }
    for (const name of ['', '   ', 'x'.repeat(101)]) {
      const err = await failure(
        client.createUser({
          email: uniqueEmail(),
          password: 'long enough pw',
          name,
        }),
      );
      expect(err).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        reason: 'invalid_name',
      });
    }
    const email = uniqueEmail('short');
    const weak = await failure(client.createUser({ email, password: '1234567', name: 'Short' }));
    expect(weak).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      reason: 'weak_password',
      details: 'Password must be at least 8 characters',
    });
    expect(await db.collection('users').countDocuments({ emailKey: email })).toBe(0);
    // Exactly 8 is enough.
    await expect(client.createUser({ email, password: '12345678', name: 'Short' })).resolves.toMatchObject({ user: { email } });
  });

  it('stores an argon2id hash and the password nowhere in the document', async () => {
    const password = 'Sup3r-Secret-Passphrase!';
    const { user } = await newUser(password);
    const doc = await db.collection('users').findOne({ _id: user.id as never });
    expect(doc).not.toBeNull();
    expect(doc!['passwordHash']).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(JSON.stringify(doc)).not.toContain(password);
    expect(JSON.stringify((await client.getUser({ userId: user.id })).user)).not.toContain('argon2');
  });

  it('GetUser of an unknown user is NOT_FOUND', async () => {
    expect(await failure(client.getUser({ userId: 'no-such-user' }))).toMatchObject({ code: Status.NOT_FOUND });
  });
});

describe('VerifyPassword', () => {
  it('accepts the right password, with the email in any case', async () => {
    const { user, email, password } = await newUser();
    const res = await edge.verifyPassword({
      email: email.toUpperCase(),
      password,
    });
    expect(res.user).toMatchObject({ id: user.id, email });
  });

  it('answers a wrong password and an unknown email with the same UNAUTHENTICATED error', async () => {
    const { email } = await newUser();
    const wrong = await failure(edge.verifyPassword({ email, password: 'not the password' }));
    const unknown = await failure(
      edge.verifyPassword({
        email: uniqueEmail('nobody'),
        password: 'not the password',
      }),
    );
    const empty = await failure(edge.verifyPassword({ email, password: '' }));
    for (const err of [wrong, unknown, empty]) {
      expect(err).toMatchObject({
        code: Status.UNAUTHENTICATED,
        reason: 'invalid_credentials',
        details: 'The email or password is incorrect',
      });
    }
  });

  it('refuses a disabled user even with the right password', async () => {
    const { user, email, password } = await newUser();
    await db.collection('users').updateOne({ _id: user.id as never }, { $set: { disabled: true } });
    const err = await failure(edge.verifyPassword({ email, password }));
    expect(err).toMatchObject({
      code: Status.UNAUTHENTICATED,
      details: 'The email or password is incorrect',
    });
  });
});

describe('sessions', () => {
  it('creates a session that resolves by its token, stored only as a hash, and ends it', async () => {
    const { user } = await newUser();
    const created = await edge.createSession({
      userId: user.id,
      amr: ['pwd', 'mfa'],
    });
    expect(created.sessionToken.length).toBeGreaterThanOrEqual(43);
    expect(created.session).toMatchObject({
      userId: user.id,
      amr: ['pwd', 'mfa'],
    });
    const ttlMs = created.session!.expiresAt!.getTime() - created.session!.authTime!.getTime();
    expect(ttlMs).toBe(8 * 3600 * 1000);

    const got = await consent.getSession({ sessionToken: created.sessionToken });
    expect(got.session).toMatchObject({
      id: created.session!.id,
      userId: user.id,
      amr: ['pwd', 'mfa'],
    });
    const stored = await db.collection('sessions').find({ userId: user.id }).toArray();
    expect(stored).toHaveLength(1);
    expect(JSON.stringify(stored)).not.toContain(created.sessionToken);

    await edge.endSession({ sessionToken: created.sessionToken });
    expect(await failure(consent.getSession({ sessionToken: created.sessionToken }))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'session_invalid',
    });
    // Ending it again, or ending an unknown session, succeeds.
    await expect(edge.endSession({ sessionToken: created.sessionToken })).resolves.toEqual({});
  });

  it('defaults amr to pwd, and refuses a session for an unknown user', async () => {
    const { user } = await newUser();
    expect((await edge.createSession({ userId: user.id })).session!.amr).toEqual(['pwd']);
    expect(await failure(edge.createSession({ userId: 'ghost' }))).toMatchObject({ code: Status.NOT_FOUND });
  });

  it('treats an expired session, an unknown token and a disabled user as UNAUTHENTICATED', async () => {
    const { user } = await newUser();
    const expiring = await edge.createSession({ userId: user.id });
    await db.collection('sessions').updateOne({ sessionId: expiring.session!.id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    expect(await failure(consent.getSession({ sessionToken: expiring.sessionToken }))).toMatchObject({ code: Status.UNAUTHENTICATED });
    expect(await failure(consent.getSession({ sessionToken: 'made-up-token' }))).toMatchObject({ code: Status.UNAUTHENTICATED });
    expect(await failure(consent.getSession({ sessionToken: '' }))).toMatchObject({ code: Status.UNAUTHENTICATED });

    const live = await edge.createSession({ userId: user.id });
    await expect(consent.getSession({ sessionToken: live.sessionToken })).resolves.toBeDefined();
    await db.collection('users').updateOne({ _id: user.id as never }, { $set: { disabled: true } });
    expect(await failure(consent.getSession({ sessionToken: live.sessionToken }))).toMatchObject({ code: Status.UNAUTHENTICATED });
  });
});

describe('organisations and memberships', () => {
  it('creates an organisation with defaults and validates its fields', async () => {
    const { organisation } = await client.createOrganisation({
      name: '  Demo Company  ',
    });
    expect(organisation).toMatchObject({
      name: 'Demo Company',
      countryCode: 'NZ',
      baseCurrency: 'NZD',
    });
    expect((await client.getOrganisation({ organisationId: organisation!.id })).organisation).toMatchObject({ id: organisation!.id });
    const au = await client.createOrganisation({
      name: 'Aussie',
      countryCode: 'au',
      baseCurrency: 'aud',
    });
    expect(au.organisation).toMatchObject({
      countryCode: 'AU',
      baseCurrency: 'AUD',
    });

    expect(await failure(client.createOrganisation({ name: ' ' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(await failure(client.createOrganisation({ name: 'X', countryCode: 'NZL' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(await failure(client.createOrganisation({ name: 'X', baseCurrency: 'N1D' }))).toMatchObject({ code: Status.INVALID_ARGUMENT });
    // Well-formed but not a code at all (Xero's CountryCode and CurrencyCode lists).
    expect(await failure(client.createOrganisation({ name: 'X', countryCode: 'ZZ' }))).toMatchObject({ code: Status.INVALID_ARGUMENT, reason: 'invalid_country_code' });
    expect(await failure(client.createOrganisation({ name: 'X', baseCurrency: 'QQQ' }))).toMatchObject({ code: Status.INVALID_ARGUMENT, reason: 'invalid_currency_code' });
    expect(await failure(client.getOrganisation({ organisationId: 'nope' }))).toMatchObject({ code: Status.NOT_FOUND });
  });

  it('AddMembership upserts the role; ListMemberships returns every organisation with its name', async () => {
    const { user } = await newUser();
    const a = (await client.createOrganisation({ name: 'Alpha Ltd' })).organisation!;
    const b = (await client.createOrganisation({ name: 'Beta Ltd' })).organisation!;

    const first = await client.addMembership({
      userId: user.id,
      organisationId: a.id,
      role: Role.ROLE_READONLY,
    });
    expect(first.membership).toMatchObject({
      userId: user.id,
      organisationId: a.id,
      organisationName: 'Alpha Ltd',
      role: Role.ROLE_READONLY,
    });
    await client.addMembership({
      userId: user.id,
      organisationId: b.id,
      role: Role.ROLE_STANDARD,
    });
    const changed = await client.addMembership({
      userId: user.id,
      organisationId: a.id,
      role: Role.ROLE_ADVISER,
    });
    expect(changed.membership).toMatchObject({ role: Role.ROLE_ADVISER });
    expect(changed.membership!.createdAt).toEqual(first.membership!.createdAt);

    expect(await db.collection('memberships').countDocuments({ userId: user.id })).toBe(2);
    const { memberships } = await client.listMemberships({ userId: user.id });
    expect(memberships.map((m) => [m.organisationId, m.organisationName, m.role])).toEqual([
      [a.id, 'Alpha Ltd', Role.ROLE_ADVISER],
      [b.id, 'Beta Ltd', Role.ROLE_STANDARD],
    ]);
    expect((await client.getMembership({ userId: user.id, organisationId: b.id })).membership).toMatchObject({ role: Role.ROLE_STANDARD });

    const other = (await client.createOrganisation({ name: 'Gamma Ltd' })).organisation!;
    expect(await failure(client.getMembership({ userId: user.id, organisationId: other.id }))).toMatchObject({ code: Status.NOT_FOUND });
    expect((await client.listMemberships({ userId: 'no-such-user' })).memberships).toEqual([]);
  });

  it('refuses an unknown user or organisation with NOT_FOUND and an invalid role with INVALID_ARGUMENT', async () => {
    const { user } = await newUser();
    const org = (await client.createOrganisation({ name: 'Delta Ltd' })).organisation!;
    expect(
      await failure(
        client.addMembership({
          userId: 'ghost',
          organisationId: org.id,
          role: Role.ROLE_STANDARD,
        }),
      ),
    ).toMatchObject({
      code: Status.NOT_FOUND,
      details: 'No such user',
    });
    expect(
      await failure(
        client.addMembership({
          userId: user.id,
          organisationId: 'ghost',
          role: Role.ROLE_STANDARD,
        }),
      ),
    ).toMatchObject({
      code: Status.NOT_FOUND,
      details: 'No such organisation',
    });
    for (const role of [Role.ROLE_UNSPECIFIED, 7 as Role]) {
      expect(
        await failure(
          client.addMembership({
            userId: user.id,
            organisationId: org.id,
            role,
          }),
        ),
      ).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        reason: 'invalid_role',
      });
    }
    expect(await db.collection('memberships').countDocuments({ userId: user.id })).toBe(0);
  });

  it('publishes membership.changed for every change through the outbox: the event id is the outbox record, marked published', async () => {
    const since = new Date(Date.now() - 1000);
    const { user } = await newUser();
    const org = (await client.createOrganisation({ name: 'Evented Ltd' })).organisation!;
    await client.addMembership({
      userId: user.id,
      organisationId: org.id,
      role: Role.ROLE_STANDARD,
    });
    await client.addMembership({
      userId: user.id,
      organisationId: org.id,
      role: Role.ROLE_READONLY,
    });

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'membershipChanged' && e.payload.value.userId === user.id);
    try {
      await eventually(() => observed.events.length >= 2);
      expect(observed.events.map((e) => [e.source, e.payload])).toEqual([
        [
          'identity',
          {
            $case: 'membershipChanged',
            value: {
              userId: user.id,
              organisationId: org.id,
              role: Role.ROLE_STANDARD,
            },
          },
        ],
        [
          'identity',
          {
            $case: 'membershipChanged',
            value: {
              userId: user.id,
              organisationId: org.id,
              role: Role.ROLE_READONLY,
            },
          },
        ],
      ]);
      for (const event of observed.events) {
        const record = await outboxOf(db).findOne({ _id: event.id });
        expect(record).toMatchObject({ type: 'membership.changed', publishedAt: expect.any(Date) });
        expect(Event.decode(record!.data.buffer)).toEqual(event);
      }
    } finally {
      await observed.stop();
    }
  });
});

describe('DisableUser and EnableUser', () => {
  it('disabling ends every session of the user, refuses their password and sessions, and publishes user.disabled once', async () => {
    const since = new Date(Date.now() - 1000);
    const { user, email, password } = await newUser();
    const other = await newUser();
    const sessions = [await edge.createSession({ userId: user.id }), await edge.createSession({ userId: user.id })];
    const othersSession = await edge.createSession({ userId: other.user.id });
    expect(await db.collection('sessions').countDocuments({ userId: user.id })).toBe(2);

    const before = Date.now();
    const { user: disabled } = await client.disableUser({ userId: user.id });
    expect(disabled).toMatchObject({ id: user.id, disabled: true });
    expect(disabled!.disabledAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(disabled!.disabledAt!.getTime()).toBeLessThanOrEqual(Date.now());
    expect((await client.getUser({ userId: user.id })).user).toMatchObject({ disabled: true, disabledAt: disabled!.disabledAt });

    expect(await db.collection('sessions').countDocuments({ userId: user.id })).toBe(0);
    for (const s of sessions) {
      expect(await failure(consent.getSession({ sessionToken: s.sessionToken }))).toMatchObject({
        code: Status.UNAUTHENTICATED,
        reason: 'session_invalid',
      });
    }
    expect(await failure(edge.verifyPassword({ email, password }))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_credentials',
      details: 'The email or password is incorrect',
    });
    expect(await failure(edge.createSession({ userId: user.id }))).toMatchObject({ code: Status.NOT_FOUND });
    // Nobody else is affected.
    await expect(consent.getSession({ sessionToken: othersSession.sessionToken })).resolves.toMatchObject({ session: { userId: other.user.id } });
    await expect(edge.verifyPassword({ email: other.email, password: other.password })).resolves.toBeDefined();

    // Disabling again changes nothing and publishes nothing more.
    const again = await client.disableUser({ userId: user.id });
    expect(again.user!.disabledAt).toEqual(disabled!.disabledAt);

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'userDisabled' && e.payload.value.userId === user.id);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]).toMatchObject({
        source: 'identity',
        payload: { $case: 'userDisabled', value: { userId: user.id, disabledAt: disabled!.disabledAt } },
      });
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({
        type: 'user.disabled',
        publishedAt: expect.any(Date),
      });
    } finally {
      await observed.stop();
    }
    const mine = (await outboxEvents(db, 'user.disabled')).filter((e) => e.payload?.$case === 'userDisabled' && e.payload.value.userId === user.id);
    expect(mine).toHaveLength(1);
  });

  it('enabling lets the user sign in again, keeps the time they were disabled, and does not bring old sessions back', async () => {
    const { user, email, password } = await newUser();
    const session = await edge.createSession({ userId: user.id });
    const { user: disabled } = await client.disableUser({ userId: user.id });
    const { user: enabled } = await client.enableUser({ userId: user.id });
    expect(enabled).toMatchObject({ id: user.id, disabled: false });
    // Tokens issued before it stay refused even after re-enabling.
    expect(enabled!.disabledAt).toEqual(disabled!.disabledAt);
    await expect(edge.verifyPassword({ email, password })).resolves.toMatchObject({ user: { id: user.id } });
    expect(await failure(consent.getSession({ sessionToken: session.sessionToken }))).toMatchObject({ code: Status.UNAUTHENTICATED });
    const fresh = await edge.createSession({ userId: user.id });
    await expect(consent.getSession({ sessionToken: fresh.sessionToken })).resolves.toMatchObject({ session: { userId: user.id } });
  });

  it('DisableUser and EnableUser of an unknown user are NOT_FOUND, and publish nothing', async () => {
    const before = await db.collection('outbox').countDocuments();
    expect(await failure(client.disableUser({ userId: randomUUID() }))).toMatchObject({ code: Status.NOT_FOUND });
    expect(await failure(client.enableUser({ userId: randomUUID() }))).toMatchObject({ code: Status.NOT_FOUND });
    expect(await db.collection('outbox').countDocuments()).toBe(before);
  });
});

describe('outbox relay', () => {
  it('applies and publishes an event left in the outbox (the process died before applying it), then a re-send is de-duplicated', async () => {
    const { user, email, password } = await newUser();
    const session = await edge.createSession({ userId: user.id });
    const stream = await rawStream();
    try {
      const start = await stream.lastSeq();
      // As if DisableUser had written its intent, then the process died.
      const event = Event.fromPartial({
        id: randomUUID(),
        occurredAt: new Date(),
        source: 'identity',
        payload: { $case: 'userDisabled', value: { userId: user.id, disabledAt: new Date() } },
      });
      const outbox = outboxOf(db);
      await outbox.insertOne({
        _id: event.id,
        type: 'user.disabled',
        data: new Binary(Event.encode(event).finish()),
        createdAt: new Date(Date.now() - 10_000),
        publishedAt: null,
      });
      await eventually(async () => (await outbox.findOne({ _id: event.id }))?.publishedAt instanceof Date, 10_000);
      expect((await client.getUser({ userId: user.id })).user).toMatchObject({ disabled: true });
      expect(await failure(consent.getSession({ sessionToken: session.sessionToken }))).toMatchObject({ code: Status.UNAUTHENTICATED });
      expect(await failure(edge.verifyPassword({ email, password }))).toMatchObject({ code: Status.UNAUTHENTICATED });
      expect((await stream.storedSince(start)).filter((e) => e.id === event.id)).toEqual([event]);

      // As if the process died between publishing and marking it published: sent again, with the same id.
      await outbox.updateOne({ _id: event.id }, { $set: { publishedAt: null, createdAt: new Date(Date.now() - 10_000) } });
      await eventually(async () => (await outbox.findOne({ _id: event.id }))?.publishedAt instanceof Date, 10_000);
      expect((await stream.storedSince(start)).filter((e) => e.id === event.id)).toHaveLength(1);
    } finally {
      await stream.close();
    }
  });
});

describe('mutual TLS and access lists', () => {
  it('refuses a caller its access list does not name with PERMISSION_DENIED caller_not_allowed, before doing anything', async () => {
    const email = uniqueEmail('denied');
    expect(await failure(edge.createUser({ email, password: 'long enough pw', name: 'Denied' }))).toMatchObject({
      code: Status.PERMISSION_DENIED,
      reason: 'caller_not_allowed',
      details: 'edge may not call CreateUser',
    });
    expect(await db.collection('users').countDocuments({ emailKey: email })).toBe(0);

    const { user, email: own, password } = await newUser();
    const { sessionToken } = await edge.createSession({ userId: user.id });
    // Only the edge checks passwords; only the consent service and the edge resolve sessions.
    expect(await failure(client.verifyPassword({ email: own, password }))).toMatchObject({ code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed' });
    await expect(edge.getSession({ sessionToken })).resolves.toMatchObject({ session: { userId: user.id } });
    const token = pki.client(IdentityServiceDefinition, address, 'token');
    try {
      expect(await failure(token.getSession({ sessionToken }))).toMatchObject({ code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed' });
      await expect(token.getUser({ userId: user.id })).resolves.toMatchObject({ user: { id: user.id } });
      expect(await failure(token.disableUser({ userId: user.id }))).toMatchObject({ code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed' });
      expect(await failure(token.addMembership({ userId: user.id, organisationId: randomUUID(), role: Role.ROLE_ADVISER }))).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'caller_not_allowed',
      });
    } finally {
      token.close();
    }
    expect((await client.getUser({ userId: user.id })).user!.disabled).toBe(false);
    expect(IDENTITY_ACCESS.disableUser).toEqual(['operator']);
  });

  it('refuses a plain-text client, and a client certificate from another CA, with UNAVAILABLE', async () => {
    const plain = createClient(IdentityServiceDefinition, address, { deadlineMs: 2000 });
    const foreign = createClient(IdentityServiceDefinition, address, { tls: await foreignTls('identity', 'edge', pki.tls('edge')), deadlineMs: 2000 });
    try {
      const { email, password } = await newUser();
      expect(await failure(plain.verifyPassword({ email, password }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(plain.getUser({ userId: 'x' }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(foreign.verifyPassword({ email, password }))).toMatchObject({ code: Status.UNAVAILABLE });
      // The same call with the real edge certificate works.
      await expect(edge.verifyPassword({ email, password })).resolves.toBeDefined();
    } finally {
      plain.close();
      foreign.close();
    }
  });

  it('refuses to start with a certificate that is not its own', async () => {
    await expect(startService(identity, { ...env(), ...pki.env('edge') }, () => {})).rejects.toThrow(
      'LEDGERLY_TLS_CERT is the certificate of "edge", not of "identity"',
    );
  });

  it('writes every operator call to audit_log, secrets redacted, with its outcome; service calls are not audited', async () => {
    const email = uniqueEmail('audited');
    const password = 'Audited-Secret-Passphrase';
    const { user } = await client.createUser({ email, password, name: 'Audited' });
    const { sessionToken } = await edge.createSession({ userId: user!.id });
    const missing = randomUUID();
    await failure(client.getUser({ userId: missing }));
    await failure(client.verifyPassword({ email, password }));

    const audit = db.collection('audit_log');
    await eventually(async () => (await audit.countDocuments({ $or: [{ 'request.email': email }, { 'request.userId': missing }] })) >= 3);
    const created = await audit.findOne({ method: 'CreateUser', 'request.email': email });
    expect(created).toMatchObject({
      operator: 'operator:test',
      service: 'identity.v1.IdentityService',
      method: 'CreateUser',
      outcome: 'OK',
      requestId: expect.any(String),
      at: expect.any(Date),
      request: { email, name: 'Audited', password: '[REDACTED]' },
    });
    expect(await audit.findOne({ method: 'GetUser', 'request.userId': missing })).toMatchObject({ operator: 'operator:test', outcome: 'NOT_FOUND' });
    expect(await audit.findOne({ method: 'VerifyPassword', 'request.email': email })).toMatchObject({
      outcome: 'PERMISSION_DENIED',
      request: { email, password: '[REDACTED]' },
    });
    const entries = await audit.find({ $or: [{ 'request.email': email }, { 'request.userId': user!.id }] }).toArray();
    expect(JSON.stringify(entries)).not.toContain(password);
    expect(JSON.stringify(await audit.find().toArray())).not.toContain(sessionToken);
    // The edge's CreateSession for this user is not an operator action.
    expect(entries.map((e) => e['method']).sort()).toEqual(['CreateUser', 'VerifyPassword']);
  });
});

describe('shutdown', () => {
  it('lets an in-flight call finish, then refuses calls with UNAVAILABLE', async () => {
    const own = await startService(identity, env(), () => {});
    expect(own.state).toBe('running');
    const ownClient = pki.client(IdentityServiceDefinition, own.ready['address'] as string, 'operator:test');
    try {
      // Warm the channel so the next call reaches the server at once.
      const { user } = await ownClient.createUser({
        email: uniqueEmail('warm'),
        password: 'long enough pw',
        name: 'Warm',
      });
      expect(user).toBeDefined();
      // CreateUser spends tens of milliseconds hashing (argon2id on a small
      // thread pool): once the first of these answers, the others have reached
      // the server and are still being handled when stop() begins.
      const emails = Array.from({ length: 8 }, () => uniqueEmail('inflight'));
      let settled = 0;
      const calls = emails.map((email) => ownClient.createUser({ email, password: 'long enough pw', name: 'In Flight' }).finally(() => settled++));
      await Promise.race(calls);
      const stopping = own.stop();
      expect(settled).toBeLessThan(emails.length);
      await stopping;
      expect(own.state).toBe('stopped');
      const results = await Promise.allSettled(calls);
      expect(results.map((r) => r.status)).toEqual(emails.map(() => 'fulfilled'));
      expect(await db.collection('users').countDocuments({ emailKey: { $in: emails } })).toBe(emails.length);

      const started = Date.now();
      expect(await failure(ownClient.getUser({ userId: user!.id }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(
        await failure(
          ownClient.createUser({
            email: uniqueEmail(),
            password: 'long enough pw',
            name: 'Late',
          }),
        ),
      ).toMatchObject({
        code: Status.UNAVAILABLE,
      });
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      ownClient.close();
      await own.stop();
    }
  });
});

