import { apiAudience } from '@ledgerly/access';
import { httpUrl, listenAddress, loadConfig, logLevel, milliseconds, natsUrl, peerAddress, tlsConfig, z } from '@ledgerly/chassis';

export const configShape = {
  LEDGERLY_HTTP_LISTEN: listenAddress('127.0.0.1:3000'),
  /** The public URL of the edge: the OAuth issuer (RFC 8414 §2). */
  LEDGERLY_ISSUER: httpUrl('http://localhost:3000'),
  LEDGERLY_IDENTITY_ADDR: peerAddress('127.0.0.1:50051'),
  LEDGERLY_CONSENT_ADDR: peerAddress('127.0.0.1:50052'),
  LEDGERLY_TOKEN_ADDR: peerAddress('127.0.0.1:50053'),
  LEDGERLY_ACCOUNTING_ADDR: peerAddress('127.0.0.1:50054'),
  LEDGERLY_NATS_URL: natsUrl('nats://127.0.0.1:4222'),
  LEDGERLY_LOG_LEVEL: logLevel(),
  /** The product name on the login and consent pages. */
  LEDGERLY_PLATFORM_NAME: z.string().min(1).max(40).default('Ledgerly'),
  /** How long the event feed may be unhealthy before access is checked synchronously (docs/security.md). */
  LEDGERLY_FEED_STALE_MS: milliseconds(2000),
  /** The edge's certificate for mutual TLS with the services. */
  ...tlsConfig('edge'),
};

export type EdgeConfig = ReturnType<typeof loadEdgeConfig>;

export function loadEdgeConfig(env: Record<string, string | undefined>) {
  const config = loadConfig(configShape, env);
  return {
    ...config,
    issuer: config.LEDGERLY_ISSUER,
    audience: apiAudience(config.LEDGERLY_ISSUER),
    /** Cookies are Secure whenever the issuer is https (always, in production). */
    secureCookies: config.LEDGERLY_ISSUER.startsWith('https://'),
  };
}
