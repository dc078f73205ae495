// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { parseKernelRef } from '../../src/kernel/ref.js';
import { SutureError } from '../../src/util/errors.js';

describe('parseKernelRef', () => {
  it('parseKernelRef() splits a Debian 6.1 release', () => {
    expect(parseKernelRef('debian:6.1.0-56-amd64')).toEqual({
      distro: 'debian', release: '6.1.0-56-amd64', abi: '6.1.0-56', flavour: 'amd64', series: '6.1', codename: 'bookworm',
    });
  });
  it('parseKernelRef() knows backports and cloud flavours', () => {
    expect(parseKernelRef('debian:6.12.48+deb12-cloud-amd64')).toMatchObject({ abi: '6.12.48+deb12', flavour: 'cloud-amd64', series: '6.12', codename: 'bookworm' });
  });
  it('parseKernelRef() knows trixie kernels, re-uploads included', () => {
    expect(parseKernelRef('debian:6.12.57+deb13-amd64')).toMatchObject({ abi: '6.12.57+deb13', series: '6.12', codename: 'trixie' });
    expect(parseKernelRef('debian:6.12.38+deb13+1-amd64')).toMatchObject({ abi: '6.12.38+deb13+1', codename: 'trixie' });
    expect(parseKernelRef('debian:6.12.115+deb13.1-rt-amd64')).toMatchObject({ abi: '6.12.115+deb13.1', flavour: 'rt-amd64', codename: 'trixie' });
  });
  it.each(['6.1.0-56-amd64', 'fedora:6.1.0-56-amd64', 'debian:5.15.0-91-generic', 'debian:6.12.57+deb14-amd64', 'debian:6.12.57-amd64', 'debian:6.1.0-56-arm64', 'debian:linux', 'debian:6.1.0-56-amd64;rm'])(
    'parseKernelRef() rejects %s as a usage error',
    (s) => {
      expect(() => parseKernelRef(s)).toThrow(SutureError);
      try {
        parseKernelRef(s);
      } catch (e) {
        expect((e as SutureError).kind).toBe('usage');
        expect((e as SutureError).hint).toBeTruthy();
      }
    },
  );
});
