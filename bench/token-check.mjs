#!/usr/bin/env node
// The cost of checking an access token at the edge, in-process, no HTTP: the
// edge's AccessGuard (@ledgerly/access, built dist/) with a real
// AccessTokenVerifier over a locally generated ES256 key, a RevocationView and
// a ConnectionView holding K entries, a healthy event feed, and a consent
// check that answers "live" (the ConnectionView caches it after the first
// call). For each K (BENCH_VIEW_SIZES, default 0, 100,000, 1,000,000):
//   a. authenticate + authorizeTenant(ListContacts) with tokens this guard has
//      never seen (signature verification), against a plain jose.jwtVerify of
//      the same tokens (the reference: the guard's cost over bare signature
//      verification);
//   b. the same with tokens it has seen (its verified-token cache: what is
//      left is the guard and the views);
//   c. the two views alone (RevocationView.reasonFor + ConnectionView.status);
// plus the heap the views hold (heapUsed after global.gc(), so run with
// --expose-gc) and how fast they take events (protobuf decode + apply).
// All K are built first and live side by side; every task (each path at each
// K, and the reference) then runs in short interleaved blocks, so the machine's
// drift falls on all of them alike, and ratios are medians over blocks.
//
// One operation at a time, awaited, on this one process: "per core" figures.
// WebCrypto runs the ECDSA verification on a libuv thread while the main
// thread waits, so the CPU time of the process (all threads, process.cpuUsage)
// is measured too; ops per CPU-second is the per-core figure.
//
// Started by scripts/bench.mjs (bench/lib/token-check.mjs) as
// `node --expose-gc bench/token-check.mjs`; progress on stderr, one JSON line
// with the results on stdout.
import { AccessGuard, AccessTokenVerifier, ACCESS_TOKEN_ALGORITHMS, ACCESS_TOKEN_TTL_SECONDS, ACCESS_TOKEN_TYP, apiAudience, ConnectionView, OPERATIONS, RevocationView } from '@ledgerly/access';
import { Event } from '@ledgerly/proto/events/v1/events';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import { constants as perfConstants, performance, PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

const log = (msg) => process.stderr.write(`${msg}\n`);
const ops = Math.max(1000, Math.round(Number(process.env['BENCH_TOKEN_OPS'] || 20_000)));
const sizes = (process.env['BENCH_VIEW_SIZES'] || '0,100000,1000000').split(',').map((s) => Math.round(Number(s.trim()))).filter((n) => Number.isFinite(n) && n >= 0);
sizes.splice(0, sizes.length, ...[...new Set(sizes)].sort((a, b) => a - b));
if (sizes.length === 0) sizes.push(0);
const BLOCK = 500; // the tasks alternate in blocks of this many never-seen tokens
const CHEAP = 10; // the cache-hit paths (b, c) are cheap: this many times more operations each
const POOL = 1000; // distinct live connections (user, app, organisation) the tokens are spread over
const CLIENTS = 50; // apps among them
if (typeof globalThis.gc !== 'function') {
  log('Run with node --expose-gc (the heap figures need it)');
  process.exit(2);
}

const ISSUER = 'http://localhost:3000';
const AUDIENCE = apiAudience(ISSUER);
const SCOPE = 'openid profile email offline_access accounting.settings accounting.contacts';
const clientId = () => randomBytes(16).toString('hex').toUpperCase(); // as token-service.ts createClient

// ── A signing key and a JWK Set, as the token service publishes it ──────────
const kid = randomUUID();
const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] };

// ── Connections the tokens belong to ────────────────────────────────────────
const clients = Array.from({ length: CLIENTS }, clientId);
const pool = Array.from({ length: POOL }, (_, i) => ({
  userId: randomUUID(),
  clientId: clients[i % CLIENTS],
  tenantId: randomUUID(),
  grantId: randomUUID(),
  connectionId: randomUUID(),
  sessionId: randomUUID(),
  authEventId: randomUUID(),
}));
const connectionIdByKey = new Map(pool.map((c) => [`${c.userId}|${c.clientId}|${c.tenantId}`, c.connectionId]));

/** One access token as apps/token/src/domain/token-issuer.ts mints it. */
async function sign(c) {
  const nowMs = Date.now();
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({
    client_id: c.clientId,
    scope: SCOPE,
    auth_time: now - 60,
    authentication_event_id: c.authEventId,
    grant_id: c.grantId,
    sid: c.sessionId,
    issued_at_ms: nowMs,
  })
    .setProtectedHeader({ alg: 'ES256', typ: ACCESS_TOKEN_TYP, kid })
    .setIssuer(ISSUER)
    .setSubject(c.userId)
    .setAudience(AUDIENCE)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + ACCESS_TOKEN_TTL_SECONDS)
    .sign(privateKey);
}

log(`signing ${ops + POOL} access tokens (ES256)…`);
let t = performance.now();
let cpu = process.cpuUsage();
const fresh = []; // never seen by a guard: one per timed operation of (a)
for (let i = 0; i < ops; i++) {
  const c = pool[i % POOL];
  fresh.push({ token: await sign(c), tenantId: c.tenantId });
}
const warm = []; // one per connection: warms each guard (JIT, the connection cache), then reused in (b)
for (const c of pool) warm.push({ token: await sign(c), tenantId: c.tenantId });
const signing = rate(ops + POOL, performance.now() - t, process.cpuUsage(cpu));
log(`  ${signing.opsPerS.toFixed(0)} signatures/s (${signing.opsPerCpuS.toFixed(0)} per CPU-second); token ${fresh[0].token.length} bytes`);

// ── K events for the views ──────────────────────────────────────────────────
// Of every 20 events: 8 token.revoked, 5 connection.revoked, 4 grant.revoked,
// 2 user.disabled, 1 client.suspended; all within the last 30 minutes, none
// about the connections above (every lookup of the measured tokens misses, as
// for almost all live traffic).
const MIX = ['tokenRevoked', 'connectionRevoked', 'grantRevoked', 'tokenRevoked', 'userDisabled', 'tokenRevoked', 'connectionRevoked', 'grantRevoked', 'tokenRevoked', 'clientSuspended', 'tokenRevoked', 'connectionRevoked', 'grantRevoked', 'tokenRevoked', 'userDisabled', 'tokenRevoked', 'connectionRevoked', 'grantRevoked', 'tokenRevoked', 'connectionRevoked'];
const otherClients = Array.from({ length: 2000 }, clientId);
function eventBytes(i, nowMs) {
  const at = new Date(nowMs - ((i * 7919) % (ACCESS_TOKEN_TTL_SECONDS * 1000)));
  const client = otherClients[i % otherClients.length];
  const $case = MIX[i % MIX.length];
  let value;
  switch ($case) {
    case 'tokenRevoked':
      value = { tokenId: randomUUID(), clientId: client, userId: randomUUID(), expiresAt: new Date(at.getTime() + ACCESS_TOKEN_TTL_SECONDS * 1000), revokedAt: at };
      break;
    case 'connectionRevoked':
      value = { connectionId: randomUUID(), grantId: randomUUID(), userId: randomUUID(), clientId: client, tenantId: randomUUID(), revokedAt: at };
      break;
    case 'grantRevoked':
      value = { grantId: randomUUID(), userId: randomUUID(), clientId: client, revokedAt: at };
      break;
    case 'userDisabled':
      value = { userId: randomUUID(), disabledAt: at };
      break;
    case 'clientSuspended':
      value = { clientId: clientId(), suspendedAt: at };
      break;
  }
  const source = $case === 'connectionRevoked' || $case === 'grantRevoked' ? 'consent' : $case === 'userDisabled' ? 'identity' : 'token';
  return Event.encode(Event.fromPartial({ id: randomUUID(), occurredAt: at, source, payload: { $case, value } })).finish();
}

/** Fills both views with k events; times only what a service does per event (decode + apply to each view). */
function fill(views, k) {
  const nowMs = Date.now();
  let ms = 0;
  let cpuUs = 0;
  for (let from = 0; from < k; from += 10_000) {
    const batch = [];
    for (let i = from; i < Math.min(k, from + 10_000); i++) batch.push(eventBytes(i, nowMs));
    const s = performance.now();
    const c = process.cpuUsage();
    for (const bytes of batch) {
      const event = Event.decode(bytes);
      for (const v of views) v.apply(event);
    }
    const d = process.cpuUsage(c);
    cpuUs += d.user + d.system;
    ms += performance.now() - s;
  }
  return k > 0 ? { events: k, ms, perS: k / (ms / 1000), perCpuS: k / (cpuUs / 1e6) } : { events: 0, ms: 0, perS: NaN, perCpuS: NaN };
}

function rate(n, ms, cpuDelta) {
  const cpuS = (cpuDelta.user + cpuDelta.system) / 1e6;
  return { n, ms, opsPerS: n / (ms / 1000), cpuS, opsPerCpuS: n / cpuS, usPerOp: (ms * 1000) / n };
}

function heapUsed() {
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

const localKeys = createLocalJWKSet(jwks);
const referenceVerify = (token) =>
  jwtVerify(token, localKeys, {
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ACCESS_TOKEN_ALGORITHMS,
    typ: ACCESS_TOKEN_TYP,
    clockTolerance: 5,
    requiredClaims: ['sub', 'client_id', 'jti', 'iat', 'exp', 'scope'],
  });
const feed = { healthy: () => true, unhealthyForMs: () => 0 };
const sha256 = async (token) => createHash('sha256').update(token).digest('base64url'); // as access-token.ts verify()

// Garbage-collection pauses, attributed afterwards to the timed window they began in.
const gcPauses = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, ms: e.duration, major: e.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR });
});
gcObserver.observe({ entryTypes: ['gc'] });
async function gcIn(windows) {
  await sleep(50); // the observer is told asynchronously
  let ms = 0;
  let majorMs = 0;
  let count = 0;
  let majors = 0;
  for (const p of gcPauses) {
    if (!windows.some((w) => p.start >= w.start && p.start < w.end)) continue;
    ms += p.ms;
    count++;
    if (p.major) {
      majorMs += p.ms;
      majors++;
    }
  }
  return { ms, count, majorMs, majors };
}
let checks = 0;
const check = async (userId, clientId, tenantId) => {
  checks++;
  return { connectionId: connectionIdByKey.get(`${userId}|${clientId}|${tenantId}`), lastRevokedAt: undefined };
};

// ── One edge's worth of checks per K: views filled with K events, a guard ──
const loadStart = os.loadavg()[0];
const setups = [];
for (const k of sizes) {
  log(`views with ${k.toLocaleString('en')} entries…`);
  const before = heapUsed();
  const connections = new ConnectionView({ check });
  const revocations = new RevocationView();
  const filled = fill([connections, revocations], k);
  const heapBytes = heapUsed() - before;
  const sizesFilled = { revocations: revocations.size, connections: connections.size };
  if (k > 0) log(`  filled in ${(filled.ms / 1000).toFixed(1)} s (${filled.perS.toFixed(0)} events/s); heap ${(heapBytes / 2 ** 20).toFixed(0)} MiB`);
  setups.push({ k, connections, revocations, filled, heapBytes, sizesFilled });
}
const heapAllViews = heapUsed();

for (const x of setups) {
  // The edge's verifier as startAccessChecks builds it (default cache of 10,000 verified tokens).
  x.verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, fetchJwks: async () => jwks });
  const guard = new AccessGuard({
    verifier: x.verifier,
    connections: x.connections,
    revocations: x.revocations,
    feed,
    staleAfterMs: 30_000,
    checkToken: async () => {
      throw new Error('checkToken is not called while the feed is healthy');
    },
  });
  x.op = async ({ token, tenantId }) => {
    const claims = await guard.authenticate(token);
    await guard.authorizeTenant(claims, tenantId, OPERATIONS.ListContacts);
  };
  x.viewsOp = async ({ claims, tenantId }) => {
    if (x.revocations.reasonFor(claims) !== undefined) throw new Error('a measured token is revoked');
    if ((await x.connections.status(claims, tenantId)) !== 'live') throw new Error('a measured connection is not live');
  };
}

// ── Warm-up, untimed ────────────────────────────────────────────────────────
// Each guard sees each connection once with a token of its own (never seen:
// the view asks "consent" and caches "live"), then each path runs a few
// thousand times (JIT). The reference too.
log('warming up…');
for (const { token } of warm.slice(0, 500)) await referenceVerify(token);
for (let i = 0; i < 5 * POOL; i++) await sha256(warm[i % POOL].token);
for (const x of setups) {
  checks = 0;
  for (const w of warm) await x.op(w);
  x.warmChecks = checks;
  x.claims = [];
  for (const w of warm) x.claims.push({ claims: await x.verifier.verify(w.token), tenantId: w.tenantId });
  for (let i = 0; i < 5 * POOL; i++) await x.op(warm[i % POOL]);
  for (let i = 0; i < 5 * POOL; i++) await x.viewsOp(x.claims[i % POOL]);
}
checks = 0;

// ── Timed, in blocks ────────────────────────────────────────────────────────
// Each block runs every task once, in an order that rotates from block to
// block (and reverses every other block), so drift of the machine falls on
// all of them alike:
//   reference   jose.jwtVerify of BLOCK never-seen tokens
//   fresh@K     (a) guard K on the same BLOCK tokens (never seen by that guard)
//   cached@K    (b) guard K on tokens it has verified before, BLOCK × CHEAP
//   views@K     (c) the two views of K alone, BLOCK × CHEAP
//   hash        SHA-256 of a token, as the verifier keys its cache, BLOCK × CHEAP
const tasks = [
  { id: 'reference', run: async (block) => { for (const x of block) await referenceVerify(x.token); return block.length; } },
  {
    id: 'hash',
    run: async (_block, b) => {
      const n = BLOCK * CHEAP;
      for (let i = 0; i < n; i++) await sha256(warm[(b * n + i) % POOL].token);
      return n;
    },
  },
];
for (const x of setups) {
  tasks.push({ id: `fresh@${x.k}`, run: async (block) => { for (const b of block) await x.op(b); return block.length; } });
  tasks.push({
    id: `cached@${x.k}`,
    run: async (_block, b) => {
      const n = BLOCK * CHEAP;
      for (let i = 0; i < n; i++) await x.op(warm[(b * n + i) % POOL]);
      return n;
    },
  });
  tasks.push({
    id: `views@${x.k}`,
    run: async (_block, b) => {
      const n = BLOCK * CHEAP;
      for (let i = 0; i < n; i++) await x.viewsOp(x.claims[(b * n + i) % POOL]);
      return n;
    },
  });
}
const blocks = Object.fromEntries(tasks.map((task) => [task.id, []]));
const nBlocks = Math.ceil(fresh.length / BLOCK);
log(`timing: ${nBlocks} blocks × ${tasks.length} tasks…`);
for (let b = 0; b < nBlocks; b++) {
  const block = fresh.slice(b * BLOCK, (b + 1) * BLOCK);
  const rotated = tasks.map((_, i) => tasks[(i + b) % tasks.length]);
  for (const task of b % 2 === 0 ? rotated : rotated.reverse()) {
    const s = performance.now();
    const c = process.cpuUsage();
    const n = await task.run(block, b);
    const d = process.cpuUsage(c);
    const e = performance.now();
    blocks[task.id].push({ n, start: s, end: e, ms: e - s, cpuUs: d.user + d.system });
  }
}
const checksDuringTimed = checks;

/** Totals and per-block medians of one task; the per-core figure is 1e6 / (median CPU µs per operation). */
async function summary(id) {
  const bs = blocks[id];
  const n = bs.reduce((a, x) => a + x.n, 0);
  const ms = bs.reduce((a, x) => a + x.ms, 0);
  const cpuUs = bs.reduce((a, x) => a + x.cpuUs, 0);
  const cpuUsPerOp = median(bs.map((x) => x.cpuUs / x.n));
  const wallUsPerOp = median(bs.map((x) => (x.ms * 1000) / x.n));
  return { n, ms, cpuS: cpuUs / 1e6, opsPerS: n / (ms / 1000), opsPerCpuS: 1e6 / cpuUsPerOp, cpuUsPerOp, wallUsPerOp, gc: await gcIn(bs) };
}
/** Median over blocks of (CPU time per operation of a) ÷ (of b): the two ran in the same block. */
const pairedRatios = (a, b) => blocks[a].map((x, i) => x.cpuUs / x.n / (blocks[b][i].cpuUs / blocks[b][i].n));
const pairedRatio = (a, b) => median(pairedRatios(a, b));
/** The middle half of the per-block ratios: how much one block's ratio moves on this machine. */
const quartiles = (values) => {
  const v = [...values].sort((x, y) => x - y);
  const at = (q) => v[Math.min(v.length - 1, Math.max(0, Math.round(q * (v.length - 1))))];
  return { p25: at(0.25), p75: at(0.75) };
};
const pairedDiffUs = (a, b) => median(blocks[a].map((x, i) => x.cpuUs / x.n - blocks[b][i].cpuUs / blocks[b][i].n));

const reference = await summary('reference');
const hash = await summary('hash');
const k0 = setups[0].k;
const results = [];
for (const x of setups) {
  const r = {
    k: x.k,
    heapBytes: x.heapBytes,
    filled: x.filled,
    sizesFilled: x.sizesFilled,
    sizesAfter: { revocations: x.revocations.size, connections: x.connections.size },
    warmChecks: x.warmChecks,
    fresh: await summary(`fresh@${x.k}`),
    cached: await summary(`cached@${x.k}`),
    viewsOnly: await summary(`views@${x.k}`),
    freshOverReference: pairedRatio(`fresh@${x.k}`, 'reference'),
    freshOverReferenceIqr: quartiles(pairedRatios(`fresh@${x.k}`, 'reference')),
    freshMinusReferenceUs: pairedDiffUs(`fresh@${x.k}`, 'reference'),
    vsSmallest: {
      fresh: pairedRatio(`fresh@${x.k}`, `fresh@${k0}`),
      cached: pairedRatio(`cached@${x.k}`, `cached@${k0}`),
      viewsOnly: pairedRatio(`views@${x.k}`, `views@${k0}`),
    },
  };
  log(
    `  K=${x.k.toLocaleString('en')}: (a) never-seen tokens ${r.fresh.opsPerCpuS.toFixed(0)}/CPU-s (× ${r.freshOverReference.toFixed(3)} the CPU time of jose.jwtVerify, ${reference.opsPerCpuS.toFixed(0)}/CPU-s); ` +
      `(b) seen tokens ${r.cached.opsPerCpuS.toFixed(0)}/CPU-s; (c) views alone ${r.viewsOnly.opsPerCpuS.toFixed(0)}/CPU-s`,
  );
  results.push(r);
}

process.stdout.write(
  JSON.stringify({
    ops,
    block: BLOCK,
    cheap: CHEAP,
    blocks: nBlocks,
    pool: POOL,
    clients: CLIENTS,
    tokenBytes: fresh[0].token.length,
    signing,
    mix: Object.fromEntries([...new Set(MIX)].map((m) => [m, MIX.filter((x) => x === m).length / MIX.length])),
    node: process.version,
    load: { start: loadStart, end: os.loadavg()[0] },
    heapAllViewsMiB: heapAllViews / 2 ** 20,
    checksDuringTimed,
    reference,
    hash,
    results,
  }) + '\n',
);

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length === 0 ? NaN : v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
