import type { Role } from '@ledgerly/proto/identity/v1/identity';
import { SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';

export interface MembershipDoc {
  /** `${userId}:${organisationId}`: one membership per user and organisation. */
  _id: string;
  userId: string;
  organisationId: string;
  role: Role;
  createdAt: Date;
  updatedAt: Date;
}

export class MembershipStore {
  private readonly memberships: Collection<MembershipDoc>;
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.memberships = db.collection<MembershipDoc>('memberships');
  }

  async ensureIndexes(): Promise<void> {
    await this.memberships.createIndex({ userId: 1 }, { name: 'by_user' });
  }

  /** Adds the membership or changes its role: one atomic upsert. */
  upsert(userId: string, organisationId: string, role: Role): Promise<MembershipDoc> {
    const id = `${userId}:${organisationId}`;
    return this.writer.run(id, async () => {
      const now = new Date();
      const doc = await this.memberships.findOneAndUpdate(
        { _id: id },
        { $set: { role, updatedAt: now }, $setOnInsert: { userId, organisationId, createdAt: now } },
        { upsert: true, returnDocument: 'after' },
      );
      return doc!;
    });
  }

  find(userId: string, organisationId: string): Promise<MembershipDoc | null> {
    return this.memberships.findOne({ _id: `${userId}:${organisationId}` });
  }

  listForUser(userId: string): Promise<MembershipDoc[]> {
    return this.memberships.find({ userId }).sort({ createdAt: 1 }).toArray();
  }
}
