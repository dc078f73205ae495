// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture key generate|revoke` and `suture bundle sign|verify|info`: signed
 * bundles (src/bundle). Host-safe: loads only src/bundle and the host layer.
 */
import { Command, InvalidArgumentError } from 'commander';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { openBundle, signBundle, verifyBundle, type OpenedBundle } from '../bundle/bundle.js';
import { moduleSignatureTrailer } from '../bundle/module-signature.js';
import { generateKeyFiles, readPublicKey, readSecretKey } from '../bundle/keys.js';
import { writeAtomic } from '../util/files.js';
import { keysDirFromEnv, loadTrustStore, makeRevocations, nextSerial, parseRevocations, serialFileFromEnv, type TrustStore } from '../bundle/trust.js';
import { readPatchBytes, readPatchFile } from '../livepatch/patch-file.js';
import { SutureError } from '../util/errors.js';
import { out, printJson } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Where `bundle sign` writes by default: NAME.suture beside the module. */
export function defaultBundlePath(ko: string): string {
  return join(dirname(ko), `${basename(ko).replace(/\.ko$/, '')}.suture`);
}

/** Sign a module file into a bundle (also used by `build --sign`). */
export function signModuleFile(ko: string, keyFile: string, o: { out?: string; buildId?: string }) {
  const key = readSecretKey(keyFile);
  const module = readPatchFile(ko);
  if (o.buildId !== undefined && !/^[0-9a-fA-F]{2,128}$/.test(o.buildId)) throw new SutureError('usage', `--build-id ${o.buildId} is not a GNU build ID (hex)`);
  const { bytes, manifest } = signBundle({ module, key, buildId: o.buildId?.toLowerCase(), builderVersion: pkg.version });
  const path = o.out ?? defaultBundlePath(ko);
  writeAtomic(path, bytes);
  return { path, manifest, keyId: key.pub.id, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function openFile(file: string) {
  return openBundle(readPatchBytes(file, { what: 'reading a bundle' }), file);
}

/** The trust to verify with: given public keys (a builder checking its own output), or the host's keys directory. */
function trustFor(pubs: string[] | undefined, keysDir: string | undefined): TrustStore {
  if (pubs?.length) {
    const keys = new Map(pubs.map((f) => {
      const pub = readPublicKey(f);
      return [pub.id, { pub, file: f }] as const;
    }));
    return { dir: pubs.join(', '), keys, revocations: undefined };
  }
  // compared with the serial this host accepted, never recorded: verifying is not accepting
  return loadTrustStore(keysDir ?? keysDirFromEnv(), { file: serialFileFromEnv(), record: false });
}

function parseSerial(v: string): number {
  const n = Number(v);
  if (!/^\d{1,15}$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('--serial takes a whole number of at least 1');
  return n;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The kernel module signature the bundled module carries (scripts/sign-file), if any. */
function kernelSignature(b: OpenedBundle) {
  return moduleSignatureTrailer(b.module.bytes) ?? null;
}

export function bundleCommands(): Command[] {
  const key = new Command('key').description('signing keys for bundles (Ed25519, minisign format)');
  key
    .command('generate')
    .description('make a signing key pair: NAME.key (secret, mode 0600) and NAME.pub (what hosts trust, in /etc/suture/keys.d/)')
    .argument('<name>', 'path and name of the pair, without extension')
    .option('--comment <text>', 'the public key\'s comment')
    .option('--json', 'print JSON')
    .action((name: string, o: { comment?: string; json?: boolean }) => {
      const r = generateKeyFiles(name, o.comment);
      if (o.json) return printJson({ command: 'key generate', keyId: r.sk.pub.id, key: r.key, pub: r.pub });
      out(`key ${r.sk.pub.id}: secret ${r.key} (mode 0600, keep it on the builder), public ${r.pub}`);
      out(`on each host: install -D -m 0644 -o root ${r.pub} /etc/suture/keys.d/${basename(r.pub)}`);
    });
  key
    .command('revoke')
    .description('write a signed revocation list (revoked.json + revoked.json.minisig): hosts then refuse the keys and modules it names (install, load, boot)')
    .requiredOption('--key <file.key>', 'a trusted key to sign the list with')
    .option('--revoke-key <id|file.pub>', 'revoke this key (repeatable)', collect)
    .option('--revoke-module <sha256|file>', 'revoke this module: its sha256, a .ko or a .suture bundle (repeatable)', collect)
    .option('--reason <text>', 'why (kept in the list)', '')
    .option('--merge <revoked.json>', 'keep every entry of this earlier list; the new list\'s serial is above its serial')
    .option('--serial <n>', 'the list\'s serial (default: above the merged list\'s and at least the time in seconds); hosts refuse a list older than one they accepted', parseSerial)
    .option('-o, --output <file>', 'where to write the list', 'revoked.json')
    .option('--json', 'print JSON')
    .action((o: { key: string; revokeKey?: string[]; revokeModule?: string[]; reason: string; merge?: string; serial?: number; output: string; json?: boolean }) => {
      const sk = readSecretKey(o.key);
      const keys = new Map<string, string>();
      const modules = new Map<string, string>();
      let previous: number | undefined;
      if (o.merge) {
        const old = parseRevocations(readPatchBytes(o.merge, { what: 'reading a revocation list' }), o.merge, '');
        previous = old.serial;
        for (const [k, r] of old.keys) keys.set(k, r);
        for (const [m, r] of old.modules) modules.set(m, r);
      }
      for (const k of o.revokeKey ?? []) keys.set(/^[0-9A-Fa-f]{16}$/.test(k) ? k.toUpperCase() : readPublicKey(k).id, o.reason);
      for (const m of o.revokeModule ?? []) {
        if (/^[0-9a-f]{64}$/.test(m)) modules.set(m, o.reason);
        else if (m.endsWith('.suture')) modules.set(openFile(m).manifest.module.sha256, o.reason);
        else modules.set(readPatchFile(m).sha256, o.reason);
      }
      if (!keys.size && !modules.size) throw new SutureError('usage', 'nothing to revoke: give --revoke-key or --revoke-module');
      const now = new Date();
      const { json, sig, serial } = makeRevocations(
        sk,
        [...keys].map(([id, reason]) => ({ id, reason })),
        [...modules].map(([sha256, reason]) => ({ sha256, reason })),
        now,
        nextSerial(previous, now, o.serial),
      );
      writeAtomic(o.output, json);
      writeAtomic(`${o.output}.minisig`, sig);
      if (o.json) return printJson({ command: 'key revoke', list: o.output, signature: `${o.output}.minisig`, signedBy: sk.pub.id, serial, keys: [...keys.keys()], modules: [...modules.keys()] });
      out(`wrote ${o.output} and ${o.output}.minisig (signed by ${sk.pub.id}, serial ${serial}): ${keys.size} key(s), ${modules.size} module(s) revoked`);
      out(`on each host: install -m 0644 -o root ${o.output} ${o.output}.minisig /etc/suture/`);
    });

  const bundle = new Command('bundle').description('signed patch bundles: a livepatch module, its manifest and a minisign signature');
  bundle
    .command('sign')
    .description('make NAME.suture from a livepatch module, signed with KEY')
    .argument('<patch.ko>', 'the livepatch module')
    .requiredOption('--key <file.key>', 'the signing key (suture key generate)')
    .option('--build-id <hex>', 'the GNU build ID of the kernel build it is for (when the module has no modinfo suture_build_id)')
    .option('-o, --output <file>', 'where to write the bundle (default: NAME.suture beside the module)')
    .option('--json', 'print JSON')
    .action((ko: string, o: { key: string; buildId?: string; output?: string; json?: boolean }) => {
      const r = signModuleFile(ko, o.key, { out: o.output, buildId: o.buildId });
      if (o.json) return printJson({ command: 'bundle sign', bundle: r.path, keyId: r.keyId, size: r.size, manifest: r.manifest });
      out(`signed ${r.path}: ${r.manifest.patch.name} for ${r.manifest.kernel.release} (build ${r.manifest.kernel.buildId}), key ${r.keyId}`);
    });
  bundle
    .command('verify')
    .description('check a bundle: its signature by a trusted key, its contents, the revocation list')
    .argument('<file.suture>', 'the bundle')
    .option('--pub <file.pub>', 'trust this public key instead of the keys directory (repeatable)', collect)
    .option('--keys <dir>', 'the keys directory (default /etc/suture/keys.d, or SUTURE_KEYS_DIR)')
    .option('--json', 'print JSON')
    .action((file: string, o: { pub?: string[]; keys?: string; json?: boolean }) => {
      const b = openFile(file);
      const k = verifyBundle(b, trustFor(o.pub, o.keys));
      if (o.json) return printJson({ command: 'bundle verify', bundle: file, ok: true, keyId: k.pub.id, keyFile: k.file, name: b.manifest.patch.name, release: b.manifest.kernel.release, buildId: b.manifest.kernel.buildId, moduleSha256: b.manifest.module.sha256 });
      out(`${file}: good signature by key ${k.pub.id} (${k.file}); ${b.manifest.patch.name} for ${b.manifest.kernel.release} build ${b.manifest.kernel.buildId}`);
    });
  bundle
    .command('info')
    .description('show what a bundle holds (its manifest and signer); checks its consistency, not whether its key is trusted')
    .argument('<file.suture>', 'the bundle')
    .option('--json', 'print JSON')
    .action((file: string, o: { json?: boolean }) => {
      const b = openFile(file);
      const m = b.manifest;
      const kernelSig = kernelSignature(b);
      if (o.json) return printJson({ command: 'bundle info', bundle: file, sha256: b.sha256, keyId: b.signature.keyId, trustedComment: b.signature.trustedComment, moduleSignature: kernelSig, manifest: m });
      out(`bundle       ${file} (sha256 ${b.sha256})`);
      out(`signed by    key ${b.signature.keyId} (not checked here: suture bundle verify)`);
      out(`patch        ${m.patch.name}${m.patch.replace ? ' (cumulative: replaces every loaded patch)' : ''}`);
      if (m.patch.description) out(`description  ${m.patch.description}`);
      out(`kernel       ${m.kernel.release}, build ID ${m.kernel.buildId}`);
      out(`module       ${m.module.file}, ${m.module.size} bytes, sha256 ${m.module.sha256}`);
      out(`module sig   ${kernelSig ? ('damaged' in kernelSig ? `damaged: ${kernelSig.damaged}` : `kernel module signature appended (${kernelSig.idType === 2 ? 'PKCS#7' : `id type ${kernelSig.idType}`}, ${kernelSig.sigLen} bytes; modinfo shows its signer)`) : 'none (a kernel that enforces module signatures refuses it)'}`);
      if (m.patch.cves.length) out(`CVEs         ${m.patch.cves.join(', ')}`);
      if (m.patch.effectiveVersion) out(`effective    ${m.patch.effectiveVersion}`);
      if (m.source.patchSha256) out(`source       patch sha256 ${m.source.patchSha256}`);
      out(`built by     suture ${m.builder.suture}, ${m.createdAt}`);
      out('replaces');
      for (const ob of m.patch.objects) for (const f of ob.functions) out(`  ${ob.name}  ${f.name}${f.sympos ? `,${f.sympos}` : ''}`);
    });
  return [key, bundle];
}
