// The token endpoint: client_credentials and refresh_token grants per second
// through the edge's POST /token (the whole platform behind it), against
// oidc-provider with a MongoDB adapter on the same FerretDB, in the same run,
// in pairs whose order alternates (edge→oidc-provider, oidc-provider→edge, …).
// Both sides get the same load generator (token-load-worker.mjs), the same
// number of connections, the same scopes and client_secret_basic.
import { ClientType } from '@ledgerly/proto/token/v1/token';
import { authorizeInteractively, inputValue, registerClient, seed, UserAgent } from '@ledgerly/testkit';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { MongoClient } from 'mongodb';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { URLSearchParams } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as oidc from 'openid-client';
import { REDIRECT_URI, SCOPE, startReferenceProcess } from './setup.mjs';
import { median } from './stats.mjs';

/** What a custom connection (ours) and the client_credentials client (oidc-provider) get, and ask for. */
export const CC_SCOPE = 'accounting.settings accounting.contacts';
export const OIDC_DATABASE = 'bench_oidc_provider';
export const GRANTS = ['client_credentials', 'refresh_token'];
/**
 * Measured in this order: refresh_token first. Every client_credentials grant
 * of the edge leaves a token family document behind (kept 60 days), and the
 * refresh grants look their families up in that collection, which FerretDB
 * scans: measured after the client_credentials runs, the refresh grants would
 * pay for those documents too.
 */
export const MEASURE_ORDER = ['refresh_token', 'client_credentials'];
export const SIDES = ['edge', 'oidc'];

const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * Everything both sides need: on ours a custom-connection client and
 * `chains + spares` confidential clients, each authorized once (PKCE, login
 * and consent pages, code grant, offline_access) by one new user, for its
 * refresh token (one client per chain: each chain its own grant); then
 * oidc-provider as its own process, with as many clients (stored through its
 * adapter) and the same user, each client authorized once through its
 * authorization code flow (devInteractions).
 */
export async function prepareTokenEndpoint({ t, cleanup, work, edge, chains, spares, log }) {
  const count = chains + spares;
  const started = performance.now();

  // Ours.
  const s = await seed(t.grpc, REDIRECT_URI);
  const tenantId = s.organisations[0].id;
  const custom = await registerClient(t.grpc, {
    redirectUris: [],
    customConnection: { tenantId, userId: s.user.id, scopes: CC_SCOPE.split(' '), grantId: '' },
  });
  const ua = new UserAgent();
  const ours = [];
  for (let i = 0; i < count; i++) {
    const client = await registerClient(t.grpc, { redirectUris: [REDIRECT_URI], type: ClientType.CLIENT_TYPE_CONFIDENTIAL });
    const tokens = await codeFlow(t.issuer, client, (url) =>
      authorizeInteractively(ua, url, { email: s.user.email, password: s.user.password, organisations: [tenantId] }).then((r) => r.callback),
    );
    if (!tokens.refresh_token) throw new Error(`The edge issued no refresh token to ${client.clientId} (scope ${tokens.scope})`);
    ours.push({ label: client.clientId, authorization: basic(client.clientId, client.clientSecret), refreshToken: tokens.refresh_token });
  }
  const edgeS = (performance.now() - started) / 1000;
  log(`edge: a custom-connection client, and ${count} clients each authorized once (offline_access) by one user, in ${edgeS.toFixed(1)} s`);

  // oidc-provider.
  const t1 = performance.now();
  const secret = () => randomBytes(32).toString('base64url');
  const rtClients = Array.from({ length: count }, (_, i) => ({
    client_id: `bench-refresh-${String(i + 1).padStart(2, '0')}`,
    client_secret: secret(),
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }));
  const ccClient = {
    client_id: 'bench-client-credentials',
    client_secret: secret(),
    redirect_uris: [],
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
  const account = { sub: s.user.id, name: s.user.name, email: s.user.email };
  const server = await startOidcProvider({ t, cleanup, work, clients: [ccClient, ...rtClients], account });
  const ua2 = new UserAgent();
  const theirs = [];
  for (const c of rtClients) {
    const tokens = await codeFlow(server.issuer, { clientId: c.client_id, clientSecret: c.client_secret, idTokenAlg: 'ES256' }, (url) => devInteractions(ua2, url, account.sub));
    if (!tokens.refresh_token) throw new Error(`oidc-provider issued no refresh token to ${c.client_id} (scope ${tokens.scope})`);
    theirs.push({ label: c.client_id, authorization: basic(c.client_id, c.client_secret), refreshToken: tokens.refresh_token });
  }
  const oidcS = (performance.now() - t1) / 1000;
  log(`oidc-provider ${server.version} on ${server.address} (database ${OIDC_DATABASE}), started, ${count} clients each authorized once (devInteractions), in ${oidcS.toFixed(1)} s`);

  return {
    server,
    version: server.version,
    prepare: { edgeS, oidcS, clients: count },
    sides: {
      edge: {
        url: `${edge}/token`,
        clientCredentials: { authorization: basic(custom.clientId, custom.clientSecret) },
        chains: ours.slice(0, chains),
        spares: ours.slice(chains),
      },
      oidc: {
        url: `${server.issuer}/token`,
        clientCredentials: { authorization: basic(ccClient.client_id, ccClient.client_secret) },
        chains: theirs.slice(0, chains),
        spares: theirs.slice(chains),
      },
    },
  };
}

/** One authorization code flow (PKCE, state, nonce; client_secret_basic) with openid-client; `authorize` plays the browser. */
async function codeFlow(issuer, client, authorize) {
  const config = await oidc.discovery(
    new URL(issuer),
    client.clientId,
    { client_secret: client.clientSecret, ...(client.idTokenAlg ? { id_token_signed_response_alg: client.idTokenAlg } : {}) },
    oidc.ClientSecretBasic(client.clientSecret),
    { execute: [oidc.allowInsecureRequests] },
  );
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    // oidc-provider honours offline_access only with prompt=consent (OpenID Connect Core §11); the edge shows its consent page anyway.
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const callback = await authorize(url);
  return oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
}

/** oidc-provider's devInteractions pages: sign in as `accountId` (any password), then confirm the consent. Returns the callback URL. */
async function devInteractions(ua, url, accountId) {
  let { res, url: at, left } = await ua.follow(url, url.origin);
  for (let step = 0; step < 4 && !left; step++) {
    const page = await res.text();
    const prompt = inputValue(page, 'prompt');
    if (res.status !== 200 || !at.pathname.startsWith('/interaction/') || !prompt) throw new Error(`oidc-provider: expected an interaction page, got ${res.status} ${at.pathname}: ${page.slice(0, 300)}`);
    const form = new URLSearchParams({ prompt, ...(prompt === 'login' ? { login: accountId, password: 'any' } : {}) });
    ({ res, url: at, left } = await ua.follow(at, url.origin, { form }));
  }
  if (!left) throw new Error(`oidc-provider: no redirect back to the app after the interactions (${res.status} ${at.pathname})`);
  return left;
}

/** bench/oidc-provider-server.mjs as its own process, its adapter on the platform's FerretDB (database bench_oidc_provider). */
export async function startOidcProvider({ t, cleanup, work, clients, account }) {
  const { proc, ready } = await startReferenceProcess({
    name: 'oidc-provider',
    script: 'oidc-provider-server.mjs',
    env: { BENCH_MONGO_URL: t.mongo.url, BENCH_MONGO_DB: OIDC_DATABASE, BENCH_OIDC_CLIENTS: JSON.stringify(clients), BENCH_OIDC_ACCOUNT: JSON.stringify(account) },
    readyMsg: 'oidc-provider ready',
    cleanup,
    work,
  });
  return { proc, address: ready['address'], issuer: ready['issuer'], version: ready['version'] };
}

/**
 * Before measuring: each side answers 200 to each grant with an access token,
 * a refresh grant also with a new refresh token (the chain goes on with it);
 * the edge's access token is a JWT with typ at+jwt (oidc-provider's is shown).
 */
export async function sanityCheckTokens(sides) {
  const out = {};
  for (const [name, side] of Object.entries(sides)) {
    out[name] = {};
    for (const grant of GRANTS) {
      const chain = side.chains[0];
      const body =
        grant === 'refresh_token' ? new URLSearchParams({ grant_type: grant, refresh_token: chain.refreshToken }) : new URLSearchParams({ grant_type: grant, scope: CC_SCOPE });
      const res = await fetch(side.url, {
        method: 'POST',
        headers: { authorization: grant === 'refresh_token' ? chain.authorization : side.clientCredentials.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`Sanity check: ${name} answered ${res.status} to ${grant}: ${text.slice(0, 300)}`);
      const json = JSON.parse(text);
      if (typeof json.access_token !== 'string') throw new Error(`Sanity check: ${name} gave no access_token for ${grant}: ${text.slice(0, 300)}`);
      if (grant === 'refresh_token') {
        if (typeof json.refresh_token !== 'string' || json.refresh_token === chain.refreshToken) throw new Error(`Sanity check: ${name} did not rotate the refresh token: ${text.slice(0, 300)}`);
        chain.refreshToken = json.refresh_token;
      }
      let header;
      let claims;
      try {
        header = decodeProtectedHeader(json.access_token);
        claims = decodeJwt(json.access_token);
      } catch {
        header = undefined;
      }
      if (name === 'edge' && header?.typ !== 'at+jwt') throw new Error(`Sanity check: the edge's ${grant} access token is not a JWT with typ at+jwt (${JSON.stringify(header)})`);
      out[name][grant] = {
        bytes: Buffer.byteLength(text),
        accessTokenBytes: json.access_token.length,
        alg: header?.alg ?? 'opaque',
        typ: header?.typ ?? '–',
        claims: claims ? Object.keys(claims).sort() : [],
        scope: json.scope ?? '',
        idToken: typeof json.id_token === 'string',
        refreshToken: typeof json.refresh_token === 'string',
      };
    }
  }
  return out;
}

/** One closed-loop run in a worker thread; `side.chains` / `side.spares` move on to the tokens it ended with. */
export async function measureGrant({ side, grant, durationS, warmupS, connections, timeoutMs = 10_000 }) {
  const refresh = grant === 'refresh_token';
  if (refresh && side.chains.length === 0) throw new Error(`No refresh-token chain is left on ${side.url}: nothing to measure`);
  const chains = refresh ? side.chains : Array.from({ length: connections }, () => ({ authorization: side.clientCredentials.authorization }));
  const result = await new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./token-load-worker.mjs', import.meta.url), {
      workerData: { url: side.url, grant, chains, spares: refresh ? side.spares : [], scope: refresh ? '' : CC_SCOPE, warmupS, durationS, timeoutMs },
    });
    let got;
    worker.once('message', (m) => (got = m));
    worker.once('error', reject);
    worker.once('exit', (code) => (got ? resolve(got) : reject(new Error(`The load generator exited (${code}) without a result`))));
  });
  if (refresh) {
    side.chains = result.chains;
    side.spares = result.spares;
  }
  delete result.chains;
  delete result.spares;
  return { ...result, connections: chains.length };
}

/**
 * For each grant, `pairs` pairs of runs, edge and oidc-provider, alternating
 * which goes first. Each pair gives one ratio (edge grants/s ÷ oidc-provider
 * grants/s); the headline is their median.
 */
export async function compareTokenEndpoint({ sides, pairs, connections, durationS, warmupS, processes = {}, log }) {
  const cpu = cpuSampler(processes);
  const out = {};
  for (const grant of MEASURE_ORDER) {
    const runs = [];
    const ratios = [];
    for (let pair = 1; pair <= pairs; pair++) {
      const order = pair % 2 === 1 ? ['edge', 'oidc'] : ['oidc', 'edge'];
      const got = {};
      for (const name of order) {
        const startedAt = new Date().toISOString();
        const before = cpu();
        const m = await measureGrant({ side: sides[name], grant, durationS, warmupS, connections });
        const after = cpu();
        // CPU time of each process over the whole run (warm-up and drain included), per 200 with tokens in it.
        m.cpuMsPerGrant = Object.fromEntries(
          Object.keys(after)
            .filter((p) => p in before)
            .map((p) => [p, m.granted > 0 ? ((after[p] - before[p]) * 1000) / m.granted : NaN]),
        );
        got[name] = m;
        runs.push({ pair, target: name, grant, startedAt, ...m });
        const bad = m.completed - m.ok + m.errors + m.timeouts;
        log(
          `  ${grant} pair ${pair}/${pairs} ${label(name).padEnd(13)}: ${m.rps.toFixed(0).padStart(5)} grants/s, p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms` +
            (bad > 0 ? `, ${m.completed - m.ok} not 200, ${m.errors} errors, ${m.timeouts} timeouts (${m.firstError})` : '') +
            (m.replaced + m.lost > 0 ? `, ${m.replaced} chains took a spare, ${m.lost} lost` : ''),
        );
        if (m.ok === 0) log(`  warning: no 200 from ${label(name)} within ${durationS} s; the run says nothing (lengthen BENCH_TOKEN_DURATION?)`);
      }
      const ratio = got.edge.rps > 0 && got.oidc.rps > 0 ? got.edge.rps / got.oidc.rps : NaN;
      ratios.push(ratio);
      log(`  ${grant} pair ${pair}/${pairs} ratio edge/oidc-provider: ${ratio.toFixed(3)}`);
    }
    const of = (name, key) => median(runs.filter((r) => r.target === name).map((r) => r[key]));
    out[grant] = {
      grant,
      runs,
      ratios,
      medianRatio: median(ratios),
      medians: Object.fromEntries(SIDES.map((n) => [n, { rps: of(n, 'rps'), p50: of(n, 'p50'), p99: of(n, 'p99') }])),
      cpuMsPerGrant: Object.fromEntries(
        SIDES.map((n) => {
          const mine = runs.filter((r) => r.target === n);
          const names = [...new Set(mine.flatMap((r) => Object.keys(r.cpuMsPerGrant)))];
          return [n, Object.fromEntries(names.map((p) => [p, median(mine.map((r) => r.cpuMsPerGrant[p]).filter((v) => Number.isFinite(v)))]))];
        }),
      ),
    };
  }
  return out;
}

export const label = (name) => (name === 'oidc' ? 'oidc-provider' : name);

/**
 * What the grants leave in FerretDB, and how FerretDB finds a document by _id
 * there: the documents each side's token endpoint reads and writes by _id.
 */
export async function tokenState(t) {
  const tokenDb = t.platform.envs.token['LEDGERLY_MONGO_DB']; // "ledgerly_token" with the default prefix
  const client = new MongoClient(t.mongo.url, { serverSelectionTimeoutMS: 2000, retryWrites: false });
  try {
    await client.connect();
    const count = (db, name) => client.db(db).collection(name).countDocuments({});
    const explain = await client.db(tokenDb).collection('refresh_tokens').find({ _id: 'x' }).explain();
    return {
      tokenDb,
      edge: { refreshTokens: await count(tokenDb, 'refresh_tokens'), families: await count(tokenDb, 'token_families'), clients: await count(tokenDb, 'clients') },
      oidc: { refreshTokens: await count(OIDC_DATABASE, 'refresh_token'), grants: await count(OIDC_DATABASE, 'grant'), clients: await count(OIDC_DATABASE, 'client') },
      byIdPlan: JSON.stringify(explain.queryPlanner?.Plan ?? explain.queryPlanner ?? null),
      byIdFilterPushdown: explain.filterPushdown,
    };
  } finally {
    await client.close();
  }
}

/**
 * CPU seconds (user + system) so far of each process, from /proc (Linux);
 * `processes` maps a name to something with a pid (ManagedProcess). Empty
 * where /proc is not there.
 */
export function cpuSampler(processes) {
  let hz = 100;
  try {
    hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) || 100;
  } catch {
    // the usual value
  }
  return () => {
    const out = {};
    for (const [name, p] of Object.entries(processes)) {
      const pid = p?.pid;
      if (!pid) continue;
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        out[name] = (Number(fields[11]) + Number(fields[12])) / hz; // utime + stime
      } catch {
        // not running, or no /proc
      }
    }
    return out;
  };
}
