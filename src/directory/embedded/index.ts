// The embedded read-only LDAP directory that stands in for a real one when none is configured: its public surface.
// Re-exports only; never holds logic or exposes the ldapjs internals, the store or the matcher.
export { startEmbeddedDirectory, type EmbeddedDirectory, type EmbeddedDirectoryOptions } from './server.ts';
