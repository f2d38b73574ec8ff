// The platform under test and its data, as a third-party app would see it:
// real processes (FerretDB, NATS, the five services) from @ledgerly/testkit,
// a user who belongs to 1 + N organisations, one confidential client, and one
// OAuth 2.1 authorization (PKCE, login and consent pages, code grant with
// openid-client) connecting all of them at once.
import { createClient, loadTls } from '@ledgerly/chassis';
import { ManagedProcess, parseJsonLine } from '@ledgerly/devstack';
import { AccountingServiceDefinition } from '@ledgerly/proto/accounting/v1/accounting';
import { authorizeInteractively, seed, startTestPlatform, UserAgent } from '@ledgerly/testkit';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as oidc from 'openid-client';

const ROLE_ADVISER = 1; // identity.v1 Role
export const SCOPE = 'openid profile email offline_access accounting.settings accounting.contacts';
export const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

/**
 * Starts the platform with its data under a fresh temporary directory (removed
 * at cleanup, even when the platform fails half-way through starting).
 */
export async function startPlatform(cleanup, log) {
  const work = mkdtempSync(join(tmpdir(), 'ledgerly-bench-'));
  if (!process.env['BENCH_KEEP_DATA']) cleanup.addDir(work);
  else {
    // The testkit removes its own directory (the services' logs and data, under ours) at stop unless told not to.
    process.env['LEDGERLY_KEEP_TEST_DATA'] = '1';
    cleanup.add('keep data', () => log(`Data and logs kept in ${work}`));
  }
  // startTestPlatform makes its own directory with os.tmpdir(); pointing
  // TMPDIR into ours means nothing is left behind if it throws while starting.
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = work;
  let t;
  try {
    // Log level info, as deployed: the edge writes one access-log line per request.
    t = await startTestPlatform({ logLevel: 'info' });
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
  cleanup.add('platform', () => t.stop());
  return { t, work };
}

/**
 * A user in the seed's organisation (for throughput) plus `extraOrgs` more
 * (one per revocation round, with or without a restart before it), a client,
 * and one access token connected to all of them. Returns the connection id of
 * each organisation.
 */
export async function connectApp(t, { extraOrgs, log }) {
  const s = await seed(t.grpc, REDIRECT_URI);
  const throughputOrg = s.organisations[0].id;
  const extra = [];
  for (let i = 0; i < extraOrgs; i++) {
    const { organisation } = await t.grpc.identity.createOrganisation({ name: `Bench Revocation ${String(i + 1).padStart(3, '0')}` });
    await t.grpc.identity.addMembership({ organisationId: organisation.id, userId: s.user.id, role: ROLE_ADVISER });
    extra.push(organisation.id);
  }
  log(`Seeded a user in ${extraOrgs + 2} organisations and a confidential client`);

  const config = await oidc.discovery(new URL(t.issuer), s.client.clientId, s.client.clientSecret, undefined, {
    execute: [oidc.allowInsecureRequests],
  });
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const { callback } = await authorizeInteractively(new UserAgent(), url, {
    email: s.user.email,
    password: s.user.password,
    organisations: [throughputOrg, ...extra],
  });
  const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
  const accessToken = tokens.access_token;

  const edge = `http://${t.platform.addresses.edge}`;
  const res = await fetch(`${edge}/connections`, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' } });
  if (res.status !== 200) throw new Error(`GET /connections: ${res.status} ${await res.text()}`);
  const byTenant = new Map((await res.json()).map((c) => [c.tenantId, c.id]));
  for (const id of [throughputOrg, ...extra]) if (!byTenant.has(id)) throw new Error(`No connection to ${id} after consent`);
  log(`Authorized one app (PKCE, login + consent pages, code grant) for ${byTenant.size} organisations`);
  return {
    edge,
    accessToken,
    userId: s.user.id,
    clientId: s.client.clientId,
    clientSecret: s.client.clientSecret,
    throughputOrg,
    revocationTenants: extra.map((tenantId) => ({ tenantId, connectionId: byTenant.get(tenantId) })),
  };
}

/** Creates `count` contacts in the organisation through the API (PUT /api.xro/2.0/Contacts, at most 500 a call). */
export async function seedContacts(edge, accessToken, tenantId, count) {
  const all = Array.from({ length: count }, (_, i) => {
    const n = String(i + 1).padStart(3, '0');
    return {
      Name: `Bench Contact ${n} Limited`,
      FirstName: 'Aroha',
      LastName: `Ngata ${n}`,
      EmailAddress: `accounts${n}@example.com`,
      AccountNumber: `ACC-${n}`,
      Phones: [{ PhoneType: 'MOBILE', PhoneNumber: `021 555 0${n}` }],
      Addresses: [{ AddressType: 'STREET', AddressLine1: `${i + 1} Queen Street`, City: 'Auckland', PostalCode: '1010', Country: 'New Zealand' }],
    };
  });
  for (let from = 0; from < count; from += 500) {
    const Contacts = all.slice(from, from + 500);
    const res = await fetch(`${edge}/api.xro/2.0/Contacts`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${accessToken}`, 'xero-tenant-id': tenantId, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ Contacts }),
    });
    if (res.status !== 200) throw new Error(`PUT /api.xro/2.0/Contacts: ${res.status} ${await res.text()}`);
    const body = await res.json();
    if (body.Contacts?.length !== Contacts.length) throw new Error(`PUT /api.xro/2.0/Contacts created ${body.Contacts?.length} contacts, not ${Contacts.length}`);
  }
}

/**
 * A reference server (a script in bench/) as its own process: started with
 * `env`, ready when it logs `readyMsg` (its JSON line is returned), stopped
 * at cleanup.
 */
export async function startReferenceProcess({ name, script, env, readyMsg, cleanup, work }) {
  const proc = new ManagedProcess({
    name,
    command: process.execPath,
    args: [fileURLToPath(new URL(`../${script}`, import.meta.url))],
    env,
    logFile: join(work, 'logs', `${name}.log`),
    readyWhen: (line) => {
      const record = parseJsonLine(line);
      return record?.['msg'] === readyMsg ? record : undefined;
    },
  });
  cleanup.add(name, async () => {
    await proc.stop();
    proc.closeLog();
  });
  return { proc, ready: await proc.start() };
}

/** The bare koa + mongodb reference (bench/bare-server.mjs) as its own process, on the accounting service's database. */
export async function startBareServer(t, cleanup, work) {
  const database = t.platform.envs.accounting['LEDGERLY_MONGO_DB']; // "ledgerly_accounting" with the default prefix
  const { proc, ready } = await startReferenceProcess({
    name: 'bare',
    script: 'bare-server.mjs',
    env: { BENCH_MONGO_URL: t.mongo.url, BENCH_MONGO_DB: database },
    readyMsg: 'Bare server ready',
    cleanup,
    work,
  });
  return { url: `http://${ready['address']}`, database, proc };
}

/**
 * A gRPC client of the accounting service that calls it as the edge does:
 * mutual TLS with the edge's own certificate (t.platform.envs.edge). The
 * testkit's t.grpc clients use the operator certificate instead, and every
 * operator call is audited — an insert into the service's audit_log in
 * FerretDB and a log line (libs/chassis/src/grpc-server.ts) — work the edge's
 * calls never cause; measured calls must not pay for it.
 */
export function accountingAsEdge(t, cleanup) {
  const env = t.platform.envs.edge;
  const tls = loadTls({ caFile: env['LEDGERLY_TLS_CA'], certFile: env['LEDGERLY_TLS_CERT'], keyFile: env['LEDGERLY_TLS_KEY'] });
  const client = createClient(AccountingServiceDefinition, t.platform.addresses.accounting, { tls });
  cleanup.add('accounting client (edge certificate)', () => client.close());
  return client;
}
