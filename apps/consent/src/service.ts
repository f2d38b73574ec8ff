import { Outbox, startGrpcApp, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { loadConsentConfig, type ConsentConfig } from './config.js';
import { applyConsentEvent, consentService } from './grpc/consent-service.js';
import { ConnectionStore } from './store/connections.js';
import { FlowStore } from './store/flows.js';

export const consent: ServiceDefinitionOptions<ConsentConfig> = {
  name: 'consent',
  config: loadConsentConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: (config, runtime) =>
    startGrpcApp(runtime, config, async ({ db, events, logger, client }) => {
      const flows = new FlowStore(db);
      const connections = new ConnectionStore(db);
      const outbox = new Outbox({ db, events, logger, apply: applyConsentEvent(connections) });
      await Promise.all([flows.ensureIndexes(), connections.ensureIndexes(), outbox.ensureIndexes()]);
      const identity = client(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR);
      runtime.onStop('outbox relay', startPeriodicJob('outbox relay', 1000, () => outbox.relayPending(), logger));
      runtime.onStop('outbox sweeper', startPeriodicJob('outbox sweeper', 3_600_000, () => outbox.sweepPublished(), logger));
      runtime.onStop('flow sweeper', startPeriodicJob('flows', 60_000, () => flows.sweepExpired(), logger));
      return { services: [consentService({ config, flows, connections, identity, outbox, logger })] };
    }),
};
