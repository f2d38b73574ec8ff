#!/usr/bin/env node
// npm start: build everything, then run the whole platform locally with demo data:
// FerretDB and NATS (JetStream), the five services, and the example payroll app.
// Data lives in .data/ (ignored by git); logs in .data/logs/. Ctrl-C stops it all.
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const data = join(root, '.data');
const logs = join(data, 'logs');
const say = (msg) => process.stdout.write(`\x1b[1m▸\x1b[0m ${msg}\n`);

const BASE_PORTS = { ferretdb: 27017, nats: 4222, identity: 50051, consent: 50052, token: 50053, accounting: 50054, edge: 3000, payroll: 3001 };
// LEDGERLY_PORT_OFFSET=100 runs everything 100 ports up (edge on 3100, …), beside another copy.
const rawOffset = process.env['LEDGERLY_PORT_OFFSET'] ?? '0';
if (!/^\d{1,4}$/.test(rawOffset) || Number(rawOffset) > 5000) {
  console.error(`LEDGERLY_PORT_OFFSET must be a whole number from 0 to 5000, not "${rawOffset}"`);
  process.exit(2);
}
const PORTS = Object.fromEntries(Object.entries(BASE_PORTS).map(([name, port]) => [name, port + Number(rawOffset)]));

async function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

say('Building (nx run-many -t build)…');
const build = spawnSync(join(root, 'node_modules/.bin/nx'), ['run-many', '-t', 'build', '--output-style=static'], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
});
if (build.status !== 0) {
  console.error('The build failed. Run `npx nx run-many -t build` to see why.');
  process.exit(1);
}

const busy = [];
for (const [name, port] of Object.entries(PORTS)) if (!(await portFree(port))) busy.push(`${port} (${name})`);
if (busy.length > 0) {
  console.error(`These ports are in use: ${busy.join(', ')}.\nIs another \`npm start\` running? Stop it first, or run this one beside it: LEDGERLY_PORT_OFFSET=100 npm start`);
  process.exit(1);
}

const { startFerretDB, startNats, startPlatform, ManagedProcess, parseJsonLine, DEFAULT_PORTS } = await import('../libs/devstack/dist/index.js');

/** Shows warnings and errors of the services on the console; everything goes to .data/logs. */
const echo = (app, line) => {
  const record = parseJsonLine(line);
  if (record && (record.level === 'warn' || record.level === 'error')) {
    process.stdout.write(`  [${app}] ${record.level}: ${record.msg}${record.err?.message ? ` (${record.err.message})` : ''}\n`);
  }
};

const stops = [];
let stopping = false;
async function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  say('Stopping…');
  for (const stop of stops.reverse()) await stop().catch(() => {});
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

try {
  say('Starting FerretDB (MongoDB wire protocol, SQLite backend) and NATS with JetStream…');
  const mongo = await startFerretDB({ dataDir: join(data, 'ferretdb'), port: PORTS.ferretdb, logFile: join(logs, 'ferretdb.log') });
  stops.push(() => mongo.process.stop());
  const nats = await startNats({ dataDir: join(data, 'nats'), port: PORTS.nats, logFile: join(logs, 'nats.log') });
  stops.push(() => nats.process.stop());

  say('Starting identity, consent, token, accounting and the edge…');
  // The development CA and every service's certificate (mutual TLS), and the
  // local operator's, which the admin CLI uses by default: .data/pki.
  const ports = Object.fromEntries(Object.keys(DEFAULT_PORTS).map((app) => [app, PORTS[app]]));
  const platform = await startPlatform({ mongoUrl: mongo.url, natsUrl: nats.url, logDir: logs, pkiDir: join(data, 'pki'), ports, echo });
  stops.push(() => platform.stop());
  // Where the admin CLI finds the services (its defaults, below any LEDGERLY_*_ADDR).
  writeFileSync(join(data, 'platform.json'), JSON.stringify({ issuer: platform.issuer, addresses: platform.addresses }, null, 2) + '\n');

  say('Seeding demo data…');
  const redirectUri = `http://localhost:${PORTS.payroll}/callback`;
  const seeded = execFileSync(
    process.execPath,
    [join(root, 'apps/cli/dist/main.js'), 'demo', 'seed', '--state', join(data, 'demo.json'), '--redirect-uri', redirectUri],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const demo = JSON.parse(seeded);

  say('Starting the example payroll app…');
  const payroll = new ManagedProcess({
    name: 'payroll',
    command: process.execPath,
    args: [join(root, 'examples/payroll/dist/main.js')],
    cwd: root,
    env: {
      PAYROLL_LISTEN: `127.0.0.1:${PORTS.payroll}`,
      PAYROLL_PUBLIC_URL: `http://localhost:${PORTS.payroll}`,
      PAYROLL_ISSUER: platform.issuer,
      PAYROLL_CLIENT_ID: demo.client.client_id,
      PAYROLL_CLIENT_SECRET: demo.client.client_secret,
    },
    logFile: join(logs, 'payroll.log'),
    echo: (line) => echo('payroll', line),
    readyWhen: (line) => (parseJsonLine(line)?.msg === 'Payroll app ready' ? {} : undefined),
  });
  await payroll.start();
  stops.push(() => payroll.stop());

  process.stdout.write(`
\x1b[1mLedgerly is running.\x1b[0m

  Example app (a third-party "payroll" app):  http://localhost:${PORTS.payroll}
  Platform edge (OAuth issuer and API):       ${platform.issuer}
    discovery:  ${platform.issuer}/.well-known/openid-configuration
    API:        ${platform.issuer}/api.xro/2.0/  (Xero Accounting API 2.0)

  Demo login:  ${demo.user.email}  /  ${demo.user.password}
  Organisations: ${demo.organisations.map((o) => o.name).join(', ')}
  Example app client_id: ${demo.client.client_id}  (its secret is in .data/demo.json)

  Admin CLI:   npm run cli -- --help
  Logs:        .data/logs/
  Press Ctrl-C to stop.
`);
  // Stay up; if a service dies, say so and stop everything.
  for (const [name, proc] of Object.entries({ ...platform.processes, payroll, ferretdb: mongo.process, nats: nats.process })) {
    void proc.exited().then((code) => {
      if (!stopping) {
        console.error(`${name} exited unexpectedly (${code}). See .data/logs/${name}.log`);
        void stopAll(1);
      }
    });
  }
} catch (err) {
  console.error(`Start failed: ${err.message}`);
  await stopAll(1);
}
