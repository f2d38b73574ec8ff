import { SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

interface PushedRequestDoc {
  /** SHA-256 of the request_uri. */
  _id: string;
  clientId: string;
  parameters: Record<string, string>;
  expiresAt: Date;
}

/** RFC 9126: pushed authorization requests, each usable once within 60 s. */
export class PushedRequestStore {
  private readonly requests: Collection<PushedRequestDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.requests = db.collection<PushedRequestDoc>('pushed_authorization_requests');
  }

  async insert(doc: PushedRequestDoc): Promise<void> {
    await this.requests.insertOne(doc);
  }

  /** Takes the request once: it is deleted as it is read. Null when unknown, used, expired, or another client's. */
  take(hash: string, clientId: string): Promise<Record<string, string> | null> {
    return this.writer.run(hash, async () => {
      // Atomic on MongoDB across instances: only one taker gets the document.
      const doc = await this.requests.findOneAndDelete({ _id: hash, clientId });
      return doc && doc.expiresAt > new Date() ? doc.parameters : null;
    });
  }

  async sweepExpired(): Promise<number> {
    const result = await this.requests.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
