// Types of inject('mongoUrl' | 'natsUrl' | 'testDir'), provided by the globalSetup.
import type {} from '@ledgerly/devstack/vitest-infra';
import { foreignTls as foreignTlsIn, rawStream as rawStreamOf, testPki as testPkiIn } from '@ledgerly/testkit';
import type { TlsMaterial } from '@ledgerly/chassis';
import { join } from 'node:path';
import { inject } from 'vitest';

export { outboxEvents, outboxOf, tlsEnv, type OutboxRecord } from '@ledgerly/testkit';

/** This test file's own PKI, under the run's testDir. */
export const testPki = (name: string, identities: string[]) => testPkiIn(join(inject('testDir'), `pki-${name}`), identities);
export const foreignTls = (name: string, identity: string, trusted: TlsMaterial) => foreignTlsIn(join(inject('testDir'), `pki-foreign-${name}`), identity, trusted);
export const rawStream = () => rawStreamOf(inject('natsUrl'));
