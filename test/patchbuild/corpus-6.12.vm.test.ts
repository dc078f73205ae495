// SPDX-License-Identifier: GPL-2.0-only
/** The 6.12 corpus (test/patches/debian-6.12.117+deb13/*) on Debian 13's kernel: see test/helpers/corpus.ts. */
import { corpusSuite } from '../helpers/corpus.js';
import { TRIXIE_KERNEL } from '../helpers/kernel.js';

corpusSuite(TRIXIE_KERNEL, 'debian-6.12.117+deb13', '6.12.999-1');
