import type { JWK } from 'jose';
import type { Collection, Db } from 'mongodb';

export interface SigningKeyDoc {
  /** The key id ("kid"). */
  _id: string;
  alg: 'ES256';
  publicJwk: JWK;
  /**
   * The private key as a JWK. Stored in the token service's own database
   * only; in production, wrap it with a KMS (docs/security.md).
   */
  privateJwk: JWK;
  createdAt: Date;
  /** Once set, the key no longer signs; it stays published until its tokens have expired. */
  retiredAt: Date | null;
}

export class SigningKeyStore {
  private readonly keys: Collection<SigningKeyDoc>;

  constructor(db: Db) {
    this.keys = db.collection<SigningKeyDoc>('signing_keys');
  }

  async insert(doc: SigningKeyDoc): Promise<void> {
    await this.keys.insertOne(doc);
  }

  find(kid: string): Promise<SigningKeyDoc | null> {
    return this.keys.findOne({ _id: kid });
  }

  /** Retires every key but `kid` (they keep verifying; they stop signing). */
  async retireAllExcept(kid: string, at: Date): Promise<string[]> {
    const active = await this.keys.find({ retiredAt: null }).toArray();
    const retired = active.filter((k) => k._id !== kid).map((k) => k._id);
    for (const id of retired) await this.keys.updateOne({ _id: id }, { $set: { retiredAt: at } });
    return retired;
  }

  /** Keys that may have signed a token that is still valid. */
  published(since: Date): Promise<SigningKeyDoc[]> {
    return this.keys
      .find({ $or: [{ retiredAt: null }, { retiredAt: { $gt: since } }] })
      .sort({ createdAt: -1 })
      .toArray();
  }
}
