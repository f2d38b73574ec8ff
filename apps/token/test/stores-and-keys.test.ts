// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { AccessTokenVerifier, apiAudience, InvalidTokenError } from '@ledgerly/access';
import { createLogger, randomSecret, sha256, type PromiseClient } from '@ledgerly/chassis';
import type { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { MongoClient, type Db } from 'mongodb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadTokenConfig } from '../src/config.js';
import { SigningKeys } from '../src/domain/signing-keys.js';
import { TokenIssuer, type Authorization } from '../src/domain/token-issuer.js';
import { CodeStore, type CodeDoc } from '../src/store/codes.js';
import { RefreshTokenStore, type RefreshTokenDoc } from '../src/store/refresh-tokens.js';
import { RevokedTokenStore } from '../src/store/revoked-tokens.js';
import { OneTimeStore } from '../src/store/one-time.js';
import { PushedRequestStore } from '../src/store/pushed-requests.js';
import { SigningKeyStore } from '../src/store/signing-keys.js';
import { TokenFamilyStore } from '../src/store/token-families.js';

const logger = createLogger({ service: 'token-test', level: 'error' });
const MAX_LIFETIME_MS = 35 * 60_000;
let mongo: MongoClient;
let db: Db;

beforeAll(async () => {
  mongo = new MongoClient(inject('mongoUrl'));
  db = mongo.db(`token_stores_test_${Date.now()}`);
});
afterAll(async () => {
  await mongo?.close();
});

function codeDoc(overrides: Partial<CodeDoc> = {}): CodeDoc {
  return {
    _id: sha256(randomSecret()),
    clientId: 'C'.repeat(32),
    userId: randomUUID(),
    redirectUri: 'https://app.example.com/cb',
    scopes: ['openid', 'accounting.contacts'],
    codeChallenge: '',
    codeChallengeMethod: '',
    nonce: '',
    authTime: new Date(),
    amr: ['pwd'],
    sessionId: randomUUID(),
    grantId: randomUUID(),
    authEventId: randomUUID(),
    expiresAt: new Date(Date.now() + 60_000),
    consumedAt: null,
    ...overrides,
  };
}

function refreshDoc(overrides: Partial<RefreshTokenDoc> = {}): RefreshTokenDoc {
  return {
    _id: sha256(randomSecret()),
    familyId: randomUUID(),
    clientId: 'C'.repeat(32),
    userId: randomUUID(),
    scopes: ['offline_access', 'accounting.contacts'],
    grantId: randomUUID(),
    authEventId: randomUUID(),
    authTime: new Date(),
    amr: ['pwd'],
    sessionId: randomUUID(),
    createdAt: new Date(),
    expiresAt: new Date(Date.now() + 3600_000),
    usedAt: null,
    ...overrides,
  };
}

describe('CodeStore', () => {
  it('consume is single-use under concurrency: of 10 racing redemptions exactly one gets the code', async () => {
    const codes = new CodeStore(db);
    for (let round = 0; round < 5; round++) {
      const doc = codeDoc();
      await codes.insert(doc);
      const results = await Promise.all(Array.from({ length: 10 }, () => codes.consume(doc._id)));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
    }
  });

  it('consume returns the code once, as it was, and marks it consumed', async () => {
    const codes = new CodeStore(db);
    await codes.ensureIndexes();
    const doc = codeDoc();
    await codes.insert(doc);
    const first = await codes.consume(doc._id);
    expect(first).toMatchObject({
      _id: doc._id,
      clientId: doc.clientId,
      userId: doc.userId,
      consumedAt: null,
    });
    expect(await codes.consume(doc._id)).toBeNull();
    expect((await db.collection<CodeDoc>('authorization_codes').findOne({ _id: doc._id }))!.consumedAt).toBeInstanceOf(Date);
    expect(await codes.consume(sha256('never-issued'))).toBeNull();
  });

  it('does not consume an expired code, and sweeps codes only well after expiry', async () => {
    const codes = new CodeStore(db);
    const expired = codeDoc({ expiresAt: new Date(Date.now() - 1000) });
    const longGone = codeDoc({ expiresAt: new Date(Date.now() - 11 * 60_000) });
    await codes.insert(expired);
    await codes.insert(longGone);
    expect(await codes.consume(expired._id)).toBeNull();
    expect(await codes.sweepExpired()).toBeGreaterThanOrEqual(1);
    const left = await db
      .collection<CodeDoc>('authorization_codes')
      .find({ _id: { $in: [expired._id, longGone._id] } })
      .toArray();
    // Kept a while after expiry, so a late replay is still recognised.
    expect(left.map((d) => d._id)).toEqual([expired._id]);
  });
});

describe('RefreshTokenStore', () => {
  it('markUsed under concurrency: of 10 racing rotations exactly one wins', async () => {
    const tokens = new RefreshTokenStore(db);
    for (let round = 0; round < 5; round++) {
      const doc = refreshDoc();
      await tokens.insert(doc);
      const results = await Promise.all(Array.from({ length: 10 }, () => tokens.markUsed(doc._id)));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
    }
  });

  it('markUsed succeeds once for an unused, unexpired token', async () => {
    const tokens = new RefreshTokenStore(db);
    await tokens.ensureIndexes();
    const doc = refreshDoc();
    await tokens.insert(doc);
    const used = await tokens.markUsed(doc._id);
    expect(used).toMatchObject({ _id: doc._id, familyId: doc.familyId });
    expect(used!.usedAt).toBeInstanceOf(Date);
    expect(await tokens.markUsed(doc._id)).toBeNull();
    expect((await tokens.find(doc._id))!.usedAt).toEqual(used!.usedAt);

    const expired = refreshDoc({ expiresAt: new Date(Date.now() - 1000) });
    await tokens.insert(expired);
    expect(await tokens.markUsed(expired._id)).toBeNull();
    expect(await tokens.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await tokens.find(expired._id)).toBeNull();
    expect(await tokens.find(doc._id)).not.toBeNull();
  });
});

describe('RefreshTokenStore.revokeGrant and RevokedTokenStore', () => {
  it('revokeGrant spends every unused refresh token of the grant and no other', async () => {
    const tokens = new RefreshTokenStore(db);
    const grantId = randomUUID();
    const a = refreshDoc({ grantId });
    const b = refreshDoc({ grantId });
    const used = refreshDoc({ grantId, usedAt: new Date(Date.now() - 60_000) });
    const other = refreshDoc();
    for (const d of [a, b, used, other]) await tokens.insert(d);
    expect(await tokens.revokeGrant(grantId)).toBe(2);
    expect(await tokens.markUsed(a._id)).toBeNull();
    expect(await tokens.markUsed(b._id)).toBeNull();
    // An already used token keeps the time it was used.
    expect((await tokens.find(used._id))!.usedAt).toEqual(used.usedAt);
    expect(await tokens.markUsed(other._id)).not.toBeNull();
    expect(await tokens.revokeGrant(grantId)).toBe(0);
  });

  it('RevokedTokenStore remembers a revoked token id idempotently until the token expires', async () => {
    const revoked = new RevokedTokenStore(db);
    const tokenId = randomUUID();
    const first = { _id: tokenId, clientId: 'C'.repeat(32), userId: randomUUID(), revokedAt: new Date(Date.now() - 1000), expiresAt: new Date(Date.now() + 60_000) };
    expect(await revoked.isRevoked(tokenId)).toBe(false);
    await revoked.add(first);
    // Applied again by the outbox relay: the first revocation stays.
    await revoked.add({ ...first, revokedAt: new Date() });
    expect(await revoked.isRevoked(tokenId)).toBe(true);
    expect(await db.collection('revoked_tokens').findOne({ _id: tokenId as never })).toMatchObject({ revokedAt: first.revokedAt });

    const expired = { ...first, _id: randomUUID(), expiresAt: new Date(Date.now() - 1000) };
    await revoked.add(expired);
    expect(await revoked.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await revoked.isRevoked(expired._id)).toBe(false);
    expect(await revoked.isRevoked(tokenId)).toBe(true);
  });
});

describe('SigningKeys', () => {
  it('generates one ES256 key on first load and reuses it on the next, publishing public keys only', async () => {
    const keyDb = mongo.db(`token_keys_test_${Date.now()}`);
    const first = new SigningKeys(new SigningKeyStore(keyDb), MAX_LIFETIME_MS, logger);
    expect(() => first.current()).toThrow(/not loaded/);
    await first.load();
    const kid = first.current().kid;
    expect(await keyDb.collection('signing_keys').countDocuments()).toBe(1);

    const second = new SigningKeys(new SigningKeyStore(keyDb), MAX_LIFETIME_MS, logger);
    await second.load();
    await first.load();
    expect(second.current().kid).toBe(kid);
    expect(first.current().kid).toBe(kid);
    expect(await keyDb.collection('signing_keys').countDocuments()).toBe(1);

    const jwks = second.publicJwks();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toEqual({
      kty: 'EC',
      crv: 'P-256',
      x: expect.any(String),
      y: expect.any(String),
      kid,
      alg: 'ES256',
      use: 'sig',
    });
    expect(JSON.stringify(jwks)).not.toContain('"d"');
  });

  it('after the signing key is retired, signs with a new one and keeps publishing the old one until its tokens expired', async () => {
    const keyDb = mongo.db(`token_rotation_test_${Date.now()}`);
    const keys = new SigningKeys(new SigningKeyStore(keyDb), MAX_LIFETIME_MS, logger);
    await keys.load();
    const oldKid = keys.current().kid;
    await keyDb.collection('signing_keys').updateOne({ _id: oldKid as never }, { $set: { retiredAt: new Date() } });
    await keys.load();
    const newKid = keys.current().kid;
    expect(newKid).not.toBe(oldKid);
    expect(
      keys
        .publicJwks()
        .keys.map((k) => k.kid)
        .sort(),
    ).toEqual([oldKid, newKid].sort());

    await keyDb
      .collection('signing_keys')
      .updateOne({ _id: oldKid as never }, { $set: { retiredAt: new Date(Date.now() - MAX_LIFETIME_MS - 1000) } });
    await keys.load();
    expect(keys.publicJwks().keys.map((k) => k.kid)).toEqual([newKid]);
  });

  it('rotateTo makes the given kid the signing key, generating it once, and retires the others; applying it again changes nothing', async () => {
    const keyDb = mongo.db(`token_rotate_to_test_${Date.now()}`);
    const keys = new SigningKeys(new SigningKeyStore(keyDb), MAX_LIFETIME_MS, logger);
    await keys.load();
    const oldKid = keys.current().kid;
    const kid = randomUUID();
    expect(await keys.rotateTo(kid)).toEqual([oldKid]);
    expect(keys.current().kid).toBe(kid);
    expect(
      keys
        .publicJwks()
        .keys.map((k) => k.kid)
        .sort(),
    ).toEqual([oldKid, kid].sort());
    const stored = await keyDb.collection('signing_keys').findOne({ _id: kid as never });
    expect(stored).toMatchObject({ alg: 'ES256', retiredAt: null });

    // The outbox relay applies signing_key.rotated again: same key, nothing more retired.
    expect(await keys.rotateTo(kid)).toEqual([]);
    expect(keys.current().kid).toBe(kid);
    expect(await keyDb.collection('signing_keys').countDocuments()).toBe(2);
    expect((await keyDb.collection('signing_keys').findOne({ _id: kid as never }))!['publicJwk']).toEqual(stored!['publicJwk']);

    // Another instance converges on it at its next load.
    const other = new SigningKeys(new SigningKeyStore(keyDb), MAX_LIFETIME_MS, logger);
    await other.load();
    expect(other.current().kid).toBe(kid);
  });
});

describe('TokenIssuer and AccessTokenVerifier', () => {
  const config = loadTokenConfig({});
  let keys: SigningKeys;
  let refreshTokens: RefreshTokenStore;
  let verifier: AccessTokenVerifier;
  const user = {
    id: randomUUID(),
    name: 'Ada Lovelace King',
    email: 'ada@example.com',
    emailVerified: true,
    disabled: false,
    createdAt: new Date(),
  };
  // Below the service boundary: what the identity client would answer.
  const identity = {
    getUser: async () => ({ user }),
  } as unknown as PromiseClient<typeof IdentityServiceDefinition>;

  beforeAll(async () => {
    keys = new SigningKeys(new SigningKeyStore(mongo.db(`token_issuer_test_${Date.now()}`)), MAX_LIFETIME_MS, logger);
    await keys.load();
    refreshTokens = new RefreshTokenStore(db);
    verifier = new AccessTokenVerifier({
      issuer: config.LEDGERLY_ISSUER,
      audience: config.audience,
      fetchJwks: async () => keys.publicJwks(),
    });
  });

  const authorization = (overrides: Partial<Authorization> = {}): Authorization => ({
    clientId: 'B'.repeat(32),
    userId: user.id,
    scopes: ['accounting.contacts', 'accounting.settings.read'],
    grantId: 'grant-1',
    authEventId: 'auth-event-1',
    authTime: new Date(Date.now() - 5000),
    amr: ['pwd'],
    sessionId: 'sid-1',
    ...overrides,
  });

  it('mints an RFC 9068 access token (typ at+jwt, ES256) that the verifier accepts with its claims', async () => {
    const auth = authorization();
    const { tokens } = await issuerOf().issue(auth);
    expect(tokens).toMatchObject({
      tokenType: 'Bearer',
      expiresIn: 1800,
      refreshToken: '',
      idToken: '',
      scope: 'accounting.contacts accounting.settings.read',
    });
    expect(decodeProtectedHeader(tokens.accessToken)).toEqual({
      alg: 'ES256',
      typ: 'at+jwt',
      kid: keys.current().kid,
    });
    const payload = decodeJwt(tokens.accessToken);
    expect(payload).toMatchObject({
      iss: 'http://localhost:3000',
      aud: apiAudience('http://localhost:3000'),
      sub: user.id,
      sid: 'sid-1',
    });
    expect(payload.exp! - payload.iat!).toBe(1800);
    // iat has second precision; the millisecond of issue travels beside it.
    expect(payload['issued_at_ms']).toEqual(expect.any(Number));
    expect(Math.floor((payload['issued_at_ms'] as number) / 1000)).toBe(payload.iat);

    const claims = await verifier.verify(tokens.accessToken);
    expect(claims).toMatchObject({
      issuer: 'http://localhost:3000',
      userId: user.id,
      clientId: auth.clientId,
      grantId: 'grant-1',
      authEventId: 'auth-event-1',
      authTime: Math.floor(auth.authTime.getTime() / 1000),
    });
    expect([...claims.scopes]).toEqual(['accounting.contacts', 'accounting.settings.read']);
    expect(claims.tokenId).toMatch(/^[0-9a-f-]{36}$/);
    expect(claims.issuedAtMs).toBe(payload['issued_at_ms']);
  });

  it('stores a refresh token (as a hash) only with offline_access, and adds an ID token only with openid', async () => {
    const { tokens: withOffline } = await issuerOf().issue(authorization({ scopes: ['offline_access', 'accounting.contacts'] }));
    expect(withOffline.refreshToken.length).toBeGreaterThanOrEqual(43);
    expect(withOffline.idToken).toBe('');
    const stored = await refreshTokens.find(sha256(withOffline.refreshToken));
    expect(stored).toMatchObject({
      userId: user.id,
      scopes: ['offline_access', 'accounting.contacts'],
      usedAt: null,
    });
    expect(JSON.stringify(stored)).not.toContain(withOffline.refreshToken);

    const { tokens: oidc } = await issuerOf().issue(authorization({ scopes: ['openid', 'profile', 'email'], nonce: 'n-1' }));
    expect(oidc.refreshToken).toBe('');
    const { payload, protectedHeader } = await jwtVerify(oidc.idToken, createLocalJWKSet(keys.publicJwks()), {
      issuer: 'http://localhost:3000',
      audience: 'B'.repeat(32),
    });
    expect(protectedHeader.typ).toBe('JWT');
    expect(payload).toMatchObject({
      sub: user.id,
      nonce: 'n-1',
      name: 'Ada Lovelace King',
      given_name: 'Ada',
      family_name: 'Lovelace King',
      email: 'ada@example.com',
      email_verified: true,
    });
    // An ID token is not an access token.
    await expect(verifier.verify(oidc.idToken)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('refuses tokens signed by another key, with alg none, with another typ, for another audience, or expired', async () => {
    const { kid, key } = keys.current();
    const good = (await issuerOf().issue(authorization())).tokens.accessToken;
    const claims = decodeJwt(good);
    await expect(verifier.verify(good)).resolves.toBeDefined();
    const refused = async (token: string) => {
      const err = await verifier.verify(token).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidTokenError);
      return (err as Error).message;
    };

    const { privateKey: otherKey } = await generateKeyPair('ES256');
    expect(await refused(await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).sign(otherKey))).toBe(
      'The access token is invalid',
    );
    expect(await refused(await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'unknown' }).sign(otherKey))).toBe(
      'The access token is invalid',
    );
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect(await refused(`${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64(claims)}.`)).toBe('The access token is invalid');
    // The real key, but a plain JWT (e.g. an ID token) is not an access token.
    expect(await refused(await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).sign(key))).toBe(
      'The access token is invalid',
    );
    const otherAudience = await issuerOf({
      ...config,
      audience: 'https://elsewhere.example/resources',
    }).issue(authorization());
    expect(await refused(otherAudience.tokens.accessToken)).toBe('The access token is invalid');
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({
      ...claims,
      iat: now - 3600,
      exp: now - 60,
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
      .sign(key);
    expect(await refused(expired)).toBe('The access token expired');
    const { scope: _scope, ...unscoped } = claims;
    expect(await refused(await new SignJWT(unscoped).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).sign(key))).toBe(
      'The access token is invalid',
    );
  });

  function issuerOf(c = config) {
    return new TokenIssuer(c, keys, refreshTokens, identity);
  }
});

describe('what expires is swept: nothing grows without bound', () => {
  it('OneTimeStore (private_key_jwt jti): first use wins once, even when 10 race; a replay is refused until swept after expiry', async () => {
    const seen = new OneTimeStore(db, `assertion_ids_${Date.now()}`);
    const key = randomUUID();
    const results = await Promise.all(Array.from({ length: 10 }, () => seen.firstUse(key, new Date(Date.now() + 60_000))));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await seen.firstUse(key, new Date(Date.now() + 60_000))).toBe(false);
    const old = randomUUID();
    await seen.firstUse(old, new Date(Date.now() - 1000));
    expect(await seen.sweepExpired()).toBe(1);
    expect(await seen.firstUse(key, new Date(Date.now() + 60_000))).toBe(false);
  });

  it('PushedRequestStore: a request is taken once, only by its client, and expired ones are swept', async () => {
    const store = new PushedRequestStore(db);
    const live = { _id: sha256(randomSecret()), clientId: 'A'.repeat(32), parameters: { scope: 'openid' }, expiresAt: new Date(Date.now() + 60_000) };
    const gone = { _id: sha256(randomSecret()), clientId: 'A'.repeat(32), parameters: {}, expiresAt: new Date(Date.now() - 1000) };
    await store.insert(live);
    await store.insert(gone);
    expect(await store.take(live._id, 'B'.repeat(32))).toBeNull();
    expect(await store.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await db.collection('pushed_authorization_requests').countDocuments({ _id: { $in: [live._id, gone._id] } as never })).toBe(1);
    expect(await store.take(live._id, 'A'.repeat(32))).toEqual({ scope: 'openid' });
    expect(await store.take(live._id, 'A'.repeat(32))).toBeNull();
  });

  it('TokenFamilyStore: a revoked family refuses new tokens, prunes expired access tokens, and is swept once its refresh tokens could have expired', async () => {
    const store = new TokenFamilyStore(db);
    const family = { _id: randomUUID(), clientId: 'A'.repeat(32), userId: randomUUID(), grantId: randomUUID(), expiresAt: new Date(Date.now() + 60_000) };
    expect(await store.addAccessToken(family, { jti: 'old', exp: new Date(Date.now() - 1000) })).toBe(true);
    expect(await store.addAccessToken(family, { jti: 'new', exp: new Date(Date.now() + 60_000) })).toBe(true);
    expect((await store.find(family._id))!.accessTokens.map((t) => t.jti)).toEqual(['new']);
    expect((await store.revoke(family, new Date()))!.accessTokens.map((t) => t.jti)).toEqual(['new']);
    expect(await store.revoke(family, new Date())).toBeNull();
    expect(await store.addAccessToken(family, { jti: 'late', exp: new Date(Date.now() + 60_000) })).toBe(false);
    const ended = { ...family, _id: randomUUID(), expiresAt: new Date(Date.now() - 1000) };
    // A replay that comes before anything was issued leaves a tombstone.
    expect(await store.revoke(ended, new Date())).toMatchObject({ accessTokens: [] });
    expect(await store.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await store.find(ended._id)).toBeNull();
    expect(await store.find(family._id)).not.toBeNull();
    // Of ten racing revocations (a replayed code sent ten times), one gets the tokens to revoke.
    const raced = { ...family, _id: randomUUID() };
    await store.addAccessToken(raced, { jti: 'a', exp: new Date(Date.now() + 60_000) });
    const results = await Promise.all(Array.from({ length: 10 }, () => store.revoke(raced, new Date())));
    expect(results.filter((r) => r !== null).map((r) => r!.accessTokens.map((t) => t.jti))).toEqual([['a']]);
  });
});
