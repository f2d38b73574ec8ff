// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { InvalidArgumentError, sha256, Status } from '@ledgerly/chassis';
import { ClientType, type ClientAuthentication } from '@ledgerly/proto/token/v1/token';
import { MongoClient } from 'mongodb';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { authenticateClient, type ClientAuthContext } from '../src/domain/client-auth.js';
import { OneTimeStore } from '../src/store/one-time.js';
import { OAuthError } from '../src/domain/oauth-error.js';
import { pkceMatches } from '../src/domain/pkce.js';
import { checkRedirectUri } from '../src/domain/redirect-uris.js';
import { ClientStore, type ClientDoc } from '../src/store/clients.js';

describe('checkRedirectUri', () => {
  it.each([
    'https://app.example.com/callback',
    'https://app.example.com:8443/cb?tenant=1',
    'http://localhost:8080/callback',
    'http://127.0.0.1/cb',
    'http://[::1]:3000/cb',
    'com.example.app:/callback',
    'com.example.app:/oauth2redirect/example-provider',
  ])('accepts %s, unchanged', (uri) => {
    expect(checkRedirectUri(uri)).toBe(uri);
  });

  it.each([
    ['https://app.example.com/cb#frag', 'fragment'],
    ['https://app.example.com/cb#', 'fragment'],
    ['https://user:pass@app.example.com/cb', 'user information'],
    ['https://user@app.example.com/cb', 'user information'],
    ['http://app.example.com/cb', 'loopback'],
    ['http://localhost.evil.example/cb', 'loopback'],
    ['https://app.example.com/a/../b', 'dot-segments'],
    ['https://app.example.com/a/./b', 'dot-segments'],
    ['https://app.example.com/a/%2e%2E/b', 'dot-segments'],
    ['https://app.example.com/a%2Fb', 'encoded slashes'],
    ['https://app.example.com/a%5cb', 'encoded slashes'],
    ['/callback', 'absolute'],
    ['callback', 'absolute'],
    ['//app.example.com/cb', 'absolute'],
    ['https://app.example.com/c b', 'white space'],
    ['', '1 to 2000'],
    [`https://app.example.com/${'a'.repeat(2000)}`, '1 to 2000'],
    ['javascript:alert(1)', 'private-use scheme'],
    ['myapp:/cb', 'private-use scheme'],
    ['ftp://app.example.com/cb', 'private-use scheme'],
  ])('refuses %s (%s)', (uri, why) => {
    let thrown: unknown;
    try {
      checkRedirectUri(uri);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidArgumentError);
    expect(thrown).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      reason: 'invalid_redirect_uri',
    });
    expect((thrown as Error).message).toContain(why);
  });
});

describe('pkceMatches (S256)', () => {
  const s256 = (v: string) => createHash('sha256').update(v, 'ascii').digest('base64url');

  it('matches the RFC 7636 Appendix B example and nothing else', () => {
    const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
    const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
    expect(pkceMatches(verifier, challenge)).toBe(true);
    expect(pkceMatches(verifier, challenge.slice(0, -1) + 'N')).toBe(false);
    expect(pkceMatches(verifier.slice(0, -1) + 'l', challenge)).toBe(false);
    // "plain" is not supported: the verifier as its own challenge does not match.
    expect(pkceMatches(verifier, verifier)).toBe(false);
    expect(pkceMatches(verifier, '')).toBe(false);
  });

  it('refuses verifiers that are too short, too long, or use characters outside the unreserved set, even with their own challenge', () => {
    const ok43 = 'a'.repeat(43);
    const ok128 = 'A1._~-'.repeat(21) + 'zz';
    expect(ok128).toHaveLength(128);
    expect(pkceMatches(ok43, s256(ok43))).toBe(true);
    expect(pkceMatches(ok128, s256(ok128))).toBe(true);
    for (const bad of ['a'.repeat(42), 'a'.repeat(129), 'a'.repeat(42) + '+', 'a'.repeat(42) + '/', 'a'.repeat(42) + '=', `${'a'.repeat(42)} `, '']) {
      expect(pkceMatches(bad, s256(bad)), JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('authenticateClient (real Mongo)', () => {
  let mongo: MongoClient;
  let clients: ClientStore;
  let ctx: ClientAuthContext;
  const secret = randomBytes(32).toString('base64url');
  const confidential: ClientDoc = {
    _id: randomBytes(16).toString('hex').toUpperCase(),
    name: 'Confidential App',
    type: ClientType.CLIENT_TYPE_CONFIDENTIAL,
    redirectUris: ['https://app.example.com/cb'],
    secretHash: sha256(secret),
    tokenEndpointAuthMethod: 'client_secret_basic',
    grantTypes: ['authorization_code', 'refresh_token'],
    createdAt: new Date(),
  };
  const publicClient: ClientDoc = {
    ...confidential,
    _id: randomBytes(16).toString('hex').toUpperCase(),
    name: 'Public App',
    type: ClientType.CLIENT_TYPE_PUBLIC,
    secretHash: '',
    tokenEndpointAuthMethod: 'none',
  };

  beforeAll(async () => {
    mongo = new MongoClient(inject('mongoUrl'));
    const db = mongo.db(`token_domain_test_${Date.now()}`);
    clients = new ClientStore(db);
    ctx = { clients, assertionIds: new OneTimeStore(db, 'client_assertion_ids'), issuer: 'http://localhost:3000' };
    await clients.insert(confidential);
    await clients.insert(publicClient);
  });
  afterAll(async () => {
    await mongo?.close();
  });

  const auth = (a: Partial<ClientAuthentication>): ClientAuthentication => ({
    clientId: '',
    clientSecret: '',
    method: '',
    clientAssertion: '',
    endpoint: '',
    ...a,
  });

  it('accepts a confidential client with its secret by client_secret_basic or client_secret_post, and a public client with none', async () => {
    for (const method of ['client_secret_basic', 'client_secret_post']) {
      expect((await authenticateClient(ctx, auth({ clientId: confidential._id, clientSecret: secret, method })))._id).toBe(confidential._id);
    }
    expect((await authenticateClient(ctx, auth({ clientId: publicClient._id, method: 'none' })))._id).toBe(publicClient._id);
  });

  it.each([
    ['no authentication at all', undefined],
    [
      'a wrong secret',
      {
        clientId: confidential._id,
        clientSecret: `${secret}x`,
        method: 'client_secret_basic',
      },
    ],
    ['no secret for a confidential client', { clientId: confidential._id, method: 'client_secret_basic' }],
    ['method none for a confidential client (even with its secret)', { clientId: confidential._id, clientSecret: secret, method: 'none' }],
    ['method none for a confidential client without secret', { clientId: confidential._id, method: 'none' }],
    [
      'an unknown client',
      {
        clientId: randomBytes(16).toString('hex').toUpperCase(),
        clientSecret: secret,
        method: 'client_secret_basic',
      },
    ],
    [
      'an unknown client that sends the dummy secret',
      {
        clientId: 'F'.repeat(32),
        clientSecret: 'not-a-client-secret',
        method: 'client_secret_basic',
      },
    ],
    [
      'a malformed client id',
      {
        clientId: confidential._id.toLowerCase(),
        clientSecret: secret,
        method: 'client_secret_basic',
      },
    ],
    [
      'a public client sending a secret',
      {
        clientId: publicClient._id,
        clientSecret: 'anything',
        method: 'client_secret_post',
      },
    ],
    ['a public client sending a secret with method none', { clientId: publicClient._id, clientSecret: 'anything', method: 'none' }],
    ['a public client claiming client_secret_basic', { clientId: publicClient._id, method: 'client_secret_basic' }],
  ])('refuses %s with invalid_client', async (_why, input) => {
    const err = await authenticateClient(ctx, input ? auth(input) : undefined).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OAuthError);
    // The same answer whatever was wrong: nothing tells an attacker which part failed.
    expect(err).toMatchObject({
      error: 'invalid_client',
      code: Status.UNAUTHENTICATED,
      reason: 'invalid_client',
      message: 'Client authentication failed',
    });
  });
});
