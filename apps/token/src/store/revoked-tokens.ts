import type { Collection, Db } from 'mongodb';

export interface RevokedTokenDoc {
  /** The access token's jti. */
  _id: string;
  clientId: string;
  userId: string;
  revokedAt: Date;
  /** When the token would have expired; the row is swept after that. */
  expiresAt: Date;
}

/** Access tokens revoked one by one (RFC 7009), for the synchronous check. */
export class RevokedTokenStore {
  private readonly tokens: Collection<RevokedTokenDoc>;

  constructor(db: Db) {
    this.tokens = db.collection<RevokedTokenDoc>('revoked_tokens');
  }

  async add(doc: RevokedTokenDoc): Promise<void> {
    await this.tokens.updateOne({ _id: doc._id }, { $setOnInsert: doc }, { upsert: true });
  }

  async isRevoked(tokenId: string): Promise<boolean> {
    return (await this.tokens.findOne({ _id: tokenId })) !== null;
  }

  async sweepExpired(): Promise<number> {
    const result = await this.tokens.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
