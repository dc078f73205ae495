#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
// dist/bundle/ (scripts/bundle.mjs): the CLI in a few files, for start-up time
import { main } from '../dist/bundle/main.js';

process.exitCode = await main(process.argv);
