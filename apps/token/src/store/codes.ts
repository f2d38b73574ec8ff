import { SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

export interface CodeDoc {
  /** SHA-256 of the code: the code itself is never stored. */
  _id: string;
  clientId: string;
  userId: string;
  redirectUri: string;
  scopes: string[];
  codeChallenge: string;
  codeChallengeMethod: string;
  nonce: string;
  authTime: Date;
  amr: string[];
  sessionId: string;
  grantId: string;
  authEventId: string;
  expiresAt: Date;
  consumedAt: Date | null;
  createdAt?: Date;
  /** RFC 9449 §10: the DPoP key the token request must prove (dpop_jkt of the authorization request). */
  dpopJkt?: string;
  /** The family of the tokens issued from this code (chosen when the code is issued). */
  familyId?: string | null;
}

/** Codes are kept a while after expiry so a late second use is still recognised. */
const KEEP_AFTER_EXPIRY_MS = 10 * 60_000;

export class CodeStore {
  private readonly codes: Collection<CodeDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.codes = db.collection<CodeDoc>('authorization_codes');
  }

  async ensureIndexes(): Promise<void> {
    await this.codes.createIndex({ expiresAt: 1 }, { name: 'by_expiry' });
  }

  async insert(doc: CodeDoc): Promise<void> {
    await this.codes.insertOne(doc);
  }

  /**
   * Consumes a code in one atomic step, before anything else is checked: it
   * can be redeemed once, and a failed attempt burns it too. Returns the code
   * as it was, or null when unknown, expired or already consumed.
   */
  consume(hash: string): Promise<CodeDoc | null> {
    return this.writer.run(hash, () => {
      const now = new Date();
      return this.codes.findOneAndUpdate(
        { _id: hash, consumedAt: null, expiresAt: { $gt: now } },
        { $set: { consumedAt: now } },
        { returnDocument: 'before' },
      );
    });
  }

  find(hash: string): Promise<CodeDoc | null> {
    return this.codes.findOne({ _id: hash });
  }

  async sweepExpired(): Promise<number> {
    const result = await this.codes.deleteMany({ expiresAt: { $lte: new Date(Date.now() - KEEP_AFTER_EXPIRY_MS) } });
    return result.deletedCount;
  }
}
