import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  ANY_CALLER,
  createClient,
  createLogger,
  currentRequestContext,
  GrpcServer,
  implement,
  RemoteError,
  Status,
  withRequestContext,
  type PromiseClient,
} from '../src/index.js';

const logLines: string[] = [];
const logger = createLogger({ service: 'grpc-test', level: 'debug', write: (l) => logLines.push(l) });
let server: GrpcServer;
let client: PromiseClient<typeof IdentityServiceDefinition>;

const notUsed = async () => {
  throw new Error('not used');
};

beforeAll(async () => {
  server = await GrpcServer.start({
    address: '127.0.0.1:0',
    logger,
    services: [
      implement(IdentityServiceDefinition, {
        getUser: async (req, ctx) => {
          return { user: { id: req.userId, name: `seen ${ctx.requestId}`, email: ctx.header('x-extra') ?? '' } };
        },
        createUser: async () => {
          throw new AlreadyExistsError('Email taken', 'email_taken');
        },
        verifyPassword: async () => {
          throw new Error('secret internals: db password is hunter2');
        },
        getSession: async () => {
          await new Promise((r) => setTimeout(r, 500));
          return {};
        },
        createSession: notUsed,
        endSession: notUsed,
        createOrganisation: notUsed,
        getOrganisation: notUsed,
        addMembership: notUsed,
        getMembership: notUsed,
        listMemberships: async () => ({ memberships: [{ organisationId: 'o1' }] }),
        disableUser: notUsed,
        enableUser: notUsed,
      }, {
        // Plain text in this test: every caller is "anonymous". Services use mutual TLS and real lists.
        getUser: [ANY_CALLER],
        createUser: [ANY_CALLER],
        verifyPassword: [ANY_CALLER],
        getSession: [ANY_CALLER],
        createSession: [ANY_CALLER],
        endSession: [ANY_CALLER],
        createOrganisation: [ANY_CALLER],
        getOrganisation: [ANY_CALLER],
        addMembership: [ANY_CALLER],
        getMembership: [ANY_CALLER],
        listMemberships: [ANY_CALLER],
        disableUser: ['operator'],
        enableUser: [ANY_CALLER],
      }),
    ],
  });
  server.setServing(true);
  client = createClient(IdentityServiceDefinition, server.address, { deadlineMs: 2000 });
});

afterAll(async () => {
  client.close();
  await server.shutdown(1000);
});

describe('gRPC chassis', () => {
  it('round-trips a call, fills proto defaults, and carries the request id and metadata', async () => {
    const res = await withRequestContext({ requestId: 'req-42' }, () =>
      client.getUser({ userId: 'u1' }, { metadata: { 'x-extra': 'meta' } }),
    );
    expect(res.user).toEqual(expect.objectContaining({ id: 'u1', name: 'seen req-42', email: 'meta', emailVerified: false }));
    const list = await client.listMemberships({});
    expect(list.memberships[0]).toMatchObject({ organisationId: 'o1', role: 0, organisationName: '' });
    expect(currentRequestContext()).toBeUndefined();
  });

  it('maps a ServiceError to its status and reason', async () => {
    const err = await client.createUser({ email: 'a@b.c' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ code: Status.ALREADY_EXISTS, details: 'Email taken', reason: 'email_taken' });
  });

  it('hides unexpected errors behind INTERNAL and logs the stack', async () => {
    const err = (await client.verifyPassword({ email: 'a', password: 'b' }).catch((e: unknown) => e)) as RemoteError;
    expect(err.code).toBe(Status.INTERNAL);
    expect(err.details).toBe('Internal error');
    expect(err.details).not.toContain('hunter2');
    expect(logLines.some((l) => l.includes('gRPC call failed unexpectedly') && l.includes('stack'))).toBe(true);
  });

  it('refuses a caller who is not on the access list, before the handler runs', async () => {
    const err = (await client.disableUser({ userId: 'u' }).catch((e: unknown) => e)) as RemoteError;
    expect(err).toMatchObject({ code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed', details: 'anonymous may not call DisableUser' });
  });

  it('gives up at the deadline instead of hanging', async () => {
    const started = Date.now();
    const err = (await client.getSession({}, { deadlineMs: 150 }).catch((e: unknown) => e)) as RemoteError;
    expect(err.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(err.unavailable).toBe(true);
    expect(Date.now() - started).toBeLessThan(450);
  });

  it('fails fast with UNAVAILABLE when nothing listens, retrying only idempotent methods', async () => {
    const dead = createClient(IdentityServiceDefinition, '127.0.0.1:1', { deadlineMs: 1500 });
    const started = Date.now();
    const err = (await dead.getUser({ userId: 'x' }).catch((e: unknown) => e)) as RemoteError;
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(Date.now() - started).toBeLessThan(1500);
    dead.close();
  });
});
