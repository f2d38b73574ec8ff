export * from './access-token.js';
export * from './connection-view.js';
export * from './membership-view.js';
export * from './permissions.js';
export * from './scopes.js';
export * from './ttl-cache.js';
export * from './check-access.js';
export * from './views.js';
