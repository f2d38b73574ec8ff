import { isRemoteError, Status } from '@ledgerly/chassis';
import { FlowState, type Flow } from '@ledgerly/proto/consent/v1/consent';
import type { Middleware } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { readForm } from '../http/body.js';
import { clearSessionCookie, existingBrowserBinding, sessionToken, setSessionCookie } from '../http/cookies.js';
import { PageError } from '../http/errors.js';
import { constantTimeEqual } from '@ledgerly/chassis';
import { loginPage } from '../views/login-page.js';
import { appName, flowPageError, loadFlow, redirectForState, sendPage } from './flow-pages.js';
import { seeOther } from './redirect.js';

/** GET /login?flow=…: the sign-in form, on the platform's own page. */
export function showLogin(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const flow = await loadFlow(deps, ctx, typeof ctx.query['flow'] === 'string' ? ctx.query['flow'] : undefined);
    // "Use another account" from the consent page signs in again on the same flow.
    const switching = ctx.query['switch'] !== undefined && flow.state === FlowState.FLOW_STATE_CONSENT_REQUIRED;
    if (!switching && redirectForState(ctx, flow, FlowState.FLOW_STATE_LOGIN_REQUIRED)) return;
    sendPage(ctx, await renderLogin(deps, flow));
  };
}

async function renderLogin(deps: EdgeDeps, flow: Flow, failed?: { email: string }): Promise<string> {
  return loginPage({
    platformName: deps.config.LEDGERLY_PLATFORM_NAME,
    appName: await appName(deps, flow.request!.clientId),
    flowId: flow.id,
    csrfToken: flow.csrfToken,
    ...(failed ? { email: failed.email, error: 'The email or password is incorrect.' } : {}),
  });
}

/** POST /login: check the password, start a session, move the flow on to consent. */
export function submitLogin(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const form = await readForm(ctx);
    const flow = await loadFlow(deps, ctx, form.get('flow'));
    if (flow.state !== FlowState.FLOW_STATE_CONSENT_REQUIRED && redirectForState(ctx, flow, FlowState.FLOW_STATE_LOGIN_REQUIRED)) return;
    const email = form.get('email') ?? '';
    let user;
    try {
      user = (await deps.identity.verifyPassword({ email, password: form.get('password') ?? '' })).user!;
    } catch (err) {
      if (!isRemoteError(err, Status.UNAUTHENTICATED)) throw err;
      sendPage(ctx, await renderLogin(deps, flow, { email }), 401);
      return;
    }
    const { session, sessionToken } = await deps.identity.createSession({ userId: user.id, amr: ['pwd'] });
    setSessionCookie(ctx, sessionToken, session!.expiresAt ?? new Date(Date.now() + 3600_000), deps.config.secureCookies);
    try {
      await deps.consent.acceptLogin({
        flowId: flow.id,
        browserBinding: existingBrowserBinding(ctx),
        csrfToken: form.get('csrf') ?? '',
        sessionToken,
      });
    } catch (err) {
      throw flowPageError(err);
    }
    seeOther(ctx, `/consent?flow=${encodeURIComponent(flow.id)}`);
  };
}

/**
 * POST /logout (from the consent page's "Not you? Sign out"): ends the
 * platform session in this browser, then asks for a sign-in on the same flow.
 * A form with the flow's anti-CSRF token, never a GET, so no other site can
 * sign a person out.
 */
export function submitLogout(deps: EdgeDeps): Middleware {
  return async (ctx) => {
    const form = await readForm(ctx);
    const flow = await loadFlow(deps, ctx, form.get('flow'));
    if (!constantTimeEqual(form.get('csrf') ?? '', flow.csrfToken)) {
      throw new PageError(403, 'This form has expired', 'The page was open too long or in another tab. Go back, reload the page and try again.');
    }
    const token = sessionToken(ctx);
    if (token) await deps.identity.endSession({ sessionToken: token });
    clearSessionCookie(ctx, deps.config.secureCookies);
    seeOther(ctx, `/login?flow=${encodeURIComponent(flow.id)}&switch=1`);
  };
}
