// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet protocol: every request and reply body as a zod schema (the
 * server validates requests and its own replies with them; the agent and the
 * admin CLI read replies with them), and the request signature.
 *
 * Shared by the server, the admin CLI and (later) the agent on hosts, so it
 * uses nothing newer than Node 18.20: node:crypto Ed25519 and zod.
 *
 * ## Identity and request signatures
 *
 * Every caller has its own Ed25519 key pair, made where it runs (a host makes
 * its own at enrolment: no shared secret sits on every host; an admin key is
 * made by `suture server init`, 0600). The server stores only public keys.
 * A caller's key id is the first 32 hex digits of sha256(raw public key).
 *
 * A request carries four headers:
 *
 *   x-suture-key        the key id
 *   x-suture-time       the caller's clock, ms since the epoch
 *   x-suture-nonce      32 random hex digits, never reused
 *   x-suture-signature  base64 Ed25519 signature over the canonical string
 *
 * The canonical string binds everything that gives the request its meaning:
 *
 *   suture-request-v1 \n METHOD \n PATH?QUERY \n sha256(body) hex \n time \n nonce \n key id
 *
 * so a signature cannot be moved to another method, path, body or key. The
 * server refuses a time more than WINDOW_MS from its own, and records each
 * (key id, nonce) in the database until the window has passed: the same
 * request sent again is refused, by whichever server process receives it,
 * and a request older than the window is refused by its time.
 *
 * Enrolment is the only request signed by a key the server does not know
 * yet: it carries the one-time token and the new public key, and is signed by
 * that key (proof that the host holds it).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

export const SIGNATURE_VERSION = 'suture-request-v1';
export const WINDOW_MS = 5 * 60_000;
export const HEADER = { key: 'x-suture-key', time: 'x-suture-time', nonce: 'x-suture-nonce', signature: 'x-suture-signature' } as const;

/** Most bytes a JSON request body may have (a bundle upload has its own bound). */
export const MAX_JSON_BODY = 256 * 1024;

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${n}}$`);
export const KeyIdSchema = z.string().regex(HEX(32));
export const PublicKeySchema = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'a raw Ed25519 public key in base64 (44 characters)');

// ---------- keys ----------

export interface Identity {
  keyId: string;
  /** Raw 32-byte public key, base64. */
  publicKey: string;
  privateKey: KeyObject;
}

export function rawPublicKey(pub: KeyObject): string {
  const jwk = pub.export({ format: 'jwk' }) as { x?: string };
  if (!jwk.x) throw new Error('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url').toString('base64');
}

export function keyIdOf(publicKey: string): string {
  return createHash('sha256').update(Buffer.from(publicKey, 'base64')).digest('hex').slice(0, 32);
}

export function publicKeyObject(publicKey: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey, 'base64').toString('base64url') }, format: 'jwk' });
}

export function newIdentity(): Identity {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = rawPublicKey(publicKey);
  return { keyId: keyIdOf(raw), publicKey: raw, privateKey };
}

/** An identity file: the PKCS#8 PEM of the private key (the public key follows from it). */
export function formatIdentity(id: Identity): string {
  return id.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function parseIdentity(pem: string): Identity {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 private key');
  const raw = rawPublicKey(createPublicKey(privateKey));
  return { keyId: keyIdOf(raw), publicKey: raw, privateKey };
}

// ---------- signatures ----------

export function bodyHash(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

export function canonical(method: string, path: string, bodySha256: string, time: string, nonce: string, keyId: string): string {
  return [SIGNATURE_VERSION, method.toUpperCase(), path, bodySha256, time, nonce, keyId].join('\n');
}

/** The headers that sign one request. */
export function signRequest(id: Identity, method: string, path: string, body: Uint8Array, now = Date.now()): Record<string, string> {
  const time = String(now);
  const nonce = randomBytes(16).toString('hex');
  const sig = sign(null, Buffer.from(canonical(method, path, bodyHash(body), time, nonce, id.keyId)), id.privateKey);
  return { [HEADER.key]: id.keyId, [HEADER.time]: time, [HEADER.nonce]: nonce, [HEADER.signature]: sig.toString('base64') };
}

export interface SignedHeaders {
  keyId: string;
  time: number;
  nonce: string;
  signature: Buffer;
}

/** Read the signature headers; undefined names the first one missing or malformed. */
export function readSignedHeaders(h: Record<string, string | string[] | undefined>): SignedHeaders | string {
  const one = (k: string) => (typeof h[k] === 'string' ? (h[k] as string) : undefined);
  const keyId = one(HEADER.key);
  const time = one(HEADER.time);
  const nonce = one(HEADER.nonce);
  const sig = one(HEADER.signature);
  if (!keyId || !HEX(32).test(keyId)) return HEADER.key;
  if (!time || !/^\d{1,15}$/.test(time)) return HEADER.time;
  if (!nonce || !HEX(32).test(nonce)) return HEADER.nonce;
  if (!sig || !/^[A-Za-z0-9+/]{86}==$/.test(sig)) return HEADER.signature;
  return { keyId, time: Number(time), nonce, signature: Buffer.from(sig, 'base64') };
}

export function verifyRequest(publicKey: string, s: SignedHeaders, method: string, path: string, body: Uint8Array): boolean {
  try {
    return verify(null, Buffer.from(canonical(method, path, bodyHash(body), String(s.time), s.nonce, s.keyId)), publicKeyObject(publicKey), s.signature);
  } catch {
    return false;
  }
}

// ---------- bodies ----------

const Name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/);
export const ChannelSchema = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/);
const BuildId = z.string().regex(/^[0-9a-f]{2,128}$/);
const Release = z.string().regex(/^[A-Za-z0-9._+~-]{1,64}$/);
const Sha256 = z.string().regex(HEX(64));
const Text = (max: number) => z.string().max(max);
const Time = z.number().int().nonnegative();

export const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string(), entity: z.object({ type: z.string(), id: z.string() }) }) });

export const EnrollRequest = z.strictObject({
  token: z.string().regex(/^st_[A-Za-z0-9_-]{43}$/),
  publicKey: PublicKeySchema,
  name: Name,
  channel: ChannelSchema.default('stable'),
});
export const EnrollReply = z.object({ hostId: z.string(), keyId: KeyIdSchema, channel: ChannelSchema });

const PatchFact = z.strictObject({ name: Name, sha256: Sha256.nullable() });
export const HostFacts = z.strictObject({
  release: Release,
  buildId: BuildId,
  bootId: z.string().regex(/^[0-9a-f-]{36}$/),
  uptimeSec: z.number().nonnegative().max(1e10),
  effectiveVersion: z.string().max(64).nullable(),
  loaded: z.array(PatchFact).max(64),
  installed: z.array(PatchFact).max(64),
  lastTransition: z
    .strictObject({
      patch: Name,
      seconds: z.number().nonnegative().max(1e7),
      at: Time,
      blockers: z.array(z.strictObject({ pid: z.number().int().nonnegative(), comm: Text(64), stack: z.array(Text(256)).max(64) })).max(64),
    })
    .nullable(),
  health: z.strictObject({ ok: z.boolean(), reasons: z.array(Text(512)).max(32) }),
});
export type HostFacts = z.infer<typeof HostFacts>;

/** What the host did with an assignment since its last check-in (repeats are harmless). */
export const CheckinResult = z.strictObject({
  rolloutId: z.string().regex(/^r-[0-9a-f]{16}$/),
  action: z.enum(['install', 'rollback']),
  outcome: z.enum(['applied', 'failed', 'rolled-back']),
  reason: Text(1024).nullable(),
});
export const CheckinRequest = z.strictObject({ facts: HostFacts, results: z.array(CheckinResult).max(16) });
export type CheckinRequest = z.infer<typeof CheckinRequest>;

export const Assignment = z.object({
  action: z.enum(['install', 'rollback']),
  rolloutId: z.string(),
  bundleId: Sha256,
  name: Name,
  path: z.string(),
  soakSec: z.number(),
});
export const CheckinReply = z.object({ hostId: z.string(), assignment: Assignment.nullable(), nextCheckinSec: z.number() });
export type CheckinReply = z.infer<typeof CheckinReply>;

export const TokenRequest = z.strictObject({ expiresSec: z.number().int().min(60).max(30 * 86400) });
export const TokenReply = z.object({ token: z.string(), expiresAt: Time });

export const BundleInfo = z.object({
  id: Sha256,
  name: Name,
  channel: ChannelSchema,
  release: Release,
  buildId: BuildId,
  size: z.number(),
  cves: z.array(z.string()),
  replace: z.boolean(),
  effectiveVersion: z.string().nullable(),
  publishedAt: Time,
});
export const BundleList = z.object({ bundles: z.array(BundleInfo) });

export const HostInfo = z.object({
  id: z.string(),
  name: z.string(),
  channel: z.string(),
  enrolledAt: Time,
  lastSeen: Time.nullable(),
  release: z.string().nullable(),
  buildId: z.string().nullable(),
  effectiveVersion: z.string().nullable(),
  healthOk: z.boolean().nullable(),
  loaded: z.array(z.string()),
  rolloutId: z.string().nullable(),
  /** reports.ts's host state and why. */
  state: z.enum(['silent', 'unhealthy', 'failed', 'stalled', 'applied', 'no-patch', 'not-applied', 'unreported']),
  stateReason: z.string(),
  installed: z.array(z.string()),
  pin: z.string().nullable(),
  lastTransition: HostFacts.shape.lastTransition,
});
export const HostList = z.object({ hosts: z.array(HostInfo) });

export const RolloutRequest = z.strictObject({
  name: Name,
  channel: ChannelSchema,
  stages: z.string().max(200),
  soakSec: z.number().int().min(0).max(30 * 86400),
  maxFailures: z.number().int().min(1).max(100_000),
  delaySec: z.number().int().min(0).max(365 * 86400),
});
const TargetInfo = z.object({ hostId: z.string(), stage: z.number(), state: z.string(), failure: z.string().nullable(), assignedAt: Time, appliedAt: Time.nullable() });
export const RolloutInfo = z.object({
  id: z.string(),
  bundleId: Sha256,
  name: Name,
  channel: z.string(),
  buildId: z.string(),
  status: z.string(),
  stage: z.number(),
  stages: z.string(),
  soakSec: z.number(),
  maxFailures: z.number(),
  startAt: Time,
  reason: z.string().nullable(),
  createdAt: Time,
  failures: z.number(),
  targets: z.array(TargetInfo).optional(),
  log: z.array(z.object({ at: Time, text: z.string() })).optional(),
});
export type RolloutInfo = z.infer<typeof RolloutInfo>;
const Seconds = z.number().nullable();
export const Distribution = z.object({ count: z.number(), p50: Seconds, p90: Seconds, max: Seconds, buckets: z.array(z.object({ le: Seconds, count: z.number() })) });
export const RolloutReport = z.object({
  byState: z.record(z.string(), z.number()),
  pinned: z.array(z.object({ hostId: z.string(), name: z.string(), patch: z.string() })),
  failures: z.array(z.object({ hostId: z.string(), name: z.string(), reason: z.string(), at: Time.nullable() })),
  transitions: Distribution,
  blockers: z.array(z.object({ comm: z.string(), stack: z.array(z.string()), hosts: z.array(z.string()) })),
  series: z.array(z.object({ at: Time, assigned: z.number(), applied: z.number(), healthy: z.number(), failed: z.number() })),
});
/** Which page of a rollout's targets and of its log a reply holds, of how many in all. */
const PageOf = z.object({ page: z.number(), count: z.number() });
export const RolloutShow = RolloutInfo.extend({ report: RolloutReport, pages: z.object({ per: z.number(), targets: PageOf, log: PageOf }) });
/** Targets and log lines on a page of a rollout, unless asked for another count. */
export const ROLLOUT_PAGE = 100;
/** At most this many targets and log lines a page of GET /v1/admin/rollouts/:id. */
export const MAX_ROLLOUT_PAGE = 1000;
/** GET /v1/admin/rollouts/:id?targets=N&log=N&per=M: the page of targets (1: the first assigned) and of the log (1: the newest lines). */
export const RolloutShowQuery = z.strictObject({
  targets: z.coerce.number().int().min(1).max(1_000_000).optional(),
  log: z.coerce.number().int().min(1).max(1_000_000).optional(),
  per: z.coerce.number().int().min(1).max(MAX_ROLLOUT_PAGE).optional(),
});
export type RolloutShow = z.infer<typeof RolloutShow>;
export const CveReport = z.object({
  cves: z.array(
    z.object({
      id: z.string(),
      bundles: z.array(z.object({ id: Sha256, name: Name, release: z.string(), buildId: z.string() })),
      covered: z.array(z.object({ hostId: z.string(), name: z.string(), patch: z.string() })),
      notCovered: z.array(z.object({ hostId: z.string(), name: z.string(), reason: z.string() })),
    }),
  ),
});
export const ServerStats = z.object({ served: z.number(), window: z.number(), p50Ms: z.number().nullable(), p99Ms: z.number().nullable(), maxMs: z.number().nullable(), rssBytes: z.number(), cpuMicros: z.number() });
export const PinRequest = z.strictObject({ patch: Name });
export const PinReply = z.object({ hostId: z.string(), name: z.string(), pin: Name.nullable() });
export const RolloutList = z.object({ rollouts: z.array(RolloutInfo) });
export const RolloutAction = z.enum(['pause', 'resume', 'abort', 'rollback']);
export const Empty = z.strictObject({});
