import { createLogger, EventBus, RemoteError } from '@ledgerly/chassis';
import type { Event } from '@ledgerly/proto/events/v1/events';

/** The RemoteError a gRPC call failed with; throws if it succeeded or failed otherwise. */
export async function failure(call: Promise<unknown>): Promise<RemoteError> {
  const outcome = await call.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`expected the call to fail, got ${JSON.stringify(outcome.value)}`);
  if (!(outcome.err instanceof RemoteError)) throw new Error(`expected a RemoteError, got ${String(outcome.err)}`);
  return outcome.err;
}

/** Polls until the condition holds (or throws after timeoutMs). */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Collects the platform events matching `keep` from the real stream, since `since`. */
export async function collectEvents(natsUrl: string, since: Date, keep: (event: Event) => boolean) {
  const bus = await EventBus.connect({ url: natsUrl, name: 'test-observer', logger: createLogger({ service: 'test', level: 'error' }) });
  const events: Event[] = [];
  const subscription = await bus.subscribe({ since, handle: (e) => void (keep(e) && events.push(e)) });
  await subscription.caughtUp;
  return {
    events,
    stop: async () => {
      await subscription.stop();
      await bus.close();
    },
  };
}
