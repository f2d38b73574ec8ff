import { isDuplicateKeyError } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

interface SeenDoc {
  _id: string;
  expiresAt: Date;
}

/**
 * Values that may be used once until they expire: private_key_jwt assertion
 * ids (RFC 7523 §3, item 7). A unique insert decides, atomically on MongoDB
 * and FerretDB alike; expired ones are swept.
 */
export class OneTimeStore {
  private readonly seen: Collection<SeenDoc>;

  constructor(db: Db, name: string) {
    this.seen = db.collection<SeenDoc>(name);
  }

  /** True the first time `key` is offered; false for a replay. */
  async firstUse(key: string, expiresAt: Date): Promise<boolean> {
    try {
      await this.seen.insertOne({ _id: key, expiresAt });
      return true;
    } catch (err) {
      if (isDuplicateKeyError(err)) return false;
      throw err;
    }
  }

  async sweepExpired(): Promise<number> {
    const result = await this.seen.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
