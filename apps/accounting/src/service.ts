import { AccessTokenVerifier, connectionViewOf, followEvents, membershipViewOf } from '@ledgerly/access';
import { createClient, startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import { loadAccountingConfig, type AccountingConfig } from './config.js';
import { accountingService } from './grpc/accounting-service.js';
import { PrincipalGuard } from './grpc/principal.js';
import { ContactStore } from './store/contacts.js';
import { OrganisationStore } from './store/organisations.js';

export const accounting: ServiceDefinitionOptions<AccountingConfig> = {
  name: 'accounting',
  config: loadAccountingConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: (config, runtime) =>
    startGrpcApp(runtime, config, async ({ db, events, logger }) => {
      const organisations = new OrganisationStore(db);
      const contacts = new ContactStore(db);
      await contacts.ensureIndexes();
      const identity = createClient(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR);
      const consent = createClient(ConsentServiceDefinition, config.LEDGERLY_CONSENT_ADDR);
      const token = createClient(TokenServiceDefinition, config.LEDGERLY_TOKEN_ADDR);
      runtime.onStop('clients', () => (identity.close(), consent.close(), token.close()));
      const verifier = new AccessTokenVerifier({
        issuer: config.LEDGERLY_ISSUER,
        audience: config.audience,
        fetchJwks: async () => JSON.parse((await token.getJwks({})).jwksJson),
      });
      const connections = connectionViewOf(consent);
      const memberships = membershipViewOf(identity);
      const subscription = await followEvents(events, [connections, memberships]);
      runtime.onStop('event subscription', () => subscription.stop());
      runtime.onStop('view sweeper', startPeriodicJob('views', 60_000, async () => (connections.sweep(), 0), logger));
      const guard = new PrincipalGuard(verifier, connections, memberships);
      return {
        services: [accountingService({ guard, organisations, contacts, identity, logger })],
        ready: subscription.caughtUp,
      };
    }),
};
