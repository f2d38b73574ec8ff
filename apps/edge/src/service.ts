import { startAccessChecks } from '@ledgerly/access';
import { createClient, EventBus, loadServiceTls, OnceKeys, startPeriodicJob, type ServiceDefinitionOptions } from '@ledgerly/chassis';
import { AccountingServiceDefinition } from '@ledgerly/proto/accounting/v1/accounting';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { TokenServiceDefinition } from '@ledgerly/proto/token/v1/token';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app.js';
import { loadEdgeConfig, type EdgeConfig } from './config.js';
import { ClientDirectory } from './oauth/client-directory.js';
import { DPOP_WINDOW_MS } from './oauth/dpop.js';

export const edge: ServiceDefinitionOptions<EdgeConfig> = {
  name: 'edge',
  config: loadEdgeConfig,
  logLevel: (config) => config.LEDGERLY_LOG_LEVEL,
  start: async (config, runtime) => {
    const { logger } = runtime;
    const tls = loadServiceTls(config, 'edge');
    const events = await EventBus.connect({ url: config.LEDGERLY_NATS_URL, name: 'edge', logger });
    runtime.onStop('nats', () => events.close());
    const identity = createClient(IdentityServiceDefinition, config.LEDGERLY_IDENTITY_ADDR, { tls });
    const consent = createClient(ConsentServiceDefinition, config.LEDGERLY_CONSENT_ADDR, { tls });
    const token = createClient(TokenServiceDefinition, config.LEDGERLY_TOKEN_ADDR, { tls });
    const accounting = createClient(AccountingServiceDefinition, config.LEDGERLY_ACCOUNTING_ADDR, { tls, deadlineMs: 5_000 });
    runtime.onStop('clients', () => [identity, consent, token, accounting].forEach((c) => c.close()));

    const clients = new ClientDirectory(token);
    // Shared by every edge instance: a DPoP proof is accepted once (RFC 9449 §11.1).
    const dpopReplay = await OnceKeys.open(events, 'LEDGERLY_DPOP_PROOFS', DPOP_WINDOW_MS);
    const access = await startAccessChecks({
      token,
      consent,
      events,
      issuer: config.issuer,
      audience: config.audience,
      staleAfterMs: config.LEDGERLY_FEED_STALE_MS,
      alsoFeed: [clients],
    });
    let ready = false;
    const subscription = access.subscription;
    runtime.onStop('event subscription', () => subscription.stop());
    runtime.onStop('view sweeper', startPeriodicJob('views', 60_000, async () => (access.sweep(), 0), logger));

    const app = createApp({
      config,
      logger,
      identity,
      consent,
      token,
      accounting,
      access: access.guard,
      clients,
      dpopReplay,
      isReady: () => ready,
      health: () => ({
        events: { healthy: events.healthy(), unhealthyForMs: events.unhealthyForMs(), synchronousChecks: access.guard.synchronous() },
        views: access.sizes(),
      }),
    });
    const server = createServer({ requestTimeout: 30_000, headersTimeout: 15_000, keepAliveTimeout: 5_000 }, app.callback());
    const [host, port] = splitHostPort(config.LEDGERLY_HTTP_LISTEN);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    runtime.onStop('http', () => closeServer(server));
    await subscription.caughtUp;
    ready = true;
    const address = server.address() as AddressInfo;
    return { address: `${address.address}:${address.port}`, issuer: config.issuer };
  },
};

function splitHostPort(value: string): [string, number] {
  const i = value.lastIndexOf(':');
  return [value.slice(0, i).replace(/^\[|\]$/g, ''), Number(value.slice(i + 1))];
}

/** Stops accepting, lets in-flight requests finish (up to 5 s), then cuts what is left. */
function closeServer(server: ReturnType<typeof createServer>): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), 5_000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
