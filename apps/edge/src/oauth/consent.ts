import { isRegisteredRedirectUri, needsOrganisation, roleName, SCOPES } from '@ledgerly/access';
import { isRemoteError, Status } from '@ledgerly/chassis';
import { FlowState, type Flow } from '@ledgerly/proto/consent/v1/consent';
import type { Context, Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readFormParams } from '../http/body.js';
import { existingBrowserBinding } from '../http/cookies.js';
import { PageError } from '../http/errors.js';
import { consentPage } from '../views/consent-page.js';
import { appName, flowPageError, isInvalidArgument, loadFlow, redirectForState, sendPage } from './flow-pages.js';
import { redirectToClient } from './redirect.js';

/** GET /consent?flow=…: which app asks, for what, and for which organisations. */
export function showConsent(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const flow = await loadFlow(deps, ctx, typeof ctx.query['flow'] === 'string' ? ctx.query['flow'] : undefined);
    if (redirectForState(ctx, flow, FlowState.FLOW_STATE_CONSENT_REQUIRED)) return;
    sendPage(ctx, await renderConsent(deps, flow, []));
  };
}

/** POST /consent: Allow (with the chosen organisations) or Deny. */
export function submitConsent(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const form = await readFormParams(ctx);
    const one = (name: string) => {
      const values = form.getAll(name);
      if (values.length > 1) throw new PageError(400, 'This request is not valid', `The field ${name} is repeated.`);
      return values[0] ?? '';
    };
    const flow = await loadFlow(deps, ctx, one('flow'));
    if (redirectForState(ctx, flow, FlowState.FLOW_STATE_CONSENT_REQUIRED)) return;
    // Checked before anything is recorded: an app that has since lost its redirect URI gets no consent.
    const back = await sendBackTo(deps, flow);
    const decision = one('decision');
    const common = { flowId: flow.id, browserBinding: existingBrowserBinding(ctx), csrfToken: one('csrf') };
    if (decision === 'deny') {
      try {
        await deps.consent.rejectFlow(common);
      } catch (err) {
        throw flowPageError(err);
      }
      back(ctx, { error: 'access_denied', error_description: 'The user denied the request' });
      return;
    }
    if (decision !== 'allow') throw new PageError(400, 'This request is not valid', 'Choose Allow or Deny.');
    const tenantIds = form.getAll('organisation');
    try {
      await deps.consent.acceptConsent({ ...common, tenantIds });
    } catch (err) {
      if (isInvalidArgument(err, 'no_organisation')) {
        sendPage(ctx, await renderConsent(deps, flow, tenantIds, 'Choose at least one organisation to connect.'), 400);
        return;
      }
      if (isRemoteError(err, Status.PERMISSION_DENIED) && err.reason === 'not_a_member') {
        throw new PageError(403, 'You cannot connect that organisation', 'You can only connect organisations you belong to.');
      }
      throw flowPageError(err);
    }
    const { code } = await deps.token.issueAuthorizationCode({ flowId: flow.id });
    back(ctx, { code });
  };
}

/**
 * Back to the app, at the redirect URI checked at /authorize and checked
 * again here (exact, or a loopback port: isRegisteredRedirectUri).
 */
async function sendBackTo(deps: EdgeDeps, flow: Flow): Promise<(ctx: Context, params: Record<string, string>) => void> {
  const request = flow.request!;
  const client = await deps.clients.find(request.clientId);
  if (!client || !isRegisteredRedirectUri(client.redirectUris, request.redirectUri)) {
    throw new PageError(400, 'Unknown app', 'The app is no longer registered.');
  }
  return (ctx, params) => redirectToClient(ctx, request.redirectUri, deps.config.issuer, { ...params, state: request.state });
}

async function renderConsent(deps: EdgeDeps, flow: Flow, checked: string[], error?: string): Promise<string> {
  const scopes = flow.request!.scopes;
  const wantsBooks = needsOrganisation(scopes);
  const [name, { user }, memberships, connected] = await Promise.all([
    appName(deps, flow.request!.clientId),
    deps.identity.getUser({ userId: flow.userId }),
    wantsBooks ? deps.identity.listMemberships({ userId: flow.userId }) : Promise.resolve(null),
    wantsBooks ? deps.consent.listConnections({ userId: flow.userId, clientId: flow.request!.clientId }) : Promise.resolve(null),
  ]);
  const alreadyConnected = new Set(connected?.connections.map((c) => c.tenantId) ?? []);
  return consentPage({
    platformName: deps.config.LEDGERLY_PLATFORM_NAME,
    appName: name,
    flowId: flow.id,
    csrfToken: flow.csrfToken,
    userName: user?.name ?? '',
    userEmail: user?.email ?? '',
    // "openid" alone only confirms identity; every other scope is listed in plain words.
    permissions: scopes.filter((s) => s !== 'openid' || scopes.length === 1).map((s) => capitalise(SCOPES.get(s)?.description ?? s)),
    // Consents add up: what an earlier consent allowed stays allowed, in every organisation connected.
    alreadyAllowed: flow.previouslyGrantedScopes.filter((s) => !scopes.includes(s) && s !== 'openid').map((s) => capitalise(SCOPES.get(s)?.description ?? s)),
    organisations:
      memberships?.memberships.map((m) => ({
        id: m.organisationId,
        name: m.organisationName,
        role: ROLE_LABELS[roleName(m.role)] ?? '',
        checked: checked.includes(m.organisationId),
        connected: alreadyConnected.has(m.organisationId),
      })) ?? null,
    ...(error ? { error } : {}),
  });
}

const ROLE_LABELS: Record<string, string> = { adviser: 'Adviser', standard: 'Standard', readonly: 'Read-only' };

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
