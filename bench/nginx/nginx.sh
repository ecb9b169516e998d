#!/usr/bin/env bash
# Runs nginx in the foreground as a plain reverse proxy from 127.0.0.1:PORT to UPSTREAM (host:port), the way it is
# commonly put in front of LLM servers: HTTP/1.1 keep-alive upstream, no buffering either way (SSE passes through as
# it arrives), access log off. Installs Debian's nginx when it is missing (as root with apt-get). Config, pid and
# temp files go to DIR. Used by scripts/bench-live.sh (--mode nginx) and bench/PlainYarp/run-overhead.sh.
# usage: bench/nginx/nginx.sh PORT UPSTREAM DIR      (stop it with SIGTERM to this process)
set -euo pipefail
port=$1 upstream=$2 dir=$3
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing nginx (Debian package)" >&2
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 || true
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "nginx is not installed and could not be installed" >&2; exit 1; }
mkdir -p "$dir/tmp"
cat > "$dir/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  client_max_body_size 64m;
  upstream worker { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://worker;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
NGINX
exec "$nginx_bin" -p "$dir" -c "$dir/nginx.conf"
