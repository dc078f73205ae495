// SPDX-License-Identifier: GPL-2.0-only
/** Run the suture CLI from source (the tests' server processes): node --import tsx test/fleet/serve.ts ARGS… */
import { main } from '../../src/cli/main.js';

process.exitCode = await main(['node', 'suture', ...process.argv.slice(2)]);
