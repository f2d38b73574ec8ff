import {
  Server,
  ServerCredentials,
  status as Status,
  type Metadata,
  type ServerUnaryCall,
  type sendUnaryData,
  type ServiceDefinition as GrpcJsServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { performance } from 'node:perf_hooks';
import { REQUEST_ID_KEY, sanitizeRequestId, withRequestContext } from './context.js';
import { toStatusObject } from './errors.js';
import {
  deserializer,
  methodPath,
  serializer,
  type DeepPartial,
  type RequestOf,
  type ResponseOf,
  type ServiceDefinition,
} from './grpc-types.js';
import type { Logger } from './logger.js';

/** What a handler knows about the call besides its request message. */
export interface CallContext {
  readonly service: string;
  readonly method: string;
  readonly requestId: string;
  readonly metadata: Metadata;
  readonly logger: Logger;
  /** Aborted when the caller cancels or its deadline passes. */
  readonly signal: AbortSignal;
  /** First value of a metadata key, as a string. */
  header(key: string): string | undefined;
}

export type ServiceHandlers<D extends ServiceDefinition> = {
  [K in keyof D['methods']]: (
    request: RequestOf<D['methods'][K]>,
    ctx: CallContext,
  ) => Promise<DeepPartial<ResponseOf<D['methods'][K]>>>;
};

export interface ServiceImplementation {
  readonly definition: ServiceDefinition;
  readonly handlers: Record<string, (request: unknown, ctx: CallContext) => Promise<unknown>>;
}

/** Pairs a service definition with its handlers, type-checked per method. */
export function implement<D extends ServiceDefinition>(definition: D, handlers: ServiceHandlers<D>): ServiceImplementation {
  return { definition, handlers: handlers as ServiceImplementation['handlers'] };
}

export interface GrpcServerOptions {
  /** host:port; port 0 picks a free one (see GrpcServer.address). */
  address: string;
  services: ServiceImplementation[];
  logger: Logger;
  credentials?: ServerCredentials;
}

/**
 * A grpc-js server with the chassis conventions: request ids from metadata,
 * one error translator (ServiceError → status; anything else → INTERNAL with
 * the stack logged, never sent), the grpc.health.v1 service, and an orderly
 * shutdown that lets in-flight calls finish.
 */
export class GrpcServer {
  private constructor(
    private readonly server: Server,
    private readonly health: HealthImplementation,
    private readonly serviceNames: string[],
    readonly address: string,
  ) {}

  static async start(options: GrpcServerOptions): Promise<GrpcServer> {
    const server = new Server({
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
      'grpc.keepalive_permit_without_calls': 1,
    });
    const serviceNames = options.services.map((s) => s.definition.fullName);
    const health = new HealthImplementation(
      Object.fromEntries(['', ...serviceNames].map((name) => [name, 'NOT_SERVING' as ServingStatus])),
    );
    health.addToServer(server);
    for (const service of options.services) {
      const [definition, implementation] = toGrpcJs(service, options.logger);
      server.addService(definition, implementation);
    }
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(options.address, options.credentials ?? ServerCredentials.createInsecure(), (err, boundPort) =>
        err ? reject(err) : resolve(boundPort),
      );
    });
    const host = options.address.slice(0, options.address.lastIndexOf(':'));
    return new GrpcServer(server, health, serviceNames, `${host}:${port}`);
  }

  /** Reports SERVING (or NOT_SERVING) on grpc.health.v1 for every service. */
  setServing(serving: boolean): void {
    const value: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    for (const name of ['', ...this.serviceNames]) this.health.setStatus(name, value);
  }

  /** Stops accepting calls, waits up to graceMs for in-flight ones, then forces. */
  async shutdown(graceMs: number): Promise<void> {
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function toGrpcJs(service: ServiceImplementation, logger: Logger): [GrpcJsServiceDefinition, UntypedServiceImplementation] {
  const definition: Record<string, GrpcJsServiceDefinition[string]> = {};
  const implementation: UntypedServiceImplementation = {};
  const serviceLogger = logger.child({ grpcService: service.definition.fullName });
  for (const [key, method] of Object.entries(service.definition.methods)) {
    const handler = service.handlers[key];
    if (!handler) throw new TypeError(`${service.definition.fullName}: no handler for ${method.name}`);
    if (method.requestStream || method.responseStream) {
      throw new TypeError(`${service.definition.fullName}.${method.name}: streaming is not supported by the chassis`);
    }
    definition[key] = {
      path: methodPath(service.definition, method),
      requestStream: false,
      responseStream: false,
      requestSerialize: serializer(method.requestType),
      requestDeserialize: deserializer(method.requestType),
      responseSerialize: serializer(method.responseType),
      responseDeserialize: deserializer(method.responseType),
    };
    implementation[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const requestId = sanitizeRequestId(call.metadata.get(REQUEST_ID_KEY)[0]?.toString());
      const abort = new AbortController();
      let finished = false;
      // grpc-js also emits "cancelled" after a call completes; only an unfinished call is really cancelled.
      call.on('cancelled', () => {
        if (!finished) abort.abort();
      });
      const started = performance.now();
      withRequestContext({ requestId }, () => {
        const ctx: CallContext = {
          service: service.definition.fullName,
          method: method.name,
          requestId,
          metadata: call.metadata,
          logger: serviceLogger,
          signal: abort.signal,
          header: (name) => {
            const value = call.metadata.get(name)[0];
            return value === undefined ? undefined : value.toString();
          },
        };
        handler(call.request, ctx).then(
          (response) => {
            finished = true;
            serviceLogger.debug('gRPC call', { method: method.name, code: 'OK', ms: elapsed(started) });
            callback(null, response);
          },
          (err: unknown) => {
            finished = true;
            const { status, internal } = toStatusObject(err);
            if (internal) {
              serviceLogger.error('gRPC call failed unexpectedly', { method: method.name, err, ms: elapsed(started) });
            } else {
              serviceLogger.debug('gRPC call', { method: method.name, code: Status[status.code ?? 0], ms: elapsed(started) });
            }
            callback(status);
          },
        );
      });
    };
  }
  return [definition, implementation];
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
