// SPDX-License-Identifier: GPL-2.0-only
/**
 * The fleet server's HTTP API (Fastify). At the edge, in this order: the body
 * size bound (413), the request signature and nonce (401/403, service.ts's
 * authenticate), the zod schema of the body and parameters (400), then the
 * operation; replies are checked against their schema too. Every error is a
 * JSON body `{ error: { code, message, entity } }` naming what was wrong.
 *
 *   POST /v1/enroll                      a host: one-time token + its own public key (signed by that key)
 *   POST /v1/checkin                     a host: facts and results → its assignment
 *   GET  /v1/bundles/:id                 a host (its own kernel build only) or an admin: the bundle's bytes
 *   POST /v1/admin/enroll-tokens         → a one-time token
 *   POST /v1/admin/bundles?channel=C     a bundle (application/octet-stream) → its id
 *   GET  /v1/admin/bundles | hosts | rollouts | cves
 *   GET  /v1/admin/rollouts/:id?targets=N&log=N&per=M   its report, a page of its targets and of its log
 *   POST /v1/admin/rollouts              create
 *   POST /v1/admin/rollouts/:id/:action  pause | resume | abort | rollback
 *   POST /v1/admin/hosts/:host/pin       {patch}: rollouts of other patches skip the host
 *   POST /v1/admin/hosts/:host/unpin
 *   GET  /v1/admin/stats?since=MS        requests served; p50/p99/max of the server's own time per request since MS
 *   /dashboard…                          the dashboard (dashboard.ts): its own login, session cookie and CSRF tokens
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z, type ZodType } from 'zod';
import { MAX_PATCH_FILE_BYTES } from '../livepatch/patch-file.js';
import { registerDashboard } from './dashboard.js';
import { FleetError } from './errors.js';
import {
  BundleInfo,
  BundleList,
  ChannelSchema,
  CheckinReply,
  CheckinRequest,
  Empty,
  EnrollReply,
  EnrollRequest,
  HostList,
  MAX_JSON_BODY,
  PublicKeySchema,
  RolloutAction,
  CveReport,
  PinReply,
  PinRequest,
  RolloutList,
  RolloutShow,
  RolloutShowQuery,
  ServerStats,
  RolloutRequest,
  TokenReply,
  TokenRequest,
} from './protocol.js';
import type { Caller, Fleet } from './service.js';

export const MAX_BUNDLE_UPLOAD = MAX_PATCH_FILE_BYTES + 64 * 1024;

type Auth = 'admin' | 'host' | 'any' | 'enroll';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody: Buffer;
    caller: Caller | null;
  }
  interface FastifyContextConfig {
    auth?: Auth;
  }
}

const Sha256Param = z.strictObject({ id: z.string().regex(/^[0-9a-f]{64}$/) });
const RolloutParam = z.strictObject({ id: z.string().regex(/^r-[0-9a-f]{16}$/) });
const ActionParams = z.strictObject({ id: z.string().regex(/^r-[0-9a-f]{16}$/), action: RolloutAction });
const ChannelQuery = z.strictObject({ channel: ChannelSchema.default('stable') });
const NoQuery = z.strictObject({});
const StatsQuery = z.strictObject({ since: z.coerce.number().int().nonnegative().optional() });
/** How many request times GET /v1/admin/stats keeps. */
const RING = 1 << 18;
/** A host id (h-…) or a host name. */
const HostParam = z.strictObject({ host: z.string().regex(/^[A-Za-z0-9_.-]{1,66}$/) });

function describeIssues(e: z.ZodError): string {
  return e.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
}

export interface AppOptions {
  logger?: boolean;
  /** Serve https with this certificate chain and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Serve the dashboard under /dashboard (default: yes). */
  dashboard?: boolean;
}

export function buildApp(fleet: Fleet, o: AppOptions = {}): FastifyInstance {
  const app = (o.tls
    ? Fastify({ logger: o.logger ?? false, bodyLimit: MAX_JSON_BODY, https: { cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2' } })
    : Fastify({ logger: o.logger ?? false, bodyLimit: MAX_JSON_BODY })) as unknown as FastifyInstance;
  app.decorateRequest('rawBody', null as unknown as Buffer);
  app.decorateRequest('caller', null);

  // Bodies are kept as bytes: the signature covers the bytes sent, not a re-serialisation.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    req.rawBody = body;
    try {
      done(null, body.length ? JSON.parse(body.toString('utf8')) : {});
    } catch {
      done(new FleetError('bad-request', `the body of ${req.method} ${req.url.split('?')[0]} is not JSON`, { type: 'request', id: `${req.method} ${req.url.split('?')[0]}` }), undefined);
    }
  });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: MAX_BUNDLE_UPLOAD }, (req, body: Buffer, done) => {
    if (req.routeOptions.url !== '/v1/admin/bundles') return done(new FleetError('bad-request', `${req.method} ${req.url.split('?')[0]} takes no application/octet-stream body`, { type: 'request', id: req.url.split('?')[0]! }), undefined);
    req.rawBody = body;
    done(null, body);
  });

  app.setValidatorCompiler(({ schema, url, httpPart }) => (data: unknown) => {
    const r = (schema as ZodType).safeParse(data);
    if (r.success) return { value: r.data };
    return { error: new FleetError('bad-request', `${url} ${httpPart ?? ''}: ${describeIssues(r.error)}`, { type: 'request', id: `${url} ${httpPart ?? ''}`.trim() }) };
  });
  app.setSerializerCompiler(({ schema }) => (data: unknown) => JSON.stringify((schema as ZodType).parse(data)));

  app.addHook('onRequest', async (req) => {
    req.rawBody = Buffer.alloc(0);
  });
  app.addHook('preValidation', async (req) => {
    const auth = req.routeOptions.config.auth;
    if (!auth) return;
    let enrollKey: string | undefined;
    if (auth === 'enroll') {
      const k = (req.body as { publicKey?: unknown } | undefined)?.publicKey;
      if (PublicKeySchema.safeParse(k).success) enrollKey = k as string;
    }
    // a check-in records its nonce itself, in its first statement (service.ts checkin)
    req.caller = await fleet.authenticate(req.headers, req.method, req.url, req.rawBody, auth, enrollKey, { deferNonce: req.routeOptions.url === '/v1/checkin' });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const path = req.url.split('?')[0]!;
    let e: FleetError;
    if (err instanceof FleetError) e = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new FleetError('too-large', `the body of ${req.method} ${path} is larger than this route takes (${req.routeOptions.url === '/v1/admin/bundles' ? MAX_BUNDLE_UPLOAD : MAX_JSON_BODY} bytes)`, { type: 'request', id: `${req.method} ${path}` });
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) e = new FleetError('bad-request', `${req.method} ${path}: ${err.message}`, { type: 'request', id: `${req.method} ${path}` });
    else {
      req.log.error(err);
      return reply.code(500).send({ error: { code: 'internal', message: `internal error in ${req.method} ${path}: ${err.message}`, entity: { type: 'request', id: `${req.method} ${path}` } } });
    }
    return reply.code(e.status).send({ error: { code: e.code, message: e.message, entity: e.entity } });
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    return reply.code(404).send({ error: { code: 'not-found', message: `no route ${req.method} ${path}`, entity: { type: 'request', id: `${req.method} ${path}` } } });
  });

  // The server's own time per request (from reading it to the reply sent), the last RING of them, for GET /v1/admin/stats.
  const times = new Float64Array(RING);
  const ends = new Float64Array(RING);
  let served = 0;
  app.addHook('onResponse', async (_req, reply) => {
    times[served % RING] = reply.elapsedTime;
    ends[served % RING] = Date.now();
    served++;
  });
  app.get('/v1/admin/stats', { config: { auth: 'admin' }, schema: { querystring: StatsQuery, response: { 200: ServerStats } } }, async (req) => {
    const since = (req.query as { since?: number }).since ?? 0;
    const xs: number[] = [];
    for (let i = Math.max(0, served - RING); i < served; i++) if (ends[i % RING]! >= since) xs.push(times[i % RING]!);
    xs.sort((a, b) => a - b);
    const at = (p: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]! : null);
    return { served, window: xs.length, p50Ms: at(50), p99Ms: at(99), maxMs: xs.at(-1) ?? null, rssBytes: process.memoryUsage().rss, cpuMicros: process.cpuUsage().user + process.cpuUsage().system };
  });

  const caller = (req: FastifyRequest): Caller => req.caller!;
  if (o.dashboard ?? true) registerDashboard(app, fleet, { secure: !!o.tls });

  app.post('/v1/enroll', { config: { auth: 'enroll' }, schema: { body: EnrollRequest, querystring: NoQuery, response: { 200: EnrollReply } } }, async (req) => {
    const b = req.body as z.infer<typeof EnrollRequest>;
    return fleet.enroll(caller(req).keyId, b);
  });
  app.post('/v1/checkin', { config: { auth: 'host' }, schema: { body: CheckinRequest, querystring: NoQuery, response: { 200: CheckinReply } } }, async (req) => fleet.checkin(caller(req), req.body as CheckinRequest));
  app.get('/v1/bundles/:id', { config: { auth: 'any' }, schema: { params: Sha256Param, querystring: NoQuery } }, async (req, reply: FastifyReply) => {
    const data = await fleet.bundleData(caller(req), (req.params as { id: string }).id);
    return reply.type('application/octet-stream').send(data);
  });

  app.post('/v1/admin/enroll-tokens', { config: { auth: 'admin' }, schema: { body: TokenRequest, querystring: NoQuery, response: { 200: TokenReply } } }, async (req) =>
    fleet.enrollToken(caller(req), (req.body as z.infer<typeof TokenRequest>).expiresSec),
  );
  app.post('/v1/admin/bundles', { config: { auth: 'admin' }, bodyLimit: MAX_BUNDLE_UPLOAD, schema: { querystring: ChannelQuery, response: { 200: BundleInfo } } }, async (req) => {
    if (!Buffer.isBuffer(req.body)) throw new FleetError('bad-request', 'POST /v1/admin/bundles takes the bundle as application/octet-stream', { type: 'request', id: 'POST /v1/admin/bundles' });
    return fleet.publish(caller(req), req.body, (req.query as { channel: string }).channel);
  });
  app.get('/v1/admin/bundles', { config: { auth: 'admin' }, schema: { querystring: NoQuery, response: { 200: BundleList } } }, async () => ({ bundles: await fleet.listBundles() }));
  app.get('/v1/admin/hosts', { config: { auth: 'admin' }, schema: { querystring: NoQuery, response: { 200: HostList } } }, async () => ({ hosts: await fleet.listHosts() }));
  app.get('/v1/admin/rollouts', { config: { auth: 'admin' }, schema: { querystring: NoQuery, response: { 200: RolloutList } } }, async () => ({ rollouts: await fleet.listRollouts() }));
  app.post('/v1/admin/rollouts', { config: { auth: 'admin' }, schema: { body: RolloutRequest, querystring: NoQuery, response: { 200: RolloutShow } } }, async (req) => fleet.createRollout(caller(req), req.body as z.infer<typeof RolloutRequest>));
  app.get('/v1/admin/rollouts/:id', { config: { auth: 'admin' }, schema: { params: RolloutParam, querystring: RolloutShowQuery, response: { 200: RolloutShow } } }, async (req) =>
    fleet.showRollout((req.params as { id: string }).id, req.query as z.infer<typeof RolloutShowQuery>),
  );
  app.post('/v1/admin/rollouts/:id/:action', { config: { auth: 'admin' }, schema: { params: ActionParams, body: Empty, querystring: NoQuery, response: { 200: RolloutShow } } }, async (req) => {
    const p = req.params as z.infer<typeof ActionParams>;
    return fleet.act(caller(req), p.id, p.action);
  });
  app.get('/v1/admin/cves', { config: { auth: 'admin' }, schema: { querystring: NoQuery, response: { 200: CveReport } } }, async () => fleet.cves());
  app.post('/v1/admin/hosts/:host/pin', { config: { auth: 'admin' }, schema: { params: HostParam, body: PinRequest, querystring: NoQuery, response: { 200: PinReply } } }, async (req) =>
    fleet.pin(caller(req), (req.params as { host: string }).host, (req.body as z.infer<typeof PinRequest>).patch),
  );
  app.post('/v1/admin/hosts/:host/unpin', { config: { auth: 'admin' }, schema: { params: HostParam, body: Empty, querystring: NoQuery, response: { 200: PinReply } } }, async (req) => fleet.unpin((req.params as { host: string }).host));
  return app;
}

/**
 * Run the server's background work: advance rollouts every `tickMs` (one
 * tick at a time in this process; other processes are kept out by the
 * database locks) and forget nonces past their window.
 */
export function startTicker(fleet: Fleet, tickMs = 2000, onError: (e: unknown) => void = () => {}): () => void {
  let busy = false;
  let n = 0;
  const t = setInterval(() => {
    if (busy) return;
    busy = true;
    n++;
    // a rollout's targets are counted, loaded only when one may be silent, and locked only when it moves (service.ts tick)
    (n % 30 === 0 ? fleet.purgeNonces() : Promise.resolve())
      .then(() => fleet.tick())
      .catch(onError)
      .finally(() => {
        busy = false;
      });
  }, tickMs);
  t.unref();
  return () => clearInterval(t);
}
