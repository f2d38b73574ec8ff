import { eventually, failure } from '@ledgerly/testkit';
// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createClient, createLogger, EventBus, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { IdentityServiceDefinition, Role } from '@ledgerly/proto/identity/v1/identity';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { identity } from '../src/service.js';

type Identity = PromiseClient<typeof IdentityServiceDefinition>;

const database = `identity_test_${Date.now()}`;
const env = () => ({
  LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
  LEDGERLY_MONGO_URL: inject('mongoUrl'),
  LEDGERLY_MONGO_DB: database,
  LEDGERLY_NATS_URL: inject('natsUrl'),
  LEDGERLY_LOG_LEVEL: 'warn',
});

let handle: ServiceHandle;
let client: Identity;
let mongo: MongoClient;
let db: Db;

beforeAll(async () => {
  handle = await startService(identity, env(), () => {});
  client = createClient(IdentityServiceDefinition, handle.ready['address'] as string);
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
});

afterAll(async () => {
  client?.close();
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
    const res = await client.verifyPassword({
      email: email.toUpperCase(),
      password,
    });
    expect(res.user).toMatchObject({ id: user.id, email });
  });

  it('answers a wrong password and an unknown email with the same UNAUTHENTICATED error', async () => {
    const { email } = await newUser();
    const wrong = await failure(client.verifyPassword({ email, password: 'not the password' }));
    const unknown = await failure(
      client.verifyPassword({
        email: uniqueEmail('nobody'),
        password: 'not the password',
      }),
    );
    const empty = await failure(client.verifyPassword({ email, password: '' }));
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
    const err = await failure(client.verifyPassword({ email, password }));
    expect(err).toMatchObject({
      code: Status.UNAUTHENTICATED,
      details: 'The email or password is incorrect',
    });
  });
});

describe('sessions', () => {
  it('creates a session that resolves by its token, stored only as a hash, and ends it', async () => {
    const { user } = await newUser();
    const created = await client.createSession({
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

    const got = await client.getSession({ sessionToken: created.sessionToken });
    expect(got.session).toMatchObject({
      id: created.session!.id,
      userId: user.id,
      amr: ['pwd', 'mfa'],
    });
    const stored = await db.collection('sessions').find({ userId: user.id }).toArray();
    expect(stored).toHaveLength(1);
    expect(JSON.stringify(stored)).not.toContain(created.sessionToken);

    await client.endSession({ sessionToken: created.sessionToken });
    expect(await failure(client.getSession({ sessionToken: created.sessionToken }))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'session_invalid',
    });
    // Ending it again, or ending an unknown session, succeeds.
    await expect(client.endSession({ sessionToken: created.sessionToken })).resolves.toEqual({});
  });

  it('defaults amr to pwd, and refuses a session for an unknown user', async () => {
    const { user } = await newUser();
    expect((await client.createSession({ userId: user.id })).session!.amr).toEqual(['pwd']);
    expect(await failure(client.createSession({ userId: 'ghost' }))).toMatchObject({ code: Status.NOT_FOUND });
  });

  it('treats an expired session, an unknown token and a disabled user as UNAUTHENTICATED', async () => {
    const { user } = await newUser();
    const expiring = await client.createSession({ userId: user.id });
    await db.collection('sessions').updateOne({ sessionId: expiring.session!.id }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    expect(await failure(client.getSession({ sessionToken: expiring.sessionToken }))).toMatchObject({ code: Status.UNAUTHENTICATED });
    expect(await failure(client.getSession({ sessionToken: 'made-up-token' }))).toMatchObject({ code: Status.UNAUTHENTICATED });
    expect(await failure(client.getSession({ sessionToken: '' }))).toMatchObject({ code: Status.UNAUTHENTICATED });

    const live = await client.createSession({ userId: user.id });
    await expect(client.getSession({ sessionToken: live.sessionToken })).resolves.toBeDefined();
    await db.collection('users').updateOne({ _id: user.id as never }, { $set: { disabled: true } });
    expect(await failure(client.getSession({ sessionToken: live.sessionToken }))).toMatchObject({ code: Status.UNAUTHENTICATED });
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

  it('publishes membership.changed on NATS for every change', async () => {
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

    const bus = await EventBus.connect({
      url: inject('natsUrl'),
      name: 'identity-test',
      logger: createLogger({ service: 't', level: 'error' }),
    });
    const seen: Event[] = [];
    const subscription = await bus.subscribe({
      since,
      handle: (e) => {
        if (e.payload?.$case === 'membershipChanged' && e.payload.value.userId === user.id) seen.push(e);
      },
    });
    try {
      await subscription.caughtUp;
      await eventually(() => seen.length >= 2);
      expect(seen.map((e) => [e.source, e.payload])).toEqual([
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
    } finally {
      await subscription.stop();
      await bus.close();
    }
  });
});

describe('shutdown', () => {
  it('lets an in-flight call finish, then refuses calls with UNAVAILABLE', async () => {
    const own = await startService(identity, env(), () => {});
    expect(own.state).toBe('running');
    const ownClient = createClient(IdentityServiceDefinition, own.ready['address'] as string);
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

