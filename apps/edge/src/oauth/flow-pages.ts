import { isRemoteError, RemoteError, Status } from '@ledgerly/chassis';
import { FlowState, type Flow } from '@ledgerly/proto/consent/v1/consent';
import type { Context } from 'koa';
import type { EdgeDeps } from '../deps.js';
import { existingBrowserBinding } from '../http/cookies.js';
import { PageError } from '../http/errors.js';
import { seeOther } from './redirect.js';

/** Helpers shared by the login and consent pages. */

export function expiredFlow(): PageError {
  return new PageError(400, 'This sign-in link has expired', 'Go back to the app and connect again.');
}

/** The page was opened in a browser that did not start the flow (e.g. a shared link). */
export function otherBrowser(): PageError {
  return new PageError(
    403,
    'Finish in the browser where you started',
    'This sign-in page belongs to a request started in another browser. For your security, go back to the app in this browser and connect again.',
  );
}

/** The flow was already answered (Allow or Deny); e.g. the browser's Back button. */
export function answeredFlow(): PageError {
  return new PageError(400, 'You already answered this request', 'You can close this page, or go back to the app and connect again.');
}

/** Turns the consent service's flow guards into pages a person understands. */
export function flowPageError(err: unknown): unknown {
  if (!(err instanceof RemoteError)) return err;
  switch (err.code) {
    case Status.NOT_FOUND:
    case Status.FAILED_PRECONDITION:
      return expiredFlow();
    case Status.PERMISSION_DENIED:
      if (err.reason === 'csrf_mismatch') {
        return new PageError(403, 'This form has expired', 'The page was open too long or in another tab. Go back, reload the page and try again.');
      }
      return otherBrowser();
    case Status.UNAUTHENTICATED:
      return new PageError(401, 'Please sign in again', 'Your session ended. Go back to the app and connect again.');
    default:
      return err;
  }
}

/** The flow named by ?flow= (or the form), guarded by this browser's binding cookie. */
export async function loadFlow(deps: EdgeDeps, ctx: Context, flowId: string | undefined): Promise<Flow> {
  const binding = existingBrowserBinding(ctx);
  if (!flowId) throw expiredFlow();
  if (!binding) throw otherBrowser();
  try {
    return (await deps.consent.getFlow({ flowId, browserBinding: binding })).flow!;
  } catch (err) {
    throw flowPageError(err);
  }
}

export async function appName(deps: EdgeDeps, clientId: string): Promise<string> {
  return (await deps.clients.find(clientId))?.name ?? 'An app';
}

/** Sends the browser to the page the flow's state calls for, if not this one. */
export function redirectForState(ctx: Context, flow: Flow, here: FlowState): boolean {
  if (flow.state === here) return false;
  if (flow.state === FlowState.FLOW_STATE_LOGIN_REQUIRED) seeOther(ctx, `/login?flow=${encodeURIComponent(flow.id)}`);
  else if (flow.state === FlowState.FLOW_STATE_CONSENT_REQUIRED) seeOther(ctx, `/consent?flow=${encodeURIComponent(flow.id)}`);
  else throw answeredFlow();
  return true;
}

export function isInvalidArgument(err: unknown, reason?: string): boolean {
  return isRemoteError(err, Status.INVALID_ARGUMENT) && (reason === undefined || err.reason === reason);
}

export function sendPage(ctx: Context, body: string, status = 200): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
}
