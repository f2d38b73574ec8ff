import { SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

/**
 * A refresh token. Each use rotates it: the used one is marked (usedAt) in
 * the same atomic step that checks it was unused, so of two racing refreshes
 * exactly one wins.
 */
export interface RefreshTokenDoc {
  /** SHA-256 of the token. */
  _id: string;
  /** All tokens rotated from one authorization share a family. */
  familyId: string;
  clientId: string;
  userId: string;
  scopes: string[];
  grantId: string;
  authEventId: string;
  authTime: Date;
  amr: string[];
  sessionId: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
  /** RFC 9449 §5: refresh tokens of public clients are bound to the DPoP key. */
  dpopJkt?: string;
  /**
   * With the grace window on: the answer this token's rotation gave,
   * encrypted with a key derived from the token itself, so only its holder can
   * read it, and only until graceUntil.
   */
  graceResponse?: string | null;
  graceUntil?: Date | null;
}

export class RefreshTokenStore {
  private readonly tokens: Collection<RefreshTokenDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.tokens = db.collection<RefreshTokenDoc>('refresh_tokens');
  }

  async ensureIndexes(): Promise<void> {
    await this.tokens.createIndex({ expiresAt: 1 }, { name: 'by_expiry' });
    await this.tokens.createIndex({ familyId: 1 }, { name: 'by_family' });
  }

  async insert(doc: RefreshTokenDoc): Promise<void> {
    await this.tokens.insertOne(doc);
  }

  find(hash: string): Promise<RefreshTokenDoc | null> {
    return this.tokens.findOne({ _id: hash });
  }

  /** Marks an unused, unexpired token used. Null when another use got there first. */
  markUsed(hash: string): Promise<RefreshTokenDoc | null> {
    return this.writer.run(hash, () => {
      const now = new Date();
      return this.tokens.findOneAndUpdate(
        { _id: hash, usedAt: null, expiresAt: { $gt: now } },
        { $set: { usedAt: now } },
        { returnDocument: 'after' },
      );
    });
  }

  async setGraceResponse(hash: string, encrypted: string, until: Date): Promise<void> {
    await this.tokens.updateOne({ _id: hash }, { $set: { graceResponse: encrypted, graceUntil: until } });
  }

  /** Spends every unused refresh token of a family (a replayed code). */
  async revokeFamily(familyId: string): Promise<number> {
    const result = await this.tokens.updateMany({ familyId, usedAt: null }, { $set: { usedAt: new Date() } });
    return result.modifiedCount;
  }

  /** Spends every unused refresh token of a grant (the grant was revoked). */
  async revokeGrant(grantId: string): Promise<number> {
    const now = new Date();
    const result = await this.tokens.updateMany({ grantId, usedAt: null }, { $set: { usedAt: now } });
    return result.modifiedCount;
  }

  async sweepExpired(): Promise<number> {
    const result = await this.tokens.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
