import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** Metadata key that carries a request id across gRPC hops. */
export const REQUEST_ID_KEY = 'x-request-id';

export interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs fn with a request context; everything it awaits sees the same id. */
export function withRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

/** Accepts a caller's request id only when it looks like one (no log injection). */
export function sanitizeRequestId(value: unknown): string {
  if (typeof value === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(value)) return value;
  return randomUUID();
}
