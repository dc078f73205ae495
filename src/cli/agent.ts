// SPDX-License-Identifier: GPL-2.0-only
/** `suture agent`: the fleet agent on a host (src/fleet/agent.ts). A host command: in the Debian package. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { realHost } from '../livepatch/core.js';
import { SutureError } from '../util/errors.js';
import { interruptSignal } from '../util/interrupt.js';
import type { Agent as AgentType } from '../fleet/agent.js';
import { out, printJson } from './output.js';

interface AgentCliOptions {
  server?: string;
  token?: string;
  name?: string;
  channel?: string;
  once?: boolean;
  healthCmd?: string;
  healthTimeout: number;
  loadTimeout: number;
  interval?: number;
  dir?: string;
  ca?: string;
  json?: boolean;
}

const seconds = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive number of seconds`);
  return n;
};

function checkServerUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SutureError('usage', `--server ${url} is not a URL`, { hint: 'e.g. --server https://fleet.example:7443' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SutureError('usage', `--server ${url}: give an http:// or https:// URL`);
  return u.toString().replace(/\/$/, '');
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('the fleet agent: enrol this host once (--server, --token), then check in, apply assigned bundles, report health and roll back (suture-agent.service)')
    .option('--server <url>', 'the fleet server (needed to enrol; afterwards the enrolled one is used)')
    .option('--token <token>', 'one-time enrolment token (suture fleet enroll-token); only for the first run')
    .option('--name <name>', 'this host\'s name in the fleet (default: its hostname)')
    .option('--channel <channel>', 'the channel this host follows (default: stable)')
    .option('--once', 'one check-in cycle, then exit (cron, tests)')
    .option('--health-cmd <command>', 'the host\'s own health check, run by /bin/sh at each check-in: exit status 0 is healthy')
    .option('--health-timeout <seconds>', 'the health command is killed (unhealthy) after this long', seconds('--health-timeout'), 60)
    .option('--load-timeout <seconds>', 'a patching transition not complete after this long is reversed (and reported as failed)', seconds('--load-timeout'), 60)
    .option('--interval <seconds>', 'check in at least this often, even when the server asks for less (default: as the server says)', seconds('--interval'))
    .option('--dir <dir>', 'the agent\'s identity and state (default /var/lib/suture/agent; SUTURE_AGENT_DIR)')
    .addOption(new Option('--ca <file>', 'https: the CA certificate (PEM) the server\'s must chain to (default: the system store)').env('SUTURE_FLEET_CA'))
    .option('--json', 'with --once: print the cycle as JSON')
    .action(async (o: AgentCliOptions) => {
      const log = (line: string) => process.stderr.write(`suture agent: ${line}\n`);
      // The agent and its protocol (zod) load only when it runs: the other host commands (boot) stay light.
      const [{ Agent, runAgent }, { readCaFile }] = await Promise.all([import('../fleet/agent.js'), import('../fleet/client.js')]);
      // a CA that cannot be read is refused before anything is made or written
      if (o.ca) readCaFile(o.ca);
      const agent: AgentType = new Agent({
        host: realHost(),
        dir: o.dir,
        health: o.healthCmd ? { command: o.healthCmd, timeoutMs: o.healthTimeout * 1000 } : undefined,
        loadTimeoutMs: o.loadTimeout * 1000,
        caFile: o.ca,
        signal: interruptSignal,
        log,
      });
      if (!agent.enrolled()) {
        if (!o.server || !o.token) {
          throw new SutureError('usage', `this host is not enrolled in a fleet yet (${agent.statePath})`, { hint: 'enrol it once: suture agent --server URL --token T (a token from suture fleet enroll-token)' });
        }
        await agent.enroll(checkServerUrl(o.server), o.token, o.name, o.channel);
      } else {
        const s = agent.readState();
        if (o.token) log(`enrolled already as ${s.hostId}: --token is not needed (and not used)`);
        if (o.server && checkServerUrl(o.server) !== s.server) {
          throw new SutureError('conflict', `this host is enrolled with ${s.server}, not ${o.server}`, { hint: `leave out --server, or move ${agent.dir} aside and enrol again` });
        }
      }
      if (o.once) {
        const r = await agent.cycle();
        if (o.json) return printJson({ command: 'agent', hostId: agent.readState().hostId, ...r });
        out(`${agent.readState().hostId}: checked in (${r.checkins}x), ${r.healthy ? 'healthy' : 'unhealthy'}; ${r.assignment ? `assignment: ${r.assignment.action} ${r.assignment.name} (rollout ${r.assignment.rolloutId})` : 'no assignment'}`);
        for (const d of r.did) out(d);
        return;
      }
      log(`running as ${agent.readState().hostId} against ${agent.readState().server}${o.interval ? `, checking in at least every ${o.interval} s` : ''}`);
      // what each cycle did is logged by the agent as it happens (once: journald showed every line twice)
      await runAgent(agent, { intervalSec: o.interval });
      log(`stopped (${String(interruptSignal.reason ?? 'signal')})`);
    });
}
