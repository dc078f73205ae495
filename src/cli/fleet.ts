// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture fleet …`: the admin commands, each one signed request to the fleet
 * server (src/fleet/client.ts) with the admin key `suture server init` made.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { fsError } from '../util/errors.js';
import { FleetClient, readIdentityFile } from '../fleet/client.js';
import { BundleInfo, CveReport, HostList, MAX_ROLLOUT_PAGE, PinReply, ROLLOUT_PAGE, RolloutList, RolloutShow, TokenReply } from '../fleet/protocol.js';
import { out, printJson, table } from './output.js';
import { defaultAdminKey } from './server.js';

/** "90", "30s", "10m", "12h", "2d" → seconds. */
export function parseDuration(v: string): number {
  const m = /^(\d{1,7})([smhd]?)$/.exec(v);
  if (!m) throw new InvalidArgumentError('give a duration: 30s, 10m, 12h, 2d (a bare number is seconds)');
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

interface Conn {
  server: string;
  adminKey: string;
  ca?: string;
}

function withConn(c: Command): Command {
  return c
    .addOption(new Option('--server <url>', 'the fleet server').env('SUTURE_FLEET_SERVER').default('http://127.0.0.1:7443'))
    .addOption(new Option('--admin-key <file>', 'the admin key (from suture server init)').default(defaultAdminKey()))
    .addOption(new Option('--ca <file>', 'https: the CA certificate (PEM) the server\'s must chain to (default: the system store)').env('SUTURE_FLEET_CA'));
}

const client = (o: Conn) => new FleetClient(o.server, readIdentityFile(o.adminKey), { caFile: o.ca });
const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z'));

const secs = (v: number | null) => (v === null ? '-' : v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(1)} s`);

/** A rollout as `rollout show` prints it; `all`: its hosts and log are all there (no page to point to). */
function showRollout(r: RolloutShow, all = false): void {
  out(`rollout ${r.id}: ${r.name} on ${r.channel} (bundle ${r.bundleId.slice(0, 12)}, build ${r.buildId})`);
  out(`  status ${r.status}${r.reason ? ` (${r.reason})` : ''}; stage ${r.stage + 1}/${r.stages.split(',').length} of ${r.stages}; soak ${r.soakSec} s; failures ${r.failures}/${r.maxFailures}; starts ${when(r.startAt)}`);
  const p = r.report;
  out(`  progress: ${Object.entries(p.byState).map(([k, v]) => `${v} ${k}`).join(', ') || 'no host yet'}`);
  for (const x of p.pinned) out(`  skipped: ${x.name} (${x.hostId}) is pinned to ${x.patch}`);
  for (const f of p.failures) out(`  failed: ${f.name} (${f.hostId}) at ${when(f.at)}: ${f.reason}`);
  const t = p.transitions;
  if (t.count) {
    out(`  transitions: ${t.count} hosts; p50 ${secs(t.p50)}, p90 ${secs(t.p90)}, max ${secs(t.max)}`);
    out(`    ${t.buckets.filter((b) => b.count).map((b) => `${b.le === null ? '> 300 s' : `≤ ${secs(b.le)}`}: ${b.count}`).join(', ')}`);
  }
  for (const b of p.blockers) {
    out(`  blocked transitions on ${b.hosts.length} host${b.hosts.length === 1 ? '' : 's'} (${b.hosts.join(', ')}): ${b.comm}`);
    for (const f of b.stack) out(`      ${f}`);
  }
  if (r.targets?.length) out(table([['HOST', 'STAGE', 'STATE', 'FAILURE'], ...r.targets.map((t) => [t.hostId, String(t.stage + 1), t.state, t.failure ?? ''])]).replace(/^/gm, '  '));
  const pg = r.pages;
  if (pg && !all && pg.targets.count > (r.targets?.length ?? 0)) {
    const from = (pg.targets.page - 1) * pg.per;
    out(`  hosts ${r.targets?.length ? `${from + 1}–${from + r.targets.length}` : 'none'} of ${pg.targets.count} (page ${pg.targets.page} of ${Math.ceil(pg.targets.count / pg.per)}: --targets-page N, or --all)`);
  }
  for (const l of r.log ?? []) out(`  ${when(l.at)} ${l.text}`);
  if (pg && !all && pg.log.count > (r.log?.length ?? 0)) out(`  log: ${pg.log.page === 1 ? 'the newest' : `page ${pg.log.page} of ${Math.ceil(pg.log.count / pg.per)}:`} ${r.log?.length ?? 0} of ${pg.log.count} lines (--log-page N, or --all)`);
}

/** A page number, 1 or more (at most `max`). */
function pageNumber(v: string, max = 1_000_000): number {
  if (!/^[1-9]\d{0,6}$/.test(v) || Number(v) > max) throw new InvalidArgumentError(`give a whole number from 1 to ${max}`);
  return Number(v);
}

export function fleetCommand(): Command {
  const f = new Command('fleet').description('administer the fleet server: enrol hosts, publish bundles, roll them out');
  withConn(f.command('enroll-token'))
    .description('make a one-time enrolment token for a new host')
    .option('--expires <duration>', 'how long the token is valid', parseDuration, 3600)
    .option('--json', 'print JSON')
    .action(async (o: Conn & { expires: number; json?: boolean }) => {
      const r = TokenReply.parse(await client(o).request('POST', '/v1/admin/enroll-tokens', { expiresSec: o.expires }));
      if (o.json) printJson(r);
      else out(`${r.token}\n(one-time; expires ${when(r.expiresAt)})`);
    });
  withConn(f.command('publish'))
    .description('upload a signed bundle (NAME.suture) for hosts to fetch; hosts still verify it with their own keys')
    .argument('<bundle>', 'NAME.suture')
    .option('--channel <channel>', 'channel', 'stable')
    .option('--json', 'print JSON')
    .action(async (file: string, o: Conn & { channel: string; json?: boolean }) => {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (e) {
        throw fsError(e, 'reading a bundle', file);
      }
      const b = BundleInfo.parse(await client(o).request('POST', `/v1/admin/bundles?channel=${encodeURIComponent(o.channel)}`, bytes));
      if (o.json) printJson(b);
      else out(`published ${b.name} on ${b.channel}: bundle ${b.id} for ${b.release} build ${b.buildId}`);
    });
  withConn(f.command('hosts'))
    .description('list enrolled hosts')
    .option('--json', 'print JSON')
    .action(async (o: Conn & { json?: boolean }) => {
      const r = HostList.parse(await client(o).request('GET', '/v1/admin/hosts'));
      if (o.json) return printJson(r);
      out(table([['HOST', 'NAME', 'CHANNEL', 'RELEASE', 'BUILD', 'STATE', 'EFFECTIVE', 'LOADED', 'PIN', 'ROLLOUT', 'LAST SEEN'], ...r.hosts.map((h) => [h.id, h.name, h.channel, h.release ?? '-', h.buildId?.slice(0, 12) ?? '-', h.state, h.effectiveVersion ?? '-', h.loaded.join(',') || '-', h.pin ?? '-', h.rolloutId ?? '-', when(h.lastSeen)])]));
      for (const h of r.hosts.filter((x) => x.state !== 'applied')) out(`${h.name}: ${h.state}: ${h.stateReason}`);
    });
  withConn(f.command('rollouts'))
    .description('list rollouts')
    .option('--json', 'print JSON')
    .action(async (o: Conn & { json?: boolean }) => {
      const r = RolloutList.parse(await client(o).request('GET', '/v1/admin/rollouts'));
      if (o.json) return printJson(r);
      out(table([['ROLLOUT', 'NAME', 'CHANNEL', 'STATUS', 'STAGE', 'FAILURES', 'CREATED'], ...r.rollouts.map((x) => [x.id, x.name, x.channel, x.status, `${x.stage + 1}/${x.stages.split(',').length} (${x.stages})`, `${x.failures}/${x.maxFailures}`, when(x.createdAt)])]));
    });
  withConn(f.command('cves'))
    .description('per CVE of the published bundles: the hosts it is covered on, and the hosts it is not (and why)')
    .option('--json', 'print JSON')
    .action(async (o: Conn & { json?: boolean }) => {
      const r = CveReport.parse(await client(o).request('GET', '/v1/admin/cves'));
      if (o.json) return printJson(r);
      if (!r.cves.length) return out('no published bundle names a CVE');
      for (const c of r.cves) {
        out(`${c.id}: covered on ${c.covered.length} of ${c.covered.length + c.notCovered.length} hosts (bundles: ${c.bundles.map((b) => `${b.name} for ${b.release}`).join(', ')})`);
        for (const h of c.covered) out(`  covered      ${h.name} (${h.hostId}) by ${h.patch}`);
        for (const h of c.notCovered) out(`  not covered  ${h.name} (${h.hostId}): ${h.reason}`);
      }
    });
  withConn(f.command('pin'))
    .description('pin a host to a patch: rollouts of any other patch skip it (and say so)')
    .argument('<host>', 'host id or name')
    .argument('<patch>', 'a published patch name')
    .option('--json', 'print JSON')
    .action(async (host: string, patch: string, o: Conn & { json?: boolean }) => {
      const r = PinReply.parse(await client(o).request('POST', `/v1/admin/hosts/${encodeURIComponent(host)}/pin`, { patch }));
      if (o.json) printJson(r);
      else out(`${r.name} (${r.hostId}) is pinned to ${r.pin}`);
    });
  withConn(f.command('unpin'))
    .description('take a host\'s pin off: every rollout of its build and channel may take it again')
    .argument('<host>', 'host id or name')
    .option('--json', 'print JSON')
    .action(async (host: string, o: Conn & { json?: boolean }) => {
      const r = PinReply.parse(await client(o).request('POST', `/v1/admin/hosts/${encodeURIComponent(host)}/unpin`, {}));
      if (o.json) printJson(r);
      else out(`${r.name} (${r.hostId}) is not pinned`);
    });
  const ro = f.command('rollout').description('create, show and steer a rollout');
  withConn(ro.command('create'))
    .description('roll the newest bundle NAME of a channel out in stages')
    .argument('<name>', 'the patch name of a published bundle')
    .option('--channel <channel>', 'channel', 'stable')
    .option('--stages <list>', 'cumulative stages: host counts or percentages', '1,10%,50%,100%')
    .option('--soak <duration>', 'how long each host must stay healthy', parseDuration, 600)
    .option('--max-failures <n>', 'halt and roll back at this many failed hosts', (v) => Number(v), 1)
    .option('--delay <duration>', 'wait this long before the first stage', parseDuration, 0)
    .option('--json', 'print JSON')
    .action(async (name: string, o: Conn & { channel: string; stages: string; soak: number; maxFailures: number; delay: number; json?: boolean }) => {
      const r = RolloutShow.parse(await client(o).request('POST', '/v1/admin/rollouts', { name, channel: o.channel, stages: o.stages, soakSec: o.soak, maxFailures: o.maxFailures, delaySec: o.delay }));
      if (o.json) printJson(r);
      else showRollout(r);
    });
  withConn(ro.command('show'))
    .description(`a rollout, its report, and a page of its hosts (in the order they were assigned) and of its log (the newest lines first), ${ROLLOUT_PAGE} a page`)
    .argument('<id>')
    .option('--targets-page <n>', 'which page of its hosts', (v) => pageNumber(v), 1)
    .option('--log-page <n>', 'which page of its log (1: the newest lines)', (v) => pageNumber(v), 1)
    .option('--per <n>', `hosts and log lines a page (at most ${MAX_ROLLOUT_PAGE})`, (v) => pageNumber(v, MAX_ROLLOUT_PAGE), ROLLOUT_PAGE)
    .option('--all', 'every host and every log line (one page after another)')
    .option('--json', 'print JSON')
    .action(async (id: string, o: Conn & { targetsPage: number; logPage: number; per: number; all?: boolean; json?: boolean }) => {
      const c = client(o);
      const get = async (t: number, l: number, per: number) => RolloutShow.parse(await c.request('GET', `/v1/admin/rollouts/${encodeURIComponent(id)}?targets=${t}&log=${l}&per=${per}`));
      let r: RolloutShow;
      if (o.all) {
        // the log's pages are newest first: read from the last page (the oldest lines) back to the first
        r = await get(1, 1, MAX_ROLLOUT_PAGE);
        const targets = [...(r.targets ?? [])];
        for (let k = 2; targets.length < r.pages.targets.count; k++) {
          const more = (await get(k, 1, MAX_ROLLOUT_PAGE)).targets ?? [];
          if (!more.length) break;
          targets.push(...more);
        }
        const logPages = Math.ceil(r.pages.log.count / MAX_ROLLOUT_PAGE);
        const log = [];
        for (let k = logPages; k >= 2; k--) log.push(...((await get(1, k, MAX_ROLLOUT_PAGE)).log ?? []));
        log.push(...(r.log ?? []));
        r = { ...r, targets, log, pages: { per: MAX_ROLLOUT_PAGE, targets: { page: 1, count: r.pages.targets.count }, log: { page: 1, count: r.pages.log.count } } };
        if (!o.json) return showRollout(r, true);
      } else r = await get(o.targetsPage, o.logPage, o.per);
      if (o.json) printJson(r);
      else showRollout(r);
    });
  for (const action of ['pause', 'resume', 'abort', 'rollback'] as const) {
    withConn(ro.command(action))
      .argument('<id>')
      .option('--json', 'print JSON')
      .description({ pause: 'assign no new hosts until resumed', resume: 'go on after pause', abort: 'stop: hosts not yet applied are cancelled, applied ones keep it', rollback: 'tell every host of the rollout to remove the bundle' }[action])
      .action(async (id: string, o: Conn & { json?: boolean }) => {
        const r = RolloutShow.parse(await client(o).request('POST', `/v1/admin/rollouts/${encodeURIComponent(id)}/${action}`, {}));
        if (o.json) printJson(r);
        else showRollout(r);
      });
  }
  return f;
}
