import {
  hasUnsafeText,
  implement,
  InvalidArgumentError,
  NotFoundError,
  UnauthenticatedError,
  OPERATOR,
  type AccessList,
  type Logger,
  type Outbox,
  type ServiceImplementation,
} from '@ledgerly/chassis';
import type { Event } from '@ledgerly/proto/events/v1/events';
import { IdentityServiceDefinition, Role, type Membership, type Organisation, type User } from '@ledgerly/proto/identity/v1/identity';
import type { IdentityConfig } from '../config.js';
import { checkPasswordPolicy, hashPassword, verifyPassword } from '../domain/passwords.js';
import type { MembershipDoc, MembershipStore } from '../store/memberships.js';
import type { OrganisationDoc, OrganisationStore } from '../store/organisations.js';
import type { SessionDoc, SessionStore } from '../store/sessions.js';
import type { UserDoc, UserStore } from '../store/users.js';
import { COUNTRY_CODES, CURRENCY_CODES } from '../domain/iso-codes.js';

export interface IdentityDeps {
  config: IdentityConfig;
  users: UserStore;
  organisations: OrganisationStore;
  memberships: MembershipStore;
  sessions: SessionStore;
  outbox: Outbox;
  logger: Logger;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const UNSAFE_NAME = 'The name must not contain control characters or bidirectional formatting characters';
/** The same answer, whichever part was wrong (no account enumeration). */
const BAD_CREDENTIALS = 'The email or password is incorrect';

/** Who may call what (docs/security.md, "Who may call what"). */
export const IDENTITY_ACCESS: AccessList<typeof IdentityServiceDefinition> = {
  createUser: [OPERATOR],
  getUser: ['edge', 'token', OPERATOR],
  verifyPassword: ['edge'],
  createSession: ['edge'],
  // The edge, for RP-initiated logout: is the ID token hint's session this browser's?
  getSession: ['consent', 'edge'],
  endSession: ['edge'],
  createOrganisation: [OPERATOR],
  getOrganisation: ['accounting', OPERATOR],
  addMembership: [OPERATOR],
  getMembership: ['accounting', OPERATOR],
  listMemberships: ['edge', 'consent', OPERATOR],
  disableUser: [OPERATOR],
  enableUser: [OPERATOR],
};

export function identityService(deps: IdentityDeps): ServiceImplementation {
  const { users, organisations, memberships, sessions } = deps;
  return implement(IdentityServiceDefinition, {
    createUser: async (req) => {
      const email = req.email.trim();
      if (!EMAIL.test(email) || email.length > 254 || hasUnsafeText(email)) throw new InvalidArgumentError('A valid email address is required', 'invalid_email');
      const name = req.name.trim();
      if (name.length < 1 || name.length > 100) throw new InvalidArgumentError('A name of 1 to 100 characters is required', 'invalid_name');
      if (hasUnsafeText(name)) throw new InvalidArgumentError(UNSAFE_NAME, 'invalid_name');
      checkPasswordPolicy(req.password);
      const user = await users.create({ email, name, passwordHash: await hashPassword(req.password) });
      deps.logger.info('User created', { userId: user._id });
      return { user: toUser(user) };
    },

    getUser: async (req) => {
      const user = await users.findById(req.userId);
      if (!user) throw new NotFoundError('No such user');
      return { user: toUser(user) };
    },

    verifyPassword: async (req) => {
      const user = req.email ? await users.findByEmail(req.email) : null;
      const ok = await verifyPassword(user?.passwordHash, req.password);
      if (!ok || !user || user.disabled) {
        // An audit line for failed sign-ins: the user when known, never the email or the password.
        deps.logger.warn('Password check failed', { userId: user?._id ?? null, reason: !user ? 'unknown_user' : user.disabled ? 'disabled' : 'wrong_password' });
        throw new UnauthenticatedError(BAD_CREDENTIALS, 'invalid_credentials');
      }
      return { user: toUser(user) };
    },

    createSession: async (req) => {
      const user = await users.findById(req.userId);
      if (!user || user.disabled) throw new NotFoundError('No such user');
      const { session, token } = await sessions.create(user._id, req.amr.length > 0 ? req.amr : ['pwd'], deps.config.LEDGERLY_SESSION_TTL_SECONDS);
      return { session: toSession(session), sessionToken: token };
    },

    getSession: async (req) => {
      const session = await sessions.findLive(req.sessionToken);
      if (!session) throw new UnauthenticatedError('No such session', 'session_invalid');
      const user = await users.findById(session.userId);
      if (!user || user.disabled) throw new UnauthenticatedError('No such session', 'session_invalid');
      return { session: toSession(session) };
    },

    endSession: async (req) => {
      await sessions.end(req.sessionToken);
      return {};
    },

    createOrganisation: async (req) => {
      const name = req.name.trim();
      if (name.length < 1 || name.length > 255) throw new InvalidArgumentError('A name of 1 to 255 characters is required', 'invalid_name');
      if (hasUnsafeText(name)) throw new InvalidArgumentError(UNSAFE_NAME, 'invalid_name');
      const countryCode = (req.countryCode || 'NZ').toUpperCase();
      const baseCurrency = (req.baseCurrency || 'NZD').toUpperCase();
      if (!COUNTRY_CODES.has(countryCode)) throw new InvalidArgumentError(`country_code must be an ISO 3166-1 alpha-2 code, e.g. NZ (not ${countryCode.slice(0, 8)})`, 'invalid_country_code');
      if (!CURRENCY_CODES.has(baseCurrency)) throw new InvalidArgumentError(`base_currency must be an ISO 4217 code, e.g. NZD (not ${baseCurrency.slice(0, 8)})`, 'invalid_currency_code');
      const organisation = await organisations.create({ name, countryCode, baseCurrency });
      deps.logger.info('Organisation created', { organisationId: organisation._id });
      return { organisation: toOrganisation(organisation) };
    },

    getOrganisation: async (req) => {
      const organisation = await organisations.findById(req.organisationId);
      if (!organisation) throw new NotFoundError('No such organisation');
      return { organisation: toOrganisation(organisation) };
    },

    addMembership: async (req) => {
      if (req.role !== Role.ROLE_ADVISER && req.role !== Role.ROLE_STANDARD && req.role !== Role.ROLE_READONLY) {
        throw new InvalidArgumentError('role must be adviser, standard or readonly', 'invalid_role');
      }
      const [user, organisation] = await Promise.all([users.findById(req.userId), organisations.findById(req.organisationId)]);
      if (!user) throw new NotFoundError('No such user');
      if (!organisation) throw new NotFoundError('No such organisation');
      // The role changes through the outbox: membership.changed reaches every cache.
      await deps.outbox.commit({ $case: 'membershipChanged', value: { userId: user._id, organisationId: organisation._id, role: req.role } });
      const membership = (await memberships.find(user._id, organisation._id))!;
      deps.logger.info('Membership changed', { userId: user._id, organisationId: organisation._id, role: req.role });
      return { membership: toMembership(membership, organisation) };
    },

    getMembership: async (req) => {
      const membership = await memberships.find(req.userId, req.organisationId);
      if (!membership) throw new NotFoundError('No such membership');
      const organisation = await organisations.findById(membership.organisationId);
      return { membership: toMembership(membership, organisation) };
    },

    disableUser: async (req) => {
      const user = await users.findById(req.userId);
      if (!user) throw new NotFoundError('No such user');
      if (!user.disabled) {
        await deps.outbox.commit({ $case: 'userDisabled', value: { userId: user._id, disabledAt: new Date() } });
        deps.logger.warn('User disabled', { userId: user._id });
      }
      return { user: toUser((await users.findById(user._id))!) };
    },

    enableUser: async (req) => {
      const user = await users.findById(req.userId);
      if (!user) throw new NotFoundError('No such user');
      await users.setDisabled(user._id, false, new Date());
      deps.logger.warn('User enabled', { userId: user._id });
      return { user: toUser((await users.findById(user._id))!) };
    },

    listMemberships: async (req) => {
      const list = await memberships.listForUser(req.userId);
      const orgs = new Map((await organisations.findByIds(list.map((m) => m.organisationId))).map((o) => [o._id, o]));
      return { memberships: list.map((m) => toMembership(m, orgs.get(m.organisationId) ?? null)) };
    },
  }, IDENTITY_ACCESS);
}

function toUser(doc: UserDoc): User {
  return {
    id: doc._id,
    email: doc.email,
    name: doc.name,
    emailVerified: doc.emailVerified,
    createdAt: doc.createdAt,
    disabled: doc.disabled,
    disabledAt: doc.disabledAt ?? undefined,
  };
}

/** The state change of each event identity publishes (applied by the outbox, again if relayed): idempotent. */
export function applyIdentityEvent(deps: Pick<IdentityDeps, 'users' | 'memberships' | 'sessions'>) {
  return async (event: Event): Promise<void> => {
    const p = event.payload;
    switch (p?.$case) {
      case 'membershipChanged':
        await deps.memberships.upsert(p.value.userId, p.value.organisationId, p.value.role);
        return;
      case 'userDisabled':
        if (!(await deps.users.setDisabled(p.value.userId, true, p.value.disabledAt ?? new Date()))) throw new NotFoundError('No such user');
        await deps.sessions.endAllFor(p.value.userId);
        return;
      default:
        throw new TypeError(`The identity service does not publish ${p?.$case ?? 'empty'} events`);
    }
  };
}

function toOrganisation(doc: OrganisationDoc): Organisation {
  return { id: doc._id, name: doc.name, countryCode: doc.countryCode, baseCurrency: doc.baseCurrency, createdAt: doc.createdAt };
}

function toMembership(doc: MembershipDoc, organisation: OrganisationDoc | null): Membership {
  return {
    userId: doc.userId,
    organisationId: doc.organisationId,
    organisationName: organisation?.name ?? '',
    role: doc.role,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}

function toSession(doc: SessionDoc) {
  return { id: doc.sessionId, userId: doc.userId, authTime: doc.authTime, expiresAt: doc.expiresAt, amr: doc.amr };
}
