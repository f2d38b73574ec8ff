import { ConfigError } from './config.js';
import { createLogger, type LogLevel, type Logger } from './logger.js';

export type StopHook = () => Promise<void> | void;

/** What a service's start function gets from the chassis. */
export interface ServiceRuntime {
  readonly name: string;
  readonly logger: Logger;
  /**
   * Registers a step of the orderly shutdown. Steps run in reverse order of
   * registration: register Mongo first, NATS next, the server last, and
   * shutdown stops the server, drains NATS, then closes Mongo.
   */
  onStop(step: string, hook: StopHook): void;
}

export interface ServiceDefinitionOptions<C> {
  name: string;
  config: (env: Record<string, string | undefined>) => C;
  logLevel: (config: C) => LogLevel;
  /** Starts everything; returns fields for the "Service ready" line (e.g. the bound address). */
  start: (config: C, runtime: ServiceRuntime) => Promise<Record<string, unknown>>;
  /** Total time the shutdown steps may take before the process is forced out (default 10 s). */
  graceMs?: number;
}

export type ServiceState = 'starting' | 'running' | 'stopping' | 'stopped';

export interface ServiceHandle {
  readonly state: ServiceState;
  readonly ready: Record<string, unknown>;
  readonly logger: Logger;
  stop(): Promise<void>;
}

/** Starts a service in this process (used by main and by in-process tests). */
export async function startService<C>(
  options: ServiceDefinitionOptions<C>,
  env: Record<string, string | undefined>,
  write?: (line: string) => void,
): Promise<ServiceHandle> {
  const config = options.config(env);
  const logger = createLogger({ service: options.name, level: options.logLevel(config), ...(write ? { write } : {}) });
  const steps: Array<{ step: string; hook: StopHook }> = [];
  let state: ServiceState = 'starting';
  const runtime: ServiceRuntime = {
    name: options.name,
    logger,
    onStop: (step, hook) => steps.push({ step, hook }),
  };
  const runSteps = async () => {
    for (const { step, hook } of steps.reverse()) {
      try {
        await hook();
        logger.debug('Shutdown step done', { step });
      } catch (err) {
        logger.error('Shutdown step failed', { step, err });
      }
    }
  };
  let ready: Record<string, unknown>;
  try {
    ready = await options.start(config, runtime);
  } catch (err) {
    await runSteps();
    throw err;
  }
  state = 'running';
  logger.info('Service ready', ready);
  let stopping: Promise<void> | undefined;
  return {
    get state() {
      return state;
    },
    ready,
    logger,
    stop: () => {
      stopping ??= (async () => {
        state = 'stopping';
        logger.info('Service stopping');
        await runSteps();
        state = 'stopped';
        logger.info('Service stopped');
      })();
      return stopping;
    },
  };
}

/**
 * The main of every app: validate config (a bad value exits 78 with a message
 * naming the key), start, then on SIGTERM or SIGINT shut down in order within
 * the grace time; a second signal, or running out of time, forces exit 1.
 */
export function runService<C>(options: ServiceDefinitionOptions<C>): void {
  const graceMs = options.graceMs ?? 10_000;
  startService(options, process.env).then(
    (handle) => {
      let signalled = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (signalled) {
          handle.logger.warn('Second signal: exiting now', { signal });
          process.exit(1);
        }
        signalled = true;
        handle.logger.info('Signal received', { signal });
        const force = setTimeout(() => {
          handle.logger.error('Shutdown grace time exceeded: exiting', { graceMs });
          process.exit(1);
        }, graceMs);
        force.unref();
        handle.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      process.on('uncaughtException', (err) => {
        handle.logger.error('Uncaught exception: exiting', { err });
        process.exit(1);
      });
      process.on('unhandledRejection', (err) => {
        handle.logger.error('Unhandled rejection: exiting', { err });
        process.exit(1);
      });
    },
    (err: unknown) => {
      if (err instanceof ConfigError) {
        process.stderr.write(`${options.name}: ${err.message}\n`);
        process.exit(78);
      }
      const logger = createLogger({ service: options.name });
      logger.error('Service failed to start', { err });
      process.exit(1);
    },
  );
}
