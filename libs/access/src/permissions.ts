import { Role } from '@ledgerly/proto/identity/v1/identity';

/**
 * An app acting for a person can do at most what both allow:
 *   - the token's scopes (what the person granted the app), and
 *   - the person's role in the organisation (what the person may do).
 * Both are checked on every call, by the edge and again by the accounting
 * service. The table below is the one place these rules live.
 */
export type Permission =
  | 'contacts.read'
  | 'contacts.write'
  | 'settings.read'
  | 'settings.write'
  | 'transactions.read'
  | 'transactions.write'
  | 'reports.read';

const READS: Permission[] = ['contacts.read', 'settings.read', 'transactions.read', 'reports.read'];

/** What each role may do (docs/security.md, "Roles"). */
export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  [Role.ROLE_ADVISER]: new Set<Permission>([...READS, 'contacts.write', 'transactions.write', 'settings.write']),
  [Role.ROLE_STANDARD]: new Set<Permission>([...READS, 'contacts.write', 'transactions.write']),
  [Role.ROLE_READONLY]: new Set<Permission>(READS),
  [Role.ROLE_UNSPECIFIED]: new Set<Permission>(),
  [Role.UNRECOGNIZED]: new Set<Permission>(),
};

export interface Operation {
  /** Any one of these scopes allows the call (Xero's security requirements). */
  readonly scopes: readonly string[];
  readonly permission: Permission;
}

/** Every accounting operation, keyed by its gRPC method name. */
export const OPERATIONS = {
  GetOrganisation: { scopes: ['accounting.settings', 'accounting.settings.read'], permission: 'settings.read' },
  ListContacts: { scopes: ['accounting.contacts', 'accounting.contacts.read'], permission: 'contacts.read' },
  GetContact: { scopes: ['accounting.contacts', 'accounting.contacts.read'], permission: 'contacts.read' },
  CreateContacts: { scopes: ['accounting.contacts'], permission: 'contacts.write' },
} as const satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

export function scopeAllows(operation: Operation, granted: ReadonlySet<string> | readonly string[]): boolean {
  const has = (s: string) => (Array.isArray(granted) ? granted.includes(s) : (granted as ReadonlySet<string>).has(s));
  return operation.scopes.some(has);
}

export function roleAllows(operation: Operation, role: Role): boolean {
  return ROLE_PERMISSIONS[role]?.has(operation.permission) ?? false;
}

export function parseRole(value: string): Role | undefined {
  switch (value.toLowerCase()) {
    case 'adviser':
      return Role.ROLE_ADVISER;
    case 'standard':
      return Role.ROLE_STANDARD;
    case 'readonly':
      return Role.ROLE_READONLY;
    default:
      return undefined;
  }
}

export function roleName(role: Role): string {
  switch (role) {
    case Role.ROLE_ADVISER:
      return 'adviser';
    case Role.ROLE_STANDARD:
      return 'standard';
    case Role.ROLE_READONLY:
      return 'readonly';
    default:
      return 'none';
  }
}
