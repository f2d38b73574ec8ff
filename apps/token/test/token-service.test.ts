import { collectEvents, eventually, failure } from '@ledgerly/testkit';
// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { AccessTokenVerifier, apiAudience } from '@ledgerly/access';
import { createClient, randomSecret, sha256, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import { appProcess, type ManagedProcess } from '@ledgerly/devstack';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { Event } from '@ledgerly/proto/events/v1/events';
import { IdentityServiceDefinition, Role } from '@ledgerly/proto/identity/v1/identity';
import { ClientType, TokenServiceDefinition, type ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import { decodeJwt, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import { Binary, MongoClient, type Db } from 'mongodb';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { token } from '../src/service.js';
import { CodeStore } from '../src/store/codes.js';
import { foreignTls, outboxEvents, outboxOf, rawStream, testPki } from './support.js';

/**
 * The token service in-process, over mutual TLS, with real identity and
 * consent services behind it (their built apps as processes, with their own
 * certificates from the same test PKI and the shared FerretDB and NATS):
 * issuing checks with them that the user is not disabled and the grant not
 * revoked. Authorization codes come from a real consent flow driven as the
 * edge drives it; where a test needs only a code in the database (failures
 * decided before those checks), it is put there as IssueAuthorizationCode
 * would.
 */
const stamp = Date.now();
const database = `token_service_test_${stamp}`;
const ISSUER = 'http://localhost:3000';
let pki: Awaited<ReturnType<typeof testPki>>;
let peers: ManagedProcess[] = [];
let tokenEnv: Record<string, string>;
let handle: ServiceHandle;
let address: string;
/** The edge: the OAuth endpoints. */
let client: PromiseClient<typeof TokenServiceDefinition>;
/** operator:test: clients, suspension, key rotation. */
let operator: PromiseClient<typeof TokenServiceDefinition>;
let identityOperator: PromiseClient<typeof IdentityServiceDefinition>;
let identityEdge: PromiseClient<typeof IdentityServiceDefinition>;
let consentEdge: PromiseClient<typeof ConsentServiceDefinition>;
let consentOperator: PromiseClient<typeof ConsentServiceDefinition>;
/** As the token service: GetGrant. */
let consentAsToken: PromiseClient<typeof ConsentServiceDefinition>;
let mongo: MongoClient;
let db: Db;
let verifier: AccessTokenVerifier;

async function startPeer(app: 'identity' | 'consent', extra: Record<string, string>): Promise<string> {
  const proc = appProcess(
    app,
    {
      LEDGERLY_LOG_LEVEL: 'info',
      LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
      LEDGERLY_MONGO_URL: inject('mongoUrl'),
      LEDGERLY_MONGO_DB: `token_peer_${app}_${stamp}`,
      LEDGERLY_NATS_URL: inject('natsUrl'),
      ...pki.env(app),
      ...extra,
    },
    join(inject('testDir'), 'logs', `token-test-${app}.log`),
  );
  peers.push(proc);
  return String((await proc.start())['address']);
}

beforeAll(async () => {
  pki = await testPki('token-service', ['identity', 'consent', 'token', 'edge', 'accounting', 'operator:test']);
  const identityAddress = await startPeer('identity', {});
  const consentAddress = await startPeer('consent', { LEDGERLY_IDENTITY_ADDR: identityAddress });
  tokenEnv = {
    LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
    LEDGERLY_MONGO_URL: inject('mongoUrl'),
    LEDGERLY_MONGO_DB: database,
    LEDGERLY_NATS_URL: inject('natsUrl'),
    LEDGERLY_IDENTITY_ADDR: identityAddress,
    LEDGERLY_CONSENT_ADDR: consentAddress,
    LEDGERLY_ISSUER: ISSUER,
    LEDGERLY_LOG_LEVEL: 'warn',
    ...pki.env('token'),
  };
  handle = await startService(token, tokenEnv, () => {});
  address = handle.ready['address'] as string;
  client = pki.client(TokenServiceDefinition, address, 'edge');
  operator = pki.client(TokenServiceDefinition, address, 'operator:test');
  identityOperator = pki.client(IdentityServiceDefinition, identityAddress, 'operator:test');
  identityEdge = pki.client(IdentityServiceDefinition, identityAddress, 'edge');
  consentEdge = pki.client(ConsentServiceDefinition, consentAddress, 'edge');
  consentOperator = pki.client(ConsentServiceDefinition, consentAddress, 'operator:test');
  consentAsToken = pki.client(ConsentServiceDefinition, consentAddress, 'token');
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
  verifier = new AccessTokenVerifier({
    issuer: ISSUER,
    audience: apiAudience(ISSUER),
    fetchJwks: async () => JSON.parse((await client.getJwks({})).jwksJson) as JSONWebKeySet,
  });
});

afterAll(async () => {
  for (const c of [client, operator, identityOperator, identityEdge, consentEdge, consentOperator, consentAsToken]) c?.close();
  await handle?.stop();
  for (const p of peers.reverse()) {
    await p.stop();
    p.closeLog();
  }
  peers = [];
  await mongo?.close();
});

const REDIRECT = 'https://app.example.com/callback';
const verifierString = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

async function registered(): Promise<ClientAuthentication> {
  const res = await operator.createClient({
    name: 'Exchanger',
    redirectUris: [REDIRECT],
  });
  return {
    clientId: res.client!.clientId,
    clientSecret: res.clientSecret,
    method: 'client_secret_basic',
    clientAssertion: '',
    endpoint: '',
  };
}

let users = 0;
/** A user in identity, optionally a member (adviser) of a new organisation. */
async function newUser(withOrganisation = false) {
  const { user } = await identityOperator.createUser({ email: `t-${stamp}-${++users}@example.com`, password: 'long enough pw', name: 'Tina Token' });
  if (!withOrganisation) return { userId: user!.id, tenantIds: [] as string[] };
  const { organisation } = await identityOperator.createOrganisation({ name: `Org ${stamp}-${users}` });
  await identityOperator.addMembership({ userId: user!.id, organisationId: organisation!.id, role: Role.ROLE_ADVISER });
  return { userId: user!.id, tenantIds: [organisation!.id] };
}

/**
 * A real consent, as the edge drives it: CreateFlow, sign-in (a session from
 * identity), AcceptLogin, AcceptConsent; then IssueAuthorizationCode.
 */
async function consentedFlow(clientId: string, scopes: string[], who?: { userId: string; tenantIds: string[] }) {
  const person = who ?? (await newUser(scopes.some((s) => s.startsWith('accounting.'))));
  const browserBinding = randomBytes(24).toString('base64url');
  const nonce = randomBytes(8).toString('hex');
  const { flow } = await consentEdge.createFlow({
    request: { clientId, redirectUri: REDIRECT, scopes, state: 'st-1', nonce, codeChallenge: challenge, codeChallengeMethod: 'S256', maxAge: -1, prompt: [], dpopJkt: '' },
    browserBinding,
  });
  const { sessionToken } = await identityEdge.createSession({ userId: person.userId });
  const steps = { flowId: flow!.id, browserBinding, csrfToken: flow!.csrfToken };
  await consentEdge.acceptLogin({ ...steps, sessionToken });
  const { flow: consented } = await consentEdge.acceptConsent({ ...steps, tenantIds: person.tenantIds });
  return { ...person, flowId: flow!.id, grantId: consented!.grantId, authEventId: consented!.authEventId, nonce };
}

async function authorizationCode(clientId: string, scopes: string[], who?: { userId: string; tenantIds: string[] }) {
  const flow = await consentedFlow(clientId, scopes, who);
  const issued = await client.issueAuthorizationCode({ flowId: flow.flowId });
  return { ...flow, code: issued.code, issued };
}

/** Tokens from a real consent and code exchange. */
async function tokensFor(auth: ClientAuthentication, scopes = ['openid', 'offline_access'], who?: { userId: string; tenantIds: string[] }) {
  const { code, ...flow } = await authorizationCode(auth.clientId, scopes, who);
  const { tokens } = await client.exchangeAuthorizationCode({ client: auth, code, redirectUri: REDIRECT, codeVerifier: verifierString });
  return { ...flow, tokens: tokens!, claims: await verifier.verify(tokens!.accessToken) };
}

/** A code put in the database as IssueAuthorizationCode would, for a user and grant no other service knows. */
async function issueCode(clientId: string, scopes: string[]) {
  const code = randomSecret(32);
  const userId = randomUUID();
  await new CodeStore(db).insert({
    _id: sha256(code),
    clientId,
    userId,
    redirectUri: REDIRECT,
    scopes,
    codeChallenge: challenge,
    codeChallengeMethod: 'S256',
    nonce: '',
    authTime: new Date(Date.now() - 10_000),
    amr: ['pwd'],
    sessionId: randomUUID(),
    grantId: randomUUID(),
    authEventId: randomUUID(),
    expiresAt: new Date(Date.now() + 60_000),
    consumedAt: null,
  });
  return { code, userId };
}

/** CheckToken's question about a verified access token, as the edge and accounting ask it. */
const checkOf = (claims: Awaited<ReturnType<AccessTokenVerifier['verify']>>, issuedAt = new Date(claims.issuedAtMs)) => ({
  tokenId: claims.tokenId,
  clientId: claims.clientId,
  userId: claims.userId,
  grantId: claims.grantId,
  issuedAt,
});

describe('clients', () => {
  it('CreateClient gives only a confidential client a secret, stored only as its SHA-256', async () => {
    const conf = await operator.createClient({
      name: ' Books Sync ',
      redirectUris: [REDIRECT, REDIRECT, 'http://127.0.0.1:8080/cb'],
      type: ClientType.CLIENT_TYPE_CONFIDENTIAL,
    });
    expect(conf.client).toMatchObject({
      name: 'Books Sync',
      type: ClientType.CLIENT_TYPE_CONFIDENTIAL,
      redirectUris: [REDIRECT, 'http://127.0.0.1:8080/cb'],
      tokenEndpointAuthMethod: 'client_secret_basic',
      grantTypes: ['authorization_code', 'refresh_token'],
    });
    expect(conf.client!.clientId).toMatch(/^[0-9A-F]{32}$/);
    expect(conf.clientSecret.length).toBeGreaterThanOrEqual(43);
    const stored = await db.collection('clients').findOne({ _id: conf.client!.clientId as never });
    expect(stored!['secretHash']).toBe(sha256(conf.clientSecret));
    expect(JSON.stringify(stored)).not.toContain(conf.clientSecret);

    const pub = await operator.createClient({
      name: 'Mobile',
      redirectUris: ['com.example.app:/cb'],
      type: ClientType.CLIENT_TYPE_PUBLIC,
    });
    expect(pub.clientSecret).toBe('');
    expect(pub.client).toMatchObject({
      type: ClientType.CLIENT_TYPE_PUBLIC,
      tokenEndpointAuthMethod: 'none',
    });
    expect((await db.collection('clients').findOne({ _id: pub.client!.clientId as never }))!['secretHash']).toBe('');
    expect(pub.client!.clientId).not.toBe(conf.client!.clientId);

    // An unspecified type is a confidential client.
    const unspecified = await operator.createClient({
      name: 'Default',
      redirectUris: [REDIRECT],
    });
    expect(unspecified.client!.type).toBe(ClientType.CLIENT_TYPE_CONFIDENTIAL);
    expect(unspecified.clientSecret).not.toBe('');
  });

  it('CreateClient refuses a bad name or redirect URIs and stores nothing', async () => {
    const before = await db.collection('clients').countDocuments();
    const cases = [
      { name: '', redirectUris: [REDIRECT] },
      { name: 'x'.repeat(101), redirectUris: [REDIRECT] },
      { name: 'App', redirectUris: [] },
      {
        name: 'App',
        redirectUris: Array.from({ length: 21 }, (_, i) => `${REDIRECT}/${i}`),
      },
      { name: 'App', redirectUris: [REDIRECT, 'http://app.example.com/cb'] },
      { name: 'App', redirectUris: ['https://app.example.com/cb#x'] },
    ];
    for (const req of cases) {
      expect(await failure(operator.createClient(req)), JSON.stringify(req).slice(0, 80)).toMatchObject({ code: Status.INVALID_ARGUMENT });
    }
    expect(await db.collection('clients').countDocuments()).toBe(before);
  });

  it('GetClient returns a client without its secret, and NOT_FOUND for an unknown one', async () => {
    const created = await operator.createClient({
      name: 'Lookup',
      redirectUris: [REDIRECT],
    });
    const { client: got } = await client.getClient({
      clientId: created.client!.clientId,
    });
    expect(got).toEqual(created.client);
    expect(JSON.stringify(got)).not.toContain(created.clientSecret);
    for (const clientId of ['0'.repeat(32), created.client!.clientId.toLowerCase(), '', 'not-hex']) {
      expect(await failure(client.getClient({ clientId }))).toMatchObject({
        code: Status.NOT_FOUND,
        reason: 'invalid_client',
      });
    }
  });

  it('GetJwks publishes the ES256 signing key, public parts only', async () => {
    const jwks = JSON.parse((await client.getJwks({})).jwksJson) as {
      keys: Array<Record<string, unknown>>;
    };
    expect(jwks.keys).toHaveLength(1);
    const [key] = jwks.keys;
    expect(Object.keys(key!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(key).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      alg: 'ES256',
      use: 'sig',
    });
    const stored = await db.collection('signing_keys').findOne({ _id: key!['kid'] as never });
    expect(stored!['privateJwk']['d']).toEqual(expect.any(String));
  });
});

describe('authorization codes, exchange and refresh', () => {
  it('IssueAuthorizationCode issues one code for a consented flow, with the redirect URI and state of the request', async () => {
    const auth = await registered();
    const flow = await consentedFlow(auth.clientId, ['openid', 'offline_access']);
    const issued = await client.issueAuthorizationCode({ flowId: flow.flowId });
    expect(issued).toMatchObject({ redirectUri: REDIRECT, state: 'st-1' });
    expect(issued.code.length).toBeGreaterThanOrEqual(43);
    const stored = await db.collection('authorization_codes').findOne({ _id: sha256(issued.code) as never });
    expect(stored).toMatchObject({ clientId: auth.clientId, userId: flow.userId, grantId: flow.grantId, scopes: ['openid', 'offline_access'], consumedAt: null });
    expect(JSON.stringify(stored)).not.toContain(issued.code);
    // One consent, one code.
    expect(await failure(client.issueAuthorizationCode({ flowId: flow.flowId }))).toMatchObject({
      code: Status.FAILED_PRECONDITION,
      reason: 'flow_state',
    });
    expect(await failure(client.issueAuthorizationCode({ flowId: 'no-such-flow' }))).toMatchObject({ code: Status.FAILED_PRECONDITION, reason: 'flow_state' });
  });

  it('exchanges a code once for tokens the resource servers accept, with an ID token for openid; a replay is invalid_grant', async () => {
    const auth = await registered();
    const { code, userId, grantId, authEventId, nonce } = await authorizationCode(auth.clientId, ['openid', 'offline_access', 'accounting.contacts']);
    const { tokens } = await client.exchangeAuthorizationCode({
      client: auth,
      code,
      redirectUri: REDIRECT,
      codeVerifier: verifierString,
    });
    expect(tokens).toMatchObject({
      tokenType: 'Bearer',
      expiresIn: 1800,
      scope: 'openid offline_access accounting.contacts',
    });
    expect(tokens!.refreshToken).not.toBe('');
    const claims = await verifier.verify(tokens!.accessToken);
    expect(claims).toMatchObject({ userId, clientId: auth.clientId, grantId, authEventId });
    expect(decodeJwt(tokens!.idToken)).toMatchObject({ iss: ISSUER, sub: userId, aud: auth.clientId, nonce });

    expect(
      await failure(
        client.exchangeAuthorizationCode({
          client: auth,
          code,
          redirectUri: REDIRECT,
          codeVerifier: verifierString,
        }),
      ),
    ).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      reason: 'invalid_grant',
    });
  });

  it('refuses a wrong PKCE verifier, redirect URI or client, and burns the code on any failed attempt', async () => {
    const auth = await registered();
    const other = await registered();

    for (const attempt of [
      { client: auth, redirectUri: REDIRECT, codeVerifier: 'x'.repeat(43) },
      { client: auth, redirectUri: REDIRECT, codeVerifier: '' },
      {
        client: auth,
        redirectUri: `${REDIRECT}/other`,
        codeVerifier: verifierString,
      },
      { client: other, redirectUri: REDIRECT, codeVerifier: verifierString },
    ]) {
      const { code } = await issueCode(auth.clientId, ['accounting.contacts']);
      expect(await failure(client.exchangeAuthorizationCode({ ...attempt, code }))).toMatchObject({ reason: 'invalid_grant' });
      // The right request afterwards no longer works: the code is spent.
      expect(
        await failure(
          client.exchangeAuthorizationCode({
            client: auth,
            code,
            redirectUri: REDIRECT,
            codeVerifier: verifierString,
          }),
        ),
      ).toMatchObject({
        reason: 'invalid_grant',
      });
    }

    const { code } = await issueCode(auth.clientId, ['accounting.contacts']);
    expect(
      await failure(
        client.exchangeAuthorizationCode({
          client: { ...auth, clientSecret: 'wrong' },
          code,
          redirectUri: REDIRECT,
          codeVerifier: verifierString,
        }),
      ),
    ).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_client',
    });
  });

  it('rotates refresh tokens: the old one is refused after use, a narrower scope is fine, a wider one is invalid_scope', async () => {
    const auth = await registered();
    const { code } = await authorizationCode(auth.clientId, ['offline_access', 'accounting.contacts', 'accounting.settings.read']);
    const first = (
      await client.exchangeAuthorizationCode({
        client: auth,
        code,
        redirectUri: REDIRECT,
        codeVerifier: verifierString,
      })
    ).tokens!;

    expect(
      await failure(
        client.refreshAccessToken({
          client: auth,
          refreshToken: first.refreshToken,
          scopes: ['accounting.transactions'],
        }),
      ),
    ).toMatchObject({
      reason: 'invalid_scope',
    });
    expect(
      await failure(
        client.refreshAccessToken({
          client: auth,
          refreshToken: first.refreshToken,
          scopes: ['made.up'],
        }),
      ),
    ).toMatchObject({
      reason: 'invalid_scope',
    });

    const second = (
      await client.refreshAccessToken({
        client: auth,
        refreshToken: first.refreshToken,
        scopes: ['accounting.contacts'],
      })
    ).tokens!;
    expect(second.scope).toBe('accounting.contacts');
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect([...(await verifier.verify(second.accessToken)).scopes]).toEqual(['accounting.contacts']);
    const family = await db
      .collection<{ _id: string; familyId: string; scopes: string[] }>('refresh_tokens')
      .find({
        _id: { $in: [sha256(first.refreshToken), sha256(second.refreshToken)] },
      })
      .toArray();
    expect(new Set(family.map((d) => d.familyId)).size).toBe(1);
    // The rotated token keeps the whole authorization, not the narrowed access scope.
    expect(family.find((d) => d._id === sha256(second.refreshToken))!.scopes).toEqual([
      'offline_access',
      'accounting.contacts',
      'accounting.settings.read',
    ]);

    expect(
      await failure(
        client.refreshAccessToken({
          client: auth,
          refreshToken: first.refreshToken,
        }),
      ),
    ).toMatchObject({ reason: 'invalid_grant' });
    const other = await registered();
    expect(
      await failure(
        client.refreshAccessToken({
          client: other,
          refreshToken: second.refreshToken,
        }),
      ),
    ).toMatchObject({ reason: 'invalid_grant' });
    await expect(
      client.refreshAccessToken({
        client: auth,
        refreshToken: second.refreshToken,
      }),
    ).resolves.toMatchObject({
      tokens: {
        scope: 'offline_access accounting.contacts accounting.settings.read',
      },
    });
  });
});

describe('issuing asks identity and consent: no tokens for a disabled user or a revoked grant', () => {
  it('a disabled user gets no tokens: the code exchange and the refresh are invalid_grant', async () => {
    const auth = await registered();
    const person = await newUser();
    const { tokens } = await tokensFor(auth, ['openid', 'offline_access'], person);
    const { code } = await authorizationCode(auth.clientId, ['openid', 'offline_access'], person);
    await identityOperator.disableUser({ userId: person.userId });

    expect(await failure(client.exchangeAuthorizationCode({ client: auth, code, redirectUri: REDIRECT, codeVerifier: verifierString }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      reason: 'invalid_grant',
      details: 'The user is disabled or unknown',
    });
    expect(await failure(client.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      reason: 'invalid_grant',
      details: 'The user is disabled or unknown',
    });
    // Another user of the same app is unaffected.
    await expect(tokensFor(auth)).resolves.toMatchObject({ tokens: { tokenType: 'Bearer' } });
    // Enabled again: a new authorization works, but what was issued before the disabling stays dead.
    await identityOperator.enableUser({ userId: person.userId });
    expect(await failure(client.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken }))).toMatchObject({
      reason: 'invalid_grant',
      details: 'Issued before the user was disabled',
    });
    await expect(tokensFor(auth, ['openid', 'offline_access'], person)).resolves.toMatchObject({ tokens: { tokenType: 'Bearer' } });
  });

  it('a revoked grant gets no tokens: the code exchange and the refresh are invalid_grant; a new consent is a new grant', async () => {
    const auth = await registered();
    const person = await newUser();
    const first = await tokensFor(auth, ['openid', 'offline_access'], person);
    const { code, grantId } = await authorizationCode(auth.clientId, ['openid', 'offline_access'], person);
    expect(grantId).toBe(first.grantId);
    await consentOperator.revokeGrant({ grantId });

    expect(await failure(client.exchangeAuthorizationCode({ client: auth, code, redirectUri: REDIRECT, codeVerifier: verifierString }))).toMatchObject({
      reason: 'invalid_grant',
      details: 'The user withdrew this authorization',
    });
    expect(await failure(client.refreshAccessToken({ client: auth, refreshToken: first.tokens.refreshToken }))).toMatchObject({
      reason: 'invalid_grant',
      details: 'The user withdrew this authorization',
    });

    const again = await tokensFor(auth, ['openid', 'offline_access'], person);
    expect(again.grantId).not.toBe(grantId);
    await expect(client.refreshAccessToken({ client: auth, refreshToken: again.tokens.refreshToken })).resolves.toMatchObject({
      tokens: { scope: 'openid offline_access' },
    });
  });

  it('fails closed with UNAVAILABLE, issuing nothing, when identity and consent cannot answer', async () => {
    // A second instance on the same database whose peers are unreachable.
    const isolated = await startService(token, { ...tokenEnv, LEDGERLY_IDENTITY_ADDR: '127.0.0.1:1', LEDGERLY_CONSENT_ADDR: '127.0.0.1:1' }, () => {});
    const edge = pki.client(TokenServiceDefinition, isolated.ready['address'] as string, 'edge');
    try {
      const auth = await registered();
      const { code, ...issued } = await authorizationCode(auth.clientId, ['openid', 'offline_access']);
      const before = await db.collection('refresh_tokens').countDocuments({ userId: issued.userId });
      expect(await failure(edge.exchangeAuthorizationCode({ client: auth, code, redirectUri: REDIRECT, codeVerifier: verifierString }))).toMatchObject({
        code: Status.UNAVAILABLE,
        reason: 'dependency_unavailable',
      });
      const { tokens } = await tokensFor(auth);
      expect(await failure(edge.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken }))).toMatchObject({
        code: Status.UNAVAILABLE,
        reason: 'dependency_unavailable',
      });
      expect(await db.collection('refresh_tokens').countDocuments({ userId: issued.userId })).toBe(before);
      // The refresh token was not spent by the failed attempt.
      await expect(client.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken })).resolves.toBeDefined();
    } finally {
      edge.close();
      await isolated.stop();
    }
  });
});

describe('SuspendClient and ReinstateClient', () => {
  it('suspending is the kill switch: GetClient shows it, client.suspended is published, and no code or token is issued', async () => {
    const since = new Date(Date.now() - 1000);
    const auth = await registered();
    const { tokens, claims } = await tokensFor(auth);
    const { code } = await authorizationCode(auth.clientId, ['openid']);
    const flow = await consentedFlow(auth.clientId, ['openid']);

    const started = Date.now();
    const { client: suspended } = await operator.suspendClient({ clientId: auth.clientId });
    expect(suspended).toMatchObject({ clientId: auth.clientId, suspendedAt: expect.any(Date) });
    expect(suspended!.suspendedAt!.getTime()).toBeGreaterThanOrEqual(started - 1000);
    expect((await client.getClient({ clientId: auth.clientId })).client!.suspendedAt).toEqual(suspended!.suspendedAt);

    expect(await failure(client.issueAuthorizationCode({ flowId: flow.flowId }))).toMatchObject({
      code: Status.FAILED_PRECONDITION,
      reason: 'client_suspended',
    });
    expect(await failure(client.exchangeAuthorizationCode({ client: auth, code, redirectUri: REDIRECT, codeVerifier: verifierString }))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_client',
      details: 'The client is suspended',
    });
    expect(await failure(client.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken }))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_client',
    });
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: false, reason: 'client_suspended' });

    // Suspending again changes nothing and publishes nothing more.
    expect((await operator.suspendClient({ clientId: auth.clientId })).client!.suspendedAt).toEqual(suspended!.suspendedAt);
    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'clientSuspended' && e.payload.value.clientId === auth.clientId);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]).toMatchObject({
        source: 'token',
        payload: { $case: 'clientSuspended', value: { clientId: auth.clientId, suspendedAt: suspended!.suspendedAt } },
      });
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({ type: 'client.suspended', publishedAt: expect.any(Date) });
    } finally {
      await observed.stop();
    }
    const recorded = (await outboxEvents(db, 'client.suspended')).filter((e) => e.payload?.$case === 'clientSuspended' && e.payload.value.clientId === auth.clientId);
    expect(recorded).toHaveLength(1);
  });

  it('reinstating lets the client have tokens again and publishes client.reinstated once; both refuse an unknown client with NOT_FOUND', async () => {
    const since = new Date(Date.now() - 1000);
    const auth = await registered();
    const { tokens } = await tokensFor(auth);
    // Not suspended: nothing to reinstate, nothing published.
    expect((await operator.reinstateClient({ clientId: auth.clientId })).client).toMatchObject({ clientId: auth.clientId, suspendedAt: undefined });
    await operator.suspendClient({ clientId: auth.clientId });
    const { client: reinstated } = await operator.reinstateClient({ clientId: auth.clientId });
    expect(reinstated).toMatchObject({ clientId: auth.clientId, suspendedAt: undefined });
    expect((await client.getClient({ clientId: auth.clientId })).client!.suspendedAt).toBeUndefined();
    // Reinstated: the synchronous check still refuses an access token issued before the suspension...
    const { decodeJwt } = await import('jose');
    const before = decodeJwt(tokens.accessToken) as { jti: string; sub: string; grant_id: string; issued_at_ms: number };
    expect(
      await client.checkToken({ tokenId: before.jti, clientId: auth.clientId, userId: before.sub, grantId: before.grant_id, issuedAt: new Date(before.issued_at_ms) }),
    ).toEqual({ active: false, reason: 'client_suspended' });
    // ...new authorizations work, and a refresh token issued before the suspension stays dead.
    expect(await failure(client.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken }))).toMatchObject({
      reason: 'invalid_grant',
      details: 'Issued before the client was suspended',
    });
    await expect(tokensFor(auth)).resolves.toBeDefined();
    await operator.reinstateClient({ clientId: auth.clientId });

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'clientReinstated' && e.payload.value.clientId === auth.clientId);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]).toMatchObject({
        source: 'token',
        payload: { $case: 'clientReinstated', value: { clientId: auth.clientId, reinstatedAt: expect.any(Date) } },
      });
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({ type: 'client.reinstated', publishedAt: expect.any(Date) });
    } finally {
      await observed.stop();
    }
    const recorded = (await outboxEvents(db, 'client.reinstated')).filter((e) => e.payload?.$case === 'clientReinstated' && e.payload.value.clientId === auth.clientId);
    expect(recorded).toHaveLength(1);

    for (const clientId of ['0'.repeat(32), 'not-a-client']) {
      expect(await failure(operator.suspendClient({ clientId }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'invalid_client' });
      expect(await failure(operator.reinstateClient({ clientId }))).toMatchObject({ code: Status.NOT_FOUND, reason: 'invalid_client' });
    }
  });
});

describe('RotateSigningKey', () => {
  it('a new key signs new tokens; the old one stays in the JWKS, so its tokens still verify; signing_key.rotated is published', async () => {
    const since = new Date(Date.now() - 1000);
    const auth = await registered();
    const before = await tokensFor(auth);
    const oldKid = decodeProtectedHeader(before.tokens.accessToken).kid!;
    const { keyId, retiredKeyIds } = await operator.rotateSigningKey({});
    expect(keyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(keyId).not.toBe(oldKid);
    expect(retiredKeyIds).toContain(oldKid);
    expect(retiredKeyIds).not.toContain(keyId);

    const jwks = JSON.parse((await client.getJwks({})).jwksJson) as JSONWebKeySet;
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([keyId, oldKid]));
    expect(JSON.stringify(jwks)).not.toContain('"d"');
    expect(await db.collection('signing_keys').findOne({ _id: oldKid as never })).toMatchObject({ retiredAt: expect.any(Date) });
    expect(await db.collection('signing_keys').findOne({ _id: keyId as never })).toMatchObject({ retiredAt: null });

    const refreshed = (await client.refreshAccessToken({ client: auth, refreshToken: before.tokens.refreshToken })).tokens!;
    expect(decodeProtectedHeader(refreshed.accessToken).kid).toBe(keyId);
    expect(decodeProtectedHeader(refreshed.idToken).kid).toBe(keyId);
    const after = await tokensFor(auth);
    expect(decodeProtectedHeader(after.tokens.accessToken).kid).toBe(keyId);
    // A verifier that fetches the JWKS now accepts tokens of both keys.
    const fresh = new AccessTokenVerifier({
      issuer: ISSUER,
      audience: apiAudience(ISSUER),
      fetchJwks: async () => JSON.parse((await client.getJwks({})).jwksJson) as JSONWebKeySet,
    });
    await expect(fresh.verify(before.tokens.accessToken)).resolves.toMatchObject({ userId: before.userId });
    await expect(fresh.verify(refreshed.accessToken)).resolves.toMatchObject({ userId: before.userId });

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'signingKeyRotated' && e.payload.value.newKeyId === keyId);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]).toMatchObject({ source: 'token', payload: { $case: 'signingKeyRotated', value: { newKeyId: keyId, rotatedAt: expect.any(Date) } } });
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({ type: 'signing_key.rotated', publishedAt: expect.any(Date) });
    } finally {
      await observed.stop();
    }
  });
});

describe('RevokeToken', () => {
  it('revokes an access token of the calling client: token.revoked is published and its id is in revoked_tokens', async () => {
    const since = new Date(Date.now() - 1000);
    const auth = await registered();
    const { tokens, claims } = await tokensFor(auth);
    const other = await tokensFor(auth);
    await expect(client.revokeToken({ client: auth, token: tokens.accessToken, tokenTypeHint: 'access_token' })).resolves.toEqual({});

    expect(await db.collection('revoked_tokens').findOne({ _id: claims.tokenId as never })).toMatchObject({
      clientId: auth.clientId,
      userId: claims.userId,
      revokedAt: expect.any(Date),
      expiresAt: new Date(claims.expiresAt * 1000),
    });
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: false, reason: 'token_revoked' });
    // Only that token: another one of the same app is still good.
    expect(await client.checkToken(checkOf(other.claims))).toEqual({ active: true, reason: '' });
    // Revoking it again is fine.
    await expect(client.revokeToken({ client: auth, token: tokens.accessToken })).resolves.toEqual({});

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'tokenRevoked' && e.payload.value.clientId === auth.clientId);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events[0]).toMatchObject({
        source: 'token',
        payload: {
          $case: 'tokenRevoked',
          value: { tokenId: claims.tokenId, clientId: auth.clientId, userId: claims.userId, expiresAt: new Date(claims.expiresAt * 1000) },
        },
      });
      expect(await outboxOf(db).findOne({ _id: observed.events[0]!.id })).toMatchObject({ type: 'token.revoked', publishedAt: expect.any(Date) });
    } finally {
      await observed.stop();
    }
  });

  it('a token of another client, or an unknown one, is accepted silently and revokes nothing (RFC 7009 §2.2)', async () => {
    const owner = await registered();
    const stranger = await registered();
    const { tokens, claims } = await tokensFor(owner);
    const revokedBefore = await db.collection('revoked_tokens').countDocuments();
    const outboxBefore = await outboxOf(db).countDocuments();
    for (const t of [tokens.accessToken, tokens.refreshToken, 'no-such-token', 'a.b.c']) {
      await expect(client.revokeToken({ client: stranger, token: t })).resolves.toEqual({});
    }
    await expect(client.revokeToken({ client: owner, token: randomSecret(32) })).resolves.toEqual({});
    expect(await db.collection('revoked_tokens').countDocuments()).toBe(revokedBefore);
    expect(await outboxOf(db).countDocuments()).toBe(outboxBefore);
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: true, reason: '' });
    await expect(client.refreshAccessToken({ client: owner, refreshToken: tokens.refreshToken })).resolves.toBeDefined();

    expect(await failure(client.revokeToken({ client: owner, token: '' }))).toMatchObject({ code: Status.INVALID_ARGUMENT, reason: 'invalid_request' });
    expect(await failure(client.revokeToken({ client: { ...owner, clientSecret: 'wrong' }, token: tokens.accessToken }))).toMatchObject({
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_client',
    });
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: true, reason: '' });
  });

  it('revoking a refresh token ends its grant: the refresh token is dead and consent has revoked the grant', async () => {
    const since = new Date(Date.now() - 1000);
    const auth = await registered();
    const { tokens, claims, grantId } = await tokensFor(auth);
    await expect(client.revokeToken({ client: auth, token: tokens.refreshToken, tokenTypeHint: 'refresh_token' })).resolves.toEqual({});
    expect(await failure(client.refreshAccessToken({ client: auth, refreshToken: tokens.refreshToken }))).toMatchObject({ reason: 'invalid_grant' });
    expect((await consentAsToken.getGrant({ grantId })).grant!.revokedAt).toEqual(expect.any(Date));
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: false, reason: 'grant_revoked' });
    // Again: the grant is already revoked; still fine.
    await expect(client.revokeToken({ client: auth, token: tokens.refreshToken })).resolves.toEqual({});

    const observed = await collectEvents(inject('natsUrl'), since, (e) => e.payload?.$case === 'grantRevoked' && e.payload.value.grantId === grantId);
    try {
      await eventually(() => observed.events.length > 0);
      expect(observed.events).toHaveLength(1);
      expect(observed.events[0]).toMatchObject({ source: 'consent', payload: { value: { grantId, clientId: auth.clientId, userId: claims.userId } } });
    } finally {
      await observed.stop();
    }
  });
});

describe('CheckToken', () => {
  it('answers active for a good token, and why not for a disabled user, a revoked grant or an unknown client', async () => {
    const auth = await registered();
    const { claims } = await tokensFor(auth);
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: true, reason: '' });
    // The accounting service asks too.
    const accounting = pki.client(TokenServiceDefinition, address, 'accounting');
    try {
      expect(await accounting.checkToken(checkOf(claims))).toEqual({ active: true, reason: '' });
    } finally {
      accounting.close();
    }
    expect(await client.checkToken({ ...checkOf(claims), clientId: '0'.repeat(32) })).toEqual({ active: false, reason: 'client_suspended' });
    expect(await client.checkToken({ ...checkOf(claims), grantId: randomUUID() })).toEqual({ active: false, reason: 'grant_revoked' });
    expect(await client.checkToken({ ...checkOf(claims), userId: randomUUID() })).toEqual({ active: false, reason: 'user_disabled' });

    const revoked = await tokensFor(auth);
    await consentOperator.revokeGrant({ grantId: revoked.grantId });
    expect(await client.checkToken(checkOf(revoked.claims))).toEqual({ active: false, reason: 'grant_revoked' });
  });

  it('a token issued before the user was disabled stays inactive after re-enabling; one issued after is active, to the millisecond', async () => {
    const auth = await registered();
    const person = await newUser();
    const { claims } = await tokensFor(auth, ['openid', 'offline_access'], person);
    const { user: disabled } = await identityOperator.disableUser({ userId: person.userId });
    const disabledAt = disabled!.disabledAt!.getTime();
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: false, reason: 'user_disabled' });
    await identityOperator.enableUser({ userId: person.userId });
    expect(await client.checkToken(checkOf(claims))).toEqual({ active: false, reason: 'user_disabled' });
    // Issue times are compared to the millisecond, not to iat's second.
    expect(await client.checkToken({ ...checkOf(claims), issuedAt: new Date(disabledAt) })).toEqual({ active: false, reason: 'user_disabled' });
    expect(await client.checkToken({ ...checkOf(claims), issuedAt: new Date(disabledAt + 1) })).toEqual({ active: true, reason: '' });

    const after = await tokensFor(auth, ['openid', 'offline_access'], person);
    expect(after.claims.issuedAtMs).toBeGreaterThan(disabledAt);
    expect(Math.floor(after.claims.issuedAtMs / 1000)).toBe(after.claims.issuedAt);
    expect(await client.checkToken(checkOf(after.claims))).toEqual({ active: true, reason: '' });
  });
});

describe('outbox relay', () => {
  it('re-sends an event left unpublished with the same id, applying it again; JetStream keeps one copy', async () => {
    const auth = await registered();
    const stream = await rawStream();
    try {
      const start = await stream.lastSeq();
      // As if the process died before applying and publishing a suspension it had recorded.
      const event = Event.fromPartial({
        id: randomUUID(),
        occurredAt: new Date(),
        source: 'token',
        payload: { $case: 'clientSuspended', value: { clientId: auth.clientId, suspendedAt: new Date() } },
      });
      await outboxOf(db).insertOne({
        _id: event.id,
        type: 'client.suspended',
        data: new Binary(Event.encode(event).finish()),
        createdAt: new Date(Date.now() - 10_000),
        publishedAt: null,
      });
      await eventually(async () => (await outboxOf(db).findOne({ _id: event.id }))?.publishedAt instanceof Date, 10_000);
      expect((await client.getClient({ clientId: auth.clientId })).client!.suspendedAt).toEqual(expect.any(Date));
      expect((await stream.storedSince(start)).filter((e) => e.id === event.id)).toEqual([event]);

      // As if it died after publishing, before marking it published.
      await outboxOf(db).updateOne({ _id: event.id }, { $set: { publishedAt: null, createdAt: new Date(Date.now() - 10_000) } });
      await eventually(async () => (await outboxOf(db).findOne({ _id: event.id }))?.publishedAt instanceof Date, 10_000);
      expect((await stream.storedSince(start)).filter((e) => e.id === event.id)).toHaveLength(1);
    } finally {
      await stream.close();
    }
  });
});

describe('mutual TLS and access lists', () => {
  it('refuses a caller its access list does not name with PERMISSION_DENIED caller_not_allowed, before doing anything', async () => {
    const denied = { code: Status.PERMISSION_DENIED, reason: 'caller_not_allowed' };
    const before = await db.collection('clients').countDocuments();
    expect(await failure(client.createClient({ name: 'Sneaky', redirectUris: [REDIRECT] }))).toMatchObject({ ...denied, details: 'edge may not call CreateClient' });
    expect(await db.collection('clients').countDocuments()).toBe(before);

    const auth = await registered();
    const { code } = await issueCode(auth.clientId, ['openid']);
    // Operators manage clients and keys; they do not exchange codes.
    expect(await failure(operator.exchangeAuthorizationCode({ client: auth, code, redirectUri: REDIRECT, codeVerifier: verifierString }))).toMatchObject(denied);
    expect(await db.collection('authorization_codes').findOne({ _id: sha256(code) as never })).toMatchObject({ consumedAt: null });
    expect(await failure(client.suspendClient({ clientId: auth.clientId }))).toMatchObject(denied);
    expect(await failure(client.rotateSigningKey({}))).toMatchObject(denied);
    expect((await client.getClient({ clientId: auth.clientId })).client!.suspendedAt).toBeUndefined();

    const accounting = pki.client(TokenServiceDefinition, address, 'accounting');
    const identityCaller = pki.client(TokenServiceDefinition, address, 'identity');
    try {
      await expect(accounting.getJwks({})).resolves.toBeDefined();
      expect(await failure(accounting.revokeToken({ client: auth, token: 'x' }))).toMatchObject(denied);
      expect(await failure(accounting.getClient({ clientId: auth.clientId }))).toMatchObject(denied);
      expect(await failure(identityCaller.checkToken({ tokenId: 'x' }))).toMatchObject(denied);
      expect(await failure(identityCaller.getJwks({}))).toMatchObject(denied);
    } finally {
      accounting.close();
      identityCaller.close();
    }
  });

  it('refuses a plain-text client, and a client certificate from another CA, with UNAVAILABLE', async () => {
    const plain = createClient(TokenServiceDefinition, address, { deadlineMs: 2000 });
    const foreign = createClient(TokenServiceDefinition, address, { tls: await foreignTls('token', 'edge', pki.tls('edge')), deadlineMs: 2000 });
    try {
      expect(await failure(plain.getJwks({}))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(plain.createClient({ name: 'Plain', redirectUris: [REDIRECT] }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await failure(foreign.getJwks({}))).toMatchObject({ code: Status.UNAVAILABLE });
      await expect(client.getJwks({})).resolves.toBeDefined();
    } finally {
      plain.close();
      foreign.close();
    }
  });

  it('writes every operator call to audit_log, secrets redacted, with its outcome; service calls are not audited', async () => {
    const name = `Audited ${randomUUID()}`;
    const { client: created, clientSecret } = await operator.createClient({ name, redirectUris: [REDIRECT], type: ClientType.CLIENT_TYPE_CONFIDENTIAL });
    const clientId = created!.clientId;
    await client.getClient({ clientId });
    await operator.getClient({ clientId });
    await operator.suspendClient({ clientId });
    await failure(operator.reinstateClient({ clientId: '0'.repeat(32) }));
    const code = randomSecret(32);
    await failure(
      operator.refreshAccessToken({ client: { clientId, clientSecret, method: 'client_secret_basic', clientAssertion: '', endpoint: '' }, refreshToken: code }),
    );

    const audit = db.collection('audit_log');
    await eventually(async () => (await audit.countDocuments({ 'request.client.clientId': clientId })) >= 1);
    const entries = await audit.find({ $or: [{ 'request.name': name }, { 'request.clientId': clientId }, { 'request.client.clientId': clientId }] }).sort({ at: 1 }).toArray();
    expect(entries.map((e) => [e['operator'], e['method'], e['outcome']])).toEqual([
      ['operator:test', 'CreateClient', 'OK'],
      ['operator:test', 'GetClient', 'OK'],
      ['operator:test', 'SuspendClient', 'OK'],
      ['operator:test', 'RefreshAccessToken', 'PERMISSION_DENIED'],
    ]);
    expect(entries[0]).toMatchObject({ service: 'token.v1.TokenService', request: { name, redirectUris: [REDIRECT] } });
    expect(entries[3]!['request']).toEqual({
      client: { clientId, clientSecret: '[REDACTED]', method: 'client_secret_basic', clientAssertion: '', endpoint: '' },
      refreshToken: '[REDACTED]',
      scopes: [],
      dpopJkt: '',
    });
    expect(await audit.findOne({ method: 'ReinstateClient', 'request.clientId': '0'.repeat(32) })).toMatchObject({ outcome: 'NOT_FOUND' });
    const all = JSON.stringify(await audit.find().toArray());
    expect(all).not.toContain(clientSecret);
    expect(all).not.toContain(code);
  });
});
