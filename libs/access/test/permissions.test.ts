import { Role } from '@ledgerly/proto/identity/v1/identity';
import { describe, expect, it } from 'vitest';
import {
  checkTenantAccess,
  ConnectionView,
  isKnownScope,
  MembershipView,
  needsOrganisation,
  OPERATIONS,
  parseRole,
  parseScope,
  roleAllows,
  scopeAllows,
  type AccessTokenClaims,
} from '../src/index.js';

const TENANT = '6f1c2a4e-1111-4222-8333-444455556666';
const claims = (scope: string): AccessTokenClaims => ({
  issuer: 'i',
  userId: 'u',
  clientId: 'c',
  scopes: new Set(parseScope(scope)),
  tokenId: 'j',
  issuedAt: Math.floor(Date.now() / 1000),
  expiresAt: Math.floor(Date.now() / 1000) + 60,
  authTime: 0,
  authEventId: '',
  grantId: '',
});

describe('scopes', () => {
  it("knows OpenID Connect and Xero's broad and granular scopes, and nothing else", () => {
    for (const s of ['openid', 'offline_access', 'accounting.contacts.read', 'accounting.transactions', 'accounting.invoices.read', 'accounting.reports.profitandloss.read']) {
      expect(isKnownScope(s), s).toBe(true);
    }
    for (const s of ['accounting', 'accounting.contacts.write', 'Accounting.Contacts', 'admin']) expect(isKnownScope(s), s).toBe(false);
    expect(parseScope(' openid  openid email ')).toEqual(['openid', 'email']);
    expect(needsOrganisation(['openid', 'email'])).toBe(false);
    expect(needsOrganisation(['openid', 'accounting.contacts.read'])).toBe(true);
  });
});

describe('roles and scopes together', () => {
  it('a read-only user cannot write whatever the app was granted; a standard user cannot change settings', () => {
    expect(roleAllows(OPERATIONS.CreateContacts, Role.ROLE_READONLY)).toBe(false);
    expect(roleAllows(OPERATIONS.ListContacts, Role.ROLE_READONLY)).toBe(true);
    expect(roleAllows(OPERATIONS.CreateContacts, Role.ROLE_STANDARD)).toBe(true);
    expect(roleAllows(OPERATIONS.CreateContacts, Role.ROLE_UNSPECIFIED)).toBe(false);
    expect(parseRole('ReadOnly')).toBe(Role.ROLE_READONLY);
    expect(parseRole('owner')).toBeUndefined();
  });

  it('a read scope does not allow a write', () => {
    expect(scopeAllows(OPERATIONS.CreateContacts, ['accounting.contacts.read'])).toBe(false);
    expect(scopeAllows(OPERATIONS.ListContacts, ['accounting.contacts.read'])).toBe(true);
    expect(scopeAllows(OPERATIONS.GetOrganisation, ['accounting.contacts'])).toBe(false);
  });

  it('checks connection, then scope, then role', async () => {
    const connections = new ConnectionView({ check: async () => ({ connectionId: 'c1', lastRevokedAt: undefined }) });
    const memberships = new MembershipView({ lookup: async () => Role.ROLE_READONLY });
    const base = { tenantId: TENANT, connections, memberships };
    expect(await checkTenantAccess({ ...base, claims: claims('accounting.contacts'), operation: OPERATIONS.ListContacts })).toEqual({ allowed: true });
    expect(await checkTenantAccess({ ...base, claims: claims('accounting.contacts.read'), operation: OPERATIONS.CreateContacts })).toMatchObject({ allowed: false, reason: 'insufficient_scope' });
    expect(await checkTenantAccess({ ...base, claims: claims('accounting.contacts'), operation: OPERATIONS.CreateContacts })).toMatchObject({ allowed: false, reason: 'insufficient_role' });
    expect(await checkTenantAccess({ ...base, tenantId: 'not-a-guid', claims: claims('accounting.contacts'), operation: OPERATIONS.ListContacts })).toMatchObject({ allowed: false, reason: 'tenant_not_connected' });
    const none = new ConnectionView({ check: async () => ({ connectionId: undefined, lastRevokedAt: undefined }) });
    expect(await checkTenantAccess({ ...base, connections: none, claims: claims('accounting.contacts'), operation: OPERATIONS.ListContacts })).toMatchObject({ allowed: false, reason: 'tenant_not_connected' });
  });

  it('drops a cached role when membership.changed arrives, even mid-lookup', async () => {
    let role = Role.ROLE_ADVISER;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const view = new MembershipView({
      lookup: async () => {
        calls++;
        const answer = role;
        if (calls === 1) await gate;
        return answer;
      },
    });
    const pending = view.role('u', 'o');
    role = Role.ROLE_READONLY;
    view.apply({ id: 'e', source: 'identity', occurredAt: new Date(), payload: { $case: 'membershipChanged', value: { userId: 'u', organisationId: 'o', role: Role.ROLE_READONLY } } });
    release();
    expect(await pending).toBe(Role.ROLE_ADVISER);
    // The stale answer was not cached: the next call asks again and sees the downgrade.
    expect(await view.role('u', 'o')).toBe(Role.ROLE_READONLY);
    expect(calls).toBe(2);
  });
});
