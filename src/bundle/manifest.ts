// SPDX-License-Identifier: GPL-2.0-only
/**
 * The manifest of a bundle (manifest.json): what the module is, for which
 * kernel build, made by whom. Versioned (`format`, `version`); every field is
 * checked, unknown fields are refused (a later format bumps `version`), sizes
 * and counts are bounded, and each error names the field.
 *
 * Validation is written out here rather than with a schema library (zod 4
 * would do it): the manifest is small and fixed, this code runs as root on
 * hosts before anything is trusted, and the host package depends on Debian's
 * nodejs and nothing else, so the parser of untrusted input stays a page of
 * code with no dependency to vet or vendor.
 */
import { SutureError } from '../util/errors.js';

export const MANIFEST_FORMAT = 'suture-bundle';
export const MANIFEST_VERSION = 1;
export const MAX_MANIFEST_BYTES = 256 * 1024;
const MAX_OBJECTS = 256;
const MAX_FUNCTIONS = 4096;
const MAX_CVES = 1024;

export interface ManifestFunction {
  name: string;
  sympos: number;
}

export interface ManifestObject {
  /** "vmlinux" or a module name. */
  name: string;
  functions: ManifestFunction[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  patch: {
    name: string;
    description: string | null;
    cves: string[];
    effectiveVersion: string | null;
    /** A cumulative patch (klp_patch.replace). */
    replace: boolean;
    objects: ManifestObject[];
  };
  kernel: {
    /** `uname -r` of the kernel it is for. */
    release: string;
    /** The GNU build ID of that kernel build's vmlinux (lower-case hex): the binding that matters. */
    buildId: string;
  };
  module: {
    /** Its member name in the bundle: <patch name>.ko. */
    file: string;
    sha256: string;
    size: number;
  };
  source: {
    /** sha256 of the source patch it was built from, when there was one. */
    patchSha256: string | null;
  };
  builder: {
    /** suture's version on the builder. */
    suture: string;
  };
  /** When the bundle was signed (ISO 8601, UTC). */
  createdAt: string;
}

const MODULE_NAME = /^[A-Za-z0-9_-]{1,55}$/;
const SYMBOL = /^[A-Za-z0-9_.$]{1,511}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const BUILD_ID = /^[0-9a-f]{2,128}$/;
const RELEASE = /^[A-Za-z0-9._+~-]{1,64}$/;
const CVE = /^CVE-\d{4}-\d{4,}$/;
const VERSION = /^[A-Za-z0-9.+~:-]{1,64}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

type Obj = Record<string, unknown>;

class Checker {
  constructor(readonly file: string) {}

  fail(path: string, what: string): never {
    throw new SutureError('invalid-input', `${this.file}: manifest field ${path} ${what}`, {
      hint: 'the bundle was not made by this suture (or is damaged); make it again with suture bundle sign',
    });
  }

  obj(v: unknown, path: string, keys: readonly string[]): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'is not an object');
    const o = v as Obj;
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(`${path}.${k}`, `is not a field of format ${MANIFEST_FORMAT} version ${MANIFEST_VERSION}`);
    for (const k of keys) if (!(k in o)) this.fail(`${path}.${k}`, 'is missing');
    return o;
  }

  str(v: unknown, path: string, re: RegExp, what: string): string {
    if (typeof v !== 'string') this.fail(path, 'is not a string');
    if (!re.test(v)) this.fail(path, `is not ${what}: ${JSON.stringify(v.slice(0, 80))}`);
    return v;
  }

  text(v: unknown, path: string, max: number): string | null {
    if (v === null) return null;
    if (typeof v !== 'string') this.fail(path, 'is not a string or null');
    if (v.length > max || /[\0-\x08\x0b-\x1f\x7f]/.test(v)) this.fail(path, `is longer than ${max} characters or holds control characters`);
    return v;
  }

  arr(v: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(v)) this.fail(path, 'is not a list');
    if (v.length > max) this.fail(path, `has ${v.length} entries, more than ${max}`);
    return v;
  }

  int(v: unknown, path: string, max: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) this.fail(path, `is not a whole number from 0 to ${max}`);
    return v;
  }
}

/** Parse and check manifest.json. */
export function parseManifest(bytes: Buffer, file: string): Manifest {
  const c = new Checker(file);
  if (bytes.length > MAX_MANIFEST_BYTES) c.fail('(whole)', `is ${bytes.length} bytes, more than ${MAX_MANIFEST_BYTES}`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new SutureError('invalid-input', `${file}: manifest.json is not UTF-8 JSON`, { hint: 'make the bundle again with suture bundle sign' });
  }
  const top = c.obj(v, 'manifest', ['format', 'version', 'patch', 'kernel', 'module', 'source', 'builder', 'createdAt']);
  if (top.format !== MANIFEST_FORMAT) c.fail('format', `is ${JSON.stringify(top.format)}, not ${JSON.stringify(MANIFEST_FORMAT)}`);
  if (top.version !== MANIFEST_VERSION) {
    throw new SutureError('invalid-input', `${file}: bundle format version ${JSON.stringify(top.version)}; this suture reads version ${MANIFEST_VERSION}`, {
      hint: 'use the suture version that made the bundle, or make it again with this one',
    });
  }
  const p = c.obj(top.patch, 'patch', ['name', 'description', 'cves', 'effectiveVersion', 'replace', 'objects']);
  const name = c.str(p.name, 'patch.name', MODULE_NAME, 'a module name (letters, digits, _ and -, at most 55)');
  const cves = c.arr(p.cves, 'patch.cves', MAX_CVES).map((x, i) => c.str(x, `patch.cves[${i}]`, CVE, 'a CVE id'));
  const ev = p.effectiveVersion === null ? null : c.str(p.effectiveVersion, 'patch.effectiveVersion', VERSION, 'a version');
  if (typeof p.replace !== 'boolean') c.fail('patch.replace', 'is not true or false');
  let nfun = 0;
  const objects = c.arr(p.objects, 'patch.objects', MAX_OBJECTS).map((o, i) => {
    const oo = c.obj(o, `patch.objects[${i}]`, ['name', 'functions']);
    const functions = c.arr(oo.functions, `patch.objects[${i}].functions`, MAX_FUNCTIONS).map((f, j) => {
      const ff = c.obj(f, `patch.objects[${i}].functions[${j}]`, ['name', 'sympos']);
      return { name: c.str(ff.name, `patch.objects[${i}].functions[${j}].name`, SYMBOL, 'a symbol name'), sympos: c.int(ff.sympos, `patch.objects[${i}].functions[${j}].sympos`, 1_000_000) };
    });
    nfun += functions.length;
    if (nfun > MAX_FUNCTIONS) c.fail('patch.objects', `replace more than ${MAX_FUNCTIONS} functions in all`);
    return { name: c.str(oo.name, `patch.objects[${i}].name`, MODULE_NAME, 'vmlinux or a module name'), functions };
  });
  const k = c.obj(top.kernel, 'kernel', ['release', 'buildId']);
  const m = c.obj(top.module, 'module', ['file', 'sha256', 'size']);
  const file_ = c.str(m.file, 'module.file', /^[A-Za-z0-9_-]{1,55}\.ko$/, 'a module file name');
  if (file_ !== `${name}.ko`) c.fail('module.file', `is ${file_}, not ${name}.ko (the patch name)`);
  const s = c.obj(top.source, 'source', ['patchSha256']);
  const b = c.obj(top.builder, 'builder', ['suture']);
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    patch: { name, description: c.text(p.description, 'patch.description', 4096), cves, effectiveVersion: ev, replace: p.replace as boolean, objects },
    kernel: { release: c.str(k.release, 'kernel.release', RELEASE, 'a kernel release'), buildId: c.str(k.buildId, 'kernel.buildId', BUILD_ID, 'a GNU build ID (lower-case hex)') },
    module: { file: file_, sha256: c.str(m.sha256, 'module.sha256', HEX64, 'a sha256 (64 lower-case hex digits)'), size: c.int(m.size, 'module.size', 1 << 30) },
    source: { patchSha256: s.patchSha256 === null ? null : c.str(s.patchSha256, 'source.patchSha256', HEX64, 'a sha256 (64 lower-case hex digits)') },
    builder: { suture: c.str(b.suture, 'builder.suture', VERSION, 'a version') },
    createdAt: c.str(top.createdAt, 'createdAt', ISO, 'an ISO 8601 UTC time'),
  };
}

export function formatManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
}
