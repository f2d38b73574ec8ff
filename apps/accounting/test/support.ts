// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { createClient, loadTls, RemoteError, type PromiseClient, type ServiceDefinition, type TlsMaterial } from '@ledgerly/chassis';
import { ensurePki, type Credentials } from '@ledgerly/pki';
import { join } from 'node:path';
import { inject } from 'vitest';

/**
 * A development PKI of the test file's own (test files run in parallel: two
 * of them creating one CA at once would race), under the run's testDir.
 */
export async function testPki(name: string, identities: string[]) {
  const creds = await ensurePki(join(inject('testDir'), `pki-${name}`), identities);
  return {
    creds,
    tls: (identity: string): TlsMaterial => loadTls(creds[identity]!),
    /** The LEDGERLY_TLS_* settings of a service started with this identity's certificate. */
    env: (identity: string) => tlsEnv(creds[identity]!),
    /** A client over mutual TLS, presenting this identity's certificate. */
    client: <D extends ServiceDefinition>(definition: D, address: string, identity: string): PromiseClient<D> =>
      createClient(definition, address, { tls: loadTls(creds[identity]!) }),
  };
}

export function tlsEnv(c: Credentials): Record<string, string> {
  return { LEDGERLY_TLS_CA: c.caFile, LEDGERLY_TLS_CERT: c.certFile, LEDGERLY_TLS_KEY: c.keyFile };
}

/** A certificate with the right name but from another CA: the client trusts our CA, the server must refuse it. */
export async function foreignTls(name: string, identity: string, trusted: TlsMaterial): Promise<TlsMaterial> {
  const other = await ensurePki(join(inject('testDir'), `pki-foreign-${name}`), [identity]);
  return { ...loadTls(other[identity]!), ca: trusted.ca };
}

/** The RemoteError a gRPC call failed with; throws if it succeeded or failed otherwise (as @ledgerly/testkit's). */
export async function failure(call: Promise<unknown>): Promise<RemoteError> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`expected the call to fail, got ${JSON.stringify(outcome.value)}`);
  if (!(outcome.err instanceof RemoteError)) throw new Error(`expected a RemoteError, got ${String(outcome.err)}`);
  return outcome.err;
}

/** Polls until the condition holds (or throws after timeoutMs). */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
