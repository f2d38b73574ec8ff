import { apiAudience } from '@ledgerly/access';
import { grpcServiceConfig, httpUrl, loadConfig, milliseconds, peerAddress } from '@ledgerly/chassis';

export const configShape = {
  ...grpcServiceConfig('accounting', 50054),
  LEDGERLY_IDENTITY_ADDR: peerAddress('127.0.0.1:50051'),
  LEDGERLY_CONSENT_ADDR: peerAddress('127.0.0.1:50052'),
  LEDGERLY_TOKEN_ADDR: peerAddress('127.0.0.1:50053'),
  /** The issuer access tokens must come from. */
  LEDGERLY_ISSUER: httpUrl('http://localhost:3000'),
  /** How long the event feed may be unhealthy before access is checked synchronously (docs/security.md). */
  LEDGERLY_FEED_STALE_MS: milliseconds(2000),
};

export type AccountingConfig = ReturnType<typeof loadAccountingConfig>;

export function loadAccountingConfig(env: Record<string, string | undefined>) {
  const config = loadConfig(configShape, env);
  return { ...config, audience: apiAudience(config.LEDGERLY_ISSUER) };
}
