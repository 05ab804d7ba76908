// SDK conformance: drives a Tessera server with the official WorkOS Node SDK
// (@workos-inc/node, version pinned in package.json), unchanged but for the host.
//
//   TESSERA_BASE_URL=http://127.0.0.1:8080 TESSERA_API_KEY=sk_... \
//   TESSERA_CLIENT_ID=client_... node conformance.mjs
//
// Prints one line per check and finally `sdk-node: N passed, M failed`; exits
// non-zero when any check failed. Creates its own users (random emails), so it
// can share a server with other suites; it deletes its main user at the end.
// The sign-in checks need TESSERA_CLIENT_ID (authenticateWith* send it as client_id).
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, randomBytes, verify as verifySignature } from 'node:crypto';
import { readFileSync } from 'node:fs';

import {
  GenericServerException,
  NotFoundException,
  OauthException,
  UnauthorizedException,
  UnprocessableEntityException,
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

// ------------------------------------------------------------------ standalone MFA API
// workos.mfa.*: /auth/factors/enroll, /auth/factors/:id, /auth/factors/:id/challenge,
// /auth/challenges/:id/verify. Factors here belong to no user. The server allows 10
// failed verifications per factor per 15 minutes (and the CI server's clock is frozen,
// so that window never passes): every check with wrong codes uses its own factor.

const NONEXISTENT_FACTOR = 'auth_factor_01XXXXXXXXXXXXXXXXXXXXXXXX';
const SIX_DIGITS = /^\d{6}$/;

// RFC 4648 base32 (no padding) -> bytes.
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP: HMAC-SHA-1, 6 digits, 30 s steps.
function totpCode(secret, unixSeconds) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

// The server's clock is not necessarily ours (CI freezes it): take the time from the
// created_at of a challenge the server has just made.
function serverSeconds(challenge) {
  const ms = Date.parse(challenge.createdAt);
  assert.ok(Number.isFinite(ms), `unparseable createdAt ${challenge.createdAt}`);
  return ms / 1000;
}

function otherCode(code, k = 1) {
  return String((Number(code) + k) % 1_000_000).padStart(6, '0');
}

function assertChallenge(challenge, factorId) {
  assert.equal(challenge.object, 'authentication_challenge');
  assert.match(challenge.id, /^auth_challenge_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(challenge.authenticationFactorId, factorId);
  assert.match(challenge.createdAt, TIMESTAMP);
  assert.match(challenge.updatedAt, TIMESTAMP);
  assert.match(challenge.expiresAt, TIMESTAMP);
}

const mfa = {};

await check('mfa.enrollFactor totp (issuer/user) returns the factor with qrCode/secret/uri', async () => {
  const factor = await workos.mfa.enrollFactor({ type: 'totp', issuer: 'Foo Corp', user: 'alice@example.com' });
  assert.equal(factor.object, 'authentication_factor');
  assert.match(factor.id, /^auth_factor_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(factor.type, 'totp');
  assert.match(factor.createdAt, TIMESTAMP);
  assert.match(factor.updatedAt, TIMESTAMP);
  assert.equal(factor.sms, undefined);
  assert.equal(factor.totp.issuer, 'Foo Corp');
  assert.equal(factor.totp.user, 'alice@example.com');
  assert.ok(factor.totp.qrCode.startsWith('data:image/png;base64,'), `qrCode: ${factor.totp.qrCode.slice(0, 40)}`);
  const png = Buffer.from(factor.totp.qrCode.slice('data:image/png;base64,'.length), 'base64');
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, 'qrCode is a PNG');
  assert.match(factor.totp.secret, BASE32_SECRET);
  assert.ok(factor.totp.uri.startsWith('otpauth://totp/Foo%20Corp:alice@example.com?'), factor.totp.uri);
  assert.ok(factor.totp.uri.includes(`secret=${factor.totp.secret}`), factor.totp.uri);
  mfa.totp = factor;
});

await check('mfa.getFactor returns the totp factor without secrets', async () => {
  const enrolled = need(mfa.totp, 'totp factor');
  const factor = await workos.mfa.getFactor(enrolled.id);
  assert.equal(factor.object, 'authentication_factor');
  assert.equal(factor.id, enrolled.id);
  assert.equal(factor.type, 'totp');
  assert.equal(factor.createdAt, enrolled.createdAt);
  assert.deepEqual(factor.totp, { issuer: 'Foo Corp', user: 'alice@example.com' });
});

await check('GET /auth/factors/:id on the wire carries no secret, qr_code or uri', async () => {
  // The SDK's getFactor keeps only issuer/user, so look at the raw JSON.
  const enrolled = need(mfa.totp, 'totp factor');
  const { status, body } = await rawGet(`/auth/factors/${enrolled.id}`);
  assert.equal(status, 200);
  assert.equal(body.object, 'authentication_factor');
  assert.equal(body.id, enrolled.id);
  assert.equal(body.type, 'totp');
  assert.deepEqual(body.totp, { issuer: 'Foo Corp', user: 'alice@example.com' }, JSON.stringify(body));
  assert.ok(!JSON.stringify(body).includes(enrolled.totp.secret), 'secret leaked');
});

await check('mfa.enrollFactor sms (+15555550100) returns the factor with sms.phoneNumber', async () => {
  const factor = await workos.mfa.enrollFactor({ type: 'sms', phoneNumber: '+15555550100' });
  assert.equal(factor.object, 'authentication_factor');
  assert.match(factor.id, /^auth_factor_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(factor.type, 'sms');
  assert.equal(factor.totp, undefined);
  assert.deepEqual(factor.sms, { phoneNumber: '+15555550100' });
  const got = await workos.mfa.getFactor(factor.id);
  assert.equal(got.type, 'sms');
  assert.deepEqual(got.sms, { phoneNumber: '+15555550100' });
  mfa.sms = factor;
});

await check('mfa.enrollFactor sms (not-a-phone) rejects with UnprocessableEntityException invalid_phone_number', async () => {
  await assert.rejects(workos.mfa.enrollFactor({ type: 'sms', phoneNumber: 'not-a-phone' }), (err) => {
    assert.ok(err instanceof UnprocessableEntityException, `got ${describe(err)}`);
    assert.equal(err.status, 422);
    assert.equal(err.code, 'invalid_phone_number');
    return true;
  });
});

await check('mfa.enrollFactor generic_otp returns a factor with neither totp nor sms', async () => {
  const factor = await workos.mfa.enrollFactor({ type: 'generic_otp' });
  assert.equal(factor.object, 'authentication_factor');
  assert.match(factor.id, /^auth_factor_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(factor.type, 'generic_otp');
  assert.equal(factor.totp, undefined);
  assert.equal(factor.sms, undefined);
  const got = await workos.mfa.getFactor(factor.id);
  assert.equal(got.type, 'generic_otp');
  mfa.otp = factor;
});

await check('mfa.challengeFactor generic_otp returns a challenge with a 6-digit code', async () => {
  const factor = need(mfa.otp, 'generic_otp factor');
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assertChallenge(challenge, factor.id);
  assert.match(challenge.code, SIX_DIGITS);
  assert.equal(Date.parse(challenge.expiresAt) - Date.parse(challenge.createdAt), 600000);
  mfa.otpChallenge = challenge;
});

await check('mfa.verifyChallenge with a wrong code resolves valid: false', async () => {
  const challenge = need(mfa.otpChallenge, 'generic_otp challenge');
  const res = await workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code: otherCode(challenge.code) });
  assert.equal(res.valid, false);
  assert.equal(res.challenge.id, challenge.id);
  assert.equal(res.challenge.authenticationFactorId, challenge.authenticationFactorId);
});

await check('mfa.verifyChallenge with the right code resolves valid: true', async () => {
  const challenge = need(mfa.otpChallenge, 'generic_otp challenge');
  const res = await workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code: challenge.code });
  assert.equal(res.valid, true);
  assert.equal(res.challenge.object, 'authentication_challenge');
  assert.equal(res.challenge.id, challenge.id);
  assert.equal(res.challenge.authenticationFactorId, challenge.authenticationFactorId);
  mfa.otpVerified = true;
});

await check('mfa.verifyChallenge again rejects with UnprocessableEntityException authentication_challenge_previously_verified', async () => {
  need(mfa.otpVerified, 'verified challenge');
  const challenge = mfa.otpChallenge;
  await assert.rejects(
    workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code: challenge.code }),
    (err) => {
      assert.ok(err instanceof UnprocessableEntityException, `got ${describe(err)}`);
      assert.equal(err.status, 422);
      assert.equal(err.code, 'authentication_challenge_previously_verified');
      return true;
    },
  );
});

await check('mfa.challengeFactor totp + verifyChallenge with the current TOTP code resolves valid: true', async () => {
  const factor = need(mfa.totp, 'totp factor');
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assertChallenge(challenge, factor.id);
  assert.equal(challenge.code, undefined, 'a TOTP challenge carries no code');
  const code = totpCode(factor.totp.secret, serverSeconds(challenge));
  const res = await workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code });
  assert.equal(res.valid, true, `code ${code} for server time ${challenge.createdAt}`);
  assert.equal(res.challenge.id, challenge.id);
  mfa.totpUsedCode = code;
});

await check('a new totp challenge verified with the same (already used) code resolves valid: false', async () => {
  const factor = need(mfa.totp, 'totp factor');
  const code = need(mfa.totpUsedCode, 'used TOTP code');
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assertChallenge(challenge, factor.id);
  const res = await workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code });
  assert.equal(res.valid, false, 'a TOTP code is accepted once');
  assert.equal(res.challenge.id, challenge.id);
});

await check('5 wrong codes, then the 6th attempt rejects with HTTP 400 one_time_code_too_many_attempts', async () => {
  // A fresh factor: this check's 5 failures stay under the per-factor limit.
  const factor = await workos.mfa.enrollFactor({ type: 'generic_otp' });
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assert.match(challenge.code, SIX_DIGITS);
  for (let i = 1; i <= 5; i += 1) {
    const res = await workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code: otherCode(challenge.code, i) });
    assert.equal(res.valid, false, `wrong code #${i}`);
  }
  // Even the right code is refused now.
  await assert.rejects(
    workos.mfa.verifyChallenge({ authenticationChallengeId: challenge.id, code: challenge.code }),
    (err) => {
      // 8.13 maps a 400 without `errors`/`error` to GenericServerException.
      assert.ok(err instanceof GenericServerException, `got ${describe(err)}`);
      assert.equal(err.status, 400);
      assert.equal(err.rawData?.code, 'one_time_code_too_many_attempts', JSON.stringify(err.rawData));
      return true;
    },
  );
});

await check('mfa.challengeFactor sms returns a challenge without a code', async () => {
  // The server sends at most 5 SMS per phone number per 10 minutes, so the challenged
  // factor gets a random number in the fictional +1 555-555-01xx range: repeated runs
  // against one server do not hit that limit.
  const phoneNumber = `+155555501${String(randomBytes(1)[0] % 100).padStart(2, '0')}`;
  const factor = await workos.mfa.enrollFactor({ type: 'sms', phoneNumber });
  assert.deepEqual(factor.sms, { phoneNumber });
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assertChallenge(challenge, factor.id);
  assert.equal(challenge.code, undefined, 'an SMS challenge carries no code');
  await workos.mfa.deleteFactor(factor.id);
});

await check('mfa.deleteFactor resolves, then getFactor rejects with NotFoundException', async () => {
  const factor = need(mfa.sms, 'sms factor');
  const result = await workos.mfa.deleteFactor(factor.id);
  assert.equal(result, undefined);
  await assert.rejects(workos.mfa.getFactor(factor.id), (err) => {
    assert.ok(err instanceof NotFoundException, `got ${describe(err)}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'entity_not_found');
    return true;
  });
});

await check('mfa.getFactor(unknown id) rejects with NotFoundException', async () => {
  await assert.rejects(workos.mfa.getFactor(NONEXISTENT_FACTOR), (err) => {
    assert.ok(err instanceof NotFoundException, `got ${describe(err)}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'entity_not_found');
    assert.match(err.message, /not found/i);
    return true;
  });
});

// ------------------------------------------------------------------ sign-in
// POST /user_management/authenticate through userManagement.authenticateWith*. Every
// check signs in a fresh user (random email): each TOTP code is accepted once per factor,
// and the server throttles failed passwords per account.
//
// 8.13 has no dedicated MFA exception: a 403 `mfa_challenge` body (code style, no `error`,
// no `errors`) becomes GenericServerException with the whole body in `.rawData`. The OAuth
// style 400 `{error: "invalid_grant", ...}` becomes OauthException (`.error`).

const signin = {};
const signinPassword = `Tessera-${randomBytes(9).toString('base64url')}-9!`;
const COOKIE_PASSWORD = randomBytes(32).toString('hex'); // iron needs >= 32 characters

async function signinUser(tag) {
  return workos.userManagement.createUser({
    email: `sdk-node-${tag}-${suffix}@example.com`,
    password: signinPassword,
  });
}

function jwtPart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// The token must be an RS256 JWT whose `kid` is published at the SDK's JWKS URL
// (GET /sso/jwks/:clientId, fetched without an API key, as jose does), and whose
// signature verifies with that key. Returns the header and claims.
async function verifyAccessToken(token) {
  assert.equal(typeof token, 'string');
  const parts = token.split('.');
  assert.equal(parts.length, 3, `a JWT has three parts: ${token.slice(0, 40)}`);
  const header = jwtPart(parts[0]);
  const claims = jwtPart(parts[1]);
  assert.equal(header.alg, 'RS256', JSON.stringify(header));
  assert.equal(typeof header.kid, 'string', JSON.stringify(header));
  const url = workos.userManagement.getJwksUrl(need(CLIENT_ID, 'TESSERA_CLIENT_ID'));
  assert.equal(url, `${base.origin}/sso/jwks/${CLIENT_ID}`);
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  const text = await res.text();
  assert.equal(res.status, 200, `GET ${url}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const jwks = JSON.parse(text);
  assert.ok(Array.isArray(jwks.keys), text);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is not in the JWKS: ${text}`);
  assert.equal(jwk.kty, 'RSA', text);
  assert.equal(jwk.alg, 'RS256', text);
  assert.equal(jwk.use, 'sig', text);
  assert.equal(typeof jwk.n, 'string', text);
  assert.equal(typeof jwk.e, 'string', text);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  assert.equal(key.asymmetricKeyType, 'rsa');
  assert.equal(key.asymmetricKeyDetails.modulusLength, 2048, text);
  // RS256 = RSASSA-PKCS1-v1_5 with SHA-256 (node's default padding for an RSA key).
  const valid = verifySignature(
    'sha256',
    Buffer.from(`${parts[0]}.${parts[1]}`),
    key,
    Buffer.from(parts[2], 'base64url'),
  );
  assert.ok(valid, 'the RS256 signature verifies with the JWKS key');
  return { header, claims };
}

function assertTokens(res, user) {
  assert.equal(res.user.object, 'user');
  assert.equal(res.user.id, user.id);
  assert.equal(res.user.email, user.email);
  assert.match(res.user.lastSignInAt, TIMESTAMP);
  assert.equal(typeof res.accessToken, 'string');
  assert.equal(typeof res.refreshToken, 'string');
  assert.ok(res.refreshToken.length >= 20, `refresh token ${res.refreshToken}`);
  assert.notEqual(res.refreshToken, res.accessToken);
}

await check('userManagement.authenticateWithPassword (user without factors) resolves with user, tokens, authenticationMethod Password', async () => {
  const user = await signinUser('pw');
  const res = await workos.userManagement.authenticateWithPassword({
    clientId: need(CLIENT_ID, 'TESSERA_CLIENT_ID'),
    email: user.email,
    password: signinPassword,
  });
  assertTokens(res, user);
  assert.equal(res.authenticationMethod, 'Password');
  assert.equal(res.organizationId, undefined);
  signin.pwUser = user;
  signin.pw = res;
});

await check('the access token is an RS256 JWT (2048-bit RSA) whose kid is in GET /sso/jwks/:clientId (signature verified)', async () => {
  const res = need(signin.pw, 'password sign-in');
  const { header, claims } = await verifyAccessToken(res.accessToken);
  assert.equal(header.typ ?? 'JWT', 'JWT');
  assert.equal(claims.sub, signin.pwUser.id);
  assert.match(claims.sid, /^session_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(typeof claims.iat, 'number');
  assert.equal(typeof claims.exp, 'number');
  assert.ok(claims.exp > claims.iat, JSON.stringify(claims));
  // iat is the server's sign-in time, as is user.last_sign_in_at.
  assert.equal(claims.iat, Math.floor(Date.parse(res.user.lastSignInAt) / 1000), JSON.stringify(claims));
  signin.sid = claims.sid;
});

await check('authenticateWithPassword({session: {sealSession}}) + authenticateWithSessionCookie verify the token through the SDK (jose + JWKS)', async () => {
  const user = need(signin.pwUser, 'password user');
  const res = await workos.userManagement.authenticateWithPassword({
    clientId: CLIENT_ID,
    email: user.email,
    password: signinPassword,
    session: { sealSession: true, cookiePassword: COOKIE_PASSWORD },
  });
  assertTokens(res, user);
  assert.equal(typeof res.sealedSession, 'string');
  const { claims } = await verifyAccessToken(res.accessToken);
  const session = await workos.userManagement.authenticateWithSessionCookie({
    sessionData: res.sealedSession,
    cookiePassword: COOKIE_PASSWORD,
  });
  // jose checks `exp` against this machine's clock. A server with a frozen clock (sdk.rs:
  // 2026-11-29T12:00:00Z, tokens valid 5 minutes) issues tokens that this machine may see as
  // expired; then the SDK must say exactly that (a signature or key problem is a failure).
  if (Date.now() / 1000 < claims.exp) {
    assert.equal(session.authenticated, true, JSON.stringify(session));
    assert.equal(session.sessionId, claims.sid);
    assert.equal(session.user.id, user.id);
    assert.equal(session.accessToken, res.accessToken);
  } else {
    assert.deepEqual(session, { authenticated: false, reason: 'invalid_jwt' });
  }
});

await check('userManagement.authenticateWithRefreshToken rotates the refresh token; the new access token keeps the session', async () => {
  const first = need(signin.pw, 'password sign-in');
  const sid = need(signin.sid, 'session id');
  const res = await workos.userManagement.authenticateWithRefreshToken({
    clientId: CLIENT_ID,
    refreshToken: first.refreshToken,
  });
  assert.equal(res.user.id, signin.pwUser.id);
  assert.equal(typeof res.accessToken, 'string');
  assert.equal(typeof res.refreshToken, 'string');
  assert.notEqual(res.refreshToken, first.refreshToken, 'a new refresh token');
  const { claims } = await verifyAccessToken(res.accessToken);
  assert.equal(claims.sub, signin.pwUser.id);
  assert.equal(claims.sid, sid, 'same session');
  signin.refreshed = res;
});

await check('a rotated refresh token presented again at once (a retry) gets the same tokens; from another API key it rejects with OauthException invalid_grant and revokes the session', async () => {
  const first = need(signin.pw, 'password sign-in');
  const second = need(signin.refreshed, 'refreshed tokens');
  const otherKey = need(process.env.TESSERA_OTHER_API_KEY, 'TESSERA_OTHER_API_KEY');
  // The suite's server clock is frozen, so this is within the retry grace.
  const retried = await workos.userManagement.authenticateWithRefreshToken({
    clientId: CLIENT_ID,
    refreshToken: first.refreshToken,
  });
  assert.equal(retried.refreshToken, second.refreshToken, 'the same refresh token');
  assert.equal(retried.accessToken, second.accessToken, 'the same access token');
  const invalidGrant = (err) => {
    assert.ok(err instanceof OauthException, `got ${describe(err)}`);
    assert.equal(err.status, 400);
    assert.equal(err.error, 'invalid_grant');
    assert.equal(typeof err.errorDescription, 'string');
    return true;
  };
  await assert.rejects(
    client(otherKey).userManagement.authenticateWithRefreshToken({ clientId: CLIENT_ID, refreshToken: first.refreshToken }),
    invalidGrant,
    'reuse by another client',
  );
  await assert.rejects(
    workos.userManagement.authenticateWithRefreshToken({ clientId: CLIENT_ID, refreshToken: second.refreshToken }),
    invalidGrant,
    'the rotated token of the revoked session',
  );
});

await check('authenticateWithPassword with a wrong password or an unknown email rejects with GenericServerException 400 invalid_credentials', async () => {
  const user = need(signin.pwUser, 'password user');
  for (const email of [user.email, `sdk-node-nobody-${suffix}@example.com`]) {
    await assert.rejects(
      workos.userManagement.authenticateWithPassword({ clientId: CLIENT_ID, email, password: `${signinPassword}x` }),
      (err) => {
        // 8.13 maps a 400 without `errors`/`error` to GenericServerException.
        assert.ok(err instanceof GenericServerException, `got ${describe(err)}`);
        assert.equal(err.status, 400);
        assert.equal(err.rawData?.code, 'invalid_credentials', JSON.stringify(err.rawData));
        assert.equal(typeof err.message, 'string');
        return true;
      },
    );
  }
});

await check('authenticateWithPassword (user with a TOTP factor) rejects with GenericServerException 403 mfa_challenge', async () => {
  const user = await signinUser('mfa');
  const { authenticationFactor: factor } = await workos.userManagement.enrollAuthFactor({
    userId: user.id,
    type: 'totp',
  });
  assert.match(factor.totp.secret, BASE32_SECRET);
  await assert.rejects(
    workos.userManagement.authenticateWithPassword({ clientId: CLIENT_ID, email: user.email, password: signinPassword }),
    (err) => {
      assert.ok(err instanceof GenericServerException, `got ${describe(err)}`);
      assert.equal(err.status, 403);
      const body = err.rawData;
      assert.equal(body?.code, 'mfa_challenge', JSON.stringify(body));
      assert.equal(typeof body.message, 'string');
      assert.equal(err.message, body.message);
      assert.equal(typeof body.pending_authentication_token, 'string', JSON.stringify(body));
      assert.ok(body.pending_authentication_token.length >= 20, body.pending_authentication_token);
      assert.deepEqual(body.authentication_factors, [{ id: factor.id, type: 'totp' }]);
      assert.equal(body.user?.object, 'user');
      assert.equal(body.user.id, user.id);
      assert.equal(body.user.email, user.email);
      signin.pending = body.pending_authentication_token;
      return true;
    },
  );
  signin.mfaUser = user;
  signin.mfaFactor = factor;
});

await check('authenticateWithTotp with a wrong code rejects with GenericServerException 400 invalid_one_time_code', async () => {
  const factor = need(signin.mfaFactor, 'TOTP factor');
  const pending = need(signin.pending, 'pending authentication token');
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assertChallenge(challenge, factor.id);
  const code = otherCode(totpCode(factor.totp.secret, serverSeconds(challenge)));
  await assert.rejects(
    workos.userManagement.authenticateWithTotp({
      clientId: CLIENT_ID,
      code,
      pendingAuthenticationToken: pending,
      authenticationChallengeId: challenge.id,
    }),
    (err) => {
      assert.ok(err instanceof GenericServerException, `got ${describe(err)}`);
      assert.equal(err.status, 400);
      assert.equal(err.rawData?.code, 'invalid_one_time_code', JSON.stringify(err.rawData));
      return true;
    },
  );
});

await check('mfa.challengeFactor + authenticateWithTotp with the current code resolves with user and tokens', async () => {
  const user = need(signin.mfaUser, 'MFA user');
  const factor = need(signin.mfaFactor, 'TOTP factor');
  const pending = need(signin.pending, 'pending authentication token');
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  assertChallenge(challenge, factor.id);
  const code = totpCode(factor.totp.secret, serverSeconds(challenge));
  const res = await workos.userManagement.authenticateWithTotp({
    clientId: CLIENT_ID,
    code,
    pendingAuthenticationToken: pending,
    authenticationChallengeId: challenge.id,
  });
  assertTokens(res, user);
  assert.equal(res.authenticationMethod, 'Password');
  const { claims } = await verifyAccessToken(res.accessToken);
  assert.equal(claims.sub, user.id);
  assert.match(claims.sid, /^session_/);
  signin.totpCode = code;
});

await check('the used pending authentication token rejects with GenericServerException 400 invalid_pending_authentication_token', async () => {
  const factor = need(signin.mfaFactor, 'TOTP factor');
  const code = need(signin.totpCode, 'TOTP sign-in');
  const challenge = await workos.mfa.challengeFactor({ authenticationFactorId: factor.id });
  await assert.rejects(
    workos.userManagement.authenticateWithTotp({
      clientId: CLIENT_ID,
      code,
      pendingAuthenticationToken: signin.pending,
      authenticationChallengeId: challenge.id,
    }),
    (err) => {
      assert.ok(err instanceof GenericServerException, `got ${describe(err)}`);
      assert.equal(err.status, 400);
      assert.equal(err.rawData?.code, 'invalid_pending_authentication_token', JSON.stringify(err.rawData));
      return true;
    },
  );
});

// ------------------------------------------------------------------ hosted sign-in (AuthKit)
// The Rust test allows http://127.0.0.1:*/callback (the loopback port wildcard). A browser is
// played by fetch: it keeps the cookies and fills the hosted forms.

const CALLBACK = 'http://127.0.0.1:9/callback';

function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e];
  });
}

class HostedBrowser {
  constructor() {
    this.cookies = new Map();
  }
  async open(url, form) {
    const headers = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    const init = { redirect: 'manual', headers };
    if (form) {
      init.method = 'POST';
      init.body = new URLSearchParams(form);
    }
    const res = await fetch(url, init);
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const [k, v] = pair.split('=');
      if (attrs.some((a) => a.trim() === 'Max-Age=0')) this.cookies.delete(k);
      else this.cookies.set(k, v);
    }
    return { status: res.status, location: res.headers.get('location'), page: await res.text() };
  }
}

function hidden(page, name) {
  const m = page.match(new RegExp(`name="${name}"[^>]*value="([^"]*)"`));
  assert.ok(m, `${name} in ${page}`);
  return unescapeHtml(m[1]);
}

async function hostedSignIn(browser, url, user) {
  const first = await browser.open(url);
  assert.equal(first.status, 200, first.page);
  const done = await browser.open(new URL('/user_management/authorize/password', base), {
    csrf: hidden(first.page, 'csrf'),
    authz: hidden(first.page, 'authz'),
    email: user.email,
    password: signinPassword,
  });
  assert.equal(done.status, 200, done.page);
  const m = done.page.match(/http-equiv="refresh" content="0;url=([^"]*)"/);
  assert.ok(m, done.page);
  return unescapeHtml(m[1]);
}

function callbackQuery(url) {
  assert.ok(url.startsWith(`${CALLBACK}?`), url);
  return Object.fromEntries(new URL(url).searchParams);
}

await check('getAuthorizationUrl + hosted sign-in + authenticateWithCode resolves with user and tokens; state comes back unchanged', async () => {
  const user = await signinUser('code');
  const state = `st~*${randomBytes(20).toString('base64url')} &=+/`;
  const url = workos.userManagement.getAuthorizationUrl({
    provider: 'authkit', clientId: CLIENT_ID, redirectUri: CALLBACK, state, screenHint: 'sign-in',
  });
  const back = callbackQuery(await hostedSignIn(new HostedBrowser(), url, user));
  assert.equal(back.state, state);
  const res = await workos.userManagement.authenticateWithCode({ clientId: CLIENT_ID, code: back.code });
  assertTokens(res, user);
  assert.equal(res.authenticationMethod, 'Password');
  const { claims } = await verifyAccessToken(res.accessToken);
  assert.equal(claims.sub, user.id);
  await assert.rejects(workos.userManagement.authenticateWithCode({ clientId: CLIENT_ID, code: back.code }), (err) => {
    assert.equal(err.status, 400, describe(err));
    return true;
  });
  signin.codeUser = user;
  signin.code = res;
  signin.codeSid = claims.sid;
});

await check('getAuthorizationUrlWithPKCE + authenticateWithCodeAndVerifier (public client) and authenticateWithCode with codeVerifier', async () => {
  const user = await signinUser('pkce');
  const browser = new HostedBrowser();
  const { url, state, codeVerifier } = await workos.userManagement.getAuthorizationUrlWithPKCE({
    provider: 'authkit', clientId: CLIENT_ID, redirectUri: CALLBACK,
  });
  const back = callbackQuery(await hostedSignIn(browser, url, user));
  assert.equal(back.state, state);
  const publicClient = new WorkOS({
    apiHostname: base.hostname, port: base.port ? Number(base.port) : undefined, https: false, clientId: CLIENT_ID,
  });
  await assert.rejects(
    publicClient.userManagement.authenticateWithCodeAndVerifier({ clientId: CLIENT_ID, code: back.code, codeVerifier: randomBytes(32).toString('base64url') }),
    (err) => { assert.equal(err.status, 400, describe(err)); return true; },
  );
  // The same browser is signed in at Tessera: the next authorization returns at once.
  const second = await workos.userManagement.getAuthorizationUrlWithPKCE({ provider: 'authkit', clientId: CLIENT_ID, redirectUri: CALLBACK });
  const again = await browser.open(second.url);
  assert.equal(again.status, 302);
  const back2 = callbackQuery(again.location);
  assert.equal(back2.state, second.state);
  const res = await publicClient.userManagement.authenticateWithCodeAndVerifier({ clientId: CLIENT_ID, code: back2.code, codeVerifier: second.codeVerifier });
  assertTokens(res, user);
  const third = await workos.userManagement.getAuthorizationUrlWithPKCE({ provider: 'authkit', clientId: CLIENT_ID, redirectUri: CALLBACK });
  const back3 = callbackQuery((await browser.open(third.url)).location);
  const both = await workos.userManagement.authenticateWithCode({ clientId: CLIENT_ID, code: back3.code, codeVerifier: third.codeVerifier });
  assertTokens(both, user);
});

await check('authenticateWithCode({session: {sealSession}}) + authenticateWithSessionCookie work on the code\'s tokens', async () => {
  const user = await signinUser('codeseal');
  const url = workos.userManagement.getAuthorizationUrl({ provider: 'authkit', clientId: CLIENT_ID, redirectUri: CALLBACK });
  const back = callbackQuery(await hostedSignIn(new HostedBrowser(), url, user));
  const res = await workos.userManagement.authenticateWithCode({
    clientId: CLIENT_ID, code: back.code, session: { sealSession: true, cookiePassword: COOKIE_PASSWORD },
  });
  assert.equal(typeof res.sealedSession, 'string');
  const { claims } = await verifyAccessToken(res.accessToken);
  const result = await workos.userManagement.authenticateWithSessionCookie({ sessionData: res.sealedSession, cookiePassword: COOKIE_PASSWORD });
  // As above: a frozen server clock can issue tokens this machine sees as expired.
  if (Date.now() / 1000 < claims.exp) {
    assert.equal(result.authenticated, true, JSON.stringify(result));
    assert.equal(result.user.id, user.id);
    assert.equal(result.sessionId, claims.sid);
  } else {
    assert.deepEqual(result, { authenticated: false, reason: 'invalid_jwt' });
  }
});

await check('listSessions lists the user\'s sessions with status, authMethod, expiresAt', async () => {
  const user = need(signin.codeUser, 'code sign-in');
  const page = await workos.userManagement.listSessions(user.id);
  const s = page.data.find((x) => x.id === signin.codeSid);
  assert.ok(s, JSON.stringify(page.data));
  assert.equal(s.object, 'session');
  assert.equal(s.userId, user.id);
  assert.equal(s.status, 'active');
  assert.equal(s.authMethod, 'password');
  assert.match(s.expiresAt, TIMESTAMP);
});

await check('revokeSession resolves; the session lists as revoked and its refresh token fails', async () => {
  const user = need(signin.codeUser, 'code sign-in');
  await workos.userManagement.revokeSession({ sessionId: signin.codeSid });
  const page = await workos.userManagement.listSessions(user.id);
  assert.equal(page.data.find((x) => x.id === signin.codeSid).status, 'revoked');
  await assert.rejects(
    workos.userManagement.authenticateWithRefreshToken({ clientId: CLIENT_ID, refreshToken: signin.code.refreshToken }),
    (err) => { assert.equal(err.status, 400, describe(err)); return true; },
  );
});

await check('getLogoutUrl ends the session and returns only to an allowed returnTo', async () => {
  const user = await signinUser('logout');
  const browser = new HostedBrowser();
  const url = workos.userManagement.getAuthorizationUrl({ provider: 'authkit', clientId: CLIENT_ID, redirectUri: CALLBACK });
  const back = callbackQuery(await hostedSignIn(browser, url, user));
  const res = await workos.userManagement.authenticateWithCode({ clientId: CLIENT_ID, code: back.code });
  const { claims } = await verifyAccessToken(res.accessToken);
  const out = await browser.open(workos.userManagement.getLogoutUrl({ sessionId: claims.sid, returnTo: CALLBACK }));
  assert.equal(out.status, 302);
  assert.equal(out.location, CALLBACK);
  const page = await workos.userManagement.listSessions(user.id);
  assert.equal(page.data.find((x) => x.id === claims.sid).status, 'revoked');
  const refused = await browser.open(workos.userManagement.getLogoutUrl({ sessionId: claims.sid, returnTo: 'https://elsewhere.example/' }));
  assert.equal(refused.status, 200);
  assert.equal(refused.location, null);
  assert.match(refused.page, /You are signed out/);
});

await check('getUserByExternalId resolves with the user; an unknown one rejects with NotFoundException', async () => {
  const ext = `crm-node-${randomBytes(6).toString('hex')}`;
  const user = await workos.userManagement.createUser({ email: `sdk-node-ext-${randomBytes(6).toString('hex')}@example.com`, externalId: ext });
  const found = await workos.userManagement.getUserByExternalId(ext);
  assert.equal(found.id, user.id);
  assert.equal(found.externalId, ext);
  await assert.rejects(workos.userManagement.getUserByExternalId(`${ext}-none`), NotFoundException);
});

await check('workos.post with an idempotencyKey: the repeat gets the first factor back; a new key, a new one', async () => {
  // The SDK's own request path (it sends the Idempotency-Key header for this option).
  const key = `workos-node-${globalThis.crypto.randomUUID()}`;
  const body = { type: 'generic_otp' };
  const first = await workos.post('/auth/factors/enroll', body, { idempotencyKey: key });
  const again = await workos.post('/auth/factors/enroll', body, { idempotencyKey: key });
  assert.match(first.data.id, /^auth_factor_/);
  assert.deepEqual(again.data, first.data);
  const other = await workos.post('/auth/factors/enroll', body, { idempotencyKey: `${key}-2` });
  assert.notEqual(other.data.id, first.data.id);
});

console.log(`sdk-node: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
