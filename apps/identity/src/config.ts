import { grpcServiceConfig, loadConfig, seconds } from '@ledgerly/chassis';

export const configShape = {
  ...grpcServiceConfig('identity', 50051),
  /** Absolute lifetime of a browser session. */
  LEDGERLY_SESSION_TTL_SECONDS: seconds(8 * 3600),
};

export type IdentityConfig = ReturnType<typeof loadIdentityConfig>;

export function loadIdentityConfig(env: Record<string, string | undefined>) {
  return loadConfig(configShape, env);
}
