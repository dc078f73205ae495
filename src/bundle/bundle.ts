// SPDX-License-Identifier: GPL-2.0-only
/**
 * A bundle (NAME.suture): one uncompressed POSIX tar archive holding, in this order,
 *
 *   SHA256SUMS          sha256 of manifest.json and of NAME.ko (`sha256sum -c` format)
 *   SHA256SUMS.minisig  a minisign signature over SHA256SUMS
 *   manifest.json       what the module is and which kernel build it is for (manifest.ts)
 *   NAME.ko             the livepatch module
 *
 * The signature covers both through SHA256SUMS, the way Debian's release
 * images are signed, so anyone checks a bundle with two standard tools:
 *
 *   tar xf NAME.suture && minisign -Vm SHA256SUMS -p builder.pub && sha256sum -c SHA256SUMS
 *
 * A host checks the same things in memory, from one read of the file, and
 * more: the key is one it trusts and neither the key nor the module is
 * revoked, the manifest agrees with the module's own modinfo, and (host.ts)
 * the kernel build ID is the running kernel's.
 */
import { createHash } from 'node:crypto';
import type { PatchFile } from '../livepatch/patch-file.js';
import { MAX_PATCH_FILE_BYTES, parsePatchFile } from '../livepatch/patch-file.js';
import { vermagicRelease } from '../livepatch/validate.js';
import { MODULE_NAME_MAX } from '../kernel/module-file.js';
import { SutureError } from '../util/errors.js';
import { formatManifest, MAX_MANIFEST_BYTES, parseManifest, type Manifest } from './manifest.js';
import { MAX_KEY_FILE_BYTES, parseSignature, signData, verifySignature, type SecretKey, type Signature } from './minisign.js';
import { readTar, writeTar } from './tar.js';
import { checkNotRevoked, type TrustedKey, type TrustStore } from './trust.js';

export const SUMS = 'SHA256SUMS';
export const SUMS_SIG = 'SHA256SUMS.minisig';
export const MANIFEST = 'manifest.json';
/** The module inside a bundle: the patch bound (64 MiB) less room for the rest. */
export const MAX_MODULE_BYTES = MAX_PATCH_FILE_BYTES - 1024 * 1024;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export interface SignInput {
  module: PatchFile;
  key: SecretKey;
  /** The kernel build the module is for; required when the module has no modinfo suture_build_id, and equal to it otherwise. */
  buildId?: string;
  builderVersion: string;
  now?: Date;
}

/** The manifest a module gets, from its own modinfo and klp structure. */
export function manifestFor(p: PatchFile, buildId: string | undefined, builderVersion: string, now: Date): Manifest {
  const release = vermagicRelease(p.vermagic);
  if (!release) throw new SutureError('invalid-input', `${p.path}: no vermagic, so no kernel release to bind the bundle to`, { hint: 'sign a module built by suture build' });
  if (!p.livepatch) throw new SutureError('invalid-input', `${p.path} is not a livepatch module (no modinfo livepatch=Y)`);
  if (buildId !== undefined && p.buildId !== undefined && buildId !== p.buildId) {
    throw new SutureError('usage', `--build-id ${buildId} disagrees with the module's own modinfo suture_build_id=${p.buildId}`, { hint: 'leave --build-id out: the module already says which build it is for' });
  }
  const id = p.buildId ?? buildId;
  if (!id) {
    throw new SutureError('usage', `${p.path} has no modinfo suture_build_id: give the GNU build ID of the kernel build it is for with --build-id HEX`, {
      hint: 'on a host running that kernel: suture status shows its build ID; a bundle is bound to one kernel build',
    });
  }
  if (!p.structure) throw new SutureError('invalid-input', `${p.path}: suture cannot read its klp_patch (objects and functions), so it cannot say what the bundle replaces`);
  const sourceSha = p.modinfo.find((e) => e.key === 'suture_patch_sha256')?.value;
  return {
    format: 'suture-bundle',
    version: 1,
    patch: {
      name: p.name,
      description: p.description ?? null,
      cves: [...p.cves].sort(),
      effectiveVersion: p.effectiveVersion ?? null,
      replace: p.structure.replace,
      objects: p.structure.objects.map((o) => ({ name: o.name, functions: o.functions.map((f) => ({ name: f.name, sympos: f.sympos })) })),
    },
    kernel: { release, buildId: id.toLowerCase() },
    module: { file: `${p.name}.ko`, sha256: p.sha256, size: p.bytes.length },
    source: { patchSha256: sourceSha && /^[0-9a-f]{64}$/.test(sourceSha) ? sourceSha : null },
    builder: { suture: builderVersion },
    createdAt: now.toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

/** Make a signed bundle of a module; the manifest is checked by the same parser a host uses. */
export function signBundle(i: SignInput): { bytes: Buffer; manifest: Manifest } {
  const now = i.now ?? new Date();
  const manifest = manifestFor(i.module, i.buildId, i.builderVersion, now);
  const mbytes = formatManifest(manifest);
  parseManifest(mbytes, '(new bundle)');
  if (i.module.bytes.length > MAX_MODULE_BYTES) throw new SutureError('invalid-input', `${i.module.path} is ${i.module.bytes.length} bytes, more than a bundle carries (${MAX_MODULE_BYTES})`);
  const sums = Buffer.from(`${sha256(mbytes)}  ${MANIFEST}\n${manifest.module.sha256}  ${manifest.module.file}\n`);
  const comment = `suture bundle ${manifest.patch.name} for ${manifest.kernel.release} build ${manifest.kernel.buildId}, module sha256 ${manifest.module.sha256}`;
  const sig = Buffer.from(signData(i.key, sums, comment));
  const bytes = writeTar(
    [
      { name: SUMS, data: sums },
      { name: SUMS_SIG, data: sig },
      { name: MANIFEST, data: mbytes },
      { name: manifest.module.file, data: i.module.bytes },
    ],
    now.getTime() / 1000,
  );
  return { bytes, manifest };
}

/** A bundle read and checked for its own consistency, not yet for trust. */
export interface OpenedBundle {
  file: string;
  /** sha256 of the whole bundle file. */
  sha256: string;
  manifest: Manifest;
  signature: Signature;
  sums: Buffer;
  module: PatchFile;
}

const MODULE_MEMBER = new RegExp(`^[A-Za-z0-9_-]{1,${MODULE_NAME_MAX}}\\.ko$`);

function limitOf(name: string): number | undefined {
  if (name === SUMS) return 4096;
  if (name === SUMS_SIG) return MAX_KEY_FILE_BYTES;
  if (name === MANIFEST) return MAX_MANIFEST_BYTES;
  if (MODULE_MEMBER.test(name)) return MAX_MODULE_BYTES;
  return undefined;
}

function tampered(file: string, what: string): SutureError {
  return new SutureError('untrusted', `${file}: ${what}: the bundle was changed after it was signed, or is damaged; nothing was loaded`, {
    hint: 'get the bundle again from its builder; check it without suture: tar xf BUNDLE && minisign -Vm SHA256SUMS -p KEY.pub && sha256sum -c SHA256SUMS',
  });
}

/**
 * Read the members and check what needs no key: the layout, SHA256SUMS
 * against the members, the manifest against the module. The signature is
 * parsed, not yet checked (verifyBundle does that).
 */
export function openBundle(bytes: Buffer, file: string): OpenedBundle {
  const members = readTar(bytes, file, limitOf, `${SUMS}, ${SUMS_SIG}, ${MANIFEST} and NAME.ko`);
  const order = members.map((m) => (MODULE_MEMBER.test(m.name) ? 'NAME.ko' : m.name));
  if (order.join(' ') !== `${SUMS} ${SUMS_SIG} ${MANIFEST} NAME.ko`) {
    throw new SutureError('invalid-input', `${file}: a bundle holds ${SUMS}, ${SUMS_SIG}, ${MANIFEST} and NAME.ko in that order; this one holds ${members.map((m) => m.name).join(', ') || 'nothing'}`, {
      hint: 'make it with suture bundle sign',
    });
  }
  const [sumsM, sigM, manM, modM] = members as [typeof members[0], typeof members[0], typeof members[0], typeof members[0]];
  const signature = parseSignature(sigM.data.toString('utf8'), `${file}:${SUMS_SIG}`);
  const lines = sumsM.data.toString('latin1').split('\n');
  const want = [MANIFEST, modM.name];
  if (lines.length !== 3 || lines[2] !== '') throw tampered(file, `${SUMS} does not list exactly ${want.join(' and ')}`);
  lines.slice(0, 2).forEach((l, i) => {
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(l);
    if (!m || m[2] !== want[i]) throw tampered(file, `${SUMS} line ${i + 1} is not "<sha256>  ${want[i]}"`);
    const data = i === 0 ? manM.data : modM.data;
    if (sha256(data) !== m[1]) throw tampered(file, `${want[i]} does not match its sha256 in ${SUMS}`);
  });
  const manifest = parseManifest(manM.data, `${file}:${MANIFEST}`);
  if (manifest.module.file !== modM.name) throw tampered(file, `the manifest names module ${manifest.module.file}, the bundle holds ${modM.name}`);
  if (manifest.module.sha256 !== sha256(modM.data) || manifest.module.size !== modM.data.length) throw tampered(file, `${modM.name} is not the module the manifest describes (sha256/size)`);
  const module = parsePatchFile(modM.data, `${file}:${modM.name}`);
  const disagree = (field: string, m: unknown, k: unknown) =>
    new SutureError('invalid-input', `${file}: manifest ${field} is ${JSON.stringify(m)} but the module says ${JSON.stringify(k)}`, { hint: 'the bundle was made wrongly; make it again with suture bundle sign' });
  if (module.name !== manifest.patch.name) throw disagree('patch.name', manifest.patch.name, module.name);
  if (vermagicRelease(module.vermagic) !== manifest.kernel.release) throw disagree('kernel.release', manifest.kernel.release, vermagicRelease(module.vermagic));
  if (module.buildId !== undefined && module.buildId !== manifest.kernel.buildId) throw disagree('kernel.buildId', manifest.kernel.buildId, module.buildId);
  if (module.structure && module.structure.replace !== manifest.patch.replace) throw disagree('patch.replace', manifest.patch.replace, module.structure.replace);
  // The manifest's binding is the module's from here on: what the host checks against the running kernel.
  module.buildId = manifest.kernel.buildId;
  return { file, sha256: sha256(bytes), manifest, signature, sums: sumsM.data, module };
}

/** Check the signature with the host's trusted keys and the revocation list; returns the key. */
export function verifyBundle(b: OpenedBundle, trust: TrustStore): TrustedKey {
  const key = trust.keys.get(b.signature.keyId);
  if (!key) {
    throw new SutureError('untrusted', `${b.file} is signed by key ${b.signature.keyId}, which is not trusted on this host (not in ${trust.dir}); nothing was loaded`, {
      hint: `if you trust its builder, install their public key: install -m 0644 -o root BUILDER.pub ${trust.dir}/`,
    });
  }
  if (!verifySignature(key.pub, b.signature, b.sums)) throw tampered(b.file, `${SUMS_SIG} does not match (key ${key.pub.id}, ${key.file})`);
  const expected = `suture bundle ${b.manifest.patch.name} for ${b.manifest.kernel.release} build ${b.manifest.kernel.buildId}, module sha256 ${b.manifest.module.sha256}`;
  if (b.signature.trustedComment !== expected) throw tampered(b.file, `the signed comment does not describe this bundle (${JSON.stringify(b.signature.trustedComment.slice(0, 120))})`);
  checkNotRevoked(trust, b.file, key.pub.id, b.manifest.module.sha256);
  return key;
}
