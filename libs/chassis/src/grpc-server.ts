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
import { PermissionDeniedError, toStatusObject } from './errors.js';
import {
  deserializer,
  methodPath,
  serializer,
  type DeepPartial,
  type RequestOf,
  type ResponseOf,
  type ServiceDefinition,
} from './grpc-types.js';
import { sanitize, type Logger } from './logger.js';
import { callerMatches, OPERATOR, serverCredentials, type TlsMaterial } from './tls.js';

/** What a handler knows about the call besides its request message. */
export interface CallContext {
  readonly service: string;
  readonly method: string;
  /** Who called: the common name of their certificate ("edge", "operator:alice", …). */
  readonly caller: string;
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

/**
 * Who may call each method: service names ("edge"), OPERATOR (any
 * "operator:*" certificate) or, for the chassis's own tests, ANY_CALLER.
 * Every method must be listed: a method added later is born refusing
 * everyone until someone decides who may call it.
 */
export type AccessList<D extends ServiceDefinition> = { readonly [K in keyof D['methods']]: readonly string[] };

export interface ServiceImplementation {
  readonly definition: ServiceDefinition;
  readonly handlers: Record<string, (request: unknown, ctx: CallContext) => Promise<unknown>>;
  readonly access: Readonly<Record<string, readonly string[]>>;
}

/** Pairs a service definition with its handlers and access list, type-checked per method. */
export function implement<D extends ServiceDefinition>(definition: D, handlers: ServiceHandlers<D>, access: AccessList<D>): ServiceImplementation {
  return { definition, handlers: handlers as ServiceImplementation['handlers'], access: access as ServiceImplementation['access'] };
}

/** One operator action, for the audit log. */
export interface AuditEntry {
  at: Date;
  operator: string;
  service: string;
  method: string;
  requestId: string;
  /** "OK" or the gRPC status name. */
  outcome: string;
  /** The request, with secrets redacted. */
  request: unknown;
}

export interface GrpcServerOptions {
  /** host:port; port 0 picks a free one (see GrpcServer.address). */
  address: string;
  services: ServiceImplementation[];
  logger: Logger;
  /** Mutual TLS. Without it the server is plain text and every caller is "anonymous" (chassis tests only). */
  tls?: TlsMaterial;
  /** Receives every call made with an operator certificate. */
  audit?: (entry: AuditEntry) => Promise<void>;
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
      const [definition, implementation] = toGrpcJs(service, options.logger, options.audit);
      server.addService(definition, implementation);
    }
    const credentials = options.tls ? serverCredentials(options.tls) : ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(options.address, credentials, (err, boundPort) =>
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

function toGrpcJs(
  service: ServiceImplementation,
  logger: Logger,
  audit: GrpcServerOptions['audit'],
): [GrpcJsServiceDefinition, UntypedServiceImplementation] {
  const definition: Record<string, GrpcJsServiceDefinition[string]> = {};
  const implementation: UntypedServiceImplementation = {};
  const serviceLogger = logger.child({ grpcService: service.definition.fullName });
  for (const [key, method] of Object.entries(service.definition.methods)) {
    const handler = service.handlers[key];
    if (!handler) throw new TypeError(`${service.definition.fullName}: no handler for ${method.name}`);
    const allowed = service.access[key];
    if (!allowed) throw new TypeError(`${service.definition.fullName}: no access list for ${method.name}`);
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
      const caller = callerOf(call);
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
          caller,
          requestId,
          metadata: call.metadata,
          logger: serviceLogger,
          signal: abort.signal,
          header: (name) => {
            const value = call.metadata.get(name)[0];
            return value === undefined ? undefined : value.toString();
          },
        };
        const run = allowed.some((entry) => callerMatches(caller, entry))
          ? handler(call.request, ctx)
          : Promise.reject(new PermissionDeniedError(`${caller} may not call ${method.name}`, 'caller_not_allowed'));
        const operator = callerMatches(caller, OPERATOR);
        const record = (outcome: string) => {
          if (!operator || !audit) return;
          const entry = { at: new Date(), operator: caller, service: service.definition.fullName, method: method.name, requestId, outcome, request: sanitize(call.request, 0) };
          audit(entry).catch((err: unknown) => serviceLogger.error('Writing the audit log failed', { err, ...entry }));
        };
        run.then(
          (response) => {
            finished = true;
            serviceLogger.debug('gRPC call', { method: method.name, caller, code: 'OK', ms: elapsed(started) });
            record('OK');
            callback(null, response);
          },
          (err: unknown) => {
            finished = true;
            const { status, internal } = toStatusObject(err);
            record(Status[status.code ?? Status.UNKNOWN] ?? 'UNKNOWN');
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

/** The caller's identity: the CN of its client certificate, or "anonymous". */
function callerOf(call: ServerUnaryCall<unknown, unknown>): string {
  const cert = call.getAuthContext?.().sslPeerCertificate;
  const cn = cert?.subject?.CN;
  return typeof cn === 'string' && cn.length > 0 ? cn : 'anonymous';
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
