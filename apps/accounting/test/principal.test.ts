import { AccessTokenVerifier, apiAudience, ConnectionView, MembershipView, type ConnectionCheck, type OperationName } from '@ledgerly/access';
import { createLogger, PermissionDeniedError, Status, UnauthenticatedError, type CallContext } from '@ledgerly/chassis';
import { Event } from '@ledgerly/proto/events/v1/events';
import { Role } from '@ledgerly/proto/identity/v1/identity';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PrincipalGuard } from '../src/grpc/principal.js';

/**
 * The guard with the real verifier and the real connection and membership
 * views. What sits below the service boundary is faked: the JWKS (a key
 * generated here), and the answers the consent and identity services would
 * give (the views' check and lookup functions).
 */
const ISSUER = 'http://localhost:3000';
const KID = 'test-key-1';
const CLIENT = 'A1B2C3D4E5F60718293A4B5C6D7E8F90';
let signingKey: CryptoKey;
let verifier: AccessTokenVerifier;

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  signingKey = privateKey;
  const jwk = {
    ...(await exportJWK(publicKey)),
    kid: KID,
    alg: 'ES256',
    use: 'sig',
  };
  verifier = new AccessTokenVerifier({
    issuer: ISSUER,
    audience: apiAudience(ISSUER),
    fetchJwks: async () => ({ keys: [jwk] }),
  });
});

interface World {
  /** Consent's answer per `${userId}|${tenantId}`; absent: never connected. */
  connections: Map<string, ConnectionCheck>;
  /** Identity's answer per `${userId}|${tenantId}`; absent: no membership. */
  roles: Map<string, Role>;
  checks: number;
  guard: PrincipalGuard;
  connectionView: ConnectionView;
  membershipView: MembershipView;
}

function world(): World {
  const w = {
    connections: new Map(),
    roles: new Map(),
    checks: 0,
  } as unknown as World;
  w.connectionView = new ConnectionView({
    check: async (userId, clientId, tenantId) => {
      w.checks++;
      expect(clientId).toBe(CLIENT);
      return (
        w.connections.get(`${userId}|${tenantId}`) ?? {
          connectionId: undefined,
          lastRevokedAt: undefined,
        }
      );
    },
  });
  w.membershipView = new MembershipView({
    lookup: async (userId, tenantId) => w.roles.get(`${userId}|${tenantId}`) ?? Role.ROLE_UNSPECIFIED,
  });
  w.guard = new PrincipalGuard(verifier, w.connectionView, w.membershipView);
  return w;
}

/** A connected user with a role, in a fresh world. */
function connected(role: Role) {
  const w = world();
  const userId = randomUUID();
  const tenantId = randomUUID();
  const connectionId = randomUUID();
  w.connections.set(`${userId}|${tenantId}`, {
    connectionId,
    lastRevokedAt: undefined,
  });
  w.roles.set(`${userId}|${tenantId}`, role);
  return { w, userId, tenantId, connectionId };
}

async function accessToken(userId: string, scope: string, overrides: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    client_id: CLIENT,
    scope,
    grant_id: 'g',
    authentication_event_id: 'ae',
    iat: now - 10,
    exp: now + 1800,
    ...overrides,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: KID, ...header })
    .setIssuer(ISSUER)
    .setAudience(apiAudience(ISSUER))
    .setSubject(userId)
    .setJti(randomUUID())
    .sign(signingKey);
}

function ctx(headers: Record<string, string>): CallContext {
  return {
    service: 'accounting.v1.AccountingService',
    method: 'Test',
    requestId: 'req-1',
    metadata: undefined as never,
    logger: createLogger({ service: 'accounting-test', level: 'error' }),
    signal: new AbortController().signal,
    header: (name) => headers[name],
  };
}
const bearer = (token: string) => ctx({ authorization: `Bearer ${token}` });

async function refusal(call: Promise<unknown>) {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) throw new Error('expected the guard to refuse');
  return err as UnauthenticatedError | PermissionDeniedError;
}

describe('PrincipalGuard', () => {
  it('allows a standard user with accounting.contacts to create contacts, and returns the verified claims', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_STANDARD);
    const claims = await w.guard.authorize(bearer(await accessToken(userId, 'openid accounting.contacts')), tenantId, 'CreateContacts');
    expect(claims).toMatchObject({ userId, clientId: CLIENT, issuer: ISSUER });
    expect([...claims.scopes]).toEqual(['openid', 'accounting.contacts']);
  });

  it('refuses a missing, malformed or garbage bearer token with invalid_token', async () => {
    const { w, tenantId } = connected(Role.ROLE_ADVISER);
    for (const headers of [
      {},
      { authorization: '' },
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: 'Bearer ' },
      { authorization: 'Bearer a b' },
    ]) {
      const err = await refusal(w.guard.authorize(ctx(headers as Record<string, string>), tenantId, 'ListContacts'));
      expect(err).toBeInstanceOf(UnauthenticatedError);
      expect(err).toMatchObject({
        code: Status.UNAUTHENTICATED,
        reason: 'invalid_token',
      });
    }
    for (const token of ['garbage', 'a.b.c', 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln']) {
      expect(await refusal(w.guard.authorize(bearer(token), tenantId, 'ListContacts'))).toMatchObject({
        code: Status.UNAUTHENTICATED,
        reason: 'invalid_token',
        message: 'The access token is invalid',
      });
    }
    expect(w.checks).toBe(0);
  });

  it('refuses an expired token, or one for another issuer, with invalid_token', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const now = Math.floor(Date.now() / 1000);
    const expired = await accessToken(userId, 'accounting.contacts', {
      iat: now - 3600,
      exp: now - 60,
    });
    expect(await refusal(w.guard.authorize(bearer(expired), tenantId, 'ListContacts'))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_token',
      message: 'The access token expired',
    });
    const foreign = await new SignJWT({
      client_id: CLIENT,
      scope: 'accounting.contacts',
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: KID })
      .setIssuer('https://evil.example')
      .setAudience(apiAudience(ISSUER))
      .setSubject(userId)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(signingKey);
    expect(await refusal(w.guard.authorize(bearer(foreign), tenantId, 'ListContacts'))).toMatchObject({ reason: 'invalid_token' });
  });

  it('refuses with connection_revoked (401) a token issued before the connection was revoked, and tenant_not_connected (403) one issued after', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const now = Math.floor(Date.now() / 1000);
    w.connections.set(`${userId}|${tenantId}`, {
      connectionId: undefined,
      lastRevokedAt: (now - 30) * 1000,
    });

    const before = await accessToken(userId, 'accounting.contacts', {
      iat: now - 60,
    });
    const err = await refusal(w.guard.authorize(bearer(before), tenantId, 'ListContacts'));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'connection_revoked',
    });

    const after = await accessToken(userId, 'accounting.contacts', {
      iat: now - 5,
    });
    const err2 = await refusal(w.guard.authorize(bearer(after), tenantId, 'ListContacts'));
    expect(err2).toBeInstanceOf(PermissionDeniedError);
    expect(err2).toMatchObject({
      code: Status.PERMISSION_DENIED,
      reason: 'tenant_not_connected',
    });
  });

  it('refuses a live connection at once when connection.revoked arrives, even though the live answer was cached', async () => {
    const { w, userId, tenantId, connectionId } = connected(Role.ROLE_ADVISER);
    const token = await accessToken(userId, 'accounting.contacts');
    await w.guard.authorize(bearer(token), tenantId, 'ListContacts');
    await w.guard.authorize(bearer(token), tenantId, 'ListContacts');
    expect(w.checks).toBe(1);

    w.connectionView.apply(
      Event.fromPartial({
        id: randomUUID(),
        occurredAt: new Date(),
        source: 'consent',
        payload: {
          $case: 'connectionRevoked',
          value: {
            connectionId,
            userId,
            clientId: CLIENT,
            tenantId,
            revokedAt: new Date(),
          },
        },
      }),
    );
    expect(await refusal(w.guard.authorize(bearer(token), tenantId, 'ListContacts'))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'connection_revoked',
    });
  });

  it('refuses a tenant the app was never connected to, or that is not an organisation id, with tenant_not_connected', async () => {
    const { w, userId } = connected(Role.ROLE_ADVISER);
    const token = await accessToken(userId, 'accounting.contacts');
    const err = await refusal(w.guard.authorize(bearer(token), randomUUID(), 'ListContacts'));
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(err).toMatchObject({
      code: Status.PERMISSION_DENIED,
      reason: 'tenant_not_connected',
    });
    const checks = w.checks;
    for (const tenantId of ['', 'not-a-uuid', '../other']) {
      expect(await refusal(w.guard.authorize(bearer(token), tenantId, 'ListContacts'))).toMatchObject({ reason: 'tenant_not_connected' });
    }
    expect(w.checks).toBe(checks);
  });

  it.each<[string, OperationName, boolean]>([
    ['accounting.contacts.read', 'ListContacts', true],
    ['accounting.contacts.read', 'GetContact', true],
    ['accounting.contacts.read', 'CreateContacts', false],
    ['accounting.settings accounting.transactions', 'ListContacts', false],
    ['accounting.contacts', 'GetOrganisation', false],
    ['accounting.settings.read', 'GetOrganisation', true],
    ['openid profile email offline_access', 'GetContact', false],
  ])('scope "%s" for %s: allowed=%s, otherwise insufficient_scope', async (scope, operation, allowed) => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const call = w.guard.authorize(bearer(await accessToken(userId, scope)), tenantId, operation);
    if (allowed) await expect(call).resolves.toMatchObject({ userId });
    else
      expect(await refusal(call)).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'insufficient_scope',
      });
  });

  it.each<[string, Role, OperationName, boolean]>([
    ['readonly', Role.ROLE_READONLY, 'CreateContacts', false],
    ['readonly', Role.ROLE_READONLY, 'ListContacts', true],
    ['readonly', Role.ROLE_READONLY, 'GetOrganisation', true],
    ['standard', Role.ROLE_STANDARD, 'CreateContacts', true],
    ['adviser', Role.ROLE_ADVISER, 'CreateContacts', true],
    ['adviser', Role.ROLE_ADVISER, 'GetOrganisation', true],
    ['no membership', Role.ROLE_UNSPECIFIED, 'ListContacts', false],
  ])('role %s for %s: allowed=%s, otherwise insufficient_role', async (_name, role, operation, allowed) => {
    const { w, userId, tenantId } = connected(role);
    const call = w.guard.authorize(bearer(await accessToken(userId, 'accounting.contacts accounting.settings')), tenantId, operation);
    if (allowed) await expect(call).resolves.toMatchObject({ userId });
    else
      expect(await refusal(call)).toMatchObject({
        code: Status.PERMISSION_DENIED,
        reason: 'insufficient_role',
      });
  });

  it('applies a role change at once when membership.changed arrives', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const token = await accessToken(userId, 'accounting.contacts');
    await expect(w.guard.authorize(bearer(token), tenantId, 'CreateContacts')).resolves.toBeDefined();
    w.roles.set(`${userId}|${tenantId}`, Role.ROLE_READONLY);
    // Still cached as adviser until told.
    await expect(w.guard.authorize(bearer(token), tenantId, 'CreateContacts')).resolves.toBeDefined();
    w.membershipView.apply(
      Event.fromPartial({
        id: randomUUID(),
        source: 'identity',
        payload: {
          $case: 'membershipChanged',
          value: { userId, organisationId: tenantId, role: Role.ROLE_READONLY },
        },
      }),
    );
    expect(await refusal(w.guard.authorize(bearer(token), tenantId, 'CreateContacts'))).toMatchObject({ reason: 'insufficient_role' });
  });
});
