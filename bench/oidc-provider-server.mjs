#!/usr/bin/env node
// The reference of the token-endpoint benchmark: oidc-provider (node-oidc-provider,
// the version pinned in bench/package.json) with a MongoDB adapter
// (bench/lib/oidc-mongo-adapter.mjs) on the platform's FerretDB, configured
// as close to the edge's token endpoint as it goes:
//   - ES256 signing key (a JWK Set generated at start with jose);
//   - resource indicators, one resource server (indicator
//     urn:ledgerly:accounting, audience `<issuer>/resources` as the edge's
//     tokens have it) with the scopes accounting.settings and
//     accounting.contacts, JWT access tokens (RFC 9068, ES256, 30 min),
//     used by default and also on refresh (defaultResource, useGrantedResource);
//   - client_credentials on; refresh tokens rotated on every use
//     (rotateRefreshToken: true), 60 days; ID tokens ES256, 30 min;
//   - clients stored through the adapter (found in FerretDB on each request,
//     as the token service finds its clients), client_secret_basic;
//   - findAccount reads the account from FerretDB (the token service asks
//     identity for the user on each refresh);
//   - devInteractions (its built-in login and consent pages) for the bench to
//     go through the authorization code flow once per refresh-token chain.
//
// Started by scripts/bench.mjs as its own process, with BENCH_MONGO_URL,
// BENCH_MONGO_DB, BENCH_OIDC_CLIENTS (a JSON array of client metadata) and
// BENCH_OIDC_ACCOUNT (JSON { sub, name, email }). Listens on 127.0.0.1, a free
// port; prints one JSON line {"msg":"oidc-provider ready","address":…,"issuer":…}
// and stops on SIGTERM.
import { exportJWK, generateKeyPair } from 'jose';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';
import { MongoAdapter } from './lib/oidc-mongo-adapter.mjs';

const url = process.env['BENCH_MONGO_URL'];
const database = process.env['BENCH_MONGO_DB'];
const clients = JSON.parse(process.env['BENCH_OIDC_CLIENTS'] ?? '[]');
const account = JSON.parse(process.env['BENCH_OIDC_ACCOUNT'] ?? 'null');
if (!url || !database || !account) {
  console.error('BENCH_MONGO_URL, BENCH_MONGO_DB and BENCH_OIDC_ACCOUNT are required');
  process.exit(2);
}
const version = createRequire(import.meta.url)('oidc-provider/package.json').version;

const SCOPES = 'accounting.settings accounting.contacts';
const ACCESS_TOKEN_TTL = 30 * 60; // as the token service (LEDGERLY_ACCESS_TOKEN_TTL_SECONDS)
const REFRESH_TOKEN_TTL = 60 * 24 * 3600; // LEDGERLY_REFRESH_TOKEN_TTL_SECONDS

const mongo = await MongoAdapter.connect(url, database);
const accounts = MongoAdapter.db.collection('account');
await accounts.replaceOne({ _id: account.sub }, { name: account.name, email: account.email, emailVerified: true }, { upsert: true });
const clientStore = new MongoAdapter('Client');
for (const metadata of clients) await clientStore.upsert(metadata.client_id, metadata);

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const server = createServer();
server.keepAliveTimeout = 5_000; // as the edge (apps/edge/src/service.ts)
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { address, port } = server.address();
const issuer = `http://${address}:${port}`;
// The resource indicator is a URN, not the audience URL: oidc-provider keys
// grants and interactions by it ({ resources: { [indicator]: scope } }), and
// FerretDB refuses field names that contain a '.' (MongoDB accepts them).
const resource = 'urn:ledgerly:accounting';
const audience = `${issuer}/resources`; // the edge's audience (apiAudience in @ledgerly/access)

const provider = new Provider(issuer, {
  adapter: MongoAdapter,
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  async findAccount(_ctx, sub) {
    const doc = await accounts.findOne({ _id: sub });
    if (!doc) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: doc.name, email: doc.email, email_verified: doc.emailVerified };
      },
    };
  },
  claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    id_token_signed_response_alg: 'ES256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return { scope: SCOPES, audience, accessTokenTTL: ACCESS_TOKEN_TTL, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    IdToken: ACCESS_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    Grant: REFRESH_TOKEN_TTL,
    Session: 24 * 3600,
    Interaction: 3600,
    AuthorizationCode: 60,
  },
});
let serverErrors = 0;
provider.on('server_error', (_ctx, err) => {
  serverErrors++;
  console.error(JSON.stringify({ msg: 'server_error', error: String(err?.stack ?? err), serverErrors }));
});
server.on('request', provider.callback());
console.log(JSON.stringify({ msg: 'oidc-provider ready', address: `${address}:${port}`, issuer, resource, audience, version, clients: clients.length }));

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  server.close(() => void mongo.close().finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
