#!/usr/bin/env bash
# Synthesizes the kefu stack with the pinned CDK CLI (package.json), installing it first if needed.
#   infra/synth.sh                 # dev stack into cdk.out/
#   infra/synth.sh -c env=prod     # any cdk synth flags pass through
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/cdk ]; then
  npm ci --no-audit --no-fund
fi
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="${JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION:-20}"
exec node_modules/.bin/cdk synth --quiet "$@"
