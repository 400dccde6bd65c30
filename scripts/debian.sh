# shellcheck shell=bash
# Sourced by the scripts that need a Debian package (postgres.sh, ui_proxy.sh, test.sh):
# one place for installing it, as root or through sudo, refreshing the package lists once
# when the first attempt fails (a fresh machine has none). Progress goes to stderr.

debian_install() {
  local sudo_=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      printf '%s: error: %s not installed and sudo is missing: install Debian'"'"'s package\n' \
        "$(basename "$0")" "$*" >&2
      return 1
    }
    sudo_=(sudo)
  fi
  printf '%s: installing Debian'"'"'s %s package with apt-get\n' "$(basename "$0")" "$*" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_[@]}" apt-get install -y -q "$@" >&2 \
    || { "${sudo_[@]}" apt-get update -q >&2 && "${sudo_[@]}" apt-get install -y -q "$@" >&2; }
}
