#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
