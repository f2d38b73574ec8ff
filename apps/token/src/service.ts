import { ACCESS_TOKEN_TTL_SECONDS, AccessTokenVerifier } from '@ledgerly/access';
import { Outbox, startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { loadTokenConfig, type TokenConfig } from './config.js';
import { SigningKeys } from './domain/signing-keys.js';
import { TokenIssuer } from './domain/token-issuer.js';
import { applyTokenEvent, tokenService } from './grpc/token-service.js';
import { ClientStore } from './store/clients.js';
import { CodeStore } from './store/codes.js';
import { RefreshTokenStore } from './store/refresh-tokens.js';
import { OneTimeStore } from './store/one-time.js';
import { PushedRequestStore } from './store/pushed-requests.js';
import { RevokedTokenStore } from './store/revoked-tokens.js';
import { TokenFamilyStore } from './store/token-families.js';
import { SigningKeyStore } from './store/signing-keys.js';

export const token: ServiceDefinitionOptions<TokenConfig> = {
  name: 'token',
  config: loadTokenConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: (config, runtime) =>
    startGrpcApp(runtime, config, async ({ db, events, logger, client }) => {
      const clients = new ClientStore(db);
      const codes = new CodeStore(db);
      const refreshTokens = new RefreshTokenStore(db);
      const revokedTokens = new RevokedTokenStore(db);
      const families = new TokenFamilyStore(db);
      const pushedRequests = new PushedRequestStore(db);
      const assertionIds = new OneTimeStore(db, 'client_assertion_ids');
      await Promise.all([codes.ensureIndexes(), refreshTokens.ensureIndexes()]);
      const maxLifetimeMs = Math.max(config.LEDGERLY_ACCESS_TOKEN_TTL_SECONDS, ACCESS_TOKEN_TTL_SECONDS) * 1000 + 5 * 60_000;
      const keys = new SigningKeys(new SigningKeyStore(db), maxLifetimeMs, logger);
      await keys.load();
      runtime.onStop('key reload', startPeriodicJob('signing keys', 60_000, async () => (await keys.load(), 0), logger));
      const identity = client(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR);
      const consent = client(ConsentServiceDefinition, config.LEDGERLY_CONSENT_ADDR);
      runtime.onStop('code sweeper', startPeriodicJob('codes', 60_000, () => codes.sweepExpired(), logger));
      // FerretDB has no TTL indexes: every short-lived row is swept here (docs/security.md, "Nothing grows without bound").
      runtime.onStop('pushed request sweeper', startPeriodicJob('pushed requests', 60_000, () => pushedRequests.sweepExpired(), logger));
      runtime.onStop('assertion id sweeper', startPeriodicJob('client assertion ids', 60_000, () => assertionIds.sweepExpired(), logger));
      runtime.onStop('token family sweeper', startPeriodicJob('token families', 3_600_000, () => families.sweepExpired(), logger));
      runtime.onStop('refresh token sweeper', startPeriodicJob('refresh tokens', 3_600_000, () => refreshTokens.sweepExpired(), logger));
      const issuer = new TokenIssuer(config, keys, refreshTokens, identity);
      const outbox = new Outbox({ db, events, logger, apply: applyTokenEvent({ clients, revokedTokens, keys }) });
      await outbox.ensureIndexes();
      runtime.onStop('outbox relay', startPeriodicJob('outbox relay', 1000, () => outbox.relayPending(), logger));
      runtime.onStop('outbox sweeper', startPeriodicJob('outbox sweeper', 3_600_000, () => outbox.sweepPublished(), logger));
      runtime.onStop('revoked token sweeper', startPeriodicJob('revoked tokens', 60_000, () => revokedTokens.sweepExpired(), logger));
      // Our own access tokens, verified against our own keys (RFC 7009 revocation).
      const ownTokens = new AccessTokenVerifier({ issuer: config.LEDGERLY_ISSUER, audience: config.audience, fetchJwks: async () => keys.publicJwks(), jwksMaxAgeMs: 5_000 });
      return {
        services: [tokenService({ config, clients, codes, refreshTokens, revokedTokens, families, pushedRequests, assertionIds, keys, issuer, consent, identity, outbox, ownTokens, logger })],
      };
    }),
};
