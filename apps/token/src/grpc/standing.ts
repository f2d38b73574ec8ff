import { isRemoteError, Status } from '@ledgerly/chassis';
import type { User } from '@ledgerly/proto/identity/v1/identity';
import type { ClientDoc } from '../store/clients.js';
import type { TokenDeps } from './deps.js';

/** Why an authorization no longer stands. "…_since": the suspension or disabling came after `sinceMs`, even if lifted now. */
export type Lapse = 'client_suspended' | 'suspended_since' | 'user_disabled' | 'disabled_since' | 'grant_revoked';

const orNone = <T>(call: Promise<T>) => call.catch((err: unknown) => (isRemoteError(err, Status.NOT_FOUND) ? undefined : Promise.reject(err)));

/**
 * Does an authorization of this client, user and grant, made (or issued) at
 * `sinceMs`, still stand: the client not suspended, the user enabled, the
 * grant live, and neither suspended nor disabled since then? Asked live of
 * identity and consent, for issuing (the grants) and for checking
 * (CheckToken, introspection) alike. Returns the user when it stands.
 */
export async function standing(
  deps: Pick<TokenDeps, 'identity' | 'consent'>,
  client: ClientDoc | null,
  userId: string,
  grantId: string,
  sinceMs: number,
): Promise<{ lapse: Lapse; user?: undefined } | { lapse?: undefined; user: User }> {
  if (!client || client.suspendedAt) return { lapse: 'client_suspended' };
  if (client.lastSuspendedAt && client.lastSuspendedAt.getTime() >= sinceMs) return { lapse: 'suspended_since' };
  const [user, grant] = await Promise.all([
    orNone(deps.identity.getUser({ userId }).then((r) => r.user)),
    grantId ? orNone(deps.consent.getGrant({ grantId }).then((r) => r.grant)) : Promise.resolve(undefined),
  ]);
  if (!user || user.disabled) return { lapse: 'user_disabled' };
  if (user.disabledAt && user.disabledAt.getTime() >= sinceMs) return { lapse: 'disabled_since' };
  if (!grant || grant.revokedAt) return { lapse: 'grant_revoked' };
  return { user };
}
