import { failure } from '@ledgerly/testkit';
// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { AccessTokenVerifier, apiAudience } from '@ledgerly/access';
import { createClient, randomSecret, sha256, startService, Status, type PromiseClient, type ServiceHandle } from '@ledgerly/chassis';
import { ClientType, TokenServiceDefinition, type ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import { MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { token } from '../src/service.js';
import { CodeStore } from '../src/store/codes.js';

/**
 * The token service in-process. Identity and consent are not running (their
 * addresses point at a port nothing listens on): what is tested here needs
 * neither. Authorization codes are put in the service's database as
 * IssueAuthorizationCode would (that step needs the consent service).
 */
const database = `token_service_test_${Date.now()}`;
const ISSUER = 'http://localhost:3000';
let handle: ServiceHandle;
let client: PromiseClient<typeof TokenServiceDefinition>;
let mongo: MongoClient;
let db: Db;
let verifier: AccessTokenVerifier;

beforeAll(async () => {
  handle = await startService(
    token,
    {
      LEDGERLY_GRPC_LISTEN: '127.0.0.1:0',
      LEDGERLY_MONGO_URL: inject('mongoUrl'),
      LEDGERLY_MONGO_DB: database,
      LEDGERLY_NATS_URL: inject('natsUrl'),
      LEDGERLY_IDENTITY_ADDR: '127.0.0.1:1',
      LEDGERLY_CONSENT_ADDR: '127.0.0.1:1',
      LEDGERLY_LOG_LEVEL: 'warn',
    },
    () => {},
  );
  client = createClient(TokenServiceDefinition, handle.ready['address'] as string);
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(database);
  verifier = new AccessTokenVerifier({
    issuer: ISSUER,
    audience: apiAudience(ISSUER),
    fetchJwks: async () => JSON.parse((await client.getJwks({})).jwksJson),
  });
});

afterAll(async () => {
  client?.close();
  await handle?.stop();
  await mongo?.close();
});

const REDIRECT = 'https://app.example.com/callback';

describe('clients', () => {
  it('CreateClient gives only a confidential client a secret, stored only as its SHA-256', async () => {
    const conf = await client.createClient({
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

    const pub = await client.createClient({
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
    const unspecified = await client.createClient({
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
      expect(await failure(client.createClient(req)), JSON.stringify(req).slice(0, 80)).toMatchObject({ code: Status.INVALID_ARGUMENT });
    }
    expect(await db.collection('clients').countDocuments()).toBe(before);
  });

  it('GetClient returns a client without its secret, and NOT_FOUND for an unknown one', async () => {
    const created = await client.createClient({
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

describe('code exchange and refresh', () => {
  const verifierString = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

  async function registered() {
    const res = await client.createClient({
      name: 'Exchanger',
      redirectUris: [REDIRECT],
    });
    const auth: ClientAuthentication = {
      clientId: res.client!.clientId,
      clientSecret: res.clientSecret,
      method: 'client_secret_basic',
    };
    return auth;
  }

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

  it('exchanges a code once for tokens the resource servers accept; a replay is invalid_grant', async () => {
    const auth = await registered();
    const { code, userId } = await issueCode(auth.clientId, ['offline_access', 'accounting.contacts']);
    const { tokens } = await client.exchangeAuthorizationCode({
      client: auth,
      code,
      redirectUri: REDIRECT,
      codeVerifier: verifierString,
    });
    expect(tokens).toMatchObject({
      tokenType: 'Bearer',
      expiresIn: 1800,
      scope: 'offline_access accounting.contacts',
      idToken: '',
    });
    expect(tokens!.refreshToken).not.toBe('');
    const claims = await verifier.verify(tokens!.accessToken);
    expect(claims).toMatchObject({ userId, clientId: auth.clientId });

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
    const { code } = await issueCode(auth.clientId, ['offline_access', 'accounting.contacts', 'accounting.settings.read']);
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
