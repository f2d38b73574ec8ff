import { ACCESS_TOKEN_TTL_SECONDS } from '@ledgerly/access';
import { createClient, startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { loadTokenConfig, type TokenConfig } from './config.js';
import { SigningKeys } from './domain/signing-keys.js';
import { TokenIssuer } from './domain/token-issuer.js';
import { tokenService } from './grpc/token-service.js';
import { ClientStore } from './store/clients.js';
import { CodeStore } from './store/codes.js';
import { RefreshTokenStore } from './store/refresh-tokens.js';
import { SigningKeyStore } from './store/signing-keys.js';

export const token: ServiceDefinitionOptions<TokenConfig> = {
  name: 'token',
  config: loadTokenConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: (config, runtime) =>
    startGrpcApp(runtime, config, async ({ db, logger }) => {
      const clients = new ClientStore(db);
      const codes = new CodeStore(db);
      const refreshTokens = new RefreshTokenStore(db);
      await Promise.all([codes.ensureIndexes(), refreshTokens.ensureIndexes()]);
      const maxLifetimeMs = Math.max(config.LEDGERLY_ACCESS_TOKEN_TTL_SECONDS, ACCESS_TOKEN_TTL_SECONDS) * 1000 + 5 * 60_000;
      const keys = new SigningKeys(new SigningKeyStore(db), maxLifetimeMs, logger);
      await keys.load();
      runtime.onStop('key reload', startPeriodicJob('signing keys', 60_000, async () => (await keys.load(), 0), logger));
      const identity = createClient(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR);
      const consent = createClient(ConsentServiceDefinition, config.LEDGERLY_CONSENT_ADDR);
      runtime.onStop('clients', () => (identity.close(), consent.close()));
      runtime.onStop('code sweeper', startPeriodicJob('codes', 60_000, () => codes.sweepExpired(), logger));
      runtime.onStop('refresh token sweeper', startPeriodicJob('refresh tokens', 3_600_000, () => refreshTokens.sweepExpired(), logger));
      const issuer = new TokenIssuer(config, keys, refreshTokens, identity);
      return { services: [tokenService({ config, clients, codes, refreshTokens, keys, issuer, consent, logger })] };
    }),
};
