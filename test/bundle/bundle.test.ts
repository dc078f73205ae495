// SPDX-License-Identifier: GPL-2.0-only
/**
 * Signed bundles on real (gcc-compiled) livepatch modules: made by suture,
 * checked by Debian's own tools (tar, minisign, sha256sum) and by the host
 * side, which refuses every tampered, untrusted, revoked or wrong-build one.
 * Needs the Debian package `minisign`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBundle, signBundle, verifyBundle } from '../../src/bundle/bundle.js';
import { admitPatch, bootAdmission } from '../../src/bundle/host.js';
import { generateKeyFiles, readSecretKey } from '../../src/bundle/keys.js';
import { parseManifest } from '../../src/bundle/manifest.js';
import { formatPublicKey, parseSignature, signData } from '../../src/bundle/minisign.js';
import { loadTrustStore, makeRevocations, nextSerial, readRememberedSerial } from '../../src/bundle/trust.js';
import { readPatchFile } from '../../src/livepatch/patch-file.js';
import type { SutureError } from '../../src/util/errors.js';
import { buildFakePatches, FakeKernel } from '../livepatch/fake-kernel.js';

const BOUND = 'eb4fbcd037e7253717950bf2b93bd5566f47c56f';

function requireMinisign(): void {
  const r = spawnSync('minisign', ['-v'], { encoding: 'utf8' });
  if (r.error) throw new Error('these tests check bundles with the real minisign: install the Debian package `minisign` (apt-get install minisign)');
}

let ko: (n: string) => string;
let dir: string;
let keys: string;
let builder: ReturnType<typeof generateKeyFiles>;
let other: ReturnType<typeof generateKeyFiles>;

beforeAll(() => {
  requireMinisign();
  ko = buildFakePatches();
  dir = mkdtempSync(join(tmpdir(), 'suture-bundle-test-'));
  // the host's remembered revocation serial: never the machine's /var/lib/suture
  process.env.SUTURE_STATE_DIR = join(dir, 'state');
  builder = generateKeyFiles(join(dir, 'builder'));
  other = generateKeyFiles(join(dir, 'other'));
  keys = join(dir, 'etc', 'keys.d');
  mkdirSync(keys, { recursive: true, mode: 0o755 });
  chmodSync(keys, 0o755);
  chmodSync(join(dir, 'etc'), 0o755);
  writeFileSync(join(keys, 'builder.pub'), readFileSync(builder.pub), { mode: 0o644 });
});

const sign = (name = 'fake_bound', key = builder.key, buildId?: string) =>
  signBundle({ module: readPatchFile(ko(name)), key: readSecretKey(key), buildId, builderVersion: '0.1.0', now: new Date('2026-05-01T12:00:00Z') });

function write(name: string, b: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, b);
  return p;
}

describe('key files', () => {
  it('NAME.key is 0600 and never overwritten; NAME.pub is what minisign reads', () => {
    expect(readFileSync(builder.key, 'utf8')).toMatch(/^untrusted comment: suture secret key [0-9A-F]{16} /);
    expect(execFileSync('stat', ['-c', '%a', builder.key], { encoding: 'utf8' }).trim()).toBe('600');
    expect(() => generateKeyFiles(join(dir, 'builder'))).toThrow(/builder\.key already exists: suture never overwrites a key/);
    const pub = readFileSync(builder.pub, 'utf8').split('\n');
    expect(pub[0]).toMatch(/^untrusted comment: /);
    expect(Buffer.from(pub[1]!, 'base64').length).toBe(42);
  });

  it('a secret key others can read is refused', () => {
    const k = join(dir, 'loose.key');
    writeFileSync(k, readFileSync(builder.key), { mode: 0o644 });
    chmodSync(k, 0o644);
    expect(() => readSecretKey(k)).toThrow(/signing key .*loose\.key can be read by others \(mode 644\)/);
  });
});

describe('a bundle checked without suture', () => {
  it('tar xf, minisign -Vm SHA256SUMS -p builder.pub, sha256sum -c: all pass; one changed byte fails minisign', () => {
    const { bytes, manifest } = sign();
    const out = mkdtempSync(join(dir, 'x-'));
    writeFileSync(join(out, 'fake_bound.suture'), bytes);
    expect(execFileSync('tar', ['tf', 'fake_bound.suture'], { cwd: out, encoding: 'utf8' })).toBe('SHA256SUMS\nSHA256SUMS.minisig\nmanifest.json\nfake_bound.ko\n');
    execFileSync('tar', ['xf', 'fake_bound.suture'], { cwd: out });
    const v = spawnSync('minisign', ['-Vm', 'SHA256SUMS', '-p', builder.pub], { cwd: out, encoding: 'utf8' });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(`Trusted comment: suture bundle fake_bound for 6.1.0-56-amd64 build ${BOUND}, module sha256 ${manifest.module.sha256}`);
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out, encoding: 'utf8' })).toBe('manifest.json: OK\nfake_bound.ko: OK\n');
    // another key: minisign refuses
    expect(spawnSync('minisign', ['-Vm', 'SHA256SUMS', '-p', other.pub], { cwd: out }).status).not.toBe(0);
    // a changed module: sha256sum -c refuses
    const m = readFileSync(join(out, 'fake_bound.ko'));
    m[m.length - 1] ^= 1;
    writeFileSync(join(out, 'fake_bound.ko'), m);
    expect(spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out }).status).not.toBe(0);
    // a changed SHA256SUMS: minisign refuses
    const s = readFileSync(join(out, 'SHA256SUMS'), 'latin1');
    writeFileSync(join(out, 'SHA256SUMS'), s.replace(/^./, (c) => (c === '0' ? '1' : '0')));
    const t = spawnSync('minisign', ['-Vm', 'SHA256SUMS', '-p', builder.pub], { cwd: out, encoding: 'utf8' });
    expect(t.status).not.toBe(0);
    expect(t.stderr).toContain('Signature verification failed');
  });

  it('suture signs what minisign signs: a file signed with a key minisign made... is checked by suture (public key format both ways)', () => {
    const data = Buffer.from('some data\n');
    const sk = readSecretKey(builder.key);
    const sig = parseSignature(signData(sk, data, 'tc'), 'x');
    expect(sig.keyId).toBe(sk.pub.id);
    expect(formatPublicKey(sk.pub)).toBe(readFileSync(builder.pub, 'utf8'));
  });
});

describe('the manifest', () => {
  it('holds the module facts, the kernel build and the module sha256', () => {
    const { bytes } = sign();
    const b = openBundle(bytes, 'fake_bound.suture');
    expect(b.manifest).toMatchObject({
      format: 'suture-bundle',
      version: 1,
      patch: { name: 'fake_bound', replace: false, cves: ['CVE-0000-0010', 'CVE-0000-0011', 'CVE-0000-0012'], effectiveVersion: '6.1.194-1' },
      kernel: { release: '6.1.0-56-amd64', buildId: BOUND },
      module: { file: 'fake_bound.ko', sha256: readPatchFile(ko('fake_bound')).sha256 },
      builder: { suture: '0.1.0' },
      createdAt: '2026-05-01T12:00:00Z',
    });
    expect(b.manifest.patch.objects[0]!.functions[1]).toEqual({ name: 'meminfo_proc_show', sympos: 2 });
  });

  it('a module without modinfo suture_build_id needs --build-id, and one that has it must agree', () => {
    expect(() => sign('fake_patch')).toThrow(/fake_patch\.ko has no modinfo suture_build_id: give the GNU build ID .* with --build-id HEX/);
    expect(openBundle(sign('fake_patch', builder.key, BOUND).bytes, 'x').manifest.kernel.buildId).toBe(BOUND);
    expect(() => sign('fake_bound', builder.key, '00'.repeat(20))).toThrow(/--build-id 0{40} disagrees with the module's own modinfo suture_build_id=eb4f/);
  });

  it('every field is checked and named', () => {
    const m = (f: (v: any) => void) => {
      const v = JSON.parse(JSON.stringify(openBundle(sign().bytes, 'x').manifest));
      f(v);
      return () => parseManifest(Buffer.from(JSON.stringify(v)), 'b.suture:manifest.json');
    };
    expect(m((v) => (v.kernel.buildId = 'XYZ'))).toThrow(/manifest field kernel\.buildId is not a GNU build ID/);
    expect(m((v) => (v.extra = 1))).toThrow(/manifest field manifest\.extra is not a field of format suture-bundle version 1/);
    expect(m((v) => delete v.module.sha256)).toThrow(/manifest field module\.sha256 is missing/);
    expect(m((v) => (v.patch.cves = ['nope']))).toThrow(/patch\.cves\[0\] is not a CVE id/);
    expect(m((v) => (v.version = 2))).toThrow(/bundle format version 2; this suture reads version 1/);
    expect(m((v) => (v.module.file = 'other.ko'))).toThrow(/module\.file is other\.ko, not fake_bound\.ko/);
    expect(m((v) => (v.patch.objects[0].functions[0].sympos = -1))).toThrow(/functions\[0\]\.sympos is not a whole number/);
  });
});

/** A fresh host's trust: keys.d with the builder's key, where revoked.json goes, and its remembered serial. */
function trustDir(prefix: string) {
  const d = mkdtempSync(join(dir, prefix));
  chmodSync(d, 0o755);
  const k = join(d, 'keys.d');
  mkdirSync(k, { mode: 0o755 });
  writeFileSync(join(k, 'builder.pub'), readFileSync(builder.pub));
  const put = (r: { json: Buffer; sig: string }) => {
    writeFileSync(join(d, 'revoked.json'), r.json);
    writeFileSync(join(d, 'revoked.json.minisig'), r.sig);
  };
  return { d, k, put, serialFile: join(d, 'state', 'revocation-serial.json') };
}

describe('the host side', () => {
  const fk = () => new FakeKernel({ buildId: BOUND });

  it('a signed bundle by a trusted key is admitted; its module bytes are the ones signed', () => {
    const { bytes, manifest } = sign();
    const a = admitPatch(write('ok.suture', bytes), { fs: fk().fs, keysDir: keys });
    expect(a.patch.name).toBe('fake_bound');
    expect(a.patch.sha256).toBe(manifest.module.sha256);
    expect(a.signer).toEqual({ keyId: readSecretKey(builder.key).pub.id, bundleSha256: openBundle(bytes, 'x').sha256 });
  });

  it('a bare .ko needs --allow-unsigned, said plainly', () => {
    expect(() => admitPatch(ko('fake_bound'), { fs: fk().fs, keysDir: keys })).toThrow(/fake_bound\.ko is a bare module, not a signed bundle: suture loads only bundles signed by a key this host trusts/);
    expect(admitPatch(ko('fake_bound'), { fs: fk().fs, keysDir: keys, allowUnsigned: true }).patch.name).toBe('fake_bound');
  });

  it('refuses another key, a changed byte anywhere, another build, a missing keys directory', () => {
    const fs = fk().fs;
    expect(() => admitPatch(write('o.suture', sign('fake_bound', other.key).bytes), { fs, keysDir: keys })).toThrow(
      new RegExp(`o\\.suture is signed by key ${readSecretKey(other.key).pub.id}, which is not trusted on this host \\(not in .*keys\\.d\\)`),
    );
    const { bytes } = sign();
    // flip one byte in each member's data and in the headers: every one is refused
    // SHA256SUMS data, the signature line (the untrusted comment before it is not signed, as in minisign),
    // the trusted comment, the manifest, the module, a header's mode and a header's size
    const sigData = bytes.subarray(1536, 2048).toString('latin1');
    const offsets = [600, 1536 + sigData.indexOf('\n') + 20, 1536 + sigData.indexOf('trusted comment: suture') + 30, 2048 + 512 + 40, bytes.length - 2048, 100, 1024 + 124];
    for (const at of offsets) {
      const t = Buffer.from(bytes);
      t[at] ^= 1;
      // the error names the bundle, or the member of it that is wrong (a flipped bit in the base64 signature line
      // may leave no signature to check at all: "t.suture:SHA256SUMS.minisig: not a minisign signature")
      expect(() => admitPatch(write('t.suture', t), { fs, keysDir: keys }), `byte ${at}`).toThrow(/t\.suture(:[\w.]+)?: /);
    }
    const t = Buffer.from(bytes);
    t[bytes.length - 2048] ^= 1; // inside the module
    expect(() => admitPatch(write('t.suture', t), { fs, keysDir: keys })).toThrow(/fake_bound\.ko does not match its sha256 in SHA256SUMS: the bundle was changed after it was signed/);
    expect(() => admitPatch(write('w.suture', bytes), { fs: new FakeKernel({ buildId: '11'.repeat(20) }).fs, keysDir: keys })).toThrow(
      /w\.suture is for the kernel build with GNU build ID eb4f.*, but the running 6\.1\.0-56-amd64 is build 1111/,
    );
    expect(() => admitPatch(write('n.suture', bytes), { fs, keysDir: join(dir, 'none') })).toThrow(/no trusted keys: .*none does not exist/);
  });

  it('a keys directory or key file others can write is refused', () => {
    const d = mkdtempSync(join(dir, 'k-'));
    const k = join(d, 'keys.d');
    mkdirSync(k);
    chmodSync(d, 0o755);
    chmodSync(k, 0o777);
    expect(() => loadTrustStore(k)).toThrow(/the keys directory .*keys\.d is writable by every user \(mode 777\)/);
    chmodSync(k, 0o755);
    writeFileSync(join(k, 'a.pub'), readFileSync(builder.pub));
    chmodSync(join(k, 'a.pub'), 0o664);
    expect(() => loadTrustStore(k)).toThrow(/trusted key .*a\.pub is writable by its group/);
  });

  it('the signed revocation list: a revoked key, a revoked module; an unsigned or forged list fails closed', () => {
    const fs = fk().fs;
    const { d, k, put, serialFile } = trustDir('r-');
    const b = write('r.suture', sign().bytes);
    const sk = readSecretKey(builder.key);
    put(makeRevocations(sk, [], [{ sha256: readPatchFile(ko('fake_bound')).sha256, reason: 'CVE fix was wrong' }]));
    expect(() => admitPatch(b, { fs, keysDir: k, serialFile })).toThrow(/r\.suture: its module \(sha256 [0-9a-f]{16}…\) is revoked by .*revoked\.json \(CVE fix was wrong\)/);
    // ... a revoked bare module too, with --allow-unsigned
    expect(() => admitPatch(ko('fake_bound'), { fs, keysDir: k, serialFile, allowUnsigned: true })).toThrow(/is revoked by/);
    put(makeRevocations(sk, [{ id: sk.pub.id, reason: 'key leaked' }], []));
    expect(() => admitPatch(b, { fs, keysDir: k, serialFile })).toThrow(new RegExp(`signed by key ${sk.pub.id}, which is revoked by .*\\(key leaked\\)`));
    // the list itself is checkable with minisign
    expect(spawnSync('minisign', ['-Vm', join(d, 'revoked.json'), '-p', builder.pub]).status).toBe(0);
    // forged: signed by a key the host does not trust
    put(makeRevocations(readSecretKey(other.key), [], []));
    expect(() => admitPatch(b, { fs, keysDir: k, serialFile })).toThrow(/the revocation list .*revoked\.json is signed by key [0-9A-F]{16}, which is not in .*: suture trusts no bundle until it is fixed/);
    // changed after signing
    const r = makeRevocations(sk, [], []);
    put({ json: Buffer.from(r.json.toString().replace('"keys": []', '"keys": [ ]')), sig: r.sig });
    expect(() => admitPatch(b, { fs, keysDir: k, serialFile })).toThrow(/revoked\.json does not match its signature/);
  });

  it('the revocation serial: a host remembers the highest it accepted and refuses an older list (rollback) or none, naming both serials', () => {
    const fs = fk().fs;
    const { d, k, put, serialFile } = trustDir('s-');
    const b = write('s.suture', sign().bytes);
    const sk = readSecretKey(builder.key);
    const when = new Date('2026-11-01T00:00:00Z');
    const admit = () => admitPatch(b, { fs, keysDir: k, serialFile });
    // a fresh host takes any good list and remembers its serial
    const five = makeRevocations(sk, [], [], when, 5);
    expect(JSON.parse(five.json.toString())).toMatchObject({ version: 2, serial: 5 });
    expect(spawnSync('minisign', ['-Vm', join(d, 'revoked.json'), '-p', builder.pub]).status).not.toBe(0); // not yet written
    put(five);
    expect(spawnSync('minisign', ['-Vm', join(d, 'revoked.json'), '-p', builder.pub]).status).toBe(0);
    expect(admit().patch.name).toBe('fake_bound');
    expect(readRememberedSerial(serialFile)).toMatchObject({ serial: 5, listSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    put(makeRevocations(sk, [{ id: readSecretKey(other.key).pub.id, reason: 'leaked' }], [], when, 7));
    admit();
    expect(readRememberedSerial(serialFile)?.serial).toBe(7);
    // the old list, still correctly signed, put back: refused with both serials, at install/load and at boot
    put(five);
    const rollback = /the revocation list .*revoked\.json has serial 5, older than serial 7 this host already accepted \(.*revocation-serial\.json\): an old list put back \(a rollback\)/;
    expect(() => admit()).toThrow(rollback);
    try {
      admit();
    } catch (e) {
      expect((e as SutureError).kind).toBe('untrusted');
    }
    expect(() => admitPatch(ko('fake_bound'), { fs, keysDir: k, serialFile, allowUnsigned: true })).toThrow(rollback);
    const entry = { name: 'fake_bound', sha256: 'a'.repeat(64), replace: false, effectiveVersion: undefined, cves: [], description: undefined, buildId: BOUND, file: 'fake_bound.ko', installedAt: '', source: '' };
    expect(() => bootAdmission(fs, k, serialFile)({ ...entry, signer: { keyId: sk.pub.id, bundleSha256: 'b'.repeat(64) } })).toThrow(rollback);
    // a list from before serials (version 1) counts as serial 0
    const v1 = Buffer.from(`${JSON.stringify({ format: 'suture-revocations', version: 1, createdAt: when.toISOString(), keys: [], modules: [] }, null, 2)}\n`);
    put({ json: v1, sig: signData(sk, v1, 'old list') });
    expect(() => admit()).toThrow(/has serial 0, older than serial 7/);
    expect(admitPatch(b, { fs, keysDir: k, serialFile: join(d, 'fresh', 'serial.json') }).patch.name).toBe('fake_bound');
    // no list at all after one was accepted: refused too (a removed list lifts every revocation)
    rmSync(join(d, 'revoked.json'));
    rmSync(join(d, 'revoked.json.minisig'));
    expect(() => admit()).toThrow(/the revocation list .*revoked\.json is missing, but this host accepted one with serial 7/);
    // checking without recording (suture bundle verify) compares and leaves the remembered serial alone
    put(makeRevocations(sk, [], [], when, 9));
    expect(loadTrustStore(k, { file: serialFile, record: false }).revocations?.serial).toBe(9);
    expect(readRememberedSerial(serialFile)?.serial).toBe(7);
    admit();
    expect(readRememberedSerial(serialFile)?.serial).toBe(9);
    // equal serial: the same list again is fine
    admit();
    // a damaged memory is said, not taken as "no serial"
    writeFileSync(serialFile, '{"serial": "x"}');
    expect(() => admit()).toThrow(/revocation-serial\.json is damaged/);
  });

  it('nextSerial: above the merged list, at least the time in seconds; an explicit serial must be above the merged one', () => {
    const now = new Date('2026-12-01T00:00:00Z');
    const secs = now.getTime() / 1000;
    expect(nextSerial(undefined, now)).toBe(secs);
    expect(nextSerial(7, now)).toBe(secs);
    expect(nextSerial(secs + 10, now)).toBe(secs + 11);
    expect(nextSerial(7, now, 8)).toBe(8);
    expect(() => nextSerial(7, now, 7)).toThrow(/--serial 7 is not above the merged list's serial 7/);
  });

  it('boot checks each installed patch again: key no longer trusted, revoked, other build', () => {
    const fs = fk().fs;
    const sk = readSecretKey(builder.key);
    const entry = { name: 'fake_bound', sha256: 'a'.repeat(64), replace: false, effectiveVersion: undefined, cves: [], description: undefined, buildId: BOUND, file: 'fake_bound.ko', installedAt: '', source: '' };
    const admit = bootAdmission(fs, keys);
    expect(() => admit({ ...entry, signer: { keyId: sk.pub.id, bundleSha256: 'b'.repeat(64) } })).not.toThrow();
    expect(() => bootAdmission(fs, keys)({ ...entry, signer: { keyId: '0123456789ABCDEF', bundleSha256: 'b'.repeat(64) } })).toThrow(/installed patch fake_bound was signed by key 0123456789ABCDEF, which is no longer trusted/);
    expect(() => bootAdmission(new FakeKernel({ buildId: '22'.repeat(20) }).fs, keys)(entry)).toThrow(/installed patch fake_bound is for the kernel build with GNU build ID eb4f/);
    expect(() => bootAdmission(fs, join(dir, 'none'))({ ...entry, signer: { keyId: sk.pub.id, bundleSha256: 'b'.repeat(64) } })).toThrow(/no trusted keys/);
  });

  it('verifyBundle with the bundle keys checks the signed comment too', () => {
    const { bytes } = sign();
    const b = openBundle(bytes, 'x.suture');
    expect(verifyBundle(b, loadTrustStore(keys)).pub.id).toBe(readSecretKey(builder.key).pub.id);
  });
});
