import { describe, expect, it } from 'vitest';
import { ConfigError, listenAddress, loadConfig, logLevel, mongoUrl } from '../src/index.js';

const shape = {
  LEDGERLY_GRPC_LISTEN: listenAddress('127.0.0.1:50051'),
  LEDGERLY_MONGO_URL: mongoUrl('mongodb://127.0.0.1:27017/'),
  LEDGERLY_LOG_LEVEL: logLevel(),
};

describe('loadConfig', () => {
  it('applies defaults and ignores unrelated variables', () => {
    expect(loadConfig(shape, { PATH: '/bin', HOME: '/root' })).toEqual({
      LEDGERLY_GRPC_LISTEN: '127.0.0.1:50051',
      LEDGERLY_MONGO_URL: 'mongodb://127.0.0.1:27017/',
      LEDGERLY_LOG_LEVEL: 'info',
    });
  });

  it('names the key of a bad value', () => {
    expect(() => loadConfig(shape, { LEDGERLY_GRPC_LISTEN: 'nonsense' })).toThrow(/LEDGERLY_GRPC_LISTEN: expected host:port/);
    expect(() => loadConfig(shape, { LEDGERLY_LOG_LEVEL: 'loud' })).toThrow(ConfigError);
  });

  it('refuses unknown LEDGERLY_ keys, so typos do not fall back to defaults', () => {
    expect(() => loadConfig(shape, { LEDGERLY_MONGO_ULR: 'mongodb://x' })).toThrow(/LEDGERLY_MONGO_ULR: unknown configuration key/);
  });
});
