#!/bin/bash
# Container health probe without curl or wget (the aspnet runtime images ship neither): speaks HTTP/1.0 over
# bash's /dev/tcp to 127.0.0.1 and succeeds only on a 200 status line.
# usage: healthcheck [port] [path]    (defaults: $HEALTHCHECK_PORT or 8080, /healthz)
port="${1:-${HEALTHCHECK_PORT:-8080}}"
path="${2:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/${port}" 2>/dev/null || exit 1
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3 || exit 1
exec 3<&- 3>&-
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) exit 1 ;;
esac
