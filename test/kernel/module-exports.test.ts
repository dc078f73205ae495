// SPDX-License-Identifier: GPL-2.0-only
/** dependencyExport: which module exports a name, whether the patched module depends on it, and the CRC it was linked with. */
import { describe, expect, it } from 'vitest';
import { Exports, dependencyExport } from '../../src/kernel/symbols/mod.js';

// Lines as Debian 6.1's Module.symvers writes them.
const symvers = Exports.parse(
  ['0x9a1254ed\tcache_check\tnet/sunrpc/sunrpc\tEXPORT_SYMBOL_GPL\t', '0x12345678\tnf_ct_get_tuplepr\tnet/netfilter/nf_conntrack\tEXPORT_SYMBOL_GPL\t', '0x0badf00d\tprintk\tvmlinux\tEXPORT_SYMBOL\t'].join('\n'),
);
const nfsdDeps = ['auth_rpcgss', 'nfs_acl', 'lockd', 'grace', 'sunrpc'];

describe('dependencyExport', () => {
  it('finds an export of a module the patched module depends on, with the CRC it was linked against', () => {
    const x = dependencyExport({ module: 'nfsd', name: 'cache_check', usedBy: 'fs/nfsd/export.c' }, nfsdDeps, symvers, new Map([['cache_check', 0x9a1254ed]]));
    expect(x).toMatchObject({ exporter: 'sunrpc', crc: '0x9a1254ed, as nfsd.ko was linked against it' });
  });

  it('leaves vmlinux exports and unknown names to the resolver', () => {
    expect(dependencyExport({ module: 'nfsd', name: 'printk', usedBy: 'x' }, nfsdDeps, symvers, new Map())).toBeUndefined();
    expect(dependencyExport({ module: 'nfsd', name: 'no_such', usedBy: 'x' }, nfsdDeps, symvers, new Map())).toBeUndefined();
  });

  it('refuses an exporter the module does not depend on, naming its dependencies', () => {
    expect(() => dependencyExport({ module: 'nfsd', name: 'nf_ct_get_tuplepr', usedBy: 'fs/nfsd/export.c' }, nfsdDeps, symvers, new Map())).toThrow(
      'fs/nfsd/export.c: nf_ct_get_tuplepr is exported by module nf_conntrack, which nfsd does not depend on (modules.dep)',
    );
  });

  it('refuses a CRC that differs from the one the shipped module was linked with', () => {
    expect(() => dependencyExport({ module: 'nfsd', name: 'cache_check', usedBy: 'x' }, nfsdDeps, symvers, new Map([['cache_check', 1]]))).toThrow(/linked against cache_check with CRC 0x1, but Module.symvers gives 0x9a1254ed/);
  });
});
