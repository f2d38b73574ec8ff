import { isDuplicateKeyError, SingleWriter } from '@ledgerly/chassis';
import type { Collection, Db } from 'mongodb';
import { randomUUID } from 'node:crypto';

export interface GrantDoc {
  _id: string;
  /**
   * `${userId}|${clientId}` while live, `revoked:${_id}` once revoked: one
   * live grant per user and app, and a consent after a revocation starts a
   * new grant (so the old one's tokens stay dead).
   */
  key: string;
  userId: string;
  clientId: string;
  scopes: string[];
  createdAt: Date;
  updatedAt: Date;
  revokedAt?: Date | null;
  /** A custom connection's grant (client_credentials): it ends with its one connection. */
  custom?: boolean;
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
  /** Missing or null while live. */
  revokedAt?: Date | null;
}

const grantKey = (userId: string, clientId: string) => `${userId}|${clientId}`;
const liveKey = (userId: string, clientId: string, tenantId: string) => `${userId}|${clientId}|${tenantId}`;
const isLive = (doc: { revokedAt?: Date | null }) => !doc.revokedAt;

/**
 * Grants and connections. Revocations and new connections are published
 * through the service's outbox: the grpc layer records the event, and the
 * outbox calls the idempotent `revoke…`/`connect` here to make the change.
 */
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
    await this.connections.createIndex({ grantId: 1 }, { name: 'by_grant' });
  }

  /**
   * The user's live grant to the app, created, or widened with the scopes
   * just consented: a grant's scopes are the union of its consents (tokens
   * of an earlier consent stay valid, so the grant may never claim less).
   */
  upsertGrant(userId: string, clientId: string, scopes: string[], options: { custom?: boolean } = {}): Promise<GrantDoc> {
    return this.writer.run('grants', async () => {
      const now = new Date();
      const key = grantKey(userId, clientId);
      const update = async () => {
        const existing = await this.grants.findOne({ key });
        const union = [...new Set([...(existing?.scopes ?? []), ...scopes])];
        return this.grants.findOneAndUpdate(
          { key },
          { $set: { scopes: union, updatedAt: now, ...(options.custom ? { custom: true } : {}) }, $setOnInsert: { _id: randomUUID(), userId, clientId, createdAt: now } },
          { upsert: true, returnDocument: 'after' },
        );
      };
      try {
        return (await update())!;
      } catch (err) {
        // Two first consents raced on the unique key: the other one inserted it.
        if (isDuplicateKeyError(err)) return (await update())!;
        throw err;
      }
    });
  }

  findGrant(grantId: string): Promise<GrantDoc | null> {
    return this.grants.findOne({ _id: grantId });
  }

  findLiveGrant(userId: string, clientId: string): Promise<GrantDoc | null> {
    return this.grants.findOne({ key: grantKey(userId, clientId) });
  }

  /**
   * Revokes a grant and every live connection it opened, as of `at`.
   * Idempotent; false when there is no such grant.
   */
  revokeGrant(grantId: string, at: Date): Promise<boolean> {
    return this.writer.run('grants', () =>
      this.writer.run('connections', async () => {
        const grant = await this.grants.findOne({ _id: grantId });
        if (!grant) return false;
        if (isLive(grant)) await this.grants.updateOne({ _id: grantId }, { $set: { key: `revoked:${grantId}`, revokedAt: at, updatedAt: at } });
        for (const c of await this.connections.find({ grantId }).toArray()) {
          if (isLive(c)) await this.connections.updateOne({ _id: c._id }, { $set: { key: `revoked:${c._id}`, revokedAt: at, updatedAt: at } });
        }
        return true;
      }),
    );
  }

  /**
   * Connects the tenant with the given id, or refreshes the live connection
   * with the new auth event. Idempotent. `created` says whether it is new.
   */
  connect(input: {
    connectionId: string;
    grantId: string;
    userId: string;
    clientId: string;
    tenantId: string;
    tenantName: string;
    authEventId: string;
  }): Promise<{ connection: ConnectionDoc; created: boolean }> {
    return this.writer.run('connections', async () => {
      const now = new Date();
      const key = liveKey(input.userId, input.clientId, input.tenantId);
      const update = () =>
        this.connections.findOneAndUpdate(
          { key },
          {
            $set: { grantId: input.grantId, tenantName: input.tenantName, authEventId: input.authEventId, updatedAt: now },
            $setOnInsert: {
              _id: input.connectionId,
              userId: input.userId,
              clientId: input.clientId,
              tenantId: input.tenantId,
              tenantType: 'ORGANISATION',
              createdAt: now,
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
      return { connection: connection!, created: connection!._id === input.connectionId };
    });
  }

  listLive(userId: string, clientId: string, authEventId?: string): Promise<ConnectionDoc[]> {
    return this.connections
      .find({ userId, clientId, ...(authEventId ? { authEventId } : {}) })
      .sort({ createdAt: 1 })
      .toArray()
      .then((list) => list.filter(isLive));
  }

  findLive(userId: string, clientId: string, tenantId: string): Promise<ConnectionDoc | null> {
    return this.connections.findOne({ key: liveKey(userId, clientId, tenantId) });
  }

  /** A connection by id, live or not. */
  find(connectionId: string): Promise<ConnectionDoc | null> {
    return this.connections.findOne({ _id: connectionId });
  }

  /** The most recent revocation for the key, if any. */
  async lastRevokedAt(userId: string, clientId: string, tenantId: string): Promise<Date | null> {
    return (await this.state(userId, clientId, tenantId)).lastRevokedAt;
  }

  /** The live connection of (user, app, organisation), if any, and when one was last revoked: one query. */
  async state(userId: string, clientId: string, tenantId: string): Promise<{ live: ConnectionDoc | null; lastRevokedAt: Date | null }> {
    const all = await this.connections.find({ userId, clientId, tenantId }).toArray();
    const revoked = all.filter((c) => !isLive(c));
    return {
      live: all.find(isLive) ?? null,
      lastRevokedAt: revoked.reduce<Date | null>((latest, c) => (!latest || c.revokedAt! > latest ? c.revokedAt! : latest), null),
    };
  }

  /** Revokes one connection as of `at`. Idempotent; false when there is no such connection. */
  revoke(connectionId: string, at: Date): Promise<boolean> {
    return this.writer.run('connections', async () => {
      const connection = await this.connections.findOne({ _id: connectionId });
      if (!connection) return false;
      if (isLive(connection)) {
        await this.connections.updateOne({ _id: connectionId }, { $set: { key: `revoked:${connectionId}`, revokedAt: at, updatedAt: at } });
      }
      return true;
    });
  }
}
