import { createClient, startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { loadConsentConfig, type ConsentConfig } from './config.js';
import { RevocationRelay } from './events/revocation-relay.js';
import { consentService } from './grpc/consent-service.js';
import { ConnectionStore } from './store/connections.js';
import { FlowStore } from './store/flows.js';

export const consent: ServiceDefinitionOptions<ConsentConfig> = {
  name: 'consent',
  config: loadConsentConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: (config, runtime) =>
    startGrpcApp(runtime, config, async ({ db, events, logger }) => {
      const flows = new FlowStore(db);
      const connections = new ConnectionStore(db);
      await Promise.all([flows.ensureIndexes(), connections.ensureIndexes()]);
      const identity = createClient(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR);
      runtime.onStop('identity client', () => identity.close());
      const relay = new RevocationRelay(connections, events, logger);
      runtime.onStop('revocation relay', startPeriodicJob('revocation relay', 1000, () => relay.relayPending(), logger));
      runtime.onStop('flow sweeper', startPeriodicJob('flows', 60_000, () => flows.sweepExpired(), logger));
      return { services: [consentService({ config, flows, connections, identity, events, relay, logger })] };
    }),
};
