import type { Logger } from './logger.js';

/**
 * Runs a job every intervalMs (first run after one interval), never two runs
 * at once. Sweeping expired rows is the main use: FerretDB has no TTL
 * indexes, so every service deletes its own expired codes, sessions and
 * tokens, the same way on MongoDB and FerretDB. The job returns how many
 * items it handled. Returns a stop function that waits for a run in progress.
 */
export function startPeriodicJob(name: string, intervalMs: number, run: () => Promise<number>, logger: Logger): () => Promise<void> {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = run()
      .then((handled) => {
        if (handled > 0) logger.debug('Periodic job ran', { job: name, handled });
      })
      .catch((err: unknown) => logger.warn('Periodic job failed; will retry', { job: name, err }))
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
