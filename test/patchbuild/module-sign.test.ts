// SPDX-License-Identifier: GPL-2.0-only
/**
 * Module signing inputs are checked before any build (a kernel that checks
 * signatures, a PEM key of mode 0600, the certificate of that key), with keys
 * and certificates made by the real openssl; the appended-signature trailer is
 * read as the kernel lays it out. The signing itself, with the kernel's
 * sign-file and modinfo as the oracle, is in test/bundle/bundle.vm.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { moduleSignatureTrailer, MODULE_SIG_MAGIC } from '../../src/bundle/module-signature.js';
import type { KernelMetadata } from '../../src/kernel/workspace.js';
import { checkModuleSigning, kernelSignatureHash } from '../../src/patchbuild/module-sign.js';

let dir: string;

/** A key pair made by openssl: NAME.pem (0600) and NAME.der. */
function keyPair(name: string, cn: string): { key: string; cert: string } {
  const key = join(dir, `${name}.pem`);
  const cert = join(dir, `${name}.der`);
  const r = spawnSync('openssl', ['req', '-new', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-outform', 'DER', '-out', cert, '-subj', `/CN=${cn}/`, '-days', '3650'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req (install the Debian package openssl): ${r.stderr}`);
  chmodSync(key, 0o600);
  return { key, cert };
}

/** Only what module signing reads of a workspace: its name, its config, where sign-file would be. */
function metaWith(config: string): KernelMetadata {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, config);
  return { name: 'debian:6.1.0-56-amd64', release: '6.1.0-56-amd64', paths: { config: file, source: join(dir, 'no-tree'), headers: join(dir, 'no-headers') } } as unknown as KernelMetadata;
}

const SIGNING = 'CONFIG_MODULE_SIG_FORMAT=y\nCONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_FORCE is not set\nCONFIG_MODULE_SIG_ALL=y\nCONFIG_MODULE_SIG_SHA256=y\nCONFIG_MODULE_SIG_HASH="sha256"\n';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'suture-module-sign-'));
});

describe('module signing inputs', () => {
  it('the hash is the kernel config\'s; a kernel without CONFIG_MODULE_SIG is refused', () => {
    expect(kernelSignatureHash(metaWith(SIGNING))).toBe('sha256');
    expect(kernelSignatureHash(metaWith(SIGNING.replace(/sha256/g, 'sha512').replace('SHA256', 'SHA512')))).toBe('sha512');
    expect(() => kernelSignatureHash(metaWith('# CONFIG_MODULE_SIG is not set\n'))).toThrow(/kernel debian:6\.1\.0-56-amd64 is built without CONFIG_MODULE_SIG: it never checks module signatures/);
  });

  it('a key others can read, a key not in PEM, a certificate of another key, a file that is no certificate: refused before any build', async () => {
    const a = keyPair('a', 'key a');
    const b = keyPair('b', 'key b');
    const meta = metaWith(SIGNING);
    await expect(checkModuleSigning(meta, dir, { key: a.key, cert: b.cert })).rejects.toThrow(/--module-sign-key .*a\.pem is not the key of --module-sign-cert .*b\.der \(key b\): the kernel would reject every module signed so/);
    chmodSync(a.key, 0o644);
    await expect(checkModuleSigning(meta, dir, { key: a.key, cert: a.cert })).rejects.toThrow(/the module signing key .*a\.pem can be read by others \(mode 644\)/);
    chmodSync(a.key, 0o600);
    const der = join(dir, 'a-key.der');
    spawnSync('openssl', ['pkey', '-in', a.key, '-outform', 'DER', '-out', der]);
    chmodSync(der, 0o600);
    await expect(checkModuleSigning(meta, dir, { key: der, cert: a.cert })).rejects.toThrow(/is not in PEM form: the kernel's sign-file reads a PEM private key/);
    await expect(checkModuleSigning(meta, dir, { key: a.key, cert: a.key })).rejects.toThrow(/module signing certificate .*a\.pem is not an X\.509 certificate/);
    await expect(checkModuleSigning(meta, dir, { key: join(dir, 'none.pem'), cert: a.cert })).rejects.toThrow(/none\.pem does not exist/);
    // all inputs good, but this workspace has no sign-file and no source to build one: said, naming where it looked
    await expect(checkModuleSigning(meta, dir, { key: a.key, cert: a.cert })).rejects.toThrow(/no sign-file that runs on this machine for debian:6\.1\.0-56-amd64 \(looked at .*no-tree\/scripts\/sign-file, .*no-headers\/scripts\/sign-file\)/);
  });
});

describe('the appended signature trailer', () => {
  it('reads the kernel layout: PKCS#7 id type, signature length, where the module ends', () => {
    const module = Buffer.from('\x7fELF module bytes');
    const sig = Buffer.alloc(300, 0xab);
    const trailer = Buffer.alloc(12);
    trailer[2] = 2;
    trailer.writeUInt32BE(sig.length, 8);
    const signed = Buffer.concat([module, sig, trailer, Buffer.from(MODULE_SIG_MAGIC)]);
    expect(moduleSignatureTrailer(signed)).toEqual({ idType: 2, sigLen: 300, moduleEnd: module.length });
    expect(moduleSignatureTrailer(module)).toBeUndefined();
    trailer.writeUInt32BE(10_000, 8);
    expect(moduleSignatureTrailer(Buffer.concat([module, sig, trailer, Buffer.from(MODULE_SIG_MAGIC)]))).toEqual({ damaged: 'the signature length 10000 does not fit the file' });
  });
});
