import { apiAudience } from '@ledgerly/access';
import { grpcServiceConfig, httpUrl, loadConfig, peerAddress, seconds, z } from '@ledgerly/chassis';

export const configShape = {
  ...grpcServiceConfig('token', 50053),
  LEDGERLY_IDENTITY_ADDR: peerAddress('127.0.0.1:50051'),
  LEDGERLY_CONSENT_ADDR: peerAddress('127.0.0.1:50052'),
  /** The edge's public URL: "iss" of every token (RFC 8414 §2). */
  LEDGERLY_ISSUER: httpUrl('http://localhost:3000'),
  LEDGERLY_ACCESS_TOKEN_TTL_SECONDS: seconds(30 * 60),
  /** Unused refresh tokens expire after 60 days (each rotation starts a new 60 days). */
  LEDGERLY_REFRESH_TOKEN_TTL_SECONDS: seconds(60 * 24 * 3600),
  LEDGERLY_CODE_TTL_SECONDS: seconds(60),
  /**
   * Refresh-token grace: a refresh retried within this many seconds with the
   * token it just rotated gets the same answer again (0, the default: off).
   */
  LEDGERLY_REFRESH_GRACE_SECONDS: z.coerce.number().int().min(0).max(60).default(0),
};

export type TokenConfig = ReturnType<typeof loadTokenConfig>;

export function loadTokenConfig(env: Record<string, string | undefined>) {
  const config = loadConfig(configShape, env);
  return { ...config, audience: apiAudience(config.LEDGERLY_ISSUER) };
}
