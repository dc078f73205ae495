// SPDX-License-Identifier: GPL-2.0-only
/**
 * The host's door for patch files: `load`, `replace` and `install` hand it the
 * path, it reads the file once and returns the module (a PatchFile whose bytes
 * are what the existing "stage privately, insmod that copy" path loads), or
 * refuses before anything touches the kernel or suture's state.
 *
 *   - a signed bundle: checked with the trusted keys and the revocation list
 *     (bundle.ts, trust.ts), and bound to the running kernel build (GNU build
 *     ID from /sys/kernel/notes) when it is for the running release;
 *   - a bare .ko: only with --allow-unsigned, and then still refused when its
 *     sha256 is revoked (if a trust store exists).
 *
 * Host side: imports the host layer (src/livepatch) and nothing of the build.
 */
import { existsSync } from 'node:fs';
import { parsePatchFile, readPatchBytes, type PatchFile } from '../livepatch/patch-file.js';
import type { InstalledPatch } from '../livepatch/records.js';
import type { HostFs } from '../livepatch/sysfs.js';
import { SutureError } from '../util/errors.js';
import { openBundle, verifyBundle, type OpenedBundle } from './bundle.js';
import { isTar } from './tar.js';
import { checkNotRevoked, keysDirFromEnv, loadTrustStore, serialFileFromEnv, type TrustedKey, type TrustStore } from './trust.js';

export interface Admitted {
  patch: PatchFile;
  /** The bundle and the key that signed it; undefined for a bare module (--allow-unsigned). */
  bundle: OpenedBundle | undefined;
  key: TrustedKey | undefined;
  /** What an install records, so that every boot checks it again against the revocation list. */
  signer: InstalledPatch['signer'];
}

export interface AdmitOptions {
  allowUnsigned?: boolean;
  /** The keys directory (default /etc/suture/keys.d, or SUTURE_KEYS_DIR). */
  keysDir?: string;
  /** Where the host remembers the highest revocation serial it accepted (default under SUTURE_STATE_DIR). */
  serialFile?: string;
  fs: HostFs;
}

const isElf = (b: Buffer) => b.length >= 4 && b.readUInt32BE(0) === 0x7f454c46;

/** The host's trust store: a revocation list is accepted only at or above the serial remembered in `serialFile`, and a higher one is remembered. */
function hostTrust(dir: string, serialFile: string): TrustStore {
  return loadTrustStore(dir, { file: serialFile, record: true });
}

/** The trust store, or undefined when there is none and none is needed. */
function trustIfAny(dir: string, serialFile: string): TrustStore | undefined {
  return existsSync(dir) ? hostTrust(dir, serialFile) : undefined;
}

/** The running kernel must be the build the bundle is bound to (when it is for the running release). */
export function checkBuild(fs: HostFs, what: string, release: string, buildId: string): void {
  if (release !== fs.osRelease()) return;
  const running = fs.kernelBuildId();
  if (!running) {
    throw new SutureError('environment', `the running kernel's GNU build ID cannot be read (/sys/kernel/notes), so ${what} (for build ${buildId}) cannot be checked against it`, {
      hint: 'mount sysfs (/sys) and run suture as root',
    });
  }
  if (running !== buildId) {
    throw new SutureError('wrong-kernel', `${what} is for the kernel build with GNU build ID ${buildId}, but the running ${release} is build ${running} (/sys/kernel/notes): another build of the same release; nothing was loaded`, {
      hint: 'get the bundle built for this exact kernel build',
    });
  }
}

export function admitPatch(file: string, o: AdmitOptions): Admitted {
  const bytes = readPatchBytes(file, { what: 'reading a patch' });
  const dir = o.keysDir ?? keysDirFromEnv();
  const serialFile = o.serialFile ?? serialFileFromEnv();
  if (isTar(bytes)) {
    const b = openBundle(bytes, file);
    const key = verifyBundle(b, hostTrust(dir, serialFile));
    checkBuild(o.fs, file, b.manifest.kernel.release, b.manifest.kernel.buildId);
    return { patch: b.module, bundle: b, key, signer: { keyId: key.pub.id, bundleSha256: b.sha256 } };
  }
  if (!o.allowUnsigned) {
    throw new SutureError(
      'untrusted',
      isElf(bytes)
        ? `${file} is a bare module, not a signed bundle: suture loads only bundles signed by a key this host trusts (${dir}); nothing was loaded`
        : `${file} is not a signed bundle (nor a kernel module); nothing was loaded`,
      { hint: isElf(bytes) ? 'sign it on the builder (suture bundle sign FILE.ko --key KEY.key) and use the .suture file; for a module you built and trust yourself: --allow-unsigned' : 'give the NAME.suture file that suture build --sign or suture bundle sign wrote' },
    );
  }
  const patch = parsePatchFile(bytes, file);
  const trust = trustIfAny(dir, serialFile);
  if (trust) checkNotRevoked(trust, file, undefined, patch.sha256);
  return { patch, bundle: undefined, key: undefined, signer: undefined };
}

/**
 * What `suture boot` checks of each installed patch before loading it: the
 * key that signed it is still trusted and not revoked, the module is not
 * revoked, and it is the running kernel's build.
 */
export function bootAdmission(fs: HostFs, keysDir = keysDirFromEnv(), serialFile = serialFileFromEnv()): (entry: InstalledPatch) => void {
  let cached: { t: TrustStore | undefined } | undefined;
  const trust = () => (cached ??= { t: trustIfAny(keysDir, serialFile) }).t;
  return (entry) => {
    if (entry.signer) {
      // No keys directory at all: loadTrustStore says so.
      const t = trust() ?? hostTrust(keysDir, serialFile);
      if (!t.keys.has(entry.signer.keyId)) {
        throw new SutureError('untrusted', `installed patch ${entry.name} was signed by key ${entry.signer.keyId}, which is no longer trusted (not in ${keysDir}): not loaded`, {
          hint: `trust the key again, or install a bundle signed by a trusted key; suture uninstall ${entry.name} removes it`,
        });
      }
      checkNotRevoked(t, `installed patch ${entry.name}`, entry.signer.keyId, entry.sha256);
    } else {
      const t = trust();
      if (t) checkNotRevoked(t, `installed patch ${entry.name}`, undefined, entry.sha256);
    }
    if (entry.buildId) checkBuild(fs, `installed patch ${entry.name}`, fs.osRelease() ?? '', entry.buildId);
  };
}
