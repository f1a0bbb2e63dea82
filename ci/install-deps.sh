#!/usr/bin/env bash
# Installs what gwtest's tests need beyond Rust, each only when it is missing:
# - kubectl (the tests drive the real kubectl against the embedded API server), curl;
# - xmllint (tests/junit_schema.rs validates the JUnit reports against Jenkins' junit-10.xsd);
# - groff (tests/cli_conventions.rs renders the man page);
# - node + npm, and ajv/ajv-formats in .tools/node (tests/schema.rs compiles the JSON Schema
#   with ajv in strict mode);
# - tmux (tests/e2e_prompt.rs drives the pause prompt in a real terminal);
# - cargo-nextest (README's test command), with `cargo install --locked cargo-nextest`.
# Debian packages via apt-get; the rest from npm and crates.io.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
  echo "ci/install-deps.sh: installing ${need[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The versions tests/schema.rs is checked with.
tools=.tools/node
if [ ! -f "$tools/node_modules/ajv/package.json" ] || [ ! -f "$tools/node_modules/ajv-formats/package.json" ]; then
  echo "ci/install-deps.sh: installing ajv and ajv-formats into $tools"
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --no-package-lock --silent \
    ajv@8.17.1 ajv-formats@3.0.1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "ci/install-deps.sh: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
