import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessTokenVerifier, apiAudience, InvalidTokenError } from '../src/index.js';

const ISSUER = 'http://localhost:3000';
const AUDIENCE = apiAudience(ISSUER);

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: Record<string, unknown>;
}

async function key(kid: string): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function sign(k: Key, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'user-1',
    jti: 'jti-1',
    iat: now,
    exp: now + 1800,
    client_id: 'C1',
    scope: 'accounting.contacts openid',
    authentication_event_id: 'ae',
    grant_id: 'g',
    auth_time: now,
    ...claims,
  };
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: k.kid, ...header }).sign(k.privateKey);
}

let a: Key;
let b: Key;
beforeAll(async () => {
  a = await key('a');
  b = await key('b');
});

function verifier(sets: JSONWebKeySet[], fetches = { n: 0 }) {
  return new AccessTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    cacheSize: 0,
    fetchJwks: async () => {
      fetches.n++;
      const set = sets[Math.min(fetches.n - 1, sets.length - 1)];
      if (!set) throw new Error('token service down');
      return set;
    },
  });
}

const refused = async (v: AccessTokenVerifier, token: string) => {
  const err = await v.verify(token).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidTokenError);
  return err as InvalidTokenError;
};

describe('AccessTokenVerifier', () => {
  it('accepts an RFC 9068 token and returns its claims', async () => {
    const claims = await verifier([{ keys: [a.jwk] }]).verify(await sign(a));
    expect(claims).toMatchObject({ userId: 'user-1', clientId: 'C1', tokenId: 'jti-1', authEventId: 'ae', grantId: 'g', issuer: ISSUER });
    expect([...claims.scopes]).toEqual(['accounting.contacts', 'openid']);
  });

  it('refuses a wrong typ, issuer, audience, an expired token, and missing claims', async () => {
    const v = verifier([{ keys: [a.jwk] }]);
    await refused(v, await sign(a, {}, { typ: 'JWT' }));
    await refused(v, await sign(a, { iss: 'http://evil.example' }));
    await refused(v, await sign(a, { aud: 'someone-else' }));
    expect((await refused(v, await sign(a, { exp: Math.floor(Date.now() / 1000) - 60 }))).message).toMatch(/expired/);
    await refused(v, await sign(a, { client_id: undefined }));
  });

  it('refuses alg none and an HS256 token keyed with the public key (no algorithm confusion)', async () => {
    const v = verifier([{ keys: [a.jwk] }]);
    const body = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'u', client_id: 'C1', scope: 's', jti: 'j', iat: 1, exp: 9_999_999_999 })).toString('base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: 'a' })).toString('base64url')}.${body}.`;
    await refused(v, none);
    const hsHeader = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: 'a' })).toString('base64url');
    const mac = createHmac('sha256', JSON.stringify(a.jwk)).update(`${hsHeader}.${body}`).digest('base64url');
    await refused(v, `${hsHeader}.${body}.${mac}`);
  });

  it('refuses a token signed by a key that is not published, and a tampered payload', async () => {
    const v = verifier([{ keys: [a.jwk] }]);
    await refused(v, await sign(b, {}, { kid: 'a' }));
    const good = await sign(a);
    const [h, , sig] = good.split('.');
    const forged = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'admin', client_id: 'C1', scope: 'accounting.settings', jti: 'x', iat: 1, exp: 9_999_999_999 })).toString('base64url');
    await refused(v, `${h}.${forged}.${sig}`);
  });

  it('picks up a rotated key by refreshing the JWKS once on an unknown kid', async () => {
    const fetches = { n: 0 };
    const v = verifier([{ keys: [a.jwk] }, { keys: [b.jwk, a.jwk] }], fetches);
    expect((await v.verify(await sign(a))).userId).toBe('user-1');
    expect((await v.verify(await sign(b))).userId).toBe('user-1');
    expect(fetches.n).toBe(2);
  });

  it('keeps verifying with the keys it has while the token service is down', async () => {
    const v = new AccessTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksMaxAgeMs: 1,
      cacheSize: 0,
      fetchJwks: (() => {
        let first = true;
        return async () => {
          if (first) {
            first = false;
            return { keys: [a.jwk] };
          }
          throw new Error('UNAVAILABLE');
        };
      })(),
    });
    await v.verify(await sign(a));
    await new Promise((r) => setTimeout(r, 5));
    expect((await v.verify(await sign(a))).userId).toBe('user-1');
  });

  it('fails (not "invalid") when it has no keys and cannot fetch any', async () => {
    const err = await verifier([]).verify(await sign(a)).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(InvalidTokenError);
    expect((err as Error).message).toBe('token service down');
  });
});
