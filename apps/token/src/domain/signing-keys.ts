import type { Logger } from '@ledgerly/chassis';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import type { SigningKeyDoc, SigningKeyStore } from '../store/signing-keys.js';

export interface ActiveKey {
  kid: string;
  key: CryptoKey;
}

/**
 * The keys that sign access and ID tokens (ES256). The newest unretired key
 * signs; every key that may have signed a still-valid token is published in
 * the JWKS. Generated at first start; reloaded every minute so instances
 * converge on the same signing key.
 */
export class SigningKeys {
  private active: ActiveKey | undefined;
  private jwks: JSONWebKeySet = { keys: [] };

  constructor(
    private readonly store: SigningKeyStore,
    private readonly maxTokenLifetimeMs: number,
    private readonly logger: Logger,
  ) {}

  async load(): Promise<void> {
    let docs = await this.store.published(new Date(Date.now() - this.maxTokenLifetimeMs));
    if (!docs.some((d) => d.retiredAt === null)) {
      await this.store.insert(await generate());
      this.logger.info('Signing key generated');
      docs = await this.store.published(new Date(Date.now() - this.maxTokenLifetimeMs));
    }
    const signing = docs.find((d) => d.retiredAt === null)!;
    if (this.active?.kid !== signing._id) {
      this.active = { kid: signing._id, key: (await importJWK(signing.privateJwk, 'ES256')) as CryptoKey };
    }
    this.jwks = { keys: docs.map((d) => ({ ...d.publicJwk, kid: d._id, alg: d.alg, use: 'sig' })) };
  }

  /**
   * Makes `kid` the signing key (generating it if it does not exist yet) and
   * retires the others. Idempotent for a given kid, so the outbox relay can
   * apply a signing_key.rotated event again safely.
   */
  async rotateTo(kid: string): Promise<string[]> {
    if (!(await this.store.find(kid))) await this.store.insert(await generate(kid));
    const retired = await this.store.retireAllExcept(kid, new Date());
    await this.load();
    this.logger.info('Signing key rotated', { kid, retired: retired.length });
    return retired;
  }

  /** The keys that sign now (normally one). */
  signingKeyIds(): string[] {
    return this.active ? [this.active.kid] : [];
  }

  current(): ActiveKey {
    if (!this.active) throw new Error('Signing keys are not loaded');
    return this.active;
  }

  publicJwks(): JSONWebKeySet {
    return this.jwks;
  }
}

async function generate(kid: string = randomUUID()): Promise<SigningKeyDoc> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const strip = (jwk: JWK): JWK => ({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, ...(jwk.d ? { d: jwk.d } : {}) });
  return {
    _id: kid,
    alg: 'ES256',
    publicJwk: strip(await exportJWK(publicKey)),
    privateJwk: strip(await exportJWK(privateKey)),
    createdAt: new Date(),
    retiredAt: null,
  };
}
