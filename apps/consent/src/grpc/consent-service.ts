import { needsOrganisation } from '@ledgerly/access';
import {
  constantTimeEqual,
  FailedPreconditionError,
  implement,
  InvalidArgumentError,
  isRemoteError,
  NotFoundError,
  PermissionDeniedError,
  sha256,
  Status,
  UnauthenticatedError,
  OPERATOR,
  type AccessList,
  type Logger,
  type Outbox,
  type PromiseClient,
  type ServiceImplementation,
} from '@ledgerly/chassis';
import { ConsentServiceDefinition, FlowState, type Connection, type Flow, type Grant } from '@ledgerly/proto/consent/v1/consent';
import type { Event } from '@ledgerly/proto/events/v1/events';
import type { IdentityServiceDefinition } from '@ledgerly/proto/identity/v1/identity';
import { randomUUID } from 'node:crypto';
import type { ConsentConfig } from '../config.js';
import type { ConnectionDoc, ConnectionStore, GrantDoc } from '../store/connections.js';
import type { FlowDoc, FlowStore } from '../store/flows.js';

export interface ConsentDeps {
  config: ConsentConfig;
  flows: FlowStore;
  connections: ConnectionStore;
  identity: PromiseClient<typeof IdentityServiceDefinition>;
  outbox: Outbox;
  logger: Logger;
}

const EXPIRED = 'This sign-in request has expired or is unknown. Start again from the app.';

/** Who may call what (docs/security.md, "Who may call what"). */
export const CONSENT_ACCESS: AccessList<typeof ConsentServiceDefinition> = {
  createFlow: ['edge'],
  getFlow: ['edge'],
  acceptLogin: ['edge'],
  acceptConsent: ['edge'],
  rejectFlow: ['edge'],
  completeFlow: ['token'],
  listConnections: ['edge', OPERATOR],
  checkConnection: ['edge', 'accounting'],
  revokeConnection: ['edge', OPERATOR],
  getGrant: ['token'],
  revokeGrant: ['token', OPERATOR],
  // The token service, as it registers a custom connection for an operator.
  createCustomConnection: ['token'],
};

export function consentService(deps: ConsentDeps): ServiceImplementation {
  const { flows, connections, identity } = deps;

  /** Guard of every browser-driven step: a live flow, from the browser that started it. */
  const flowForBrowser = async (flowId: string, browserBinding: string): Promise<FlowDoc> => {
    const flow = await flows.findLive(flowId);
    if (!flow) throw new NotFoundError(EXPIRED, 'flow_not_found');
    if (!browserBinding || !constantTimeEqual(sha256(browserBinding), flow.bindingHash)) {
      throw new PermissionDeniedError('This sign-in request was started in another browser', 'flow_binding_mismatch');
    }
    return flow;
  };

  /** Guard of every posted form: the flow's anti-CSRF token. */
  const checkCsrf = (flow: FlowDoc, csrfToken: string) => {
    if (!csrfToken || !constantTimeEqual(csrfToken, flow.csrfToken)) {
      throw new PermissionDeniedError('The form is stale or was not sent by this site', 'csrf_mismatch');
    }
  };

  const sessionOf = async (sessionToken: string) => {
    try {
      const { session } = await identity.getSession({ sessionToken });
      return session!;
    } catch (err) {
      if (isRemoteError(err, Status.UNAUTHENTICATED)) throw new UnauthenticatedError('The sign-in session is not valid', 'session_invalid');
      throw err;
    }
  };

  const stateError = (flow: FlowDoc | null) =>
    flow ? new FailedPreconditionError(`The sign-in request is ${FlowState[flow.state]}`, 'flow_state') : new NotFoundError(EXPIRED, 'flow_not_found');

  return implement(ConsentServiceDefinition, {
    createFlow: async (req) => {
      if (!req.request?.clientId || !req.request.redirectUri) throw new InvalidArgumentError('request.client_id and redirect_uri are required');
      if (req.browserBinding.length < 16) throw new InvalidArgumentError('browser_binding must be a random secret');
      let session;
      if (req.sessionToken) {
        try {
          const s = await sessionOf(req.sessionToken);
          const authTime = s.authTime ?? new Date(0);
          // OpenID Connect max_age: an older sign-in must be repeated.
          const maxAge = req.request.maxAge;
          if (maxAge < 0 || Date.now() - authTime.getTime() <= maxAge * 1000) {
            session = { userId: s.userId, sessionId: s.id, authTime, amr: s.amr };
          }
        } catch (err) {
          // An expired session just means the user signs in again.
          if (!(err instanceof UnauthenticatedError)) throw err;
        }
      }
      const flow = await flows.create({
        request: req.request,
        browserBinding: req.browserBinding,
        ttlSeconds: deps.config.LEDGERLY_FLOW_TTL_SECONDS,
        ...(session ? { session } : {}),
      });
      return { flow: toFlow(flow) };
    },

    getFlow: async (req) => {
      const flow = toFlow(await flowForBrowser(req.flowId, req.browserBinding));
      const grant = flow.userId ? await connections.findLiveGrant(flow.userId, flow.request!.clientId) : null;
      return { flow: { ...flow, previouslyGrantedScopes: grant?.scopes ?? [] } };
    },

    acceptLogin: async (req) => {
      const flow = await flowForBrowser(req.flowId, req.browserBinding);
      checkCsrf(flow, req.csrfToken);
      const session = await sessionOf(req.sessionToken);
      // From CONSENT_REQUIRED too: the person chose "use another account".
      const next = await flows.transition(flow._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED, FlowState.FLOW_STATE_CONSENT_REQUIRED], {
        state: FlowState.FLOW_STATE_CONSENT_REQUIRED,
        userId: session.userId,
        sessionId: session.id,
        authTime: session.authTime ?? new Date(),
        amr: session.amr,
      });
      if (!next) throw stateError(await flows.findLive(flow._id));
      return { flow: toFlow(next) };
    },

    acceptConsent: async (req) => {
      const flow = await flowForBrowser(req.flowId, req.browserBinding);
      checkCsrf(flow, req.csrfToken);
      if (flow.state !== FlowState.FLOW_STATE_CONSENT_REQUIRED) throw stateError(flow);
      const scopes = flow.request.scopes;
      const wantsBooks = needsOrganisation(scopes);
      const tenantIds = wantsBooks ? [...new Set(req.tenantIds)] : [];
      // Organisations already connected stay connected (disconnecting is its own,
      // explicit step); a consent that adds none is fine if some are connected.
      const existing = wantsBooks ? await connections.listLive(flow.userId, flow.request.clientId) : [];
      if (wantsBooks && tenantIds.length === 0 && existing.length === 0) {
        throw new InvalidArgumentError('Choose at least one organisation', 'no_organisation');
      }
      // The user can only connect organisations they belong to.
      const { memberships } = await identity.listMemberships({ userId: flow.userId });
      const names = new Map(memberships.map((m) => [m.organisationId, m.organisationName]));
      const foreign = tenantIds.filter((id) => !names.has(id));
      if (foreign.length > 0) throw new PermissionDeniedError('You are not a member of every chosen organisation', 'not_a_member');

      const grant = await connections.upsertGrant(flow.userId, flow.request.clientId, scopes);
      const authEventId = randomUUID();
      const consented = await flows.transition(flow._id, [FlowState.FLOW_STATE_CONSENT_REQUIRED], {
        state: FlowState.FLOW_STATE_CONSENTED,
        tenantIds,
        grantedScopes: scopes,
        grantId: grant._id,
        authEventId,
      });
      if (!consented) throw stateError(await flows.findLive(flow._id));

      const made: ConnectionDoc[] = [];
      for (const tenantId of tenantIds) {
        const input = { grantId: grant._id, userId: flow.userId, clientId: flow.request.clientId, tenantId, tenantName: names.get(tenantId) ?? '', authEventId };
        const live = await connections.findLive(flow.userId, flow.request.clientId, tenantId);
        if (live) {
          // Already connected: refresh it with this consent's auth event.
          made.push((await connections.connect({ ...input, connectionId: live._id })).connection);
        } else {
          const connectionId = randomUUID();
          await deps.outbox.commit({ $case: 'connectionCreated', value: { connectionId, ...input } });
          made.push((await connections.find(connectionId)) ?? (await connections.findLive(flow.userId, flow.request.clientId, tenantId))!);
        }
      }
      deps.logger.info('Consent given', { userId: flow.userId, clientId: flow.request.clientId, tenants: tenantIds.length, authEventId });
      const untouched = existing.filter((c) => !tenantIds.includes(c.tenantId));
      return { flow: toFlow(consented), connections: [...untouched, ...made].map(toConnection) };
    },

    rejectFlow: async (req) => {
      const flow = await flowForBrowser(req.flowId, req.browserBinding);
      checkCsrf(flow, req.csrfToken);
      const next = await flows.transition(flow._id, [FlowState.FLOW_STATE_LOGIN_REQUIRED, FlowState.FLOW_STATE_CONSENT_REQUIRED], {
        state: FlowState.FLOW_STATE_REJECTED,
      });
      if (!next) throw stateError(await flows.findLive(flow._id));
      return { flow: toFlow(next) };
    },

    completeFlow: async (req) => {
      const next = await flows.transition(req.flowId, [FlowState.FLOW_STATE_CONSENTED], { state: FlowState.FLOW_STATE_COMPLETED });
      if (!next) throw stateError(await flows.findLive(req.flowId));
      return { flow: toFlow(next) };
    },

    listConnections: async (req) => {
      if (!req.userId || !req.clientId) throw new InvalidArgumentError('user_id and client_id are required');
      const list = await connections.listLive(req.userId, req.clientId, req.authEventId || undefined);
      return { connections: list.map(toConnection) };
    },

    checkConnection: async (req) => {
      if (!req.userId || !req.clientId || !req.tenantId) throw new InvalidArgumentError('user_id, client_id and tenant_id are required');
      // lastRevokedAt even beside a live connection: a token issued before a
      // disconnect stays refused for the organisation after a reconnect.
      const { live, lastRevokedAt } = await connections.state(req.userId, req.clientId, req.tenantId);
      return { ...(live ? { connection: toConnection(live) } : {}), ...(lastRevokedAt ? { lastRevokedAt } : {}) };
    },

    revokeConnection: async (req) => {
      const live = await connections.find(req.connectionId);
      if (!live || live.revokedAt || live.userId !== req.userId || live.clientId !== req.clientId) {
        throw new NotFoundError('No such connection', 'connection_not_found');
      }
      // Written to the outbox, applied, then published; durable even if NATS is down.
      await deps.outbox.commit({
        $case: 'connectionRevoked',
        value: { connectionId: live._id, grantId: live.grantId, userId: live.userId, clientId: live.clientId, tenantId: live.tenantId, revokedAt: new Date() },
      });
      // A custom connection's grant has this one connection: it ends with it, so no more tokens.
      const grant = await connections.findGrant(live.grantId);
      if (grant?.custom && !grant.revokedAt) {
        await deps.outbox.commit({ $case: 'grantRevoked', value: { grantId: grant._id, userId: grant.userId, clientId: grant.clientId, revokedAt: new Date() } });
      }
      deps.logger.info('Connection revoked', { connectionId: live._id, clientId: live.clientId, tenantId: live.tenantId });
      return { connection: toConnection((await connections.find(live._id))!) };
    },

    getGrant: async (req) => {
      const grant = req.grantId ? await connections.findGrant(req.grantId) : null;
      if (!grant) throw new NotFoundError('No such grant', 'grant_not_found');
      return { grant: toGrant(grant) };
    },

    revokeGrant: async (req) => {
      const grant = req.grantId
        ? await connections.findGrant(req.grantId)
        : req.userId && req.clientId
          ? await connections.findLiveGrant(req.userId, req.clientId)
          : null;
      if (!grant || grant.revokedAt) throw new NotFoundError('No such grant', 'grant_not_found');
      await deps.outbox.commit({
        $case: 'grantRevoked',
        value: { grantId: grant._id, userId: grant.userId, clientId: grant.clientId, revokedAt: new Date() },
      });
      deps.logger.info('Grant revoked', { grantId: grant._id, clientId: grant.clientId });
      return { grant: toGrant((await connections.findGrant(grant._id))!) };
    },

    createCustomConnection: async (req) => {
      if (!req.userId || !req.clientId || !req.tenantId) throw new InvalidArgumentError('user_id, client_id and tenant_id are required');
      if (req.scopes.length === 0) throw new InvalidArgumentError('scopes are required', 'invalid_scope');
      // The same rule as consent: only an organisation the user belongs to.
      const { memberships } = await identity.listMemberships({ userId: req.userId });
      const membership = memberships.find((m) => m.organisationId === req.tenantId);
      if (!membership) throw new PermissionDeniedError('The user is not a member of that organisation', 'not_a_member');
      const grant = await connections.upsertGrant(req.userId, req.clientId, [...new Set(req.scopes)], { custom: true });
      const connectionId = randomUUID();
      await deps.outbox.commit({
        $case: 'connectionCreated',
        value: { connectionId, grantId: grant._id, userId: req.userId, clientId: req.clientId, tenantId: req.tenantId, tenantName: membership.organisationName, authEventId: grant._id },
      });
      deps.logger.info('Custom connection created', { userId: req.userId, clientId: req.clientId, tenantId: req.tenantId });
      return { grant: toGrant(grant), connection: toConnection((await connections.find(connectionId))!) };
    },
  }, CONSENT_ACCESS);
}

/**
 * The state change of each event the consent service publishes (the outbox
 * applies it, and again if it has to relay the event later): idempotent.
 */
export function applyConsentEvent(connections: ConnectionStore) {
  return async (event: Event): Promise<void> => {
    const p = event.payload;
    switch (p?.$case) {
      case 'connectionRevoked':
        if (!(await connections.revoke(p.value.connectionId, p.value.revokedAt ?? new Date()))) throw new NotFoundError('No such connection');
        return;
      case 'grantRevoked':
        if (!(await connections.revokeGrant(p.value.grantId, p.value.revokedAt ?? new Date()))) throw new NotFoundError('No such grant');
        return;
      case 'connectionCreated':
        await connections.connect(p.value);
        return;
      default:
        throw new TypeError(`The consent service does not publish ${p?.$case ?? 'empty'} events`);
    }
  };
}

function toFlow(doc: FlowDoc): Flow {
  return {
    id: doc._id,
    state: doc.state,
    request: doc.request,
    csrfToken: doc.csrfToken,
    userId: doc.userId,
    sessionId: doc.sessionId,
    authTime: doc.authTime ?? undefined,
    amr: doc.amr,
    tenantIds: doc.tenantIds,
    grantedScopes: doc.grantedScopes,
    grantId: doc.grantId,
    authEventId: doc.authEventId,
    createdAt: doc.createdAt,
    expiresAt: doc.expiresAt,
    previouslyGrantedScopes: [],
  };
}

function toGrant(doc: GrantDoc): Grant {
  return {
    id: doc._id,
    userId: doc.userId,
    clientId: doc.clientId,
    scopes: doc.scopes,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    revokedAt: doc.revokedAt ?? undefined,
  };
}

function toConnection(doc: ConnectionDoc): Connection {
  return {
    id: doc._id,
    grantId: doc.grantId,
    userId: doc.userId,
    clientId: doc.clientId,
    tenantId: doc.tenantId,
    tenantType: doc.tenantType,
    tenantName: doc.tenantName,
    authEventId: doc.authEventId,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    revokedAt: doc.revokedAt ?? undefined,
  };
}
