// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { commandsFor, program } from '../../src/cli/main.js';

const names = async (...args: string[]) => (await commandsFor(['node', 'suture', ...args])).map((c) => c.name()).sort();

describe('commandsFor: what a command line loads', () => {
  it('--version alone loads no command', async () => {
    expect(await names('--version')).toEqual([]);
    expect(await names('-V')).toEqual([]);
  });
  it('a host command loads the host commands only (no kernel, vm or build code)', async () => {
    const host = await names('load', 'x.ko');
    expect(host).toContain('load');
    expect(host).toContain('boot');
    expect(host).not.toContain('build');
    expect(host).not.toContain('vm');
    expect(host).not.toContain('kernel');
  });
  it('anything else loads every command', async () => {
    const all = await names('--help');
    expect(all).toEqual(expect.arrayContaining(['analyze', 'build', 'kernel', 'load', 'vm']));
  });
  it('the version comes from package.json', () => {
    expect(program([]).version()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
