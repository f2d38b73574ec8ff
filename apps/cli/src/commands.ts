import { parseRole, roleName } from '@ledgerly/access';
import { createClient, loadTls, type PromiseClient, type TlsFiles } from '@ledgerly/chassis';
import { ensurePki, SERVICE_IDENTITIES } from '@ledgerly/pki';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { IdentityServiceDefinition, type Membership } from '@ledgerly/proto/identity/v1/identity';
import { ClientType, TokenServiceDefinition, type Client } from '@ledgerly/proto/token/v1/token';
import { readFileSync } from 'node:fs';
import { seedDemo } from './demo.js';

/** Where the services are: the same keys and defaults as the services themselves (npm start). */
export interface Addresses {
  identity: string;
  consent: string;
  token: string;
  /** The operator's certificate: every call is authenticated (mutual TLS) and audited. */
  tls: TlsFiles;
}

/** Where `npm start` says its services are (.data/platform.json), if it has run here. */
function startedPlatform(): Partial<Record<'identity' | 'consent' | 'token', string>> {
  try {
    const { addresses } = JSON.parse(readFileSync('.data/platform.json', 'utf8')) as { addresses?: Record<string, unknown> };
    return Object.fromEntries(Object.entries(addresses ?? {}).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  } catch {
    return {};
  }
}

export function addressesFrom(env: Record<string, string | undefined>): Addresses {
  const started = startedPlatform();
  return {
    identity: env['LEDGERLY_IDENTITY_ADDR'] || started.identity || '127.0.0.1:50051',
    consent: env['LEDGERLY_CONSENT_ADDR'] || started.consent || '127.0.0.1:50052',
    token: env['LEDGERLY_TOKEN_ADDR'] || started.token || '127.0.0.1:50053',
    tls: {
      caFile: env['LEDGERLY_TLS_CA'] || '.data/pki/ca.crt',
      certFile: env['LEDGERLY_TLS_CERT'] || '.data/pki/operator-local.crt',
      keyFile: env['LEDGERLY_TLS_KEY'] || '.data/pki/operator-local.key',
    },
  };
}

export interface Services {
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  token: PromiseClient<typeof TokenServiceDefinition>;
  close(): void;
}

export function connect(addresses: Addresses): Services {
  const tls = loadTls(addresses.tls);
  if (!tls.identity.startsWith('operator:')) throw new Error(`The certificate in ${addresses.tls.certFile} is "${tls.identity}", not an operator's`);
  const identity = createClient(IdentityServiceDefinition, addresses.identity, { deadlineMs: 10_000, tls });
  const consent = createClient(ConsentServiceDefinition, addresses.consent, { deadlineMs: 10_000, tls });
  const token = createClient(TokenServiceDefinition, addresses.token, { deadlineMs: 10_000, tls });
  return { identity, consent, token, close: () => [identity, consent, token].forEach((c) => c.close()) };
}

/** A usage mistake: printed with the command's help, exit code 2. */
export class UsageError extends Error {}

export type Options = Record<string, string | boolean | Array<string | boolean> | undefined>;

export interface Command {
  /** e.g. ["user", "create"] */
  words: [string, string];
  summary: string;
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; required?: boolean; description: string }>;
  /** Commands that work offline (pki) do not connect to the services. */
  offline?: boolean;
  run(services: Services, options: Options): Promise<unknown>;
}

/** A secret piped in (`echo … | npm run cli -- … --password -`), without its final newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

const str = (options: Options, name: string): string => {
  const value = options[name];
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`--${name} is required`);
  return value;
};

function membershipJson(m: Membership) {
  return {
    organisation_id: m.organisationId,
    organisation_name: m.organisationName,
    user_id: m.userId,
    role: roleName(m.role),
    created_at: m.createdAt?.toISOString(),
    updated_at: m.updatedAt?.toISOString(),
  };
}

function clientJson(c: Client, secret?: string) {
  return {
    client_id: c.clientId,
    ...(secret ? { client_secret: secret } : {}),
    name: c.name,
    type: c.type === ClientType.CLIENT_TYPE_PUBLIC ? 'public' : 'confidential',
    redirect_uris: c.redirectUris,
    token_endpoint_auth_method: c.tokenEndpointAuthMethod,
    grant_types: c.grantTypes,
    // PKCE is a property of the code flow: a client_credentials-only client has none.
    ...(c.grantTypes.includes('authorization_code') ? { pkce: c.pkceRequired ? 'required' : 'optional' } : {}),
    ...(c.requirePushedAuthorizationRequests ? { require_pushed_authorization_requests: true } : {}),
    ...(c.postLogoutRedirectUris.length > 0 ? { post_logout_redirect_uris: c.postLogoutRedirectUris } : {}),
    ...(c.customConnection ? { custom_connection: { tenant_id: c.customConnection.tenantId, user_id: c.customConnection.userId, scope: c.customConnection.scopes.join(' ') } } : {}),
    created_at: c.createdAt?.toISOString(),
    ...(c.suspendedAt ? { suspended_at: c.suspendedAt.toISOString() } : {}),
  };
}

export const COMMANDS: Command[] = [
  {
    words: ['user', 'create'],
    summary: 'Create a user with a password (argon2id-hashed by the identity service)',
    options: {
      email: { type: 'string', required: true, description: 'Email address (unique)' },
      password: { type: 'string', required: true, description: 'Password, 8 to 256 characters; "-" reads it from stdin (keeps it out of shell history and ps)' },
      name: { type: 'string', required: true, description: 'Display name' },
    },
    run: async ({ identity }, o) => {
      const fromStdin = str(o, 'password') === '-';
      if (!fromStdin) process.stderr.write('Warning: a password given on the command line is kept in shell history and visible in ps; prefer --password - (stdin)\n');
      const password = fromStdin ? await readStdin() : str(o, 'password');
      const { user } = await identity.createUser({ email: str(o, 'email'), password, name: str(o, 'name') });
      return { id: user!.id, email: user!.email, name: user!.name, created_at: user!.createdAt?.toISOString() };
    },
  },
  {
    words: ['user', 'get'],
    summary: 'Show a user and their memberships',
    options: { id: { type: 'string', required: true, description: 'User id' } },
    run: async ({ identity }, o) => {
      const { user } = await identity.getUser({ userId: str(o, 'id') });
      const { memberships } = await identity.listMemberships({ userId: user!.id });
      return { id: user!.id, email: user!.email, name: user!.name, memberships: memberships.map(membershipJson) };
    },
  },
  {
    words: ['org', 'create'],
    summary: 'Create an organisation',
    options: {
      name: { type: 'string', required: true, description: 'Organisation name' },
      country: { type: 'string', description: 'ISO 3166-1 alpha-2 country code (default NZ)' },
      currency: { type: 'string', description: 'ISO 4217 base currency (default NZD)' },
    },
    run: async ({ identity }, o) => {
      const { organisation } = await identity.createOrganisation({
        name: str(o, 'name'),
        countryCode: typeof o['country'] === 'string' ? o['country'] : '',
        baseCurrency: typeof o['currency'] === 'string' ? o['currency'] : '',
      });
      const org = organisation!;
      return { id: org.id, name: org.name, country_code: org.countryCode, base_currency: org.baseCurrency, created_at: org.createdAt?.toISOString() };
    },
  },
  {
    words: ['member', 'add'],
    summary: "Add a user to an organisation, or change their role there",
    options: {
      org: { type: 'string', required: true, description: 'Organisation id' },
      user: { type: 'string', required: true, description: 'User id' },
      role: { type: 'string', required: true, description: 'adviser, standard or readonly' },
    },
    run: async ({ identity }, o) => {
      const role = parseRole(str(o, 'role'));
      if (role === undefined) throw new UsageError('--role must be adviser, standard or readonly');
      const { membership } = await identity.addMembership({ organisationId: str(o, 'org'), userId: str(o, 'user'), role });
      return membershipJson(membership!);
    },
  },
  {
    words: ['client', 'create'],
    summary: 'Register an app (OAuth client); prints client_id and, for confidential clients, client_secret (shown once)',
    options: {
      name: { type: 'string', required: true, description: 'The app name users see on the consent page' },
      'redirect-uri': { type: 'string', multiple: true, description: 'Redirect URI (repeat for several); required unless --custom-connection-org' },
      public: { type: 'boolean', description: 'A public client (native or browser app): no secret, PKCE only' },
      pkce: { type: 'string', description: 'required (default) or optional: a confidential client whose SDK sends no PKCE (state then protects the flow)' },
      'auth-method': { type: 'string', description: 'client_secret_basic (default), client_secret_post or private_key_jwt' },
      jwks: { type: 'string', description: 'private_key_jwt: the file of the app\'s public JWK Set (JSON)' },
      'require-par': { type: 'boolean', description: 'Authorization requests must be pushed first (RFC 9126 PAR)' },
      'post-logout-redirect-uri': { type: 'string', multiple: true, description: 'Where RP-initiated logout may return to (repeat for several)' },
      'custom-connection-org': { type: 'string', description: 'A custom connection (client_credentials) to this organisation id, acting as --custom-connection-user' },
      'custom-connection-user': { type: 'string', description: 'The user (a member of the organisation) whose permissions the custom connection has' },
      scope: { type: 'string', description: 'The custom connection\'s scopes, space-separated' },
    },
    run: async ({ token }, o) => {
      const list = (name: string) => {
        const v = o[name];
        return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
      };
      const pkce = typeof o['pkce'] === 'string' ? o['pkce'] : 'required';
      if (pkce !== 'required' && pkce !== 'optional') throw new UsageError('--pkce must be required or optional');
      const org = typeof o['custom-connection-org'] === 'string' ? o['custom-connection-org'] : '';
      const user = typeof o['custom-connection-user'] === 'string' ? o['custom-connection-user'] : '';
      if (Boolean(org) !== Boolean(user)) throw new UsageError('--custom-connection-org and --custom-connection-user go together');
      const scopes = typeof o['scope'] === 'string' ? o['scope'].split(' ').filter(Boolean) : [];
      if (org && scopes.length === 0) throw new UsageError('A custom connection needs --scope');
      if (!org && list('redirect-uri').length === 0) throw new UsageError('--redirect-uri is required (or --custom-connection-org)');
      const jwksFile = typeof o['jwks'] === 'string' ? o['jwks'] : '';
      const { client, clientSecret } = await token.createClient({
        name: str(o, 'name'),
        redirectUris: list('redirect-uri'),
        type: o['public'] === true ? ClientType.CLIENT_TYPE_PUBLIC : ClientType.CLIENT_TYPE_CONFIDENTIAL,
        tokenEndpointAuthMethod: typeof o['auth-method'] === 'string' ? o['auth-method'] : '',
        pkceOptional: pkce === 'optional',
        requirePushedAuthorizationRequests: o['require-par'] === true,
        jwksJson: jwksFile ? readFileSync(jwksFile, 'utf8') : '',
        postLogoutRedirectUris: list('post-logout-redirect-uri'),
        ...(org ? { customConnection: { tenantId: org, userId: user, scopes, grantId: '' } } : {}),
      });
      return clientJson(client!, clientSecret);
    },
  },
  {
    words: ['client', 'get'],
    summary: 'Show a registered app',
    options: { id: { type: 'string', required: true, description: 'client_id' } },
    run: async ({ token }, o) => clientJson((await token.getClient({ clientId: str(o, 'id') })).client!),
  },
  {
    words: ['connection', 'list'],
    summary: "List the organisations a user has connected an app to",
    options: {
      user: { type: 'string', required: true, description: 'User id' },
      client: { type: 'string', required: true, description: 'client_id' },
    },
    run: async ({ consent }, o) => {
      const { connections } = await consent.listConnections({ userId: str(o, 'user'), clientId: str(o, 'client') });
      return connections.map((c) => ({
        id: c.id,
        tenant_id: c.tenantId,
        tenant_name: c.tenantName,
        auth_event_id: c.authEventId,
        created_at: c.createdAt?.toISOString(),
      }));
    },
  },
  {
    words: ['connection', 'revoke'],
    summary: "Disconnect an app from one organisation on a user's behalf; every service refuses it there at once",
    options: {
      id: { type: 'string', required: true, description: 'Connection id' },
      user: { type: 'string', required: true, description: 'User id' },
      client: { type: 'string', required: true, description: 'client_id' },
    },
    run: async ({ consent }, o) => {
      const { connection } = await consent.revokeConnection({ connectionId: str(o, 'id'), userId: str(o, 'user'), clientId: str(o, 'client') });
      return { id: connection!.id, tenant_id: connection!.tenantId, revoked_at: connection!.revokedAt?.toISOString() };
    },
  },
  {
    words: ['demo', 'seed'],
    summary: 'Create the demo user, organisations and example-app client once (npm start runs this)',
    options: {
      state: { type: 'string', required: true, description: 'File that remembers what was created (kept under .data/)' },
      'redirect-uri': { type: 'string', multiple: true, required: true, description: "The example app's redirect URI" },
    },
    run: async (services, o) => {
      const uris = o['redirect-uri'];
      return seedDemo(services, str(o, 'state'), Array.isArray(uris) ? uris.map(String) : []);
    },
  },
  {
    words: ['user', 'disable'],
    summary: 'Stop a user: no sign-in, sessions ended, every token issued for them refused everywhere at once',
    options: { id: { type: 'string', required: true, description: 'User id' } },
    run: async ({ identity }, o) => {
      const { user } = await identity.disableUser({ userId: str(o, 'id') });
      return { id: user!.id, disabled: user!.disabled, disabled_at: user!.disabledAt?.toISOString() };
    },
  },
  {
    words: ['user', 'enable'],
    summary: 'Let a disabled user sign in again (tokens issued before they were disabled stay refused)',
    options: { id: { type: 'string', required: true, description: 'User id' } },
    run: async ({ identity }, o) => {
      const { user } = await identity.enableUser({ userId: str(o, 'id') });
      return { id: user!.id, disabled: user!.disabled };
    },
  },
  {
    words: ['client', 'suspend'],
    summary: "The kill switch for an app: all its tokens refused everywhere at once, no new ones issued",
    options: { id: { type: 'string', required: true, description: 'client_id' } },
    run: async ({ token }, o) => clientJson((await token.suspendClient({ clientId: str(o, 'id') })).client!),
  },
  {
    words: ['client', 'reinstate'],
    summary: 'Lift a suspension (tokens issued before it stay refused)',
    options: { id: { type: 'string', required: true, description: 'client_id' } },
    run: async ({ token }, o) => clientJson((await token.reinstateClient({ clientId: str(o, 'id') })).client!),
  },
  {
    words: ['grant', 'revoke'],
    summary: "Withdraw a user's whole authorization of an app: every organisation, token and refresh token",
    options: {
      user: { type: 'string', required: true, description: 'User id' },
      client: { type: 'string', required: true, description: 'client_id' },
    },
    run: async ({ consent }, o) => {
      const { grant } = await consent.revokeGrant({ userId: str(o, 'user'), clientId: str(o, 'client') });
      return { id: grant!.id, user_id: grant!.userId, client_id: grant!.clientId, revoked_at: grant!.revokedAt?.toISOString() };
    },
  },
  {
    words: ['key', 'rotate'],
    summary: 'Sign tokens with a new key from now on; older keys stay published until their tokens expire',
    options: {},
    run: async ({ token }) => {
      const { keyId, retiredKeyIds } = await token.rotateSigningKey({});
      return { key_id: keyId, still_published: retiredKeyIds };
    },
  },
  {
    words: ['pki', 'init'],
    summary: 'Create the development CA and the certificates of the services and of an operator (idempotent)',
    offline: true,
    options: {
      dir: { type: 'string', required: true, description: 'Directory for ca.crt, <name>.crt and <name>.key' },
      operator: { type: 'string', description: 'Operator name for operator:<name> (default: local)' },
      host: { type: 'string', multiple: true, description: 'Extra host name the services answer as (repeat)' },
    },
    run: async (_services, o) => {
      const operator = `operator:${typeof o['operator'] === 'string' ? o['operator'] : 'local'}`;
      const hosts = Array.isArray(o['host']) ? o['host'].map(String) : [];
      const creds = await ensurePki(str(o, 'dir'), [...SERVICE_IDENTITIES, operator], { hosts });
      return Object.fromEntries(Object.entries(creds).map(([name, c]) => [name, { cert: c.certFile, key: c.keyFile }]));
    },
  },
];
