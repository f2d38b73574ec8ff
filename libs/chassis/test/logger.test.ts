import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED, withRequestContext } from '../src/index.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ service: 'test', level: 'debug', write: (l) => lines.push(JSON.parse(l)) });
  return { lines, logger };
}

describe('logger', () => {
  it('writes one JSON line with a constant message, fields and the request id', () => {
    const { lines, logger } = capture();
    withRequestContext({ requestId: 'req-1' }, () => logger.child({ component: 'c' }).info('Thing happened', { n: 1 }));
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', msg: 'Thing happened', service: 'test', component: 'c', n: 1, requestId: 'req-1' }),
    ]);
  });

  it('never writes secrets, at any depth', () => {
    const { lines, logger } = capture();
    const secrets = {
      password: 'hunter2',
      client_secret: 's3cr3t',
      refreshToken: 'rt-value',
      headers: { authorization: 'Bearer eyJabc', cookie: 'll_session=xyz' },
      code: 'auth-code-value',
      code_verifier: 'verifier-value',
      nested: [{ access_token: 'at-value' }],
    };
    logger.info('Request', secrets);
    const text = JSON.stringify(lines);
    for (const value of ['hunter2', 's3cr3t', 'rt-value', 'eyJabc', 'xyz', 'auth-code-value', 'verifier-value', 'at-value']) {
      expect(text).not.toContain(value);
    }
    expect(lines[0]).toMatchObject({ password: REDACTED, headers: { authorization: REDACTED, cookie: REDACTED } });
  });

  it('serializes errors with their stack, and respects the level', () => {
    const { lines, logger } = capture();
    logger.error('Failed', { err: new Error('boom') });
    expect(lines[0]).toMatchObject({ err: { name: 'Error', message: 'boom', stack: expect.stringContaining('boom') } });
    const quiet = createLogger({ service: 'q', level: 'warn', write: (l) => lines.push(JSON.parse(l)) });
    quiet.info('hidden');
    expect(lines).toHaveLength(1);
  });
});
