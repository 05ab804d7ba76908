// Stand-in for '@workos-inc/node' used by the seed samples (see redirect.mjs).
// Re-exports the real package; its WorkOS ignores the key and options the caller
// passes and talks to the Tessera server named by the environment instead:
//   TESSERA_BASE_URL   e.g. http://127.0.0.1:41234
//   TESSERA_API_KEY    an API key of that server (sk_...)
//   TESSERA_CLIENT_ID  that server's client id (client_...)
import { WorkOS as RealWorkOS } from '@workos-inc/node';

export * from '@workos-inc/node';

export function tesseraOptions() {
  const base = process.env.TESSERA_BASE_URL;
  const apiKey = process.env.TESSERA_API_KEY;
  if (!base || !apiKey) {
    throw new Error('shim.mjs: TESSERA_BASE_URL and TESSERA_API_KEY must be set');
  }
  const url = new URL(base);
  if (url.pathname !== '/' && url.pathname !== '') {
    // The Node SDK drops any path from the base URL; refuse rather than mislead.
    throw new Error(`shim.mjs: TESSERA_BASE_URL must have no path: ${base}`);
  }
  return {
    apiKey,
    options: {
      apiHostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      https: url.protocol === 'https:',
      clientId: process.env.TESSERA_CLIENT_ID,
    },
  };
}

export class WorkOS extends RealWorkOS {
  // The hard-coded key and any options of the caller are ignored on purpose.
  constructor(_keyOrOptions, _maybeOptions) {
    const { apiKey, options } = tesseraOptions();
    super(apiKey, options);
  }
}
