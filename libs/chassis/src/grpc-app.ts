import type { Db } from 'mongodb';
import { listenAddress, logLevel, mongoUrl, natsUrl, z } from './config.js';
import { EventBus } from './events.js';
import { GrpcServer, type ServiceImplementation } from './grpc-server.js';
import type { ServiceRuntime } from './lifecycle.js';
import type { Logger } from './logger.js';
import { connectMongo } from './mongo.js';

/** The configuration keys every gRPC service has, with its defaults. */
export function grpcServiceConfig(service: string, port: number) {
  return {
    LEDGERLY_GRPC_LISTEN: listenAddress(`127.0.0.1:${port}`),
    LEDGERLY_MONGO_URL: mongoUrl('mongodb://127.0.0.1:27017/'),
    LEDGERLY_MONGO_DB: mongoDatabase(`ledgerly_${service}`),
    LEDGERLY_NATS_URL: natsUrl('nats://127.0.0.1:4222'),
    LEDGERLY_LOG_LEVEL: logLevel(),
  };
}

function mongoDatabase(fallback: string) {
  return z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'expected a database name: letters, digits, _ and -')
    .default(fallback);
}

export interface GrpcAppConfig {
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
  const mongo = await connectMongo({
    url: config.LEDGERLY_MONGO_URL,
    database: config.LEDGERLY_MONGO_DB,
    appName: runtime.name,
    logger,
  });
  runtime.onStop('mongo', () => mongo.close());
  const events = await EventBus.connect({ url: config.LEDGERLY_NATS_URL, name: runtime.name, logger });
  runtime.onStop('nats', () => events.close());
  const parts = await build({ db: mongo.db, events, logger, runtime });
  const server = await GrpcServer.start({ address: config.LEDGERLY_GRPC_LISTEN, services: parts.services, logger });
  runtime.onStop('grpc', () => server.shutdown(5000));
  await parts.ready;
  server.setServing(true);
  return { address: server.address };
}
