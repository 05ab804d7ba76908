// SDK conformance: drives a Tessera server with the official WorkOS Node SDK
// (@workos-inc/node, version pinned in package.json), unchanged but for the host.
//
//   TESSERA_BASE_URL=http://127.0.0.1:8080 TESSERA_API_KEY=sk_... \
//   TESSERA_CLIENT_ID=client_... node conformance.mjs
//
// Prints one line per check and finally `sdk-node: N passed, M failed`; exits
// non-zero when any check failed. Creates its own users (random emails), so it
// can share a server with other suites; it deletes its main user at the end.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import {
  NotFoundException,
  UnauthorizedException,
  WorkOS,
} from '@workos-inc/node';

const BASE_URL = process.env.TESSERA_BASE_URL;
const API_KEY = process.env.TESSERA_API_KEY;
const CLIENT_ID = process.env.TESSERA_CLIENT_ID;
if (!BASE_URL || !API_KEY) {
  console.error('conformance.mjs: set TESSERA_BASE_URL and TESSERA_API_KEY (and TESSERA_CLIENT_ID)');
  process.exit(2);
}

const SDK_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/@workos-inc/node/package.json', import.meta.url), 'utf8'),
).version;

const base = new URL(BASE_URL);

function client(apiKey) {
  return new WorkOS(apiKey, {
    apiHostname: base.hostname,
    port: base.port ? Number(base.port) : undefined,
    https: base.protocol === 'https:',
    clientId: CLIENT_ID,
  });
}

const workos = client(API_KEY);

// Raw HTTP, for the few properties the SDK's deserializers would hide
// (e.g. a secret leaking into list responses is dropped by the SDK).
async function rawGet(path) {
  const res = await fetch(new URL(path, base), {
    headers: { Authorization: `Bearer ${API_KEY}`, Accept: 'application/json' },
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${describe(err)}`);
  }
}

function describe(err) {
  if (err instanceof assert.AssertionError) return err.message.split('\n').join('\n     ');
  const extra = [];
  if (err?.status !== undefined) extra.push(`status=${err.status}`);
  if (err?.code !== undefined) extra.push(`code=${err.code}`);
  if (err?.rawData !== undefined) extra.push(`rawData=${JSON.stringify(err.rawData)}`);
  if (err?.rawBody !== undefined) extra.push(`rawBody=${err.rawBody}`);
  return `${err?.name ?? 'Error'}: ${err?.message ?? err}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

function need(value, what) {
  if (value === undefined || value === null) throw new Error(`precondition failed: no ${what} (an earlier check failed)`);
  return value;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const BASE32_SECRET = /^[A-Z2-7]{32}$/;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const NONEXISTENT_USER = 'user_01XXXXXXXXXXXXXXXXXXXXXXXX';

const suffix = randomBytes(6).toString('hex');
const email = `sdk-node-${suffix}@example.com`;
const password = `Tessera-${randomBytes(9).toString('base64url')}-9!`;

let user;
const factorIds = [];

console.log(`sdk-node: @workos-inc/node ${SDK_VERSION} against ${BASE_URL}`);

// ------------------------------------------------------------------ users
await check('userManagement.createUser returns the new user', async () => {
  user = await workos.userManagement.createUser({
    email,
    password,
    firstName: 'Bob',
    lastName: 'Loblaw',
  });
  assert.equal(user.object, 'user');
  assert.match(user.id, /^user_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(user.email, email);
  assert.equal(user.emailVerified, false);
  assert.equal(user.firstName, 'Bob');
  assert.equal(user.lastName, 'Loblaw');
  assert.equal(typeof user.createdAt, 'string');
  assert.match(user.createdAt, TIMESTAMP);
  assert.match(user.updatedAt, TIMESTAMP);
});

await check('userManagement.getUser returns the same user', async () => {
  const got = await workos.userManagement.getUser(need(user, 'user').id);
  assert.equal(got.id, user.id);
  assert.equal(got.email, email);
  assert.equal(got.emailVerified, false);
  assert.equal(got.firstName, 'Bob');
  assert.equal(got.lastName, 'Loblaw');
  assert.equal(got.createdAt, user.createdAt);
});

await check('userManagement.updateUser changes firstName only', async () => {
  const updated = await workos.userManagement.updateUser({
    userId: need(user, 'user').id,
    firstName: 'Robert',
  });
  assert.equal(updated.id, user.id);
  assert.equal(updated.firstName, 'Robert');
  assert.equal(updated.lastName, 'Loblaw');
  assert.equal(updated.email, email);
  const got = await workos.userManagement.getUser(user.id);
  assert.equal(got.firstName, 'Robert');
});

await check('userManagement.listUsers({email}) finds the user', async () => {
  const list = await workos.userManagement.listUsers({ email: need(user, 'user').email });
  assert.equal(list.object, 'list');
  assert.ok(Array.isArray(list.data));
  assert.deepEqual(list.data.map((u) => u.id), [user.id]);
  assert.equal(list.data[0].firstName, 'Robert');
  assert.equal(typeof list.listMetadata, 'object');
  assert.equal(list.listMetadata.after ?? null, null);
});

// ------------------------------------------------------------------ MFA enrolment
await check('userManagement.enrollAuthFactor (totpIssuer/totpUser) returns factor + challenge', async () => {
  const { authenticationFactor: factor, authenticationChallenge: challenge } =
    await workos.userManagement.enrollAuthFactor({
      userId: need(user, 'user').id,
      type: 'totp',
      totpIssuer: 'Foo Corp',
      totpUser: 'bob@example.com',
    });
  factorIds.push(factor.id);
  assert.equal(factor.object, 'authentication_factor');
  assert.match(factor.id, /^auth_factor_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(factor.type, 'totp');
  assert.equal(factor.userId, user.id);
  assert.match(factor.createdAt, TIMESTAMP);
  assert.match(factor.updatedAt, TIMESTAMP);
  assert.equal(factor.totp.issuer, 'Foo Corp');
  assert.equal(factor.totp.user, 'bob@example.com');
  assert.ok(factor.totp.qrCode.startsWith('data:image/png;base64,'), `qrCode: ${factor.totp.qrCode.slice(0, 40)}`);
  const png = Buffer.from(factor.totp.qrCode.slice('data:image/png;base64,'.length), 'base64');
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, 'qrCode is a PNG');
  assert.match(factor.totp.secret, BASE32_SECRET);
  assert.equal(
    factor.totp.uri,
    `otpauth://totp/Foo%20Corp:bob@example.com?secret=${factor.totp.secret}&issuer=Foo%20Corp&algorithm=SHA1&digits=6&period=30`,
  );

  assert.equal(challenge.object, 'authentication_challenge');
  assert.match(challenge.id, /^auth_challenge_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(challenge.authenticationFactorId, factor.id);
  assert.equal(challenge.code, undefined, 'a TOTP challenge carries no code');
  assert.match(challenge.createdAt, TIMESTAMP);
  assert.match(challenge.expiresAt, TIMESTAMP);
  assert.equal(Date.parse(challenge.expiresAt) - Date.parse(challenge.createdAt), 600000);
});

await check('userManagement.enrollAuthFactor without issuer/user defaults totp.user to the email', async () => {
  const { authenticationFactor: factor, authenticationChallenge: challenge } =
    await workos.userManagement.enrollAuthFactor({ userId: need(user, 'user').id, type: 'totp' });
  factorIds.push(factor.id);
  assert.equal(factor.type, 'totp');
  assert.equal(factor.userId, user.id);
  assert.equal(factor.totp.user, email);
  assert.equal(typeof factor.totp.issuer, 'string');
  assert.ok(factor.totp.issuer.length > 0, 'default issuer is non-empty');
  assert.match(factor.totp.secret, BASE32_SECRET);
  assert.ok(factor.totp.uri.startsWith('otpauth://totp/'), factor.totp.uri);
  assert.ok(factor.totp.uri.includes(`secret=${factor.totp.secret}`), factor.totp.uri);
  assert.ok(factor.totp.uri.includes(email), factor.totp.uri);
  assert.equal(challenge.authenticationFactorId, factor.id);
});

await check('userManagement.enrollAuthFactor for an unknown user rejects with NotFoundException', async () => {
  await assert.rejects(
    workos.userManagement.enrollAuthFactor({ userId: NONEXISTENT_USER, type: 'totp' }),
    (err) => {
      assert.ok(err instanceof NotFoundException, `got ${describe(err)}`);
      assert.equal(err.status, 404);
      return true;
    },
  );
});

// ------------------------------------------------------------------ MFA listing
await check('userManagement.listAuthFactors lists the enrolled factors without secrets', async () => {
  const list = await workos.userManagement.listAuthFactors({ userId: need(user, 'user').id });
  assert.equal(list.object, 'list');
  assert.equal(list.data.length, factorIds.length);
  assert.deepEqual(new Set(list.data.map((f) => f.id)), new Set(factorIds));
  for (const f of list.data) {
    assert.equal(f.object, 'authentication_factor');
    assert.equal(f.type, 'totp');
    assert.equal(f.userId, user.id);
    assert.equal(typeof f.totp.issuer, 'string');
    assert.equal(typeof f.totp.user, 'string');
    assert.equal(f.totp.secret, undefined);
    assert.equal(f.totp.qrCode, undefined);
    assert.equal(f.totp.uri, undefined);
  }
  assert.equal(list.listMetadata.after ?? null, null, 'no next page');
});

await check('GET auth_factors on the wire carries no secret, qr_code or uri', async () => {
  // The SDK's list deserializer drops unknown totp keys, so look at the raw JSON too.
  const { status, body } = await rawGet(`/user_management/users/${need(user, 'user').id}/auth_factors`);
  assert.equal(status, 200);
  assert.equal(body.object, 'list');
  assert.equal(body.data.length, factorIds.length);
  for (const f of body.data) {
    assert.deepEqual(Object.keys(f.totp).sort(), ['issuer', 'user'], JSON.stringify(f.totp));
  }
  assert.equal(body.list_metadata.after, null);
});

await check('enrol up to 12 factors', async () => {
  need(user, 'user');
  while (factorIds.length < 12) {
    const { authenticationFactor } = await workos.userManagement.enrollAuthFactor({
      userId: user.id,
      type: 'totp',
      totpIssuer: 'Foo Corp',
      totpUser: `bob+${factorIds.length}@example.com`,
    });
    factorIds.push(authenticationFactor.id);
  }
  assert.equal(new Set(factorIds).size, 12);
});

await check('listAuthFactors pages by limit=5 through listMetadata.after (5+5+2)', async () => {
  need(user, 'user');
  const sizes = [];
  const seen = [];
  let after;
  for (let page = 0; page < 10; page += 1) {
    const list = await workos.userManagement.listAuthFactors({ userId: user.id, limit: 5, after });
    sizes.push(list.data.length);
    seen.push(...list.data);
    after = list.listMetadata.after;
    if (!after) break;
  }
  assert.deepEqual(sizes, [5, 5, 2]);
  assert.equal(after ?? null, null);
  assert.equal(new Set(seen.map((f) => f.id)).size, 12);
  assert.deepEqual(new Set(seen.map((f) => f.id)), new Set(factorIds));
  // default order is desc: newest first
  for (let i = 1; i < seen.length; i += 1) {
    assert.ok(seen[i - 1].createdAt >= seen[i].createdAt, `order desc at ${i}: ${seen[i - 1].createdAt} < ${seen[i].createdAt}`);
  }
});

await check('listAuthFactors default page is 10 items with a next cursor', async () => {
  const list = await workos.userManagement.listAuthFactors({ userId: need(user, 'user').id });
  assert.equal(list.data.length, 10);
  assert.equal(typeof list.listMetadata.after, 'string');
});

await check('listAuthFactors(...).autoPagination() returns all 12 factors', async () => {
  // Note: in 8.13.0 autoPagination() returns only the first page when the first
  // call passed `limit`, so it is called here without one.
  const list = await workos.userManagement.listAuthFactors({ userId: need(user, 'user').id });
  assert.equal(typeof list.autoPagination, 'function');
  const all = await list.autoPagination();
  assert.equal(all.length, 12);
  assert.deepEqual(new Set(all.map((f) => f.id)), new Set(factorIds));
});

// ------------------------------------------------------------------ errors
await check('userManagement.getUser(unknown id) rejects with NotFoundException', async () => {
  await assert.rejects(workos.userManagement.getUser(NONEXISTENT_USER), (err) => {
    assert.ok(err instanceof NotFoundException, `got ${describe(err)}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'entity_not_found');
    assert.match(err.message, /not found/i);
    return true;
  });
});

await check('a client with a wrong API key is rejected with UnauthorizedException', async () => {
  const bad = client(`sk_test_wrong_${suffix}`);
  await assert.rejects(bad.userManagement.getUser(need(user, 'user').id), (err) => {
    assert.ok(err instanceof UnauthorizedException, `got ${describe(err)}`);
    assert.equal(err.status, 401);
    return true;
  });
  await assert.rejects(bad.userManagement.listUsers({ email }), UnauthorizedException);
  await assert.rejects(
    bad.userManagement.enrollAuthFactor({ userId: user.id, type: 'totp' }),
    UnauthorizedException,
  );
});

// ------------------------------------------------------------------ deletion
await check('userManagement.deleteUser resolves, then getUser rejects with NotFoundException', async () => {
  const id = need(user, 'user').id;
  const result = await workos.userManagement.deleteUser(id);
  assert.equal(result, undefined);
  await assert.rejects(workos.userManagement.getUser(id), NotFoundException);
  const list = await workos.userManagement.listUsers({ email });
  assert.equal(list.data.length, 0);
});

console.log(`sdk-node: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
