// SPDX-License-Identifier: GPL-2.0-only
/**
 * A kernel that enforces module signatures: the words insmod (kmod, busybox)
 * and the kernel print for each refusal become one typed error that says to
 * sign with --module-sign-key/--module-sign-cert and a key enrolled in MOK.
 * The strings are the kernel's (kernel/module/signing.c, security/lockdown)
 * and the tools' own; test/bundle/bundle.vm.test.ts sees them from the real
 * 6.1 kernel with module.sig_enforce on.
 */
import { describe, expect, it } from 'vitest';
import { signatureRefusal } from '../../src/livepatch/loader.js';

const KMOD = 'insmod: ERROR: could not insert module /run/suture/stage/lp.ko: Key was rejected by service';
const BUSYBOX = "insmod: can't insert '/run/suture/stage/lp.ko': Key was rejected by service";

describe('signatureRefusal', () => {
  it('an unsigned module under module.sig_enforce=1 (EKEYREJECTED)', () => {
    const e = signatureRefusal('lp.suture', KMOD, ['Loading of unsigned module is rejected', 'Loading of unsigned module is rejected'])!;
    expect(e.kind).toBe('kernel-refused');
    expect(e.message).toBe('the kernel refused lp.suture: this kernel enforces module signatures (module.sig_enforce=1 or Secure Boot lockdown) and the module is not signed; nothing was loaded');
    expect(e.hint).toMatch(/--module-sign-key KEY\.pem --module-sign-cert CERT\.der, with a key enrolled in MOK/);
    expect(e.details).toBe(`Loading of unsigned module is rejected\n${KMOD}`);
  });

  it('a module signed by a key the kernel does not hold', () => {
    const e = signatureRefusal('lp.suture', BUSYBOX, ['Loading of module with unavailable key is rejected'])!;
    expect(e.message).toContain("the module is signed, but by a key that is not in the kernel's keyrings (built-in, or enrolled with MOK)");
    expect(signatureRefusal('lp.ko', 'insmod: ERROR: could not insert module lp.ko: Required key not available', [])!.message).toContain('not in the kernel\'s keyrings');
  });

  it('a locked-down kernel (EPERM) is told by its log line', () => {
    const e = signatureRefusal('lp.ko', 'insmod: ERROR: could not insert module lp.ko: Operation not permitted', ['Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7'])!;
    expect(e.message).toContain('the module is not signed and the kernel is locked down (Secure Boot)');
  });

  it('other refusals are not about signatures', () => {
    expect(signatureRefusal('lp.ko', 'insmod: ERROR: could not insert module lp.ko: Invalid module format', ['lp: version magic \'6.1.0-55-amd64 SMP\' should be \'6.1.0-56-amd64 SMP\''])).toBeUndefined();
    expect(signatureRefusal('lp.ko', 'insmod: ERROR: could not insert module lp.ko: Operation not permitted', [])).toBeUndefined();
  });
});
