// SPDX-License-Identifier: GPL-2.0-only
/** The 6.1 corpus (test/patches/debian-6.1.0-56/*) on Debian 12's kernel: see test/helpers/corpus.ts. */
import { corpusSuite } from '../helpers/corpus.js';
import { REFERENCE_KERNEL } from '../helpers/kernel.js';

corpusSuite(REFERENCE_KERNEL, 'debian-6.1.0-56', '6.1.999-1');
