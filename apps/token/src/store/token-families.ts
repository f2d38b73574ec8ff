import { SingleWriter } from '@ledgerly/chassis';
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
      const existing = await this.families.findOne({ _id: family._id });
      if (!existing) {
        await this.families.insertOne({ ...family, accessTokens: [token], revokedAt: null });
        return true;
      }
      const live = existing.accessTokens.filter((t) => t.exp > new Date());
      await this.families.updateOne({ _id: family._id }, { $set: { accessTokens: [...live, token], expiresAt: family.expiresAt } });
      return !existing.revokedAt;
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
      const existing = await this.families.findOne({ _id: family._id });
      if (existing?.revokedAt) return null;
      if (!existing) {
        await this.families.insertOne({ ...family, accessTokens: [], revokedAt: at });
        return { ...family, accessTokens: [], revokedAt: null };
      }
      await this.families.updateOne({ _id: family._id }, { $set: { revokedAt: at } });
      return existing;
    });
  }

  async sweepExpired(): Promise<number> {
    const result = await this.families.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
