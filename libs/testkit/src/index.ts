export * from './harness.js';
export * from './user-agent.js';
