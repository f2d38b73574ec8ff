import type { Db } from 'mongodb';
import { listenAddress, logLevel, mongoUrl, natsUrl, z } from './config.js';
import { EventBus } from './events.js';
import { createClient, type ClientOptions, type PromiseClient } from './grpc-client.js';
import { GrpcServer, type AuditEntry, type ServiceImplementation } from './grpc-server.js';
import type { ServiceDefinition } from './grpc-types.js';
import type { ServiceRuntime } from './lifecycle.js';
import type { Logger } from './logger.js';
import { connectMongo } from './mongo.js';
import { startPeriodicJob } from './periodic-job.js';
import { loadTls, type TlsMaterial } from './tls.js';

/** The configuration keys every gRPC service has, with its defaults. */
export function grpcServiceConfig(service: string, port: number) {
  return {
    LEDGERLY_GRPC_LISTEN: listenAddress(`127.0.0.1:${port}`),
    LEDGERLY_MONGO_URL: mongoUrl('mongodb://127.0.0.1:27017/'),
    LEDGERLY_MONGO_DB: mongoDatabase(`ledgerly_${service}`),
    LEDGERLY_NATS_URL: natsUrl('nats://127.0.0.1:4222'),
    LEDGERLY_LOG_LEVEL: logLevel(),
    ...tlsConfig(service),
  };
}

/**
 * The mutual-TLS files of a service (or tool). Defaults are where `npm start`
 * keeps the development PKI (.data/pki, relative to the working directory).
 */
export function tlsConfig(identity: string) {
  const file = identity.replace(':', '-');
  return {
    LEDGERLY_TLS_CA: z.string().min(1).default('.data/pki/ca.crt'),
    LEDGERLY_TLS_CERT: z.string().min(1).default(`.data/pki/${file}.crt`),
    LEDGERLY_TLS_KEY: z.string().min(1).default(`.data/pki/${file}.key`),
  };
}

export interface TlsConfig {
  LEDGERLY_TLS_CA: string;
  LEDGERLY_TLS_CERT: string;
  LEDGERLY_TLS_KEY: string;
}

/** Loads a service's TLS material and checks the certificate is its own. */
export function loadServiceTls(config: TlsConfig, expectedIdentity: string): TlsMaterial {
  const tls = loadTls({ caFile: config.LEDGERLY_TLS_CA, certFile: config.LEDGERLY_TLS_CERT, keyFile: config.LEDGERLY_TLS_KEY });
  if (tls.identity !== expectedIdentity) {
    throw new Error(`LEDGERLY_TLS_CERT is the certificate of "${tls.identity}", not of "${expectedIdentity}"`);
  }
  return tls;
}

function mongoDatabase(fallback: string) {
  return z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'expected a database name: letters, digits, _ and -')
    .default(fallback);
}

export interface GrpcAppConfig extends TlsConfig {
  LEDGERLY_GRPC_LISTEN: string;
  LEDGERLY_MONGO_URL: string;
  LEDGERLY_MONGO_DB: string;
  LEDGERLY_NATS_URL: string;
}

export interface GrpcAppDeps {
  readonly db: Db;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly runtime: ServiceRuntime;
  readonly tls: TlsMaterial;
  /** A client of another service, over mutual TLS as this service; closed at shutdown. */
  client<D extends ServiceDefinition>(definition: D, address: string, options?: ClientOptions): PromiseClient<D>;
}

export interface GrpcAppParts {
  services: ServiceImplementation[];
  /** Resolves when the service may serve (e.g. its event views have caught up). */
  ready?: Promise<void>;
}

/**
 * Boots a gRPC service the one chassis way: MongoDB (its own database), NATS
 * JetStream, the gRPC server with health; reports SERVING only once `ready`
 * resolves. Shutdown runs in reverse: stop the server (in-flight calls
 * finish), drain NATS, close MongoDB.
 */
export async function startGrpcApp(
  runtime: ServiceRuntime,
  config: GrpcAppConfig,
  build: (deps: GrpcAppDeps) => Promise<GrpcAppParts>,
): Promise<{ address: string }> {
  const { logger } = runtime;
  const tls = loadServiceTls(config, runtime.name);
  const mongo = await connectMongo({
    url: config.LEDGERLY_MONGO_URL,
    database: config.LEDGERLY_MONGO_DB,
    appName: runtime.name,
    logger,
  });
  runtime.onStop('mongo', () => mongo.close());
  const events = await EventBus.connect({ url: config.LEDGERLY_NATS_URL, name: runtime.name, logger });
  runtime.onStop('nats', () => events.close());
  const clients: Array<{ close(): void }> = [];
  runtime.onStop('clients', () => clients.forEach((c) => c.close()));
  const client = <D extends ServiceDefinition>(definition: D, address: string, options: ClientOptions = {}) => {
    const c = createClient(definition, address, { ...options, tls });
    clients.push(c);
    return c;
  };
  const parts = await build({ db: mongo.db, events, logger, runtime, tls, client });
  const audit = auditLog(mongo.db, logger);
  runtime.onStop('audit log sweeper', startPeriodicJob('audit log', 3_600_000, () => sweepAuditLog(mongo.db), logger));
  const server = await GrpcServer.start({ address: config.LEDGERLY_GRPC_LISTEN, services: parts.services, logger, tls, audit });
  runtime.onStop('grpc', () => server.shutdown(5000));
  await parts.ready;
  server.setServing(true);
  return { address: server.address };
}

/**
 * Every operator action, in the service's own `audit_log` collection and as
 * a log line: who, what, when, with which request (secrets redacted), and the
 * outcome.
 */
function auditLog(db: Db, logger: Logger): (entry: AuditEntry) => Promise<void> {
  const collection = db.collection<AuditEntry>('audit_log');
  return async (entry) => {
    logger.info('Operator action', { operator: entry.operator, method: entry.method, outcome: entry.outcome });
    await collection.insertOne({ ...entry });
  };
}

/** Audit records are kept 400 days (over a year, for annual reviews), then deleted. */
export const AUDIT_RETENTION_DAYS = 400;

async function sweepAuditLog(db: Db): Promise<number> {
  const result = await db.collection<AuditEntry>('audit_log').deleteMany({ at: { $lt: new Date(Date.now() - AUDIT_RETENTION_DAYS * 86_400_000) } });
  return result.deletedCount;
}
