// Registers redirect.mjs as a module-resolution hook, so that the seed samples
// (seed-enroll.mjs, seed-list.mjs), which import '@workos-inc/node' and hard-code
// an API key and api.workos.com, run unchanged against a Tessera server:
//
//   node --import ./register.mjs seed-enroll.mjs
import { register } from 'node:module';

register('./redirect.mjs', import.meta.url);
