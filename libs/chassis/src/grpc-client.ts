import { Client, credentials as grpcCredentials, Metadata, status as Status, type ChannelCredentials, type ServiceError as GrpcError } from '@grpc/grpc-js';
import { currentRequestContext, REQUEST_ID_KEY } from './context.js';
import { ERROR_REASON_KEY, RemoteError } from './errors.js';
import { channelCredentials, type TlsMaterial } from './tls.js';
import {
  deserializer,
  methodPath,
  serializer,
  type DeepPartial,
  type MethodDefinition,
  type RequestOf,
  type ResponseOf,
  type ServiceDefinition,
} from './grpc-types.js';

export interface CallOptions {
  /** Extra metadata, e.g. { authorization: 'Bearer …' }. */
  metadata?: Record<string, string>;
  /** Overrides the client's default deadline for this call. */
  deadlineMs?: number;
}

export type PromiseClient<D extends ServiceDefinition> = {
  [K in keyof D['methods']]: (
    request: DeepPartial<RequestOf<D['methods'][K]>>,
    options?: CallOptions,
  ) => Promise<ResponseOf<D['methods'][K]>>;
} & {
  /** Closes the channel. */
  close(): void;
};

export interface ClientOptions {
  /** Deadline of each call; a call never waits longer (default 3000 ms). */
  deadlineMs?: number;
  /**
   * Which methods are safe to retry. Only these are retried, and only on
   * UNAVAILABLE (the call did not reach a server that could run it). Default:
   * methods whose name starts with Get, List or Check.
   */
  idempotent?: (methodName: string) => boolean;
  /** Attempts for idempotent methods, including the first (default 3). */
  maxAttempts?: number;
  /** Mutual TLS as this identity (services always; plain text only in chassis tests). */
  tls?: TlsMaterial;
  /**
   * The identity the server's certificate must have (its DNS name). Defaults
   * to the service's package ("token" for token.v1.TokenService), so a client
   * of the token service accepts only the token service's certificate.
   */
  serverName?: string;
  credentials?: ChannelCredentials;
}

const defaultIdempotent = (name: string) => /^(Get|List|Check)/.test(name);

/**
 * A typed promise client for a ts-proto generic service definition: request
 * ids travel in metadata, every call has a deadline, retries go only to
 * idempotent methods and only on UNAVAILABLE, and grpc-js errors are turned
 * into RemoteError once, here.
 */
export function createClient<D extends ServiceDefinition>(
  definition: D,
  address: string,
  options: ClientOptions = {},
): PromiseClient<D> {
  const channel = options.tls ? channelCredentials(options.tls) : (options.credentials ?? grpcCredentials.createInsecure());
  const client = new Client(address, channel, {
    // Reconnect quickly once a restarted peer is back (grpc-js defaults to up to 120 s).
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    'grpc.min_reconnect_backoff_ms': 100,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.enable_retries': 0,
    ...(options.tls ? { 'grpc.ssl_target_name_override': options.serverName ?? definition.fullName.split('.')[0]! } : {}),
  });
  const deadlineMs = options.deadlineMs ?? 3000;
  const idempotent = options.idempotent ?? defaultIdempotent;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 3);
  const stub: Record<string, unknown> = {
    close: () => client.close(),
  };
  for (const [key, method] of Object.entries(definition.methods)) {
    const call = unaryCaller(client, definition, method);
    const attempts = idempotent(method.name) ? maxAttempts : 1;
    stub[key] = async (request: unknown, callOptions: CallOptions = {}) => {
      const deadline = Date.now() + (callOptions.deadlineMs ?? deadlineMs);
      for (let attempt = 1; ; attempt++) {
        try {
          return await call(request, callOptions.metadata, deadline);
        } catch (err) {
          // Only a transport failure (no server answered) is retried; an UNAVAILABLE the
          // server sent on purpose (its database is down) would only fail again, later.
          const retry =
            err instanceof RemoteError && err.code === Status.UNAVAILABLE && err.reason === undefined && attempt < attempts && Date.now() + 50 < deadline;
          if (!retry) throw err;
          await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** (attempt - 1), 400)));
        }
      }
    };
  }
  return stub as PromiseClient<D>;
}

function unaryCaller(client: Client, service: ServiceDefinition, method: MethodDefinition) {
  const path = methodPath(service, method);
  const serialize = serializer(method.requestType);
  const deserialize = deserializer(method.responseType);
  return (request: unknown, extra: Record<string, string> | undefined, deadline: number) =>
    new Promise<unknown>((resolve, reject) => {
      const metadata = new Metadata();
      const ctx = currentRequestContext();
      if (ctx) metadata.set(REQUEST_ID_KEY, ctx.requestId);
      if (extra) for (const [k, v] of Object.entries(extra)) metadata.set(k, v);
      client.makeUnaryRequest(path, serialize as (v: unknown) => Buffer, deserialize, request as DeepPartial<unknown>, metadata, { deadline }, (err, value) => {
        if (err) reject(toRemoteError(service, method, err));
        else resolve(value);
      });
    });
}

function toRemoteError(service: ServiceDefinition, method: MethodDefinition, err: GrpcError): RemoteError {
  const reason = err.metadata?.get(ERROR_REASON_KEY)[0]?.toString();
  return new RemoteError(service.name, method.name, err.code ?? Status.UNKNOWN, err.details ?? err.message, reason);
}
