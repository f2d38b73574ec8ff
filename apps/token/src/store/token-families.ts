import { isDuplicateKeyError, SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

/**
 * Every token issued from one authorization code: the refresh tokens rotated
 * from it share its family, and each access token issued along the way is
 * listed, so a replayed code or a reused refresh token can revoke them all
 * (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
 */
export interface TokenFamilyDoc {
  _id: string;
  clientId: string;
  userId: string;
  grantId: string;
  accessTokens: Array<{ jti: string; exp: Date }>;
  revokedAt?: Date | null;
  /** Kept until the last refresh token of the family could have expired. */
  expiresAt: Date;
}

export class TokenFamilyStore {
  private readonly families: Collection<TokenFamilyDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.families = db.collection<TokenFamilyDoc>('token_families');
  }

  /**
   * Records an access token issued in the family (creating the family).
   * Returns false when the family is revoked already: a replay of its code
   * got there first, and the token must be revoked at once.
   */
  addAccessToken(family: Omit<TokenFamilyDoc, 'accessTokens' | 'revokedAt'>, token: { jti: string; exp: Date }): Promise<boolean> {
    return this.writer.run(family._id, async () => {
      // One atomic update (on MongoDB across instances): append to a family
      // that is not revoked, or create it. A revoked family does not match
      // the filter, so the upsert collides with its _id: refused.
      let doc: TokenFamilyDoc | null;
      try {
        doc = await this.families.findOneAndUpdate(
          { _id: family._id, revokedAt: null },
          { $push: { accessTokens: token }, $set: { expiresAt: family.expiresAt }, $setOnInsert: { clientId: family.clientId, userId: family.userId, grantId: family.grantId } },
          { upsert: true, returnDocument: 'after' },
        );
      } catch (err) {
        if (isDuplicateKeyError(err)) return false;
        throw err;
      }
      // Tokens that have expired need no revoking: keep the list short. Each
      // is pulled by its whole value (all FerretDB 1.x supports), so a token
      // appended meanwhile by another instance is never lost.
      const now = new Date();
      for (const expired of doc?.accessTokens.filter((t) => t.exp <= now) ?? []) {
        await this.families.updateOne({ _id: family._id }, { $pull: { accessTokens: { jti: expired.jti, exp: expired.exp } } });
      }
      return true;
    });
  }

  find(familyId: string): Promise<TokenFamilyDoc | null> {
    return this.families.findOne({ _id: familyId });
  }

  /**
   * Marks the family revoked, creating it if nothing was issued in it yet (a
   * replay racing the first exchange). Returns it as it was, or null when it
   * was revoked already.
   */
  revoke(family: Omit<TokenFamilyDoc, 'accessTokens' | 'revokedAt'>, at: Date): Promise<TokenFamilyDoc | null> {
    return this.writer.run(family._id, async () => {
      try {
        const before = await this.families.findOneAndUpdate(
          { _id: family._id, revokedAt: null },
          { $set: { revokedAt: at }, $setOnInsert: { clientId: family.clientId, userId: family.userId, grantId: family.grantId, expiresAt: family.expiresAt, accessTokens: [] } },
          { upsert: true, returnDocument: 'before' },
        );
        // Null: nothing was issued in it yet; the tombstone now refuses what comes.
        return before ?? { ...family, accessTokens: [], revokedAt: null };
      } catch (err) {
        // Revoked already: the filter missed and the upsert collided with it.
        if (isDuplicateKeyError(err)) return null;
        throw err;
      }
    });
  }

  async sweepExpired(): Promise<number> {
    const result = await this.families.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
