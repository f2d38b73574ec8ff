import {
  AccessGuard,
  AccessTokenVerifier,
  apiAudience,
  ConnectionView,
  MembershipView,
  RevocationView,
  type AccessTokenClaims,
  type ConnectionCheck,
  type OperationName,
} from '@ledgerly/access';
import { createLogger, PermissionDeniedError, RemoteError, Status, UnauthenticatedError, type CallContext } from '@ledgerly/chassis';
import { Event } from '@ledgerly/proto/events/v1/events';
import { Role } from '@ledgerly/proto/identity/v1/identity';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { PrincipalGuard } from '../src/grpc/principal.js';

/**
 * The guard with the real AccessGuard: the real verifier, and the real
 * connection, membership and revocation views. What sits below the service
 * boundary is faked: the JWKS (a key generated here), the answers the
 * consent and identity services would give (the views' check and lookup
 * functions), the token service's CheckToken, and the health of the event
 * feed the views depend on.
 */
const ISSUER = 'http://localhost:3000';
const KID = 'test-key-1';
const CLIENT = 'A1B2C3D4E5F60718293A4B5C6D7E8F90';
const STALE_AFTER_MS = 2000;
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

type TokenStatus = { active: boolean; reason: string };

interface World {
  /** Consent's answer per `${userId}|${clientId}|${tenantId}`; absent: never connected. */
  connections: Map<string, ConnectionCheck>;
  /** Identity's answer per `${userId}|${tenantId}`; absent: no membership. */
  roles: Map<string, Role>;
  /** Calls of consent's CheckConnection, identity's GetMembership, token's CheckToken. */
  checks: number;
  lookups: number;
  tokenChecks: AccessTokenClaims[];
  /** What the token service answers to CheckToken (or throws). */
  checkToken: (claims: AccessTokenClaims) => Promise<TokenStatus>;
  /** The event feed: healthy, or unhealthy for `unhealthyForMs`. */
  feed: { healthy: boolean; unhealthyForMs: number };
  guard: PrincipalGuard;
  connectionView: ConnectionView;
  membershipView: MembershipView;
  revocations: RevocationView;
}

function world(): World {
  const w = {
    connections: new Map(),
    roles: new Map(),
    checks: 0,
    lookups: 0,
    tokenChecks: [],
    checkToken: async () => ({ active: true, reason: '' }),
    feed: { healthy: true, unhealthyForMs: 0 },
  } as unknown as World;
  w.connectionView = new ConnectionView({
    check: async (userId, clientId, tenantId) => {
      w.checks++;
      return (
        w.connections.get(`${userId}|${clientId}|${tenantId}`) ?? {
          connectionId: undefined,
          lastRevokedAt: undefined,
        }
      );
    },
  });
  w.membershipView = new MembershipView({
    lookup: async (userId, tenantId) => {
      w.lookups++;
      return w.roles.get(`${userId}|${tenantId}`) ?? Role.ROLE_UNSPECIFIED;
    },
  });
  w.revocations = new RevocationView();
  const access = new AccessGuard({
    verifier,
    connections: w.connectionView,
    revocations: w.revocations,
    memberships: w.membershipView,
    feed: {
      healthy: () => w.feed.healthy,
      unhealthyForMs: () => (w.feed.healthy ? 0 : w.feed.unhealthyForMs),
    },
    staleAfterMs: STALE_AFTER_MS,
    checkToken: (claims) => {
      w.tokenChecks.push(claims);
      return w.checkToken(claims);
    },
  });
  w.guard = new PrincipalGuard(access);
  return w;
}

/** A connected user with a role, in a fresh world. */
function connected(role: Role) {
  const w = world();
  const userId = randomUUID();
  const tenantId = randomUUID();
  const connectionId = randomUUID();
  w.connections.set(`${userId}|${CLIENT}|${tenantId}`, {
    connectionId,
    lastRevokedAt: undefined,
  });
  w.roles.set(`${userId}|${tenantId}`, role);
  return { w, userId, tenantId, connectionId };
}

const GRANT = 'g';

async function accessToken(userId: string, scope: string, overrides: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    client_id: CLIENT,
    scope,
    grant_id: GRANT,
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
    caller: 'edge',
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
    w.connections.set(`${userId}|${CLIENT}|${tenantId}`, {
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

const event = (payload: NonNullable<Event['payload']>) => Event.fromPartial({ id: randomUUID(), occurredAt: new Date(), source: 'test', payload } as never);

describe('revocation events (RevocationView)', () => {
  it.each<[string, 'grant_revoked' | 'client_suspended' | 'user_disabled', (userId: string, at: Date) => NonNullable<Event['payload']>]>([
    ['grant.revoked', 'grant_revoked', (userId, at) => ({ $case: 'grantRevoked', value: { grantId: GRANT, userId, clientId: CLIENT, revokedAt: at } })],
    ['client.suspended', 'client_suspended', (_userId, at) => ({ $case: 'clientSuspended', value: { clientId: CLIENT, suspendedAt: at } })],
    ['user.disabled', 'user_disabled', (userId, at) => ({ $case: 'userDisabled', value: { userId, disabledAt: at } })],
  ])('%s refuses (401 %s) the tokens issued before it, and accepts those issued after', async (_name, reason, payload) => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const now = Math.floor(Date.now() / 1000);
    const before = await accessToken(userId, 'accounting.contacts', { iat: now - 60 });
    const after = await accessToken(userId, 'accounting.contacts', { iat: now - 5 });
    await expect(w.guard.authorize(bearer(before), tenantId, 'ListContacts')).resolves.toBeDefined();

    w.revocations.apply(event(payload(userId, new Date((now - 30) * 1000))));
    const err = await refusal(w.guard.authorize(bearer(before), tenantId, 'ListContacts'));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err).toMatchObject({ code: Status.UNAUTHENTICATED, reason });
    await expect(w.guard.authorize(bearer(after), tenantId, 'ListContacts')).resolves.toMatchObject({ userId });
    // Applying it again (a re-delivered event) changes nothing.
    w.revocations.apply(event(payload(userId, new Date((now - 30) * 1000))));
    await expect(w.guard.authorize(bearer(after), tenantId, 'ListContacts')).resolves.toMatchObject({ userId });
  });

  it('a revocation of one grant, client or user leaves the tokens of others alone', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const now = Math.floor(Date.now() / 1000);
    const token = await accessToken(userId, 'accounting.contacts', { iat: now - 60 });
    const at = new Date();
    w.revocations.apply(event({ $case: 'grantRevoked', value: { grantId: 'another-grant', userId, clientId: CLIENT, revokedAt: at } }));
    w.revocations.apply(event({ $case: 'clientSuspended', value: { clientId: 'F'.repeat(32), suspendedAt: at } }));
    w.revocations.apply(event({ $case: 'userDisabled', value: { userId: randomUUID(), disabledAt: at } }));
    w.revocations.apply(event({ $case: 'tokenRevoked', value: { tokenId: randomUUID(), clientId: CLIENT, userId, revokedAt: at, expiresAt: new Date(at.getTime() + 60_000) } }));
    await expect(w.guard.authorize(bearer(token), tenantId, 'ListContacts')).resolves.toMatchObject({ userId });
  });

  it('token.revoked refuses that token by its id, whenever it was issued, and no other token of the grant', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const now = Math.floor(Date.now() / 1000);
    const revoked = await accessToken(userId, 'accounting.contacts', { iat: now - 5 });
    const older = await accessToken(userId, 'accounting.contacts', { iat: now - 120 });
    const tokenId = decodeJwt(revoked).jti!;
    w.revocations.apply(
      event({
        $case: 'tokenRevoked',
        value: { tokenId, clientId: CLIENT, userId, revokedAt: new Date((now - 60) * 1000), expiresAt: new Date((now + 1795) * 1000) },
      }),
    );
    expect(await refusal(w.guard.authorize(bearer(revoked), tenantId, 'ListContacts'))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'token_revoked',
      message: 'The access token was revoked',
    });
    // Issued before the revocation, but it is another token.
    await expect(w.guard.authorize(bearer(older), tenantId, 'ListContacts')).resolves.toMatchObject({ userId });
  });
});

describe('issue times to the millisecond (issued_at_ms)', () => {
  it('tells a token issued just before a revocation from one issued just after it in the same second', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const second = Math.floor(Date.now() / 1000) - 10;
    const revokedAtMs = second * 1000 + 500;
    const token = (issuedAtMs: number) => accessToken(userId, 'accounting.contacts', { iat: second, issued_at_ms: issuedAtMs });
    w.revocations.apply(event({ $case: 'grantRevoked', value: { grantId: GRANT, userId, clientId: CLIENT, revokedAt: new Date(revokedAtMs) } }));
    expect(await refusal(w.guard.authorize(bearer(await token(revokedAtMs - 1)), tenantId, 'ListContacts'))).toMatchObject({ reason: 'grant_revoked' });
    await expect(w.guard.authorize(bearer(await token(revokedAtMs + 1)), tenantId, 'ListContacts')).resolves.toMatchObject({ issuedAtMs: revokedAtMs + 1 });
    // A millisecond outside iat's second is not believed: the token counts from the start of its second.
    expect(await refusal(w.guard.authorize(bearer(await token(revokedAtMs + 5000)), tenantId, 'ListContacts'))).toMatchObject({ reason: 'grant_revoked' });
  });

  it('does the same for a connection revoked in the same second', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const second = Math.floor(Date.now() / 1000) - 10;
    const revokedAtMs = second * 1000 + 500;
    w.connections.set(`${userId}|${CLIENT}|${tenantId}`, { connectionId: undefined, lastRevokedAt: revokedAtMs });
    const before = await accessToken(userId, 'accounting.contacts', { iat: second, issued_at_ms: revokedAtMs - 1 });
    const after = await accessToken(userId, 'accounting.contacts', { iat: second, issued_at_ms: revokedAtMs + 1 });
    expect(await refusal(w.guard.authorize(bearer(before), tenantId, 'ListContacts'))).toMatchObject({ code: Status.UNAUTHENTICATED, reason: 'connection_revoked' });
    expect(await refusal(w.guard.authorize(bearer(after), tenantId, 'ListContacts'))).toMatchObject({ code: Status.PERMISSION_DENIED, reason: 'tenant_not_connected' });
  });

  it('asks CheckToken with the millisecond the token was issued', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    w.feed = { healthy: false, unhealthyForMs: 60_000 };
    const second = Math.floor(Date.now() / 1000) - 10;
    await w.guard.authorize(bearer(await accessToken(userId, 'accounting.contacts', { iat: second, issued_at_ms: second * 1000 + 123 })), tenantId, 'ListContacts');
    expect(w.tokenChecks.map((c) => c.issuedAtMs)).toEqual([second * 1000 + 123]);
  });
});

describe('fail closed: a stale event feed means synchronous checks', () => {
  it('while the feed is healthy, or unhealthy for less than staleAfterMs, the views answer: no CheckToken, cached connection and role', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    // Would refuse everything, if it were asked.
    w.checkToken = async () => ({ active: false, reason: 'grant_revoked' });
    const token = await accessToken(userId, 'accounting.contacts');
    await w.guard.authorize(bearer(token), tenantId, 'CreateContacts');
    await w.guard.authorize(bearer(token), tenantId, 'CreateContacts');
    w.feed = { healthy: false, unhealthyForMs: STALE_AFTER_MS - 500 };
    await w.guard.authorize(bearer(token), tenantId, 'CreateContacts');
    expect(w.tokenChecks).toEqual([]);
    expect(w.checks).toBe(1);
    expect(w.lookups).toBe(1);
  });

  it('once unhealthy longer than staleAfterMs, every request asks the token, consent and identity services, trusting no cached answer', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    const token = await accessToken(userId, 'accounting.contacts');
    await w.guard.authorize(bearer(token), tenantId, 'CreateContacts');
    expect([w.checks, w.lookups, w.tokenChecks.length]).toEqual([1, 1, 0]);

    w.feed = { healthy: false, unhealthyForMs: STALE_AFTER_MS + 1 };
    const claims = await w.guard.authorize(bearer(token), tenantId, 'CreateContacts');
    await w.guard.authorize(bearer(token), tenantId, 'CreateContacts');
    expect([w.checks, w.lookups, w.tokenChecks.length]).toEqual([3, 3, 2]);
    expect(w.tokenChecks[0]).toEqual(claims);
    expect(w.tokenChecks[0]).toMatchObject({ userId, clientId: CLIENT, grantId: GRANT, tokenId: decodeJwt(token).jti });

    // Revoked, and demoted, with no event to say so: the cached "live" and "adviser" are not used.
    w.roles.set(`${userId}|${tenantId}`, Role.ROLE_READONLY);
    expect(await refusal(w.guard.authorize(bearer(token), tenantId, 'CreateContacts'))).toMatchObject({ reason: 'insufficient_role' });
    w.connections.set(`${userId}|${CLIENT}|${tenantId}`, { connectionId: undefined, lastRevokedAt: Date.now() });
    expect(await refusal(w.guard.authorize(bearer(token), tenantId, 'ListContacts'))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'connection_revoked',
    });

    // Healthy again: back to the views (whose cached answers still say live and adviser).
    w.feed = { healthy: true, unhealthyForMs: 0 };
    const asked = w.tokenChecks.length;
    await expect(w.guard.authorize(bearer(token), tenantId, 'CreateContacts')).resolves.toBeDefined();
    expect(w.tokenChecks).toHaveLength(asked);
  });

  it.each([
    ['grant_revoked', "The app's access was withdrawn (by the user, or because a used refresh token came back)"],
    ['user_disabled', 'The user was disabled after this token was issued'],
    ['client_suspended', 'The app was suspended after this token was issued'],
    ['token_revoked', 'The access token was revoked'],
    ['something_new', 'The access token was revoked'],
  ])('an inactive CheckToken answer (%s) refuses the token with its reason, before the connection is checked', async (answer, message) => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    w.feed = { healthy: false, unhealthyForMs: 60_000 };
    w.checkToken = async () => ({ active: false, reason: answer });
    const err = await refusal(w.guard.authorize(bearer(await accessToken(userId, 'accounting.contacts')), tenantId, 'ListContacts'));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err).toMatchObject({ code: Status.UNAUTHENTICATED, reason: answer === 'something_new' ? 'token_revoked' : answer, message });
    expect(w.tokenChecks).toHaveLength(1);
    expect(w.checks).toBe(0);
  });

  it('a revocation the view already knows refuses without asking the token service', async () => {
    const { w, userId, tenantId } = connected(Role.ROLE_ADVISER);
    w.feed = { healthy: false, unhealthyForMs: 60_000 };
    const now = Math.floor(Date.now() / 1000);
    w.revocations.apply(event({ $case: 'userDisabled', value: { userId, disabledAt: new Date() } }));
    expect(await refusal(w.guard.authorize(bearer(await accessToken(userId, 'accounting.contacts', { iat: now - 10 })), tenantId, 'ListContacts'))).toMatchObject({
      reason: 'user_disabled',
    });
    expect(w.tokenChecks).toEqual([]);
  });

  it('when a service cannot answer (its check throws), the call fails: it never passes on a guess', async () => {
    const unavailable = (service: string, method: string) => new RemoteError(service, method, Status.UNAVAILABLE, 'No connection established');
    const stale = { healthy: false, unhealthyForMs: 60_000 };

    const token = connected(Role.ROLE_ADVISER);
    token.w.feed = stale;
    const tokenDown = unavailable('TokenService', 'CheckToken');
    token.w.checkToken = async () => {
      throw tokenDown;
    };
    const call = token.w.guard.authorize(bearer(await accessToken(token.userId, 'accounting.contacts')), token.tenantId, 'ListContacts');
    await expect(call).rejects.toBe(tokenDown);

    // With the views trusted, CheckToken is not needed, so its failure does not matter.
    token.w.feed = { healthy: true, unhealthyForMs: 0 };
    await expect(token.w.guard.authorize(bearer(await accessToken(token.userId, 'accounting.contacts')), token.tenantId, 'ListContacts')).resolves.toBeDefined();

    const consent = connected(Role.ROLE_ADVISER);
    const consentDown = unavailable('ConsentService', 'CheckConnection');
    const consentToken = await accessToken(consent.userId, 'accounting.contacts');
    // Even with a live answer cached from before.
    await consent.w.guard.authorize(bearer(consentToken), consent.tenantId, 'ListContacts');
    consent.w.feed = stale;
    consent.w.connections = { get: () => { throw consentDown; } } as unknown as Map<string, ConnectionCheck>;
    await expect(consent.w.guard.authorize(bearer(consentToken), consent.tenantId, 'ListContacts')).rejects.toBe(consentDown);

    const identity = connected(Role.ROLE_ADVISER);
    const identityDown = unavailable('IdentityService', 'GetMembership');
    const identityToken = await accessToken(identity.userId, 'accounting.contacts');
    await identity.w.guard.authorize(bearer(identityToken), identity.tenantId, 'CreateContacts');
    identity.w.feed = stale;
    identity.w.roles = { get: () => { throw identityDown; } } as unknown as Map<string, Role>;
    await expect(identity.w.guard.authorize(bearer(identityToken), identity.tenantId, 'CreateContacts')).rejects.toBe(identityDown);
  });
});
