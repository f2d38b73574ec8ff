import { isDuplicateKeyError, SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';
import { randomUUID } from 'node:crypto';

export interface GrantDoc {
  _id: string;
  /** `${userId}|${clientId}`: one grant per user and app. */
  key: string;
  userId: string;
  clientId: string;
  scopes: string[];
  createdAt: Date;
  updatedAt: Date;
}

/** An event that must reach NATS, kept in the document it describes until it has. */
export interface PendingEvent {
  id: string;
  published: boolean;
}

export interface ConnectionDoc {
  _id: string;
  /**
   * `${userId}|${clientId}|${tenantId}` while live, `revoked:${_id}` once
   * revoked: a unique index on it allows one live connection per key without
   * the partial indexes FerretDB lacks.
   */
  key: string;
  grantId: string;
  userId: string;
  clientId: string;
  tenantId: string;
  tenantType: string;
  tenantName: string;
  authEventId: string;
  createdAt: Date;
  updatedAt: Date;
  revokedAt: Date | null;
  /**
   * The connection.revoked event, written in the same atomic update as the
   * revocation and marked published once JetStream has it. A relay re-sends
   * any left unpublished (a crash, or NATS down), so no revocation is lost.
   */
  revocationEvent: PendingEvent | null;
}

const liveKey = (userId: string, clientId: string, tenantId: string) => `${userId}|${clientId}|${tenantId}`;

export class ConnectionStore {
  private readonly grants: Collection<GrantDoc>;
  private readonly connections: Collection<ConnectionDoc>;
  /** Every write to grants and connections, one at a time (see SingleWriter). */
  private readonly writer = new SingleWriter();

  constructor(db: Db) {
    this.grants = db.collection<GrantDoc>('grants');
    this.connections = db.collection<ConnectionDoc>('connections');
  }

  async ensureIndexes(): Promise<void> {
    await this.grants.createIndex({ key: 1 }, { unique: true, name: 'grant_unique' });
    await this.connections.createIndex({ key: 1 }, { unique: true, name: 'live_connection_unique' });
    await this.connections.createIndex({ userId: 1, clientId: 1, tenantId: 1 }, { name: 'by_user_client_tenant' });
    await this.connections.createIndex({ 'revocationEvent.published': 1 }, { name: 'by_pending_revocation' });
  }

  /** The user's grant to the app, created or updated with the scopes just consented. */
  upsertGrant(userId: string, clientId: string, scopes: string[]): Promise<GrantDoc> {
    return this.writer.run('grants', () => this.upsertGrantNow(userId, clientId, scopes));
  }

  private async upsertGrantNow(userId: string, clientId: string, scopes: string[]): Promise<GrantDoc> {
    const now = new Date();
    const key = `${userId}|${clientId}`;
    const update = () =>
      this.grants.findOneAndUpdate(
        { key },
        { $set: { scopes, updatedAt: now }, $setOnInsert: { _id: randomUUID(), userId, clientId, createdAt: now } },
        { upsert: true, returnDocument: 'after' },
      );
    try {
      return (await update())!;
    } catch (err) {
      // Two first consents raced on the unique key: the other one inserted it.
      if (isDuplicateKeyError(err)) return (await update())!;
      throw err;
    }
  }

  /** Connects the tenant (or refreshes a live connection with the new auth event). */
  connect(input: Parameters<ConnectionStore['connectNow']>[0]): Promise<{ connection: ConnectionDoc; created: boolean }> {
    return this.writer.run('connections', () => this.connectNow(input));
  }

  private async connectNow(input: {
    grantId: string;
    userId: string;
    clientId: string;
    tenantId: string;
    tenantName: string;
    authEventId: string;
  }): Promise<{ connection: ConnectionDoc; created: boolean }> {
    const now = new Date();
    const key = liveKey(input.userId, input.clientId, input.tenantId);
    const id = randomUUID();
    const update = () =>
      this.connections.findOneAndUpdate(
        { key },
        {
          $set: { grantId: input.grantId, tenantName: input.tenantName, authEventId: input.authEventId, updatedAt: now },
          $setOnInsert: {
            _id: id,
            userId: input.userId,
            clientId: input.clientId,
            tenantId: input.tenantId,
            tenantType: 'ORGANISATION',
            createdAt: now,
            revokedAt: null,
            revocationEvent: null,
          },
        },
        { upsert: true, returnDocument: 'after' },
      );
    let connection: ConnectionDoc | null;
    try {
      connection = await update();
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
      connection = await update();
    }
    return { connection: connection!, created: connection!._id === id };
  }

  listLive(userId: string, clientId: string, authEventId?: string): Promise<ConnectionDoc[]> {
    return this.connections
      .find({ userId, clientId, revokedAt: null, ...(authEventId ? { authEventId } : {}) })
      .sort({ createdAt: 1 })
      .toArray();
  }

  findLive(userId: string, clientId: string, tenantId: string): Promise<ConnectionDoc | null> {
    return this.connections.findOne({ key: liveKey(userId, clientId, tenantId) });
  }

  /** The most recent revocation for the key, if any. */
  async lastRevokedAt(userId: string, clientId: string, tenantId: string): Promise<Date | null> {
    const [latest] = await this.connections
      .find({ userId, clientId, tenantId, revokedAt: { $ne: null } })
      .sort({ revokedAt: -1 })
      .limit(1)
      .toArray();
    return latest?.revokedAt ?? null;
  }

  /**
   * Revokes a live connection of (user, app) in one atomic update that also
   * records the event to publish. Null when there is no such live connection.
   */
  revoke(connectionId: string, userId: string, clientId: string): Promise<ConnectionDoc | null> {
    return this.writer.run('connections', () => {
      const now = new Date();
      return this.connections.findOneAndUpdate(
        { _id: connectionId, userId, clientId, revokedAt: null },
        { $set: { key: `revoked:${connectionId}`, revokedAt: now, updatedAt: now, revocationEvent: { id: randomUUID(), published: false } } },
        { returnDocument: 'after' },
      );
    });
  }

  markRevocationPublished(connectionId: string): Promise<unknown> {
    return this.writer.run('connections', () =>
      this.connections.updateOne({ _id: connectionId }, { $set: { 'revocationEvent.published': true } }),
    );
  }

  unpublishedRevocations(limit: number): Promise<ConnectionDoc[]> {
    return this.connections.find({ 'revocationEvent.published': false }).limit(limit).toArray();
  }
}
