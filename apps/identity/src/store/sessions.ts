import { randomSecret, sha256 } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';
import { randomUUID } from 'node:crypto';

export interface SessionDoc {
  /** SHA-256 of the session token: the token itself is never stored. */
  _id: string;
  /** Public id (OpenID Connect sid). */
  sessionId: string;
  userId: string;
  authTime: Date;
  amr: string[];
  expiresAt: Date;
}

export class SessionStore {
  private readonly sessions: Collection<SessionDoc>;

  constructor(db: Db) {
    this.sessions = db.collection<SessionDoc>('sessions');
  }

  async ensureIndexes(): Promise<void> {
    await this.sessions.createIndex({ expiresAt: 1 }, { name: 'by_expiry' });
  }

  async create(userId: string, amr: string[], ttlSeconds: number): Promise<{ session: SessionDoc; token: string }> {
    const token = randomSecret(32);
    const now = new Date();
    const session: SessionDoc = {
      _id: sha256(token),
      sessionId: randomUUID(),
      userId,
      authTime: now,
      amr,
      expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
    };
    await this.sessions.insertOne(session);
    return { session, token };
  }

  /** The live session for a token, or null (unknown, ended or expired). */
  async findLive(token: string): Promise<SessionDoc | null> {
    if (!token) return null;
    // By _id alone, then checked here: FerretDB 1.x only uses an index for a filter that is exactly {_id}.
    const session = await this.sessions.findOne({ _id: sha256(token) });
    return session && session.expiresAt > new Date() ? session : null;
  }

  async end(token: string): Promise<void> {
    if (token) await this.sessions.deleteOne({ _id: sha256(token) });
  }

  /** Ends every session of a user (they were disabled). */
  async endAllFor(userId: string): Promise<number> {
    const result = await this.sessions.deleteMany({ userId });
    return result.deletedCount;
  }

  async sweepExpired(): Promise<number> {
    const result = await this.sessions.deleteMany({ expiresAt: { $lte: new Date() } });
    return result.deletedCount;
  }
}
