#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The full test suite: typecheck, unit tests, then the tests that fetch the
# reference kernel (cold: a few minutes) and boot it under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run -s build
npm run -s typecheck
npx vitest run --project unit
npx vitest run --project vm
