import { writeSync } from 'node:fs';
import { currentRequestContext } from './context.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Keys whose values are never written, at any depth. Tokens, secrets,
 * passwords, codes and cookies must not reach logs (docs/security.md).
 */
const SECRET_KEY =
  /pass(word)?|secret|token|authorization|cookie|assertion|verifier|^code$|credential|private|jwt|session_?id|binding|csrf/i;
export const REDACTED = '[REDACTED]';

/**
 * A structured JSON-lines logger: a constant message plus fields, one child
 * logger per component, the request id of the current context on every line.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  service: string;
  level?: LogLevel;
  /** Where lines go; defaults to process.stdout. */
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions): Logger {
  const min = LEVELS[options.level ?? 'info'];
  return makeLogger({ service: options.service }, min, options.write ?? bufferedStdout);
}

/**
 * Lines for stdout, written once per turn of the event loop rather than one
 * write(2) per line: stdout to a pipe is synchronous on Linux, and at a few
 * thousand requests a second the access log alone was the edge's largest CPU
 * cost. Whatever is pending is written synchronously when the process exits.
 */
let pending: string[] = [];
let scheduled = false;
function flushStdout(): void {
  scheduled = false;
  if (pending.length === 0) return;
  const chunk = pending.join('');
  pending = [];
  process.stdout.write(chunk);
}
function bufferedStdout(line: string): void {
  pending.push(line);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushStdout);
  }
}
process.once('exit', () => {
  if (pending.length > 0) {
    try {
      writeSync(1, pending.join(''));
    } catch {
      // stdout is gone; nothing else to do.
    }
    pending = [];
  }
});

function makeLogger(bound: LogFields, min: number, write: (line: string) => void): Logger {
  const log = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return;
    const record: LogFields = { time: new Date().toISOString(), level, msg, ...bound };
    const ctx = currentRequestContext();
    if (ctx) record['requestId'] = ctx.requestId;
    if (fields) Object.assign(record, sanitize(fields, 0) as LogFields);
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      line = JSON.stringify({ time: record['time'], level, msg, ...bound, logError: 'unserializable fields' });
    }
    write(line + '\n');
  };
  return {
    debug: (msg, fields) => log('debug', msg, fields),
    info: (msg, fields) => log('info', msg, fields),
    warn: (msg, fields) => log('warn', msg, fields),
    error: (msg, fields) => log('error', msg, fields),
    child: (fields) => makeLogger({ ...bound, ...(sanitize(fields, 0) as LogFields) }, min, write),
    isLevelEnabled: (level) => LEVELS[level] >= min,
  };
}

/** Copies fields for logging: redacts secret keys, flattens errors, bounds depth. */
export function sanitize(value: unknown, depth: number): unknown {
  if (value instanceof Error) return serializeError(value);
  if (value === null || typeof value !== 'object') {
    return typeof value === 'bigint' ? value.toString() : value;
  }
  if (depth > 4) return '[…]';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => sanitize(v, depth + 1));
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.length} bytes]`;
  const out: LogFields = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) && v !== undefined && v !== null && v !== '' ? REDACTED : sanitize(v, depth + 1);
  }
  return out;
}

function serializeError(err: Error): LogFields {
  const out: LogFields = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out['code'] = code;
  const reason = (err as { reason?: unknown }).reason;
  if (reason !== undefined) out['reason'] = reason;
  if (err.stack) out['stack'] = err.stack;
  if (err.cause instanceof Error) out['cause'] = serializeError(err.cause);
  return out;
}
