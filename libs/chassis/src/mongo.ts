import { MongoClient, MongoServerError, type Db } from 'mongodb';
import type { Logger } from './logger.js';

export interface MongoConnection {
  readonly client: MongoClient;
  readonly db: Db;
  close(): Promise<void>;
}

export interface MongoOptions {
  url: string;
  /** Each service owns exactly one database and touches no other. */
  database: string;
  appName: string;
  logger: Logger;
  /**
   * How long an operation waits for a reachable server before failing with a
   * server-selection error (which the chassis turns into UNAVAILABLE, and the
   * edge into 503). Kept short (500 ms): a caller must never hang on a dead database.
   */
  serverSelectionTimeoutMs?: number;
}

/**
 * Connects with the official driver. Only what MongoDB and FerretDB both
 * support is used: single-document atomic updates, unique indexes, no
 * multi-document transactions (docs/architecture.md, "Storage").
 */
export async function connectMongo(options: MongoOptions): Promise<MongoConnection> {
  const timeout = options.serverSelectionTimeoutMs ?? 500;
  const client = new MongoClient(options.url, {
    appName: options.appName,
    serverSelectionTimeoutMS: timeout,
    connectTimeoutMS: timeout,
    socketTimeoutMS: 10_000,
    maxPoolSize: 20,
    retryWrites: false,
    ignoreUndefined: true,
    // A dead database must become a 503 within a second: no driver-level retry (callers may retry).
    retryReads: false,
  });
  await client.connect();
  const db = client.db(options.database);
  options.logger.info('MongoDB connected', { database: options.database });
  return {
    client,
    db,
    close: async () => {
      await client.close();
    },
  };
}

/** A unique-index violation (E11000). */
export function isDuplicateKeyError(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}
