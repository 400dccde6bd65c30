#!/usr/bin/env bash
# The Dagster UI behind a login: an nginx in front of the webserver that asks every request
# for a user name and password (HTTP basic authentication) and logs who sent it.
#
#   bash scripts/ui_proxy.sh start DIR LISTEN_PORT UPSTREAM_PORT  # install if needed, start in DIR
#   bash scripts/ui_proxy.sh stop DIR                             # stop the nginx started in DIR
#   bash scripts/ui_proxy.sh adduser DIR NAME                     # add a user, or change a password
#
# The Dagster webserver must listen on 127.0.0.1:UPSTREAM_PORT only
# (`dagster-webserver -h 127.0.0.1 -p UPSTREAM_PORT`, or `dagster dev -h 127.0.0.1 -p ...`);
# otherwise the login can simply be walked around.
#
# `start` is idempotent: it rewrites DIR/nginx.conf and starts nginx, or reloads the one
# already running from DIR. nginx listens on $KODOMO_UI_LISTEN (default 127.0.0.1) port
# LISTEN_PORT and creates the user $KODOMO_UI_USER (default steward) when missing.
# With $KODOMO_UI_TLS_CERT and $KODOMO_UI_TLS_KEY (PEM files) it speaks HTTPS instead of HTTP.
# Passwords: $KODOMO_UI_PASSWORD if set (start: also resets an existing user's), else a
# random one, printed once on stderr and kept in DIR/ui-password (NAME:PASSWORD, mode 0600)
# for handing over. DIR/htpasswd holds only hashes (SHA-512 crypt). nginx reads it on every
# request: `adduser` needs no restart.
#
# DIR also holds nginx.conf, nginx.pid, error.log, access.log (one JSON line per request:
# time, user, request line, status, and the body of GraphQL mutations such as launches) and
# tmp/. Nothing is written outside DIR. Progress and errors go to stderr; stdout stays empty.
#
# If nginx or openssl is missing, Debian's package is installed with apt-get (sudo when not
# root). As root the nginx workers run as www-data, which must be able to reach DIR: choose
# a directory under /tmp or /srv, not under /root or pytest's tmp_path.
set -euo pipefail
umask 077

LISTEN="${KODOMO_UI_LISTEN:-127.0.0.1}"
TLS_CERT="${KODOMO_UI_TLS_CERT:-}"
TLS_KEY="${KODOMO_UI_TLS_KEY:-}"
SCHEME=http
FIRST_USER="${KODOMO_UI_USER:-steward}"
WORKER_USER=www-data  # used only when we are root; Debian's base-passwd always has it

# shellcheck source=scripts/debian.sh
. "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

log() { printf 'ui_proxy.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

check_port() {
  [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] \
    || die "$1 must be a TCP port number, got '$2'"
}

# nginx takes the password file as "name:hash" lines: no colon, no space, nothing to quote.
check_name() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] \
    || die "user names are letters, digits, '.', '_' and '-' (at most 64), got '$1'"
}

nginx_bin() {
  if command -v nginx >/dev/null 2>&1; then
    command -v nginx
  elif [ -x /usr/sbin/nginx ]; then
    echo /usr/sbin/nginx  # /usr/sbin is not on an ordinary user's PATH
  fi
}

install_packages() {
  debian_install "$@" || die "apt-get could not install $*"
}

ensure_tools() {
  local missing=()
  [ -n "$(nginx_bin)" ] || missing+=(nginx)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"
  NGINX="$(nginx_bin)"
  [ -n "$NGINX" ] || die "nginx was installed but no nginx binary was found"
  command -v openssl >/dev/null 2>&1 || die "openssl was installed but is not on PATH"
}

# DIR made absolute; as root, group www-data may enter it (the workers read htpasswd).
prepare_dir() {
  (umask 022; mkdir -p "$1")  # parents open to the workers
  DIR="$(cd "$1" && pwd)"
  # DIR goes into nginx.conf unquoted
  [[ "$DIR" =~ ^[A-Za-z0-9._/+@-]+$ ]] || die "DIR may hold only letters, digits and . _ / + @ -, got '$DIR'"
  if is_root; then
    id "$WORKER_USER" >/dev/null 2>&1 || die "the system user $WORKER_USER is missing"
    chown "root:$WORKER_USER" "$DIR"
    chmod 0750 "$DIR"
  else
    chmod 0700 "$DIR"
  fi
}

random_password() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# Replace NAME's line in FILE (name:value lines) with NAME:VALUE, or drop it if VALUE is
# empty; written beside FILE and renamed, so nginx never reads half a file.
replace_line() {
  local file="$1" name="$2" value="$3" tmp
  tmp="$(mktemp "$file.XXXXXX")"
  [ ! -f "$file" ] || awk -F: -v name="$name" '$1 != name' "$file" > "$tmp"
  [ -z "$value" ] || printf '%s:%s\n' "$name" "$value" >> "$tmp"
  if [ -s "$tmp" ] || [ "$(basename "$file")" = htpasswd ]; then
    mv -f "$tmp" "$file"
  else
    rm -f "$tmp" "$file"  # no generated password left to hand over
  fi
}

# Set NAME's password: PASSWORD, or a generated one (printed once, kept in DIR/ui-password).
set_password() {
  local name="$1" password="$2" hash
  [[ "$password" != *$'\n'* ]] || die "a password cannot contain a line break"
  if [ -z "$password" ]; then
    password="$(random_password)"
    replace_line "$DIR/ui-password" "$name" "$password"
    log "generated password for $name: $password (also in $DIR/ui-password; hand it over, then delete that file)"
  elif [ -f "$DIR/ui-password" ]; then
    replace_line "$DIR/ui-password" "$name" ""  # a generated password there is stale now
  fi
  # On stdin, not in argv, where ps would show it. SHA-512 crypt: nginx hands "$6$" hashes
  # to glibc's crypt(3).
  hash="$(printf '%s\n' "$password" | openssl passwd -6 -stdin)"
  replace_line "$DIR/htpasswd" "$name" "$hash"
  if is_root; then
    chown "$WORKER_USER:" "$DIR/htpasswd"
  fi
  chmod 0600 "$DIR/htpasswd"
}

# nginx workers open htpasswd on every request: check that they can, rather than answer 500.
check_readable() {
  if is_root && ! runuser -u "$WORKER_USER" -- test -r "$DIR/htpasswd" 2>/dev/null; then
    die "user $WORKER_USER cannot read $DIR/htpasswd (a parent directory is closed to it): choose a directory under /tmp or /srv"
  fi
}

# The pid of the nginx master started from DIR, if it is running.
running_pid() {
  local pid
  [ -f "$DIR/nginx.pid" ] || return 1
  pid="$(tr -dc 0-9 < "$DIR/nginx.pid")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # a recycled pid belongs to some other process: the master's title names our config
  { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$DIR/nginx.conf" || return 1
  echo "$pid"
}

# Warn when the Dagster webserver on UPSTREAM_PORT can be reached without the proxy.
check_upstream() {
  local port="$1" addrs
  command -v ss >/dev/null 2>&1 || return 0
  addrs="$(ss -Hltn "sport = :$port" 2>/dev/null | awk '{print $4}' | sed 's/:[0-9]*$//' | sort -u)"
  if [ -z "$addrs" ]; then
    log "note: nothing listens on 127.0.0.1:$port yet; start the Dagster webserver with -h 127.0.0.1 -p $port"
  elif grep -qvxE '127\.0\.0\.1|\[::1\]' <<< "$addrs"; then
    log "WARNING: the Dagster webserver on port $port listens on $(tr '\n' ' ' <<< "$addrs")-"
    log "  anyone who reaches it there skips the login: restart it with -h 127.0.0.1"
  fi
}

write_config() {
  local listen_port="$1" upstream_port="$2" listen_addr="$LISTEN" user_line="" ssl="" cert_line=""
  local key_line="" file
  [[ "$listen_addr" =~ ^[0-9A-Za-z.:*-]+$ ]] || die "KODOMO_UI_LISTEN must be an address, got '$listen_addr'"
  [[ "$listen_addr" != *:* ]] || listen_addr="[$listen_addr]"  # IPv6
  if is_root; then
    user_line="user $WORKER_USER;"
  fi
  # Basic authentication sends the password with every request: over a network, use HTTPS
  # (here, or at the city's reverse proxy in front of a 127.0.0.1 listener).
  if [ -n "$TLS_CERT$TLS_KEY" ]; then
    for file in "$TLS_CERT" "$TLS_KEY"; do
      [[ "$file" =~ ^/[A-Za-z0-9._/+@-]+$ ]] && [ -r "$file" ] \
        || die "KODOMO_UI_TLS_CERT and KODOMO_UI_TLS_KEY must both be readable absolute paths, got '$file'"
    done
    SCHEME=https
    ssl=" ssl"
    cert_line="ssl_certificate $TLS_CERT; ssl_protocols TLSv1.2 TLSv1.3;"
    key_line="ssl_certificate_key $TLS_KEY;"  # read by the master (root), before workers start
  fi
  mkdir -p "$DIR/tmp"
  if is_root; then
    chown "$WORKER_USER:" "$DIR/tmp"  # workers buffer request and response bodies there
  fi
  # A quoted heredoc for nginx's own $variables; ours are substituted by sed afterwards.
  sed -e "s|@DIR@|$DIR|g" -e "s|@LISTEN@|$listen_addr:$listen_port|g" \
      -e "s|@UPSTREAM@|127.0.0.1:$upstream_port|g" -e "s|@USER_LINE@|$user_line|" \
      -e "s|@SSL@|$ssl|" -e "s|@CERT_LINE@|$cert_line|" -e "s|@KEY_LINE@|$key_line|" \
      > "$DIR/nginx.conf" <<'EOF'
# Written by scripts/ui_proxy.sh: edits are lost on the next start.
# The Dagster UI behind a login. Run as: nginx -p @DIR@/ -c @DIR@/nginx.conf
daemon on;
@USER_LINE@
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;  # failed logins show here as "password mismatch"
# An open UI keeps a websocket: do not wait for it forever on stop or reload.
worker_shutdown_timeout 10s;

events {
  worker_connections 512;
}

http {
  server_tokens off;
  client_body_temp_path @DIR@/tmp/client_body;
  proxy_temp_path @DIR@/tmp/proxy;
  fastcgi_temp_path @DIR@/tmp/fastcgi;
  uwsgi_temp_path @DIR@/tmp/uwsgi;
  scgi_temp_path @DIR@/tmp/scgi;

  # Request bodies stay in memory (none is larger), so $request_body can be logged.
  client_max_body_size 1m;
  client_body_buffer_size 1m;

  # The UI names each GraphQL operation in the URL (/graphql?op=LaunchPipelineExecution),
  # which the request line records. For mutations (launching, re-executing, terminating
  # runs, wiping assets, ...) the body is logged as well: it names the job, the assets,
  # the partition and the run config, i.e. what was launched.
  map $request_body $graphql_mutation {
    '~"query"\s*:\s*"[^"]{0,64}mutation' $request_body;
    default '';
  }
  log_format kodomo escape=json
    '{"time":"$time_iso8601","user":"$remote_user","client":"$remote_addr",'
    '"request":"$request","status":$status,"bytes":$body_bytes_sent,'
    '"seconds":$request_time,"op":"$arg_op","mutation":"$graphql_mutation"}';
  access_log @DIR@/access.log kodomo;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }

  server {
    listen @LISTEN@@SSL@;
    @CERT_LINE@
    @KEY_LINE@
    # Set here for every location, so none can be reached without a login.
    auth_basic "kodomo_assets";
    auth_basic_user_file @DIR@/htpasswd;

    location / {
      proxy_pass http://@UPSTREAM@;
      # The UI's live updates are GraphQL subscriptions over a websocket at /graphql.
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      # Subscriptions can stay quiet for a long time; nginx would cut them after 60 s.
      proxy_read_timeout 1h;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      # The login, set by nginx (a client's own header is replaced); the password is not
      # passed on: the webserver has no use for it.
      proxy_set_header X-Forwarded-User $remote_user;
      proxy_set_header Authorization "";
    }
  }
}
EOF
  chmod 0600 "$DIR/nginx.conf"
}

# nginx's own flags: -e keeps even the earliest errors out of /var/log/nginx.
nginx_() { "$NGINX" -p "$DIR/" -c "$DIR/nginx.conf" -e "$DIR/error.log" "$@"; }

start() {
  local listen_port="$2" upstream_port="$3" pid
  check_port LISTEN_PORT "$listen_port"
  check_port UPSTREAM_PORT "$upstream_port"
  check_name "$FIRST_USER"
  ensure_tools
  prepare_dir "$1"
  cd /  # the workers may not be able to read the caller's working directory

  write_config "$listen_port" "$upstream_port"
  if [ -n "${KODOMO_UI_PASSWORD:-}" ]; then
    set_password "$FIRST_USER" "$KODOMO_UI_PASSWORD"
  elif [ -f "$DIR/htpasswd" ] && awk -F: -v name="$FIRST_USER" '$1 == name {found = 1}
                                        END {exit !found}' "$DIR/htpasswd"; then
    log "user $FIRST_USER exists in $DIR/htpasswd: password kept"
  else
    set_password "$FIRST_USER" ""
  fi
  check_readable
  nginx_ -t -q || die "nginx rejected $DIR/nginx.conf (see above)"

  if pid="$(running_pid)"; then
    log "already running in $DIR (pid $pid): reloading the configuration"
    nginx_ -s reload || die "nginx could not reload"
  else
    log "starting nginx on $SCHEME://$LISTEN:$listen_port -> 127.0.0.1:$upstream_port (log: $DIR/access.log)"
    if ! nginx_; then
      tail -n 20 "$DIR/error.log" >&2 || true
      die "nginx did not start (is port $listen_port free?)"
    fi
  fi
  check_upstream "$upstream_port"
  log "ready: $SCHEME://$LISTEN:$listen_port/ asks for a login (users: $DIR/htpasswd)"
}

stop() {
  local pid i
  [ -d "$1" ] || { log "no directory $1: nothing to stop"; return 0; }
  DIR="$(cd "$1" && pwd)"
  if ! pid="$(running_pid)"; then
    log "nginx in $DIR is not running"
    return 0
  fi
  log "stopping nginx in $DIR (pid $pid)"
  kill -QUIT "$pid"  # graceful: finish the requests in flight (websockets: worker_shutdown_timeout)
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    [ "$i" -ne 40 ] || kill -TERM "$pid" 2>/dev/null || true
    sleep 0.25
  done
  kill -KILL "$pid" 2>/dev/null || true
  log "nginx did not stop in 15 s: killed"
}

adduser() {
  local name="$2"
  check_name "$name"
  ensure_tools
  prepare_dir "$1"
  cd /
  set_password "$name" "${KODOMO_UI_PASSWORD:-}"
  check_readable
  log "user $name set in $DIR/htpasswd (in effect at once, no restart needed)"
}

case "${1:-}" in
  start) [ $# -eq 4 ] || usage; start "$2" "$3" "$4" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  adduser) [ $# -eq 3 ] || usage; adduser "$2" "$3" ;;
  *) usage ;;
esac
