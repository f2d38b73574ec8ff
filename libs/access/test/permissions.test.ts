import { Role } from '@ledgerly/proto/identity/v1/identity';
import { describe, expect, it } from 'vitest';
import {
  AccessDenied,
  AccessGuard,
  ConnectionView,
  isKnownScope,
  MembershipView,
  needsOrganisation,
  RevocationView,
  OPERATIONS,
  parseRole,
  parseScope,
  roleAllows,
  scopeAllows,
  type AccessTokenClaims,
  type AccessTokenVerifier,
} from '../src/index.js';

const TENANT = '6f1c2a4e-1111-4222-8333-444455556666';
const claims = (scope: string): AccessTokenClaims => ({
  issuer: 'i',
  userId: 'u',
  clientId: 'c',
  scopes: new Set(parseScope(scope)),
  tokenId: 'j',
  issuedAt: Math.floor(Date.now() / 1000),
  issuedAtMs: Date.now(),
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
    const guard = (connections: ConnectionView) =>
      new AccessGuard({
        verifier: {} as AccessTokenVerifier,
        connections,
        revocations: new RevocationView(),
        memberships: new MembershipView({ lookup: async () => Role.ROLE_READONLY }),
        feed: { healthy: () => true, unhealthyForMs: () => 0 },
        staleAfterMs: 2000,
        checkToken: async () => ({ active: true, reason: '' }),
      });
    const live = guard(new ConnectionView({ check: async () => ({ connectionId: 'c1', lastRevokedAt: undefined }) }));
    const outcome = (p: Promise<void>) =>
      p.then(
        () => 'allowed',
        (e: unknown) => (e instanceof AccessDenied ? `${e.kind}:${e.reason}` : String(e)),
      );
    expect(await outcome(live.authorizeTenant(claims('accounting.contacts'), TENANT, OPERATIONS.ListContacts))).toBe('allowed');
    expect(await outcome(live.authorizeTenant(claims('accounting.contacts.read'), TENANT, OPERATIONS.CreateContacts))).toBe('forbidden:insufficient_scope');
    expect(await outcome(live.authorizeTenant(claims('accounting.contacts'), TENANT, OPERATIONS.CreateContacts))).toBe('forbidden:insufficient_role');
    expect(await outcome(live.authorizeTenant(claims('accounting.contacts'), 'not-a-guid', OPERATIONS.ListContacts))).toBe('forbidden:tenant_not_connected');
    const none = guard(new ConnectionView({ check: async () => ({ connectionId: undefined, lastRevokedAt: undefined }) }));
    expect(await outcome(none.authorizeTenant(claims('accounting.contacts'), TENANT, OPERATIONS.ListContacts))).toBe('forbidden:tenant_not_connected');
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
