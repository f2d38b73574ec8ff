import { ManagedProcess, parseJsonLine, repoRoot } from '@ledgerly/devstack';
import { join } from 'node:path';

export interface PayrollApp {
  /** http://localhost:<port>: the app's origin, as the browser sees it. */
  readonly url: string;
  readonly redirectUri: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

export interface PayrollOptions {
  port: number;
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Every output line of the app is appended here. */
  logFile?: string;
}

/** The redirect URI the payroll example registers for a given port. */
export const payrollRedirectUri = (port: number): string => `http://localhost:${port}/callback`;

/**
 * The example payroll app (examples/payroll/dist/main.js) as a real child
 * process, ready once it logs "Payroll app ready".
 */
export async function startPayroll(options: PayrollOptions): Promise<PayrollApp> {
  const url = `http://localhost:${options.port}`;
  const proc = new ManagedProcess({
    name: 'payroll',
    command: process.execPath,
    args: ['--enable-source-maps', join(repoRoot(), 'examples', 'payroll', 'dist', 'main.js')],
    cwd: repoRoot(),
    env: {
      PAYROLL_LISTEN: `127.0.0.1:${options.port}`,
      PAYROLL_PUBLIC_URL: url,
      PAYROLL_ISSUER: options.issuer,
      PAYROLL_CLIENT_ID: options.clientId,
      PAYROLL_CLIENT_SECRET: options.clientSecret,
    },
    ...(options.logFile ? { logFile: options.logFile } : {}),
    readyWhen: (line) => {
      const record = parseJsonLine(line);
      return record?.['msg'] === 'Payroll app ready' ? record : undefined;
    },
  });
  await proc.start();
  return {
    url,
    redirectUri: payrollRedirectUri(options.port),
    process: proc,
    stop: async () => {
      await proc.stop();
      proc.closeLog();
    },
  };
}
