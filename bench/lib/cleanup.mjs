// Everything the bench starts is registered here and undone in reverse order,
// once, whether the bench ends normally, throws, is interrupted (Ctrl-C,
// SIGTERM, SIGHUP) or overruns its time limit.
import { rmSync } from 'node:fs';

export class Cleanup {
  #steps = [];
  #running;

  /** Registers an undo step (run last-in, first-out). */
  add(name, fn) {
    this.#steps.push({ name, fn });
  }

  /** Runs every step once; later calls wait for the first. Never throws. */
  run(log = () => {}) {
    this.#running ??= (async () => {
      for (const { name, fn } of this.#steps.reverse()) {
        try {
          await fn();
        } catch (err) {
          log(`cleanup: ${name} failed: ${err?.message ?? err}`);
        }
      }
      this.#steps = [];
    })();
    return this.#running;
  }

  /** Removes a directory (and everything under it) at cleanup. */
  addDir(dir) {
    this.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  }

  /**
   * Cleans up and exits on SIGINT/SIGTERM/SIGHUP, on an uncaught error, and
   * after `timeoutMs` (a bench that hangs still ends, without leftovers).
   */
  installExitHandlers({ timeoutMs, log }) {
    const bail = (why, code) => {
      log(`${why}: stopping everything…`);
      void this.run(log).finally(() => process.exit(code));
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(signal, () => bail(`${signal} received`, 130));
    process.once('uncaughtException', (err) => bail(`Uncaught error: ${err?.stack ?? err}`, 1));
    process.once('unhandledRejection', (err) => bail(`Unhandled rejection: ${err?.stack ?? err}`, 1));
    const timer = setTimeout(() => bail(`The bench ran longer than ${Math.round(timeoutMs / 1000)} s`, 1), timeoutMs);
    timer.unref();
    this.add('time limit', () => clearTimeout(timer));
  }
}
