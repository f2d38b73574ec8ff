import type { Context } from 'koa';
import { ApiPostDataInvalid, EdgeError, InvalidRequest } from './errors.js';

export class PayloadTooLarge extends EdgeError {
  readonly status = 413;
}

export class UnsupportedEncoding extends EdgeError {
  readonly status = 415;
}

/** Reads the raw body, refusing more than `limit` bytes, and any Content-Encoding (gzip, …). */
export async function readBody(ctx: Context, limit: number): Promise<string> {
  const encoding = ctx.get('content-encoding').trim().toLowerCase();
  if (encoding && encoding !== 'identity') throw new UnsupportedEncoding(`Content-Encoding ${encoding} is not supported; send the body uncompressed`);
  const declared = Number(ctx.get('content-length') || '0');
  if (declared > limit) throw new PayloadTooLarge(`The body must be at most ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new PayloadTooLarge(`The body must be at most ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
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
