import { Outbox, startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { loadIdentityConfig, type IdentityConfig } from './config.js';
import { applyIdentityEvent, identityService } from './grpc/identity-service.js';
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
      const outbox = new Outbox({ db, events, logger, apply: applyIdentityEvent({ users, memberships, sessions }) });
      await Promise.all([users.ensureIndexes(), memberships.ensureIndexes(), sessions.ensureIndexes(), outbox.ensureIndexes()]);
      runtime.onStop('outbox relay', startPeriodicJob('outbox relay', 1000, () => outbox.relayPending(), logger));
      runtime.onStop('outbox sweeper', startPeriodicJob('outbox sweeper', 3_600_000, () => outbox.sweepPublished(), logger));
      runtime.onStop('session sweeper', startPeriodicJob('sessions', 60_000, () => sessions.sweepExpired(), logger));
      return { services: [identityService({ config, users, organisations, memberships, sessions, outbox, logger })] };
    }),
};
