import { startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { loadIdentityConfig, type IdentityConfig } from './config.js';
import { identityService } from './grpc/identity-service.js';
import { MembershipStore } from './store/memberships.js';
import { OrganisationStore } from './store/organisations.js';
import { SessionStore } from './store/sessions.js';
import { UserStore } from './store/users.js';

export const identity: ServiceDefinitionOptions<IdentityConfig> = {
  name: 'identity',
  config: loadIdentityConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: (config, runtime) =>
    startGrpcApp(runtime, config, async ({ db, events, logger }) => {
      const users = new UserStore(db);
      const organisations = new OrganisationStore(db);
      const memberships = new MembershipStore(db);
      const sessions = new SessionStore(db);
      await Promise.all([users.ensureIndexes(), memberships.ensureIndexes(), sessions.ensureIndexes()]);
      runtime.onStop('session sweeper', startPeriodicJob('sessions', 60_000, () => sessions.sweepExpired(), logger));
      return { services: [identityService({ config, users, organisations, memberships, sessions, events, logger })] };
    }),
};
