import { createClient, loadTls } from '@ledgerly/chassis';
import { IdentityServiceDefinition, Role } from '@ledgerly/proto/identity/v1/identity';
import { startTestPlatform, type TestPlatform } from '@ledgerly/testkit';
import { exportJWK, generateKeyPair } from 'jose';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The admin CLI as an operator runs it: a real process against the real services. */
const entry = fileURLToPath(new URL('../dist/main.js', import.meta.url));
let t: TestPlatform;

function cli(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [entry, ...args],
      {
        ...(cwd ? { cwd } : {}),
        env: {
          PATH: process.env['PATH'] ?? '',
          LEDGERLY_IDENTITY_ADDR: t.platform.addresses.identity,
          LEDGERLY_CONSENT_ADDR: t.platform.addresses.consent,
          LEDGERLY_TOKEN_ADDR: t.platform.addresses.token,
          LEDGERLY_TLS_CA: t.platform.operator.caFile,
          LEDGERLY_TLS_CERT: t.platform.operator.certFile,
          LEDGERLY_TLS_KEY: t.platform.operator.keyFile,
          ...env,
        },
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(async () => {
  await t?.stop();
});

describe('admin CLI', () => {
  it('creates a user, an organisation and a membership, printing JSON', async () => {
    const email = `cli-${Date.now()}@example.com`;
    const user = await cli(['user', 'create', '--email', email, '--password', 'long enough', '--name', 'Casey Cli']);
    expect(user.code).toBe(0);
    const u = JSON.parse(user.stdout) as { id: string; email: string };
    expect(u).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), email, name: 'Casey Cli' });
    expect(user.stdout).not.toContain('long enough');

    const org = await cli(['org', 'create', '--name', 'Rimu Retail', '--country', 'AU', '--currency', 'AUD']);
    expect(org.code).toBe(0);
    const o = JSON.parse(org.stdout) as { id: string };
    expect(o).toMatchObject({ name: 'Rimu Retail', country_code: 'AU', base_currency: 'AUD' });

    const member = await cli(['member', 'add', '--org', o.id, '--user', u.id, '--role', 'readonly']);
    expect(member.code).toBe(0);
    expect(JSON.parse(member.stdout)).toMatchObject({ organisation_id: o.id, organisation_name: 'Rimu Retail', user_id: u.id, role: 'readonly' });

    const shown = JSON.parse((await cli(['user', 'get', '--id', u.id])).stdout) as { memberships: Array<{ role: string }> };
    expect(shown.memberships).toEqual([expect.objectContaining({ role: 'readonly' })]);
  });

  it('reads a password from stdin with --password -', async () => {
    const email = `stdin-${Date.now()}@example.com`;
    const result = await new Promise<{ code: number; stdout: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        [entry, 'user', 'create', '--email', email, '--password', '-', '--name', 'Piped'],
        {
          env: {
            PATH: process.env['PATH'] ?? '',
            LEDGERLY_IDENTITY_ADDR: t.platform.addresses.identity,
            LEDGERLY_TLS_CA: t.platform.operator.caFile,
            LEDGERLY_TLS_CERT: t.platform.operator.certFile,
            LEDGERLY_TLS_KEY: t.platform.operator.keyFile,
          },
        },
        (err, stdout) => resolve({ code: err ? 1 : 0, stdout }),
      );
      child.stdin!.end('piped secret 123\n');
    });
    expect(result.code).toBe(0);
    const user = JSON.parse(result.stdout) as { id: string };
    // Only the edge may check passwords: ask as the edge.
    const env = t.platform.envs.edge;
    const asEdge = createClient(IdentityServiceDefinition, t.platform.addresses.identity, {
      tls: loadTls({ caFile: env['LEDGERLY_TLS_CA']!, certFile: env['LEDGERLY_TLS_CERT']!, keyFile: env['LEDGERLY_TLS_KEY']! }),
    });
    expect((await asEdge.verifyPassword({ email, password: 'piped secret 123' })).user!.id).toBe(user.id);
    asEdge.close();
  });

  it('registers confidential clients with a secret, public ones without', async () => {
    const conf = await cli(['client', 'create', '--name', 'Books Sync', '--redirect-uri', 'https://app.example/cb', '--redirect-uri', 'http://localhost:8080/cb']);
    expect(conf.code).toBe(0);
    const c = JSON.parse(conf.stdout) as Record<string, unknown>;
    expect(c).toMatchObject({ client_id: expect.stringMatching(/^[0-9A-F]{32}$/), type: 'confidential', redirect_uris: ['https://app.example/cb', 'http://localhost:8080/cb'] });
    expect(String(c['client_secret']).length).toBeGreaterThanOrEqual(43);
    const pub = JSON.parse((await cli(['client', 'create', '--name', 'Mobile', '--redirect-uri', 'com.example.app:/cb', '--public'])).stdout) as Record<string, unknown>;
    expect(pub).toMatchObject({ type: 'public', token_endpoint_auth_method: 'none' });
    expect(pub).not.toHaveProperty('client_secret');
  });

  it('registers the authorization-server options: PKCE optional, private_key_jwt with a JWK Set file, PAR required, logout URIs, a custom connection; and rotates the signing key', async () => {
    const optional = JSON.parse((await cli(['client', 'create', '--name', 'Xero SDK App', '--redirect-uri', 'https://sdk.example/cb', '--pkce', 'optional', '--require-par', '--post-logout-redirect-uri', 'https://sdk.example/bye'])).stdout) as Record<string, unknown>;
    expect(optional).toMatchObject({ pkce: 'optional', require_pushed_authorization_requests: true, post_logout_redirect_uris: ['https://sdk.example/bye'] });
    // A public client can never have PKCE optional.
    expect((await cli(['client', 'create', '--name', 'M', '--redirect-uri', 'com.example.app:/cb', '--public', '--pkce', 'optional'])).code).toBe(1);

    const { publicKey } = await generateKeyPair('ES256');
    const jwksFile = join(mkdtempSync(join(tmpdir(), 'cli-jwks-')), 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] }));
    const pkjwt = await cli(['client', 'create', '--name', 'Signed App', '--redirect-uri', 'https://signed.example/cb', '--auth-method', 'private_key_jwt', '--jwks', jwksFile]);
    expect(pkjwt.code).toBe(0);
    const signed = JSON.parse(pkjwt.stdout) as Record<string, unknown>;
    expect(signed).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt' });
    expect(signed).not.toHaveProperty('client_secret');

    const identity = createClient(IdentityServiceDefinition, t.platform.addresses.identity, { tls: loadTls(t.platform.operator) });
    try {
      const { user } = await identity.createUser({ email: `cc-${Date.now()}@example.com`, password: 'long enough pw', name: 'Integrator' });
      const { organisation } = await identity.createOrganisation({ name: `Custom Co ${Date.now()}` });
      await identity.addMembership({ organisationId: organisation!.id, userId: user!.id, role: Role.ROLE_STANDARD });
      const custom = await cli(['client', 'create', '--name', 'Nightly Sync', '--custom-connection-org', organisation!.id, '--custom-connection-user', user!.id, '--scope', 'accounting.contacts.read']);
      expect(custom.code).toBe(0);
      expect(JSON.parse(custom.stdout)).toMatchObject({ grant_types: ['client_credentials'], custom_connection: { tenant_id: organisation!.id, user_id: user!.id, scope: 'accounting.contacts.read' }, client_secret: expect.any(String) });
      expect(JSON.parse(custom.stdout)).not.toHaveProperty('pkce');
      // Not a member: refused.
      const stranger = await cli(['client', 'create', '--name', 'Nope', '--custom-connection-org', randomUUID(), '--custom-connection-user', user!.id, '--scope', 'accounting.contacts.read']);
      expect(stranger.code).toBe(1);
      expect(stranger.stderr).toContain('not a member of that organisation');
      expect(stranger.stderr).not.toContain('INTERNAL');
    } finally {
      identity.close();
    }

    const rotated = await cli(['key', 'rotate']);
    expect(rotated.code).toBe(0);
    const { key_id, still_published } = JSON.parse(rotated.stdout) as { key_id: string; still_published: string[] };
    const jwks = (await (await fetch(new URL('/.well-known/jwks.json', t.issuer))).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([key_id, ...still_published]));
    expect(still_published.length).toBeGreaterThanOrEqual(1);
  });

  it('exits 1 with a clear message when the service refuses', async () => {
    const email = `dup-${Date.now()}@example.com`;
    await cli(['user', 'create', '--email', email, '--password', 'long enough', '--name', 'A']);
    const dup = await cli(['user', 'create', '--email', email.toUpperCase(), '--password', 'long enough', '--name', 'B']);
    expect(dup.code).toBe(1);
    expect(dup.stdout).toBe('');
    expect(dup.stderr).toBe(
      'Warning: a password given on the command line is kept in shell history and visible in ps; prefer --password - (stdin)\n' +
        'Error: A user with this email already exists (ALREADY_EXISTS, email_taken)\n',
    );
    const bidi = await cli(['client', 'create', '--name', 'Evil \u202Egnp.exe', '--redirect-uri', 'https://app.example/cb']);
    expect(bidi.code).toBe(1);
    expect(bidi.stderr).toContain('bidirectional formatting characters');
    const bad = await cli(['client', 'create', '--name', 'X', '--redirect-uri', 'http://example.com/cb']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('http is allowed only on a loopback host');
  });

  it('exits 2 with help for usage mistakes', async () => {
    const missing = await cli(['user', 'create', '--email', 'x@example.com']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--password is required');
    expect(missing.stderr).toContain('Usage: npm run cli -- user create');
    expect((await cli(['member', 'add', '--org', 'o', '--user', 'u', '--role', 'owner'])).code).toBe(2);
    expect((await cli(['nope', 'thing'])).code).toBe(2);
    expect((await cli(['user', 'create', '--unknown', 'x'])).code).toBe(2);
  });

  it('finds the services that npm start wrote to .data/platform.json when no address is given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-platform-'));
    mkdirSync(join(dir, '.data'));
    writeFileSync(join(dir, '.data', 'platform.json'), JSON.stringify({ issuer: t.issuer, addresses: t.platform.addresses }));
    const noAddresses = { LEDGERLY_IDENTITY_ADDR: '', LEDGERLY_CONSENT_ADDR: '', LEDGERLY_TOKEN_ADDR: '' };
    const res = await cli(['org', 'create', '--name', 'Found Via Platform File'], noAddresses, dir);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ name: 'Found Via Platform File' });
  });

  it('says so when the platform is not running', async () => {
    const down = await cli(['client', 'get', '--id', '0123456789ABCDEF0123456789ABCDEF'], { LEDGERLY_TOKEN_ADDR: '127.0.0.1:1' });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/The TokenService is not reachable .* Is the platform running \(npm start\)\?/);
  });

  it('seeds the demo data idempotently', async () => {
    const state = join(t.dir, 'demo.json');
    const args = ['demo', 'seed', '--state', state, '--redirect-uri', 'http://localhost:3001/callback'];
    const first = await cli(args);
    expect(first.code).toBe(0);
    const a = JSON.parse(first.stdout) as { user: { id: string }; organisations: Array<{ id: string }>; client: { client_id: string; client_secret: string } };
    expect(a.organisations).toHaveLength(2);
    const second = JSON.parse((await cli(args)).stdout) as typeof a;
    expect(second).toEqual(a);
    const memberships = JSON.parse((await cli(['user', 'get', '--id', a.user.id])).stdout) as { memberships: unknown[] };
    expect(memberships.memberships).toHaveLength(2);
  });
});
