import { isRemoteError, Status } from '@ledgerly/chassis';
import { Role } from '@ledgerly/proto/identity/v1/identity';
import { ClientType } from '@ledgerly/proto/token/v1/token';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Services } from './commands.js';

export const DEMO_USER = { email: 'demo@ledgerly.test', password: 'demo-password', name: 'Dana Demo' };
export const DEMO_ORGANISATIONS = [
  { name: 'Demo Company (NZ)', countryCode: 'NZ', baseCurrency: 'NZD', role: Role.ROLE_ADVISER },
  { name: 'Harbour Bakery Ltd', countryCode: 'NZ', baseCurrency: 'NZD', role: Role.ROLE_STANDARD },
];
export const DEMO_CLIENT_NAME = 'Payroll Demo';

export interface DemoState {
  user: { id: string; email: string; password: string };
  organisations: Array<{ id: string; name: string }>;
  client: { client_id: string; client_secret: string; redirect_uris: string[] };
}

async function exists(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (err) {
    if (isRemoteError(err, Status.NOT_FOUND)) return false;
    throw err;
  }
}

/**
 * Creates the demo data once and reuses it afterwards: a user in two
 * organisations and a confidential client for the example payroll app.
 * What was created is remembered in stateFile (under the ignored .data/);
 * anything missing from the databases is created again.
 */
export async function seedDemo(services: Services, stateFile: string, redirectUris: string[]): Promise<DemoState> {
  const previous: Partial<DemoState> = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as DemoState) : {};
  const { identity, token } = services;

  let userId = previous.user?.id;
  if (!userId || !(await exists(() => identity.getUser({ userId: userId! })))) {
    try {
      userId = (await identity.createUser(DEMO_USER)).user!.id;
    } catch (err) {
      if (!isRemoteError(err, Status.ALREADY_EXISTS)) throw err;
      userId = (await identity.verifyPassword({ email: DEMO_USER.email, password: DEMO_USER.password })).user!.id;
    }
  }

  const organisations: DemoState['organisations'] = [];
  for (const [i, org] of DEMO_ORGANISATIONS.entries()) {
    let id = previous.organisations?.[i]?.id;
    if (!id || !(await exists(() => identity.getOrganisation({ organisationId: id! })))) {
      id = (await identity.createOrganisation(org)).organisation!.id;
    }
    await identity.addMembership({ organisationId: id, userId, role: org.role });
    organisations.push({ id, name: org.name });
  }

  let client = previous.client;
  const sameUris = client && client.redirect_uris.join(' ') === redirectUris.join(' ');
  if (!client || !sameUris || !client.client_secret || !(await exists(() => token.getClient({ clientId: client!.client_id })))) {
    const created = await token.createClient({ name: DEMO_CLIENT_NAME, redirectUris, type: ClientType.CLIENT_TYPE_CONFIDENTIAL });
    client = { client_id: created.client!.clientId, client_secret: created.clientSecret, redirect_uris: redirectUris };
  }

  const state: DemoState = { user: { id: userId, email: DEMO_USER.email, password: DEMO_USER.password }, organisations, client };
  mkdirSync(dirname(stateFile), { recursive: true });
  writeFileSync(stateFile, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  return state;
}
