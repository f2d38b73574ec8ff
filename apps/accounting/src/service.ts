import { startAccessChecks } from '@ledgerly/access';
import { startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
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
    startGrpcApp(runtime, config, async ({ db, events, logger, client }) => {
      const organisations = new OrganisationStore(db);
      const contacts = new ContactStore(db);
      await contacts.ensureIndexes();
      const identity = client(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR);
      const consent = client(ConsentServiceDefinition, config.LEDGERLY_CONSENT_ADDR);
      const token = client(TokenServiceDefinition, config.LEDGERLY_TOKEN_ADDR);
      const access = await startAccessChecks({
        token,
        consent,
        identity,
        events,
        issuer: config.LEDGERLY_ISSUER,
        audience: config.audience,
        staleAfterMs: config.LEDGERLY_FEED_STALE_MS,
      });
      const subscription = access.subscription;
      runtime.onStop('event subscription', () => subscription.stop());
      runtime.onStop('view sweeper', startPeriodicJob('views', 60_000, async () => (access.sweep(), 0), logger));
      const guard = new PrincipalGuard(access.guard);
      return {
        services: [accountingService({ guard, organisations, contacts, identity, logger })],
        ready: subscription.caughtUp,
      };
    }),
};
