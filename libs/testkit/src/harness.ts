import { createClient, loadTls, type PromiseClient } from '@ledgerly/chassis';
import { startFerretDB, startNats, startPlatform, type InfraProcess, type Platform, type PlatformOptions } from '@ledgerly/devstack';
import { AccountingServiceDefinition } from '@ledgerly/proto/accounting/v1/accounting';
import { ConsentServiceDefinition } from '@ledgerly/proto/consent/v1/consent';
import { IdentityServiceDefinition, Role } from '@ledgerly/proto/identity/v1/identity';
import { ClientType, TokenServiceDefinition, type CreateClientRequest } from '@ledgerly/proto/token/v1/token';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Grpc {
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  consent: PromiseClient<typeof ConsentServiceDefinition>;
  token: PromiseClient<typeof TokenServiceDefinition>;
  accounting: PromiseClient<typeof AccountingServiceDefinition>;
}

export interface TestPlatform {
  readonly dir: string;
  readonly mongo: InfraProcess;
  readonly nats: InfraProcess;
  readonly platform: Platform;
  readonly issuer: string;
  /** Direct gRPC clients, as internal tools use them. */
  readonly grpc: Grpc;
  stop(): Promise<void>;
}

/**
 * The whole platform as real processes on its own FerretDB and NATS, on free
 * loopback ports, with data in a temporary directory removed by stop().
 */
export async function startTestPlatform(options: Partial<Pick<PlatformOptions, 'env' | 'logLevel'>> = {}): Promise<TestPlatform> {
  const dir = mkdtempSync(join(tmpdir(), 'ledgerly-e2e-'));
  const mongo = await startFerretDB({ dataDir: join(dir, 'ferretdb'), logFile: join(dir, 'logs', 'ferretdb.log') });
  const nats = await startNats({ dataDir: join(dir, 'nats'), logFile: join(dir, 'logs', 'nats.log') }).catch(async (err: unknown) => {
    await mongo.process.stop();
    throw err;
  });
  let platform: Platform;
  try {
    platform = await startPlatform({ mongoUrl: mongo.url, natsUrl: nats.url, logDir: join(dir, 'logs'), pkiDir: join(dir, 'pki'), ...options });
  } catch (err) {
    await nats.process.stop();
    await mongo.process.stop();
    throw err;
  }
  // Direct gRPC calls, as an internal tool: over mutual TLS with an operator certificate.
  const tls = loadTls(platform.operator);
  const grpc: Grpc = {
    identity: createClient(IdentityServiceDefinition, platform.addresses.identity, { tls }),
    consent: createClient(ConsentServiceDefinition, platform.addresses.consent, { tls }),
    token: createClient(TokenServiceDefinition, platform.addresses.token, { tls }),
    accounting: createClient(AccountingServiceDefinition, platform.addresses.accounting, { tls }),
  };
  return {
    dir,
    mongo,
    nats,
    platform,
    issuer: platform.issuer,
    grpc,
    stop: async () => {
      for (const c of Object.values(grpc)) c.close();
      await platform.stop();
      await nats.process.stop();
      await mongo.process.stop();
      for (const p of [nats.process, mongo.process]) p.closeLog();
      if (!process.env['LEDGERLY_KEEP_TEST_DATA']) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Seed {
  user: { id: string; email: string; password: string; name: string };
  /** Two organisations: the user is an adviser in the first, read-only in the second. */
  organisations: [{ id: string; name: string }, { id: string; name: string }];
  client: { clientId: string; clientSecret: string; redirectUri: string; name: string };
}

let counter = 0;

/** A user who belongs to two organisations, and a confidential client, created over gRPC. */
export async function seed(
  grpc: Grpc,
  redirectUri = 'http://127.0.0.1:8765/callback',
  roles: [Role, Role] = [Role.ROLE_ADVISER, Role.ROLE_READONLY],
): Promise<Seed> {
  const n = `${Date.now()}-${++counter}`;
  const password = `correct horse ${n}`;
  const { user } = await grpc.identity.createUser({ email: `owner-${n}@example.com`, password, name: 'Olive Owner' });
  const orgs: Array<{ id: string; name: string }> = [];
  for (const [i, name] of [`Kauri Consulting ${n}`, `Totara Trading ${n}`].entries()) {
    const { organisation } = await grpc.identity.createOrganisation({ name });
    await grpc.identity.addMembership({ organisationId: organisation!.id, userId: user!.id, role: roles[i]! });
    orgs.push({ id: organisation!.id, name });
  }
  const { client, clientSecret } = await grpc.token.createClient({
    name: `Payroll Test ${n}`,
    redirectUris: [redirectUri],
    type: ClientType.CLIENT_TYPE_CONFIDENTIAL,
  });
  return {
    user: { id: user!.id, email: user!.email, password, name: user!.name },
    organisations: [orgs[0]!, orgs[1]!],
    client: { clientId: client!.clientId, clientSecret, redirectUri, name: client!.name },
  };
}

export interface RegisteredClient {
  clientId: string;
  /** Empty for public and private_key_jwt clients. */
  clientSecret: string;
  redirectUri: string;
  name: string;
}

/** Registers a client over gRPC (as the CLI does), with any of the registration options. */
export async function registerClient(grpc: Grpc, request: Partial<CreateClientRequest> = {}): Promise<RegisteredClient> {
  const n = `${Date.now()}-${++counter}`;
  const redirectUri = request.redirectUris?.[0] ?? 'http://127.0.0.1:8765/callback';
  const { client, clientSecret } = await grpc.token.createClient({
    name: `Test App ${n}`,
    redirectUris: [redirectUri],
    type: ClientType.CLIENT_TYPE_CONFIDENTIAL,
    tokenEndpointAuthMethod: '',
    pkceOptional: false,
    requirePushedAuthorizationRequests: false,
    jwksJson: '',
    postLogoutRedirectUris: [],
    ...request,
  });
  return { clientId: client!.clientId, clientSecret, redirectUri, name: client!.name };
}
