import { grpcServiceConfig, loadConfig, peerAddress, seconds } from '@ledgerly/chassis';

export const configShape = {
  ...grpcServiceConfig('consent', 50052),
  LEDGERLY_IDENTITY_ADDR: peerAddress('127.0.0.1:50051'),
  /** How long a login-and-consent flow may take, from /authorize to the code. */
  LEDGERLY_FLOW_TTL_SECONDS: seconds(600),
};

export type ConsentConfig = ReturnType<typeof loadConsentConfig>;

export function loadConsentConfig(env: Record<string, string | undefined>) {
  return loadConfig(configShape, env);
}
