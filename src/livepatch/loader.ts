// SPDX-License-Identifier: GPL-2.0-only
/**
 * Putting modules into the kernel and taking them out: insmod and rmmod
 * (kmod's on a host, busybox's in the test guest), run through the one
 * process runner. The kernel's reason for a refusal is in its log, which the
 * caller reads (kernel-log.ts).
 */
import { run, which } from '../util/exec.js';
import { SutureError } from '../util/errors.js';

export interface LoaderResult {
  ok: boolean;
  /** What the tool printed (its last line), for the error message. */
  message: string;
  durationMs: number;
}

export interface ModuleLoader {
  insmod(path: string): Promise<LoaderResult>;
  rmmod(name: string): Promise<LoaderResult>;
}

/**
 * Where insmod and rmmod are looked for: fixed system directories only, never
 * $PATH (suture runs as root: a writable directory early in PATH would choose
 * the program that loads modules). kmod installs them in /usr/sbin (or /sbin
 * before the /usr merge); busybox in /sbin or /bin.
 */
export const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'] as const;

export function findTool(name: 'insmod' | 'rmmod', dirs: readonly string[] = TOOL_DIRS): string {
  const p = which(name, dirs.join(':'));
  if (!p) throw new SutureError('environment', `${name} is not installed (not found in ${dirs.join(', ')})`, { hint: 'install it: apt-get install kmod' });
  return p;
}

async function tool(argv: string[]): Promise<LoaderResult> {
  const r = await run(argv, { timeoutMs: 120_000 });
  const text = `${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean).pop() ?? '';
  return { ok: r.code === 0, message: text, durationMs: r.durationMs };
}

export const kmodLoader: ModuleLoader = {
  insmod: (path) => tool([findTool('insmod'), path]),
  rmmod: (name) => tool([findTool('rmmod'), name]),
};

/**
 * The kernel refused a module for its signature. With `module.sig_enforce=1`
 * (or CONFIG_MODULE_SIG_FORCE) an unsigned module, or one signed by a key that
 * is not in the kernel's keyrings (built-in, secondary, MOK/platform), fails
 * with EKEYREJECTED ("Key was rejected by service"; the log says "Loading of
 * unsigned module is rejected" or "... module with unavailable key ..."). A
 * Secure Boot lockdown without enforcement refuses an unsigned one with EPERM
 * and logs "Lockdown: ... unsigned module loading is restricted". ENOKEY
 * ("Required key not available") is the same refusal seen by other loaders.
 * Returns the typed error that says what to do, or undefined for any other refusal.
 */
export function signatureRefusal(file: string, toolMessage: string, kernelLines: readonly string[]): SutureError | undefined {
  const log = kernelLines.join('\n');
  const rejected = /Key was rejected by service|EKEYREJECTED|Required key not available|ENOKEY/.test(toolMessage);
  const lockdown = /Lockdown:.*unsigned module loading is restricted/.test(log);
  if (!rejected && !lockdown) return undefined;
  const why = /Loading of unsigned module is rejected/.test(log)
    ? 'the module is not signed'
    : /Loading of module with unavailable key is rejected|Required key not available|ENOKEY/.test(log + toolMessage)
      ? "the module is signed, but by a key that is not in the kernel's keyrings (built-in, or enrolled with MOK)"
      : /module with unsupported crypto/.test(log)
        ? 'its signature uses a hash or key type this kernel cannot check'
        : lockdown
          ? 'the module is not signed and the kernel is locked down (Secure Boot)'
          : 'its signature was not accepted';
  // one line each: a loader that tries finit_module and then init_module makes the kernel say it twice
  const said = [...new Set(kernelLines.filter((l) => /Loading of .* is rejected|Lockdown:|module verification/.test(l)))];
  return new SutureError(
    'kernel-refused',
    `the kernel refused ${file}: this kernel enforces module signatures (module.sig_enforce=1 or Secure Boot lockdown) and ${why}; nothing was loaded`,
    {
      details: [...said, toolMessage].filter(Boolean).join('\n') || undefined,
      hint: 'sign the patch on the builder: suture build ... --module-sign-key KEY.pem --module-sign-cert CERT.der, with a key enrolled in MOK on this host (mokutil --import CERT.der, then reboot and confirm the enrolment)',
    },
  );
}
