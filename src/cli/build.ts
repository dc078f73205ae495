// SPDX-License-Identifier: GPL-2.0-only
/** `suture build --source fix.c` */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { buildFromSource, type SourceBuildResult } from '../patchbuild/source.js';
import { parseKernelRef } from '../kernel/ref.js';
import { requireWorkspace, type KernelMetadata } from '../kernel/workspace.js';
import { checkModuleSigning, signModule, type ModuleSigner } from '../patchbuild/module-sign.js';
import { SutureError } from '../util/errors.js';
import { sutureHome } from '../util/paths.js';
import { STRIP_HELP, buildPatches, parseMaxUnits, parseStrip, show, type Delivered, type PatchBuildFlags } from './build-patch.js';
import { DEFAULT_MAX_UNITS } from '../patchbuild/units.js';
import { fmtBytes, out, printJson, reporterFor, table } from './output.js';
import { readSecretKey } from '../bundle/keys.js';
import { signModuleFile } from './bundle.js';

interface BuildOptions {
  kernel: string;
  source?: string;
  name?: string;
  output?: string;
  replace?: boolean;
  json?: boolean;
  sign?: string;
  moduleSignKey?: string;
  moduleSignCert?: string;
}

/**
 * What happens to the built module, in this order: the kernel module
 * signature (--module-sign-key/--module-sign-cert, the kernel's sign-file),
 * then the bundle (--sign), whose sha256 covers the signed module.
 */
function delivery(o: BuildOptions, signer: ModuleSigner | undefined): ((ko: string) => Promise<Delivered>) | undefined {
  if (!o.sign && !signer) return undefined;
  return async (ko) => {
    const json: Record<string, unknown> = {};
    const lines: string[] = [];
    if (signer) {
      const m = await signModule(signer, ko);
      json.moduleSignature = m;
      lines.push(`module signature: ${show(ko)} signed by ${m.signer} (${m.hash}, ${m.signatureBytes}-byte PKCS#7) with the kernel's sign-file`);
    }
    if (o.sign) {
      const s = signModuleFile(ko, o.sign, {});
      json.bundle = { path: s.path, sha256: s.sha256, size: s.size, keyId: s.keyId, moduleSha256: s.manifest.module.sha256, release: s.manifest.kernel.release, buildId: s.manifest.kernel.buildId };
      lines.push(`signed ${show(s.path)}: ${s.manifest.patch.name} for ${s.manifest.kernel.release} (build ${s.manifest.kernel.buildId}), key ${s.keyId}, sha256 ${s.sha256}`);
    }
    return { json, lines };
  };
}

/** Check every signing input before the build starts: a bad key fails now, not after the build. */
async function checkSigning(o: BuildOptions, meta: KernelMetadata, home: string): Promise<ModuleSigner | undefined> {
  if (o.sign) readSecretKey(o.sign);
  if (!!o.moduleSignKey !== !!o.moduleSignCert) {
    throw new SutureError('usage', `--module-sign-key and --module-sign-cert go together (given: ${o.moduleSignKey ? '--module-sign-key' : '--module-sign-cert'} only)`, {
      hint: 'give the PEM private key and its X.509 certificate (the one enrolled with mokutil --import)',
    });
  }
  return o.moduleSignKey ? checkModuleSigning(meta, home, { key: o.moduleSignKey, cert: o.moduleSignCert! }) : undefined;
}

function printResult(r: SourceBuildResult): void {
  out(`built ${show(r.module.path)}: livepatch ${r.module.name} for ${r.kernel} (${fmtBytes(r.module.bytes)})`);
  out('');
  out('replaces:');
  out(
    table([
      ['  object', 'function', 'sympos', 'new function', 'why this one'],
      ...r.replaced.map((f) => [`  ${f.object}`, f.name, String(f.sympos), f.newFunction, f.why]),
    ]),
  );
  out('');
  out('symbols:');
  out(
    table([
      ['  object', 'name', 'sympos', 'reached by', 'why this one'],
      ...r.symbols.map((s) => [
        `  ${s.object}`,
        s.name,
        s.binding === 'klp' ? String(s.sympos) : '-',
        s.binding === 'klp' ? `klp relocation (${s.relocations})` : `export, crc 0x${(s.crc ?? 0).toString(16).padStart(8, '0')}`,
        s.why,
      ]),
    ]),
  );
  if (r.klp.sections.length) {
    out('');
    out(`klp relocation sections: ${r.klp.sections.map((s) => `${s.name} (${s.entries})`).join(', ')}`);
  }
  out(`build directory: ${r.buildDir}`);
}

export function buildCommand(): Command {
  return new Command('build')
    .description('build a livepatch module for a kernel')
    .argument('[patches...]', 'unified diffs against the kernel source (git diff, diff -Nupr, git format-patch mail) or quilt folders with a series file, applied in order (diff mode)')
    .requiredOption('--kernel <kernel>', 'the target kernel, e.g. debian:6.1.0-56-amd64')
    .option('--source <fix.c>', 'plain kernel C with new functions and SUTURE_REPLACE lines (#include <suture.h>)')
    .option('--name <name>', 'module and livepatch name (default: livepatch_<file name>)')
    .option('-o, --output <file.ko>', 'where to write the module (default: ./<name>.ko)')
    .option('--replace', 'make it an atomic-replace (cumulative) livepatch: loading it replaces every livepatch loaded before')
    .option('--cve <id>', 'a CVE the patch fixes, recorded in modinfo; repeatable (diff mode)', (v: string, p: string[] = []) => [...p, v])
    .option('--description <text>', 'what the patch fixes, recorded in modinfo (diff mode)')
    .option('--effective-version <version>', 'the kernel version the patched kernel is equivalent to, e.g. 6.1.194-1; `suture uname` shows it (diff mode)')
    .option('--show-first-changed', 'show where each changed function first differs (diff mode)')
    .option('--skip-provenance', 'build even when the orig build does not reproduce the shipped bytes (diff mode)')
    .option('--keep', 'keep the build directory (diff mode)')
    .option('--max-units <n>', `most units to compile when a changed header reaches many (default ${DEFAULT_MAX_UNITS}; diff mode)`, parseMaxUnits)
    .option('-p, --strip <n>', `${STRIP_HELP} (diff mode)`, parseStrip)
    .option('--sign <file.key>', 'sign the module into NAME.suture beside it with this key (suture key generate): what hosts load')
    .option('--module-sign-key <key.pem>', 'sign the .ko itself for hosts that enforce module signatures (Secure Boot): the PEM private key whose certificate is enrolled in MOK; with --module-sign-cert')
    .option('--module-sign-cert <cert.der>', 'the X.509 certificate (DER or PEM) of --module-sign-key; the kernel\'s sign-file signs with the hash its config names')
    .option('--json', 'print one JSON object: the module, every function replaced and every symbol resolved')
    .action(async (patches: string[], o: BuildOptions & PatchBuildFlags) => {
      if (patches.length && o.source !== undefined) {
        throw new SutureError('usage', 'give either patches (diff mode) or --source fix.c, not both');
      }
      if (!patches.length && o.source === undefined) throw new SutureError('usage', 'nothing to build: give --source fix.c', { hint: 'see suture build --help' });
      const home = sutureHome();
      const meta = requireWorkspace(home, parseKernelRef(o.kernel));
      const deliver = delivery(o, await checkSigning(o, meta, home));
      if (patches.length) {
        await buildPatches(patches, o, false, deliver);
        return;
      }
      if (!existsSync(o.source!)) throw new SutureError('not-found', `${o.source} does not exist`);
      const r = await buildFromSource({ meta, home, source: o.source!, name: o.name, output: o.output, replace: o.replace, reporter: reporterFor(o) });
      const d = deliver ? await deliver(r.module.path) : undefined;
      if (o.json) printJson({ ...r, ...d?.json });
      else {
        printResult(r);
        for (const l of d?.lines ?? []) out(l);
      }
    });
}
