// SPDX-License-Identifier: GPL-2.0-only
/**
 * Kernel module signatures for hosts that enforce them (Secure Boot lockdown,
 * module.sig_enforce=1): the built `.ko` is signed with the kernel tree's own
 * `scripts/sign-file`, with the hash the kernel's config names
 * (CONFIG_MODULE_SIG_HASH), and the key the user enrolled with MOK. This is
 * the last change to the module: klp relocations are written before it, and
 * the bundle (whose sha256 covers the module) is made after it.
 *
 * Everything is checked before the build starts (checkModuleSigning): the
 * kernel checks signatures at all, the key and the certificate can be read
 * and belong together, a sign-file that runs here exists. sign-file is the
 * prepared tree's (modules_prepare builds it), else the headers package's,
 * else compiled here from the tree's scripts/sign-file.c (needs libssl-dev).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { moduleSignatureTrailer, PKEY_ID_PKCS7 } from '../bundle/module-signature.js';
import { parseKconfig } from '../kernel/config.js';
import type { KernelMetadata } from '../kernel/workspace.js';
import { fsError, SutureError } from '../util/errors.js';
import { run, runChecked, which } from '../util/exec.js';

export interface ModuleSigningRequest {
  /** The private key, PEM (what sign-file reads); an encrypted one takes its passphrase from KBUILD_SIGN_PIN, as kbuild does. */
  key: string;
  /** The X.509 certificate of that key, DER or PEM (the one enrolled with mokutil --import). */
  cert: string;
}

/** Everything checked, ready to sign modules for one kernel. */
export interface ModuleSigner {
  signFile: string;
  /** CONFIG_MODULE_SIG_HASH of the kernel, e.g. sha256. */
  hash: string;
  key: string;
  cert: string;
  /** The certificate's subject (what modinfo shows as signer: its CN) and its SHA-256 fingerprint. */
  subject: string;
  fingerprint: string;
}

export interface ModuleSignature {
  file: string;
  hash: string;
  signer: string;
  certFingerprint: string;
  /** Bytes of the PKCS#7 signature appended. */
  signatureBytes: number;
  signFile: string;
}

const MAX_KEY_BYTES = 1024 * 1024;

/** Read a small key or certificate file. */
function readSmall(path: string, what: string, secret: boolean): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fsError(e, `reading ${what}`, path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_KEY_BYTES) throw new SutureError('invalid-input', `${what} ${path} is not a key file (not a regular file, or larger than ${MAX_KEY_BYTES} bytes)`);
    if (secret && (st.mode & 0o077) !== 0) {
      throw new SutureError('invalid-input', `${what} ${path} can be read by others (mode ${(st.mode & 0o777).toString(8)}): suture will not use it`, {
        hint: `chmod 600 ${path} (and consider the key exposed if others did read it)`,
      });
    }
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The kernel's signing configuration: it must check signatures at all; the hash it names. */
export function kernelSignatureHash(meta: KernelMetadata): string {
  const config = parseKconfig(readFileSync(meta.paths.config, 'utf8'));
  if (config.get('CONFIG_MODULE_SIG') !== true) {
    throw new SutureError('usage', `kernel ${meta.name} is built without CONFIG_MODULE_SIG: it never checks module signatures, so --module-sign-key has nothing to do`, {
      hint: 'leave out --module-sign-key and --module-sign-cert for this kernel',
    });
  }
  const hash = config.get('CONFIG_MODULE_SIG_HASH');
  if (typeof hash !== 'string' || !/^[a-z0-9-]{3,32}$/.test(hash)) {
    throw new SutureError('invalid-input', `${meta.paths.config} has no usable CONFIG_MODULE_SIG_HASH (${JSON.stringify(hash ?? null)})`, { hint: `fetch the kernel again: suture kernel fetch ${meta.name}` });
  }
  return hash;
}

function readPrivateKey(path: string): KeyObject {
  const pem = readSmall(path, 'the module signing key', true);
  if (!pem.toString('latin1').includes('-----BEGIN')) {
    throw new SutureError('invalid-input', `module signing key ${path} is not in PEM form: the kernel's sign-file reads a PEM private key`, {
      hint: `convert it: openssl pkey -in ${path} -out KEY.pem (keep it mode 0600)`,
    });
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase: process.env.KBUILD_SIGN_PIN });
  } catch (e) {
    const encrypted = /passphrase|decrypt|bad decrypt/i.test((e as Error).message);
    throw new SutureError('invalid-input', `module signing key ${path} cannot be read: ${(e as Error).message}`, {
      hint: encrypted ? 'give its passphrase in KBUILD_SIGN_PIN (as kbuild does)' : 'give the PEM private key that belongs to --module-sign-cert',
    });
  }
}

function readCertificate(path: string): X509Certificate {
  const bytes = readSmall(path, 'the module signing certificate', false);
  try {
    return new X509Certificate(bytes);
  } catch (e) {
    throw new SutureError('invalid-input', `module signing certificate ${path} is not an X.509 certificate (DER or PEM): ${(e as Error).message}`, {
      hint: 'give the certificate you enrolled with mokutil --import (DER), or its PEM form',
    });
  }
}

/** The common name of a subject (what modinfo shows as signer), else the whole subject on one line. */
function commonName(subject: string): string {
  const cn = subject.split('\n').find((l) => l.startsWith('CN='));
  return cn ? cn.slice(3) : subject.replace(/\n/g, ', ');
}

/** sign-file runs here when it prints its usage (exit 1) rather than failing to start (missing library: 127). */
async function runsHere(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  const r = await run([path], { timeoutMs: 20_000 });
  return /Usage:.*sign-file/s.test(r.stderr + r.stdout);
}

/** The prepared tree's sign-file, the headers package's, or one compiled here from the tree's source. */
export async function findSignFile(meta: KernelMetadata, home: string): Promise<string> {
  const candidates = [join(meta.paths.source, 'scripts', 'sign-file'), join(meta.paths.headers, 'scripts', 'sign-file')];
  for (const c of candidates) if (await runsHere(c)) return c;
  const src = join(meta.paths.source, 'scripts', 'sign-file.c');
  if (!existsSync(src)) {
    throw new SutureError('environment', `no sign-file that runs on this machine for ${meta.name} (looked at ${candidates.join(', ')}) and no ${src} to build one from`, {
      hint: `fetch the kernel again: suture kernel fetch ${meta.name}`,
    });
  }
  const out = join(home, 'tools', `sign-file-${meta.release}`);
  if (await runsHere(out)) return out;
  const cc = which('gcc') ?? which('cc');
  if (!cc) throw new SutureError('environment', 'building the kernel\'s sign-file needs a C compiler (gcc), which is not installed', { hint: 'apt-get install gcc libssl-dev (or run scripts/setup.sh)' });
  mkdirSync(join(home, 'tools'), { recursive: true });
  await runChecked([cc, '-O2', '-o', out, src, '-lcrypto'], { what: `building ${src}`, kind: 'environment' }).catch((e: SutureError) => {
    throw new SutureError('environment', `${e.message}`, { details: e.details, hint: 'sign-file needs OpenSSL\'s headers: apt-get install libssl-dev (or run scripts/setup.sh)' });
  });
  return out;
}

/**
 * Check everything module signing needs before the build starts: the kernel
 * checks signatures, the key and the certificate read and belong together,
 * and a sign-file runs here.
 */
export async function checkModuleSigning(meta: KernelMetadata, home: string, req: ModuleSigningRequest): Promise<ModuleSigner> {
  const hash = kernelSignatureHash(meta);
  const key = readPrivateKey(req.key);
  const cert = readCertificate(req.cert);
  if (!cert.checkPrivateKey(key)) {
    throw new SutureError('usage', `--module-sign-key ${req.key} is not the key of --module-sign-cert ${req.cert} (${commonName(cert.subject)}): the kernel would reject every module signed so`, {
      hint: 'give the private key and the certificate of one key pair (the certificate enrolled with mokutil --import)',
    });
  }
  const signFile = await findSignFile(meta, home);
  return { signFile, hash, key: req.key, cert: req.cert, subject: commonName(cert.subject), fingerprint: cert.fingerprint256 };
}

/** Sign a built module in place with the kernel's sign-file; the result is checked to carry one PKCS#7 signature. */
export async function signModule(s: ModuleSigner, ko: string): Promise<ModuleSignature> {
  const before = readFileSync(ko);
  if (moduleSignatureTrailer(before)) {
    throw new SutureError('invalid-input', `${ko} already carries a kernel module signature`, { hint: 'sign the module as built, once' });
  }
  await runChecked([s.signFile, s.hash, s.key, s.cert, ko], { what: `signing ${ko} with the kernel's sign-file`, kind: 'build' });
  const after = readFileSync(ko);
  const t = moduleSignatureTrailer(after);
  if (!t || 'damaged' in t || t.idType !== PKEY_ID_PKCS7 || t.moduleEnd !== before.length || !after.subarray(0, before.length).equals(before)) {
    throw new SutureError('internal', `${s.signFile} left ${ko} without a well-formed PKCS#7 module signature after its ${before.length} bytes`, {
      details: t && 'damaged' in t ? t.damaged : undefined,
    });
  }
  return { file: ko, hash: s.hash, signer: s.subject, certFingerprint: s.fingerprint, signatureBytes: t.sigLen, signFile: s.signFile };
}
