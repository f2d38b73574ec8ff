import type { Context } from 'koa';
import { ApiPostDataInvalid, EdgeError, InvalidRequest } from './errors.js';

export class PayloadTooLarge extends EdgeError {
  readonly status = 413;
}

export class UnsupportedEncoding extends EdgeError {
  readonly status = 415;
}

/** The body did not arrive in time (a slow or stalled client): 408. */
export class BodyTimeout extends EdgeError {
  readonly status = 408;
}

/** The client went away while sending its body: nobody is left to answer (logged as such, not as a failure). */
export class ClientClosedRequest extends EdgeError {
  readonly status = 400;
}

/** How long a request body may take to arrive (a slowloris defence). */
export const BODY_TIMEOUT_MS = 10_000;

/**
 * Reads the raw body, refusing more than `limit` bytes, any Content-Encoding
 * (gzip, …), and a body that takes longer than BODY_TIMEOUT_MS (408, and the
 * connection is closed).
 */
export async function readBody(ctx: Context, limit: number, timeoutMs = BODY_TIMEOUT_MS): Promise<string> {
  const encoding = ctx.get('content-encoding').trim().toLowerCase();
  if (encoding && encoding !== 'identity') throw new UnsupportedEncoding(`Content-Encoding ${encoding} is not supported; send the body uncompressed`);
  const declared = Number(ctx.get('content-length') || '0');
  if (declared > limit) throw new PayloadTooLarge(`The body must be at most ${limit} bytes`);
  const read = (async () => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new PayloadTooLarge(`The body must be at most ${limit} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  })();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BodyTimeout(`The request body did not arrive within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    return await Promise.race([read, late]);
  } catch (err) {
    if (err instanceof BodyTimeout) {
      read.catch(() => undefined);
      ctx.set('Connection', 'close');
      throw err;
    }
    if (ctx.req.aborted || (err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as Error).message === 'aborted') {
      throw new ClientClosedRequest('The client closed the connection before sending its whole body');
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An application/x-www-form-urlencoded body as single-valued parameters.
 * RFC 6749 §3.1 and §3.2: parameters must not be repeated; an empty value
 * counts as absent.
 */
export async function readForm(ctx: Context, limit = 64 * 1024): Promise<Map<string, string>> {
  return singleValued(await readFormParams(ctx, limit));
}

/** A form body whose fields may repeat (checkboxes). */
export async function readFormParams(ctx: Context, limit = 64 * 1024): Promise<URLSearchParams> {
  // No body at all: no parameters (so the endpoint can say which one is missing).
  if (ctx.is('application/x-www-form-urlencoded') === null && !ctx.get('content-type')) return new URLSearchParams();
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new InvalidRequest('The body must be application/x-www-form-urlencoded');
  }
  return new URLSearchParams(await readBody(ctx, limit));
}

export function singleValued(params: URLSearchParams): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of params) {
    if (out.has(key)) throw new InvalidRequest(`The parameter ${key} is repeated`);
    if (value !== '') out.set(key, value);
  }
  return out;
}

/** A JSON body (Xero's API). Invalid JSON is a PostDataInvalidException. */
export async function readJson(ctx: Context, limit = 4 * 1024 * 1024): Promise<unknown> {
  if (!ctx.is('application/json', '+json')) {
    throw new ApiPostDataInvalid('The body must be JSON (Content-Type: application/json)');
  }
  const text = await readBody(ctx, limit);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiPostDataInvalid(`JSON for post data was invalid: ${(err as Error).message}`);
  }
}
