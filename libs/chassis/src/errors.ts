import { Metadata, status as Status, type StatusObject } from '@grpc/grpc-js';

/** Trailer that carries a machine-readable reason (e.g. an OAuth error code). */
export const ERROR_REASON_KEY = 'x-error-reason';

/**
 * The one error base of the service layer. It carries its gRPC status code,
 * an optional machine-readable reason, and whether its message may be shown
 * to the caller. Anything thrown that is not a ServiceError leaves a service
 * as a generic INTERNAL error; its details are logged, never sent.
 */
export class ServiceError extends Error {
  override readonly name: string = 'ServiceError';
  constructor(
    readonly code: Status,
    message: string,
    readonly reason?: string,
    readonly expose = true,
  ) {
    super(message);
  }
}

export class InvalidArgumentError extends ServiceError {
  override readonly name = 'InvalidArgumentError';
  constructor(message: string, reason?: string) {
    super(Status.INVALID_ARGUMENT, message, reason);
  }
}

export class NotFoundError extends ServiceError {
  override readonly name = 'NotFoundError';
  constructor(message: string, reason?: string) {
    super(Status.NOT_FOUND, message, reason);
  }
}

export class AlreadyExistsError extends ServiceError {
  override readonly name = 'AlreadyExistsError';
  constructor(message: string, reason?: string) {
    super(Status.ALREADY_EXISTS, message, reason);
  }
}

export class FailedPreconditionError extends ServiceError {
  override readonly name = 'FailedPreconditionError';
  constructor(message: string, reason?: string) {
    super(Status.FAILED_PRECONDITION, message, reason);
  }
}

export class UnauthenticatedError extends ServiceError {
  override readonly name = 'UnauthenticatedError';
  constructor(message: string, reason?: string) {
    super(Status.UNAUTHENTICATED, message, reason);
  }
}

export class PermissionDeniedError extends ServiceError {
  override readonly name = 'PermissionDeniedError';
  constructor(message: string, reason?: string) {
    super(Status.PERMISSION_DENIED, message, reason);
  }
}

export class UnavailableError extends ServiceError {
  override readonly name = 'UnavailableError';
  constructor(message: string, reason?: string) {
    super(Status.UNAVAILABLE, message, reason);
  }
}

/**
 * Errors of infrastructure we depend on (the database) that mean "try again
 * later" rather than "bug": they become UNAVAILABLE, so the edge answers 503.
 */
export function isInfrastructureUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // A peer service that could not be reached in time.
  if (err instanceof RemoteError) return err.unavailable;
  const name = err.name;
  return (
    name === 'MongoServerSelectionError' ||
    name === 'MongoNetworkError' ||
    name === 'MongoNetworkTimeoutError' ||
    name === 'MongoNotConnectedError' ||
    name === 'MongoTopologyClosedError' ||
    name === 'MongoPoolClearedError' ||
    name === 'MongoWaitQueueTimeoutError'
  );
}

/** Translates anything thrown by a handler into the status a caller sees. */
export function toStatusObject(err: unknown): { status: Partial<StatusObject>; internal: boolean } {
  if (err instanceof ServiceError) {
    const metadata = new Metadata();
    if (err.reason) metadata.set(ERROR_REASON_KEY, err.reason);
    return {
      status: { code: err.code, details: err.expose ? err.message : 'Internal error', metadata },
      internal: !err.expose,
    };
  }
  if (isInfrastructureUnavailable(err)) {
    const metadata = new Metadata();
    metadata.set(ERROR_REASON_KEY, 'dependency_unavailable');
    return { status: { code: Status.UNAVAILABLE, details: 'A dependency is unavailable', metadata }, internal: false };
  }
  return { status: { code: Status.INTERNAL, details: 'Internal error' }, internal: true };
}

/**
 * A failed call to another service, converted once, in the client, from the
 * grpc-js error. `code` is the gRPC status; `reason` the x-error-reason trailer.
 */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly service: string,
    readonly method: string,
    readonly code: Status,
    readonly details: string,
    readonly reason?: string,
  ) {
    super(`${service}.${method} failed: ${Status[code] ?? code}: ${details}`);
  }

  /** True when the failure means "the service could not be reached in time". */
  get unavailable(): boolean {
    return this.code === Status.UNAVAILABLE || this.code === Status.DEADLINE_EXCEEDED || this.code === Status.CANCELLED;
  }
}

export function isRemoteError(err: unknown, code?: Status): err is RemoteError {
  return err instanceof RemoteError && (code === undefined || err.code === code);
}

export { Status };
