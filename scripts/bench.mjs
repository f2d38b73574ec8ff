#!/usr/bin/env node
// npm run bench: measures the platform on this machine and writes docs/benchmarks.md.
//   1. Throughput of an authenticated GET /api.xro/2.0/Contacts through the edge,
//      as a ratio against a bare koa + mongodb handler on the same database, same run.
//   2. Revocation propagation: DELETE /connections/{id} → first refusal of the
//      token at the edge and at the accounting service (gRPC), with NATS healthy
//      and (3.) after each service has been restarted.
//   4. The cost of token checking at the edge, in-process (no HTTP), with the
//      local revocation views holding 0, 100,000 and 1,000,000 entries; against
//      a bare jose.jwtVerify of the same tokens.
//   5. The token endpoint: client_credentials and refresh_token grants per
//      second through the edge's POST /token, as ratios against oidc-provider
//      with a MongoDB adapter on the same FerretDB, same run.
// A benchmark, not a test: it never fails on a number, only when it cannot
// measure. Everything runs on 127.0.0.1 from already-built dist/ folders (run
// the build first), takes about 5 minutes, and stops and removes everything it
// started, also on errors, Ctrl-C or overrunning its time limit.
// Settings: BENCH_* environment variables (see docs/benchmarks.md, "Settings").
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (msg) => process.stdout.write(`\x1b[1m▸\x1b[0m ${msg}\n`);
const info = (msg) => process.stdout.write(`${msg}\n`);

const num = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`${name} must be a non-negative number, not "${raw}"`);
    process.exit(2);
  }
  return v;
};
const list = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const values = raw.split(',').map((x) => Number(x.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 0)) {
    console.error(`${name} must be a comma-separated list of non-negative integers, not "${raw}"`);
    process.exit(2);
  }
  return [...new Set(values)].sort((a, b) => a - b);
};
const config = {
  connections: num('BENCH_CONNECTIONS', 16),
  durationS: num('BENCH_DURATION', 10),
  warmupS: num('BENCH_WARMUP', 2),
  pairs: Math.max(1, Math.round(num('BENCH_PAIRS', 4))),
  contacts: Math.max(1, Math.round(num('BENCH_CONTACTS', 50))),
  rounds: Math.max(1, Math.round(num('BENCH_ROUNDS', 40))),
  breakdownBlocks: Math.max(1, Math.round(num('BENCH_BREAKDOWN_BLOCKS', 8))),
  breakdownPerBlock: 20,
  pollMs: num('BENCH_POLL_MS', 2),
  timeoutMs: num('BENCH_POLL_TIMEOUT_MS', 2000),
  restartRounds: Math.round(num('BENCH_RESTART_ROUNDS', 10)),
  normalTimeoutMs: num('BENCH_RESTART_TIMEOUT_MS', 30_000),
  tokenOps: Math.max(1000, Math.round(num('BENCH_TOKEN_OPS', 20_000))),
  viewSizes: list('BENCH_VIEW_SIZES', [0, 100_000, 1_000_000]),
  tokenConnections: Math.max(1, Math.round(num('BENCH_TOKEN_CONNECTIONS', 8))),
  tokenDurationS: num('BENCH_TOKEN_DURATION', 5),
  tokenWarmupS: num('BENCH_TOKEN_WARMUP', 1),
  tokenPairs: Math.max(1, Math.round(num('BENCH_TOKEN_PAIRS', 3))),
  authTimingRounds: Math.max(10, Math.round(num('BENCH_AUTH_TIMING_ROUNDS', 300))),
};
// Spare grants per side for refresh-token chains that break (see bench/lib/token-load-worker.mjs).
config.tokenSpares = Math.ceil(config.tokenConnections / 2);
const output = process.env['BENCH_OUTPUT'] ? resolve(process.env['BENCH_OUTPUT']) : join(root, 'docs', 'benchmarks.md');
// Generous: a normal run takes about 5 minutes; past this the bench stops itself.
const timeLimitMs =
  num(
    'BENCH_TIME_LIMIT_S',
    150 +
      2 * config.pairs * (config.durationS + config.warmupS + 3) +
      config.rounds * 6 +
      5 * (15 + config.restartRounds * 3) +
      30 + (config.tokenOps / 20_000) * 40 + (config.viewSizes.reduce((a, b) => a + b, 0) / 1e6) * 40 +
      30 + (config.tokenConnections + config.tokenSpares) * 2 + 2 * 2 * config.tokenPairs * (config.tokenDurationS + config.tokenWarmupS + 5),
  ) * 1000;

// Imported after the settings check, so a bad setting fails fast. A missing
// dist/ means the workspace is not built (or is being rebuilt right now).
let lib;
try {
  lib = {
    ...(await import('../bench/lib/cleanup.mjs')),
    ...(await import('../bench/lib/setup.mjs')),
    ...(await import('../bench/lib/throughput.mjs')),
    ...(await import('../bench/lib/breakdown.mjs')),
    ...(await import('../bench/lib/revocation.mjs')),
    ...(await import('../bench/lib/token-check.mjs')),
    ...(await import('../bench/lib/token-endpoint.mjs')),
    ...(await import('../bench/lib/client-auth-timing.mjs')),
    ...(await import('../bench/lib/report.mjs')),
  };
} catch (err) {
  console.error(`Could not load the built packages (${err.message}).\nBuild first (npx nx run-many -t build), or retry in a minute if a build is running.`);
  process.exit(1);
}
const {
  Cleanup,
  startPlatform,
  accountingAsEdge,
  connectApp,
  seedContacts,
  startBareServer,
  compare,
  breakdown,
  measureRevocation,
  measureAfterRestarts,
  RESTART_ORDER,
  measureTokenChecks,
  prepareTokenEndpoint,
  sanityCheckTokens,
  compareTokenEndpoint,
  tokenState,
  measureClientAuthTiming,
  renderReport,
} = lib;

const started = performance.now();
const cleanup = new Cleanup();
cleanup.installExitHandlers({ timeoutMs: timeLimitMs, log: (m) => console.error(m) });

const cpus = os.cpus();
const machine = {
  cpus: cpus.length,
  model: cpus[0]?.model?.trim() ?? 'unknown',
  memGiB: os.totalmem() / 2 ** 30,
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  node: process.version,
  loadStart: os.loadavg()[0],
  commit: gitCommit(),
};

say(`Benchmarks on ${machine.cpus} × ${machine.model}, Node ${machine.node} (load average ${machine.loadStart.toFixed(2)})`);
info(
  `  ${config.pairs} pairs × (${config.warmupS} s warm-up + ${config.durationS} s) × 2 targets at ${config.connections} connections; ` +
    `${config.rounds} revocation rounds, then ${config.restartRounds} after restarting each of ${RESTART_ORDER.join(', ')}; ` +
    `token checks: ${config.tokenOps} operations per path at ${config.viewSizes.map((k) => k.toLocaleString('en')).join(' / ')} view entries; ` +
    `token endpoint: ${config.tokenPairs} pairs × (${config.tokenWarmupS} s + ${config.tokenDurationS} s) × 2 targets × 2 grants at ${config.tokenConnections} connections; ` +
    `time limit ${Math.round(timeLimitMs / 1000)} s`,
);

let result;
try {
  // First, while nothing else of the bench runs: no platform process shares the machine yet.
  say(`Token checking at the edge, in-process (a child node --expose-gc, no platform): views at ${config.viewSizes.map((k) => k.toLocaleString('en')).join(', ')} entries…`);
  const tokenChecks = await measureTokenChecks({ cleanup, ops: config.tokenOps, sizes: config.viewSizes, log: info });

  say('Starting FerretDB, NATS and the five services…');
  const t0 = performance.now();
  const { t, work } = await startPlatform(cleanup, info);
  info(`  ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (edge on ${t.platform.addresses.edge})`);
  // Measured calls to accounting go as the edge's (its certificate), not as the operator's (audited: a FerretDB insert each).
  const accounting = accountingAsEdge(t, cleanup);

  say('Seeding: user, organisations, client; connecting the app through the OAuth flow…');
  const app = await connectApp(t, { extraOrgs: config.rounds + RESTART_ORDER.length * config.restartRounds, log: (m) => info(`  ${m}`) });
  const healthyTenants = app.revocationTenants.slice(0, config.rounds);
  const tenantsByService = Object.fromEntries(
    RESTART_ORDER.map((service, i) => [service, app.revocationTenants.slice(config.rounds + i * config.restartRounds, config.rounds + (i + 1) * config.restartRounds)]),
  );
  await seedContacts(app.edge, app.accessToken, app.throughputOrg, config.contacts);
  info(`  created ${config.contacts} contacts with PUT /api.xro/2.0/Contacts`);

  say('Starting the bare koa + mongodb reference server…');
  const bare = await startBareServer(t, cleanup, work);
  info(`  on ${bare.url.replace('http://', '')}, database ${bare.database}`);

  const headers = { authorization: `Bearer ${app.accessToken}`, 'xero-tenant-id': app.throughputOrg, accept: 'application/json' };
  const targets = {
    edge: { url: `${app.edge}/api.xro/2.0/Contacts`, headers },
    bare: { url: `${bare.url}/api.xro/2.0/Contacts`, headers },
  };
  const sanity = await sanityCheck(targets, config.contacts);

  say(`Throughput: GET /api.xro/2.0/Contacts, edge vs bare, ${config.pairs} pairs…`);
  const throughput = await compare({ targets, pairs: config.pairs, connections: config.connections, durationS: config.durationS, warmupS: config.warmupS, log: info });
  info(`  median ratio edge/bare: ${throughput.medianRatio.toFixed(3)}`);

  say(`Where the time goes: each layer sequentially, ${config.breakdownBlocks * config.breakdownPerBlock} calls each…`);
  const layers = await breakdown({
    t,
    accounting,
    database: bare.database,
    edge: app.edge,
    bare: bare.url,
    accessToken: app.accessToken,
    tenantId: app.throughputOrg,
    blocks: config.breakdownBlocks,
    perBlock: config.breakdownPerBlock,
    log: info,
  });

  say(`Revocation propagation: ${config.rounds} rounds…`);
  const revocation = await measureRevocation({
    edge: app.edge,
    accessToken: app.accessToken,
    tenants: healthyTenants,
    accounting,
    pollMs: config.pollMs,
    timeoutMs: config.timeoutMs,
    log: info,
  });

  let restarts = [];
  if (config.restartRounds > 0) {
    say(`Revocation after a restart: each of ${RESTART_ORDER.join(', ')} in turn, then ${config.restartRounds} rounds…`);
    restarts = await measureAfterRestarts({
      t,
      app,
      accounting,
      tenantsByService,
      pollMs: config.pollMs,
      timeoutMs: config.timeoutMs,
      normalTimeoutMs: config.normalTimeoutMs,
      log: info,
    });
  }

  // Last: its grants leave documents in the token service's collections, which FerretDB scans.
  say(`The token endpoint: refresh_token and client_credentials grants, edge vs oidc-provider, ${config.tokenPairs} pairs each…`);
  const stateBefore = await tokenState(t);
  const tokens = await prepareTokenEndpoint({
    t,
    cleanup,
    work,
    edge: app.edge,
    chains: config.tokenConnections,
    spares: config.tokenSpares,
    log: (m) => info(`  ${m}`),
  });
  const tokenSanity = await sanityCheckTokens(tokens.sides);
  info(
    `  sanity check: both answer 200 to both grants with an ES256 JWT access token (typ: edge ${tokenSanity.edge.client_credentials.typ}, oidc-provider ${tokenSanity.oidc.client_credentials.typ}) and rotate refresh tokens`,
  );
  const tokenResults = await compareTokenEndpoint({
    sides: tokens.sides,
    pairs: config.tokenPairs,
    connections: config.tokenConnections,
    durationS: config.tokenDurationS,
    warmupS: config.tokenWarmupS,
    processes: { ...t.platform.processes, ferretdb: t.mongo.process, nats: t.nats.process, 'oidc-provider': tokens.server.proc, 'bench (load generator)': { pid: process.pid } },
    log: info,
  });
  for (const [grant, x] of Object.entries(tokenResults)) info(`  median ratio edge/oidc-provider, ${grant}: ${x.medianRatio.toFixed(3)}`);
  const tokenEndpoint = {
    version: tokens.version,
    prepare: tokens.prepare,
    sanity: tokenSanity,
    results: tokenResults,
    stateBefore,
    stateAfter: await tokenState(t),
    chainsLeft: { edge: tokens.sides.edge.chains.length, oidc: tokens.sides.oidc.chains.length },
    sparesLeft: { edge: tokens.sides.edge.spares.length, oidc: tokens.sides.oidc.spares.length },
  };

  say(`An unknown client and a wrong secret at /token: ${config.authTimingRounds} of each, interleaved…`);
  const clientAuthTiming = await measureClientAuthTiming({ issuer: app.edge, clientId: app.clientId, clientSecret: app.clientSecret, rounds: config.authTimingRounds, log: info });
  info(`  ratio of medians unknown/wrong: ${clientAuthTiming.ratio.toFixed(3)}`);

  const processes = [...Object.values(t.platform.processes), t.mongo.process, t.nats.process, bare.proc, tokens.server.proc];
  result = { machine, config: { ...config, database: bare.database }, sanity, throughput, layers, revocation, restarts, tokenChecks, tokenEndpoint, clientAuthTiming, processes };
} catch (err) {
  console.error(`\nThe bench could not complete: ${err?.stack ?? err}`);
  say('Stopping everything…');
  await cleanup.run((m) => console.error(m));
  console.error('Nothing was written. BENCH_KEEP_DATA=1 keeps the services\' logs for a look.');
  process.exit(1);
}

say('Stopping everything…');
await cleanup.run((m) => console.error(m));
const left = result.processes.filter((p) => p.running).map((p) => `${p.spec.name} (pid ${p.pid})`);
if (left.length > 0) console.error(`Warning: still running after cleanup: ${left.join(', ')}`);

machine.loadEnd = os.loadavg()[0];
const totalS = (performance.now() - started) / 1000;
const report = renderReport({ ...result, machine, finishedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), totalS });
mkdirSync(dirname(output), { recursive: true });
writeFileSync(output, report);
say(`Wrote ${relative(process.cwd(), output) || output} in ${totalS.toFixed(0)} s total`);
process.exit(0);

/** Both targets answer 200 with the same contacts before anything is measured. */
async function sanityCheck(targets, count) {
  const got = {};
  for (const [name, { url, headers }] of Object.entries(targets)) {
    const res = await fetch(url, { headers });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`Sanity check: ${name} answered ${res.status}: ${text.slice(0, 300)}`);
    const contacts = JSON.parse(text).Contacts ?? [];
    got[name] = { bytes: Buffer.byteLength(text), names: contacts.map((c) => c.Name ?? c.name) };
  }
  if (got.edge.names.length !== count || got.edge.names.join('\n') !== got.bare.names.join('\n')) {
    throw new Error(`Sanity check: the edge and the bare server do not return the same ${count} contacts (${got.edge.names.length} vs ${got.bare.names.length})`);
  }
  info(`  sanity check: both return the same ${count} contacts in the same order (edge ${got.edge.bytes} B, bare ${got.bare.bytes} B)`);
  return { edgeBytes: got.edge.bytes, bareBytes: got.bare.bytes };
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}
