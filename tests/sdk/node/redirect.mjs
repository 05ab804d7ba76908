// Module-resolution hook (see register.mjs): every import of '@workos-inc/node'
// resolves to shim.mjs instead, except the shim's own import, which must reach
// the real package.
const SHIM_URL = new URL('./shim.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@workos-inc/node' && context.parentURL !== SHIM_URL) {
    return { url: SHIM_URL, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
