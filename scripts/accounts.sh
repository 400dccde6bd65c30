#!/usr/bin/env bash
# OS accounts and the inbox for a server that runs the pipeline (as root, on Debian).
#
#   bash scripts/accounts.sh setup [DEPT...]          # service user, groups, $KODOMO_HOME, $KODOMO_INBOX
#   bash scripts/accounts.sh month INBOX YYYY-MM      # one month's drop folder
#   bash scripts/accounts.sh clerk NAME DEPT          # a department clerk's account
#
# Every command is idempotent: it creates what is missing and puts owners, groups and modes
# back where they belong, never deleting anything. See docs/accounts.md.
#
# Design (threat model: "Department clerk", "Pipeline service account", "City-hall staff
# with a shell"; property 1: a department cannot read another department's drop):
#
#   - The pipeline service account is a system user (KODOMO_SERVICE_USER, default `kodomo`,
#     home KODOMO_SERVICE_HOME, default /var/lib/<user>, mode 0700, nologin shell). It owns
#     $KODOMO_HOME (mode 0700) and the inbox root. Its key files live under its home
#     (~/.config/kodomo_assets/, 0600), never under $KODOMO_HOME.
#   - One group per department, `kodomo-<code>`, codes from data/registry/datasets.yaml
#     (`departments:`), or given as arguments to `setup`. A clerk's PRIMARY group is its
#     department's group, so the files it creates belong to that group. The service user is
#     a member of every department group: that is how it reads their files.
#   - Group `kodomo-drop`: every clerk, and nobody else. It only lets clerks into the inbox.
#   - Inbox root:   <service user>:kodomo-drop 0710  clerks traverse it but cannot list it;
#                                                    anyone else cannot even traverse it.
#   - Month folder: <service user>:kodomo-drop 1730  clerks create files (write+exec) but
#                                                    cannot list (no read); the sticky bit
#                                                    stops anyone but the file's owner and
#                                                    the folder's owner (the pipeline) from
#                                                    deleting or renaming a file; others:
#                                                    nothing.
#   - Clerks write with umask 027, so a drop is clerk:kodomo-<dept> 0640: readable by the
#     pipeline (group), by nobody in another department (other). The umask is the clerk's
#     side of the contract: a file written with umask 022 (0644) is readable BY NAME by every
#     other clerk, since kodomo-drop members traverse the month folder (staff still cannot:
#     they cannot traverse the inbox root). The pipeline reports such world-readable drops
#     (mode & 0o007) instead of ingesting them silently; the account's GECOS field carries
#     `umask=027` for pam_umask where it is enabled, and an SFTP drop should force it
#     (`ForceCommand internal-sftp -u 0027`).
#   - What modes cannot stop: any clerk may create any file name (a clerk of 学務課 may write
#     jumin.csv first, and the real one then cannot replace it) or leave a symlink. The
#     pipeline reads only regular files (lstat, O_NOFOLLOW) whose group is the group of the
#     dataset's department in the registry.
#   - Month folders are made by root (this script, e.g. from cron): the service user is not a
#     member of kodomo-drop, so it could not give a folder it made that group.
#
# Environment: KODOMO_SERVICE_USER (kodomo), KODOMO_SERVICE_HOME (/var/lib/<user>),
# KODOMO_HOME and KODOMO_INBOX (made by `setup` when set), KODOMO_DATA (the repository's
# data/, for the registry), KODOMO_PYTHON (a Python with PyYAML: .venv/bin/python, else
# python3), KODOMO_GROUP_PREFIX (`kodomo-`; tests use a unique one).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SERVICE_USER="${KODOMO_SERVICE_USER:-kodomo}"
SERVICE_HOME="${KODOMO_SERVICE_HOME:-/var/lib/$SERVICE_USER}"
PREFIX="${KODOMO_GROUP_PREFIX:-kodomo-}"
DROP_GROUP="${PREFIX}drop"
REGISTRY="${KODOMO_DATA:-$REPO/data}/registry/datasets.yaml"

log() { printf 'accounts.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root: this creates users and groups and changes owners"
  local tool
  for tool in useradd groupadd usermod getent; do
    command -v "$tool" >/dev/null 2>&1 \
      || die "$tool is missing: install Debian's passwd package (apt-get install passwd)"
  done
}

nologin_shell() {
  local shell
  for shell in /usr/sbin/nologin /sbin/nologin /bin/false; do
    [ -x "$shell" ] && { echo "$shell"; return 0; }
  done
  die "no nologin shell found (/usr/sbin/nologin)"
}

valid_name() { [[ "$1" =~ ^[a-z_][a-z0-9_-]*$ ]] && [ "${#1}" -le 32 ]; }

registry_departments() {
  local py="${KODOMO_PYTHON:-}"
  if [ -z "$py" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then py="$REPO/.venv/bin/python"; else py=python3; fi
  fi
  [ -f "$REGISTRY" ] || die "no registry at $REGISTRY: set KODOMO_DATA or give the department codes"
  "$py" -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1], encoding="utf-8"))["departments"]))' \
    "$REGISTRY" \
    || die "could not read the department codes from $REGISTRY with $py (needs PyYAML): set KODOMO_PYTHON or give the codes as arguments"
}

group_exists() { getent group "$1" >/dev/null 2>&1; }
user_exists() { getent passwd "$1" >/dev/null 2>&1; }
in_group() { id -nG "$1" | tr ' ' '\n' | grep -qxF "$2"; }

ensure_group() {
  group_exists "$1" && return 0
  log "creating the group $1"
  groupadd --system "$1" || die "could not create the group $1"
}

ensure_member() {  # USER GROUP (supplementary)
  in_group "$1" "$2" && return 0
  log "adding $1 to the group $2"
  usermod -aG "$2" "$1" || die "could not add $1 to $2"
}

# mkdir -p DIR, refusing a symlink or a non-directory, then OWNER:GROUP and MODE on DIR only.
ensure_dir() {
  local dir="$1" owner="$2" mode="$3"
  [ -L "$dir" ] && die "$dir is a symlink: refusing to set owners or modes through it"
  [ -e "$dir" ] && [ ! -d "$dir" ] && die "$dir exists and is not a directory"
  mkdir -p "$dir"
  chown "$owner" "$dir"
  chmod "$mode" "$dir"  # after chown, which may clear mode bits
}

# Clerks are in no group of the inbox's parents: each must let others traverse (o+x).
warn_closed_parents() {
  local dir mode
  dir="$(dirname "$1")"
  while :; do
    mode="$(stat -c %a "$dir")"
    (( 8#$mode & 1 )) || log "warning: $dir (mode $mode) is closed to others: clerks cannot reach the inbox below it"
    [ "$dir" = / ] && break
    dir="$(dirname "$dir")"
  done
}

ensure_service_user() {
  if ! user_exists "$SERVICE_USER"; then
    log "creating the system user $SERVICE_USER (home $SERVICE_HOME)"
    useradd --system --user-group --home-dir "$SERVICE_HOME" --no-create-home \
      --shell "$(nologin_shell)" --comment "kodomo_assets pipeline service account" "$SERVICE_USER" \
      || die "could not create the system user $SERVICE_USER"
  fi
  local home
  home="$(getent passwd "$SERVICE_USER" | cut -d: -f6)"
  [ "$home" = "$SERVICE_HOME" ] || log "$SERVICE_USER already exists with home $home: keeping it"
  ensure_dir "$home" "$SERVICE_USER:" 0700
}

# The absolute path of $1, which may not exist yet.
abspath() { realpath -m -- "$1"; }

ensure_inbox_root() {
  local inbox="$1"
  ensure_dir "$inbox" "$SERVICE_USER:$DROP_GROUP" 0710
  warn_closed_parents "$(abspath "$inbox")"
}

setup() {
  need_root
  local depts=("$@") dept
  if [ ${#depts[@]} -eq 0 ]; then
    mapfile -t depts < <(registry_departments)
    [ ${#depts[@]} -gt 0 ] || die "no departments in $REGISTRY"
  fi
  for dept in "${depts[@]}"; do
    [[ "$dept" =~ ^[a-z][a-z0-9_]*$ ]] || die "department code '$dept' must be lower-case letters, digits, _"
    [ "$dept" != drop ] || die "department code 'drop' would clash with the group $DROP_GROUP"
    valid_name "$PREFIX$dept" || die "group name $PREFIX$dept is not a valid group name"
  done
  valid_name "$SERVICE_USER" || die "KODOMO_SERVICE_USER '$SERVICE_USER' is not a valid user name"

  local home="" inbox="" svc_home
  svc_home="$(abspath "$SERVICE_HOME")"
  [ -n "${KODOMO_HOME:-}" ] && home="$(abspath "$KODOMO_HOME")"
  [ -n "${KODOMO_INBOX:-}" ] && inbox="$(abspath "$KODOMO_INBOX")"
  if [ -n "$home" ]; then
    [[ "$svc_home/" == "$home/"* ]] \
      && die "KODOMO_SERVICE_HOME ($svc_home) lies under KODOMO_HOME ($home): the keys in it must stay outside the data"
    [ -n "$inbox" ] && [[ "$inbox/" == "$home/"* ]] \
      && die "KODOMO_INBOX ($inbox) lies under KODOMO_HOME ($home), which no clerk may enter"
  fi

  ensure_group "$DROP_GROUP"
  for dept in "${depts[@]}"; do ensure_group "$PREFIX$dept"; done
  ensure_service_user
  for dept in "${depts[@]}"; do ensure_member "$SERVICE_USER" "$PREFIX$dept"; done

  if [ -n "$home" ]; then
    ensure_dir "$home" "$SERVICE_USER:" 0700
  else
    log "KODOMO_HOME is not set: no data folder made"
  fi
  if [ -n "$inbox" ]; then
    ensure_inbox_root "$inbox"
  else
    log "KODOMO_INBOX is not set: no inbox made"
  fi
  log "ready: service user $SERVICE_USER in ${#depts[@]} department groups ($PREFIX<code>), drop group $DROP_GROUP"
  log "a running daemon or code server picks up new groups only when restarted"
}

need_setup() {
  user_exists "$SERVICE_USER" || die "no user $SERVICE_USER: run 'accounts.sh setup' first"
  group_exists "$DROP_GROUP" || die "no group $DROP_GROUP: run 'accounts.sh setup' first"
}

month() {
  local inbox="$1" ym="$2"
  need_root
  [[ "$ym" =~ ^[0-9]{4}-(0[1-9]|1[0-2])$ ]] || die "the month must be YYYY-MM, got '$ym'"
  need_setup
  inbox="$(abspath "$inbox")"
  ensure_inbox_root "$inbox"
  ensure_dir "$inbox/$ym" "$SERVICE_USER:$DROP_GROUP" 1730
  log "ready: $inbox/$ym ($SERVICE_USER:$DROP_GROUP 1730)"
}

clerk() {
  local name="$1" dept="$2" group="$PREFIX$2"
  need_root
  valid_name "$name" || die "'$name' is not a valid user name"
  if [ "$name" = root ] || [ "$name" = "$SERVICE_USER" ]; then
    die "$name cannot be a clerk: a clerk account is used for nothing else"
  fi
  need_setup
  group_exists "$group" \
    || die "no group $group: '$dept' is not a department set up by 'accounts.sh setup' (codes come from the registry)"

  if ! user_exists "$name"; then
    log "creating the clerk $name ($group, $DROP_GROUP)"
    # -N: no group of its own. The primary group is the department's, so its files get it.
    useradd -N --gid "$group" --groups "$DROP_GROUP" --home-dir /nonexistent --no-create-home \
      --shell "$(nologin_shell)" --comment "kodomo_assets clerk $dept,umask=027" "$name" \
      || die "could not create the user $name"
    log "ready: clerk $name ($group, $DROP_GROUP)"
    return 0
  fi
  [ "$(id -u "$name")" -ne 0 ] || die "$name has uid 0"
  # One department only: a member of two department groups reads both departments' drops.
  local other
  for other in $(id -nG "$name"); do
    if [[ "$other" == "$PREFIX"* ]] && [ "$other" != "$group" ] && [ "$other" != "$DROP_GROUP" ]; then
      die "$name is already in $other: a clerk belongs to one department (make another account for $dept)"
    fi
  done
  if [ "$(id -gn "$name")" != "$group" ]; then
    log "setting the primary group of $name to $group"
    usermod -g "$group" "$name" || die "could not set the primary group of $name"
  fi
  ensure_member "$name" "$DROP_GROUP"
  log "ready: clerk $name ($group, $DROP_GROUP)"
}

case "${1:-}" in
  setup) shift; setup "$@" ;;
  month) [ $# -eq 3 ] || usage; month "$2" "$3" ;;
  clerk) [ $# -eq 3 ] || usage; clerk "$2" "$3" ;;
  *) usage ;;
esac
