#!/usr/bin/env bash
# Install (or upgrade) meterlink from this checkout as the systemd service deploy/meterlink.service.
# Run it again after `git pull` to upgrade; an existing config is never touched.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: sudo bash deploy/install.sh [--prefix DIR] [--python PY]

Installs meterlink from the checkout this script is in:
  /opt/meterlink/.venv                       a venv with meterlink (upgraded on every run),
                                             linked as /usr/local/bin/meterlink
  /etc/meterlink/meterlink.toml              the config, 640 root:root, from meterlink.example.toml;
                                             an existing one is kept as it is
  /etc/systemd/system/meterlink.service      the unit (it hands the config to the service with
                                             LoadCredential=)
  /etc/polkit-1/rules.d/50-meterlink-networkmanager.rules
                                             lets the service's user drive NetworkManager (its own
                                             Wi-Fi profiles, the access point, scans)
  /etc/udev/rules.d/90-meterlink-leds.rules  lets the service's group (dialout) switch the status
                                             LEDs of [leds] (brightness and trigger)
then reloads systemd and enables the service (a running one is restarted on the new version).

  --prefix DIR   install under DIR instead of / (DIR/opt/meterlink, DIR/etc/...), with the unit's
                 paths rewritten to match; systemd is left alone. For trying it out: a venv only
                 works where it was made.
  --python PY    the Python (>= 3.11) the venv is made from (default: /usr/bin/python3)
  -h, --help     this text
EOF
}

say() { echo "install.sh: $*" >&2; }
die() { say "$*"; exit 1; }
usage_error() { say "$* (see --help)"; exit 2; }

prefix=""
python=/usr/bin/python3
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a directory"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --python) [ $# -ge 2 ] || usage_error "--python needs a Python command"; python=$2; shift 2 ;;
        --python=*) python=${1#*=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run it as root: sudo bash $0"
if [ -n "$prefix" ]; then
    prefix=$(realpath -m -- "$prefix")
    prefix=${prefix%/}
    # The paths go into the unit file, where spaces and specials would need quoting.
    [[ $prefix =~ ^[A-Za-z0-9._/+-]*$ ]] || usage_error "--prefix $prefix: use a path of letters, digits and . _ + - only"
fi

source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -f "$source_dir/pyproject.toml" ] || [ ! -f "$source_dir/meterlink.example.toml" ]; then
    die "$source_dir is not a meterlink checkout (no pyproject.toml or meterlink.example.toml)"
fi

python_path=$(command -v -- "$python") || die "$python not found: apt install python3 python3-venv, or give --python"
case "$(readlink -f -- "$python_path")" in
    /root/* | /home/*) die "$python_path is under /root or /home, which the unit's ProtectHome=yes hides from the service: use a system Python" ;;
esac
"$python_path" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "meterlink needs Python >= 3.11, $python_path is $("$python_path" -V 2>&1)"
"$python_path" -c 'import venv, ensurepip' 2>/dev/null || die "$python_path cannot make a venv: apt install python3-venv"

with_systemd=""
if [ -z "$prefix" ] && [ -d /run/systemd/system ]; then
    with_systemd=yes
    systemd_version=$(systemctl --version | awk 'NR == 1 { print $2 }')
    [ "${systemd_version%%[!0-9]*}" -ge 247 ] \
        || die "systemd $systemd_version is too old for the unit's LoadCredential= (247 or newer: Debian 11, Raspberry Pi OS bullseye)"
fi

# The service's dynamic user must be able to read the venv, whatever root's umask is.
umask 022

venv=$prefix/opt/meterlink/.venv
install -d -m 755 "$prefix/opt/meterlink"
# --clear also repairs a venv whose Python went away in a distribution upgrade.
"$venv/bin/python" -c '' 2>/dev/null || "$python_path" -m venv --clear "$venv"

# pip builds in the source tree; building a copy leaves no root-owned build/ or *.egg-info in the
# user's clone, and no stale build/ of an earlier run can carry deleted modules into the venv.
build=$(mktemp -d)
trap 'rm -rf -- "$build"' EXIT
tar -C "$source_dir" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -C "$build" -xf -
say "installing meterlink into $venv (a few minutes on a Raspberry Pi)"
"$venv/bin/python" -m pip install --quiet --upgrade "$build" || die "pip could not install meterlink into $venv"
# So that `sudo meterlink token ...` and the other commands work without the venv's path.
install -d -m 755 "$prefix/usr/local/bin"
ln -sfn "$venv/bin/meterlink" "$prefix/usr/local/bin/meterlink"

config_dir=$prefix/etc/meterlink
config=$config_dir/meterlink.toml
install -d -m 755 -o root -g root "$config_dir"
new_config=""
if [ -e "$config" ]; then
    say "keeping $config"
else
    install -m 640 -o root -g root "$source_dir/meterlink.example.toml" "$config"
    new_config=yes
fi

unit_dir=$prefix/etc/systemd/system
install -d -m 755 "$unit_dir"
sed -e "s|/opt/meterlink|$prefix/opt/meterlink|g" -e "s|/etc/meterlink|$prefix/etc/meterlink|g" \
    "$source_dir/deploy/meterlink.service" >"$build/meterlink.service"
install -m 644 "$build/meterlink.service" "$unit_dir/meterlink.service"
say "installed $unit_dir/meterlink.service"

polkit_dir=$prefix/etc/polkit-1/rules.d
install -d -m 755 "$polkit_dir"
install -m 644 "$source_dir/deploy/50-meterlink-networkmanager.rules" "$polkit_dir/50-meterlink-networkmanager.rules"
say "installed $polkit_dir/50-meterlink-networkmanager.rules"

udev_dir=$prefix/etc/udev/rules.d
install -d -m 755 "$udev_dir"
install -m 644 "$source_dir/deploy/90-meterlink-leds.rules" "$udev_dir/90-meterlink-leds.rules"
say "installed $udev_dir/90-meterlink-leds.rules"

if [ -n "$with_systemd" ]; then
    # The LEDs exist since boot: apply the rule to them now, not at the next boot.
    if command -v udevadm >/dev/null; then
        udevadm control --reload || true
        udevadm trigger --subsystem-match=leds --action=add || true
    fi
    systemctl daemon-reload
    systemctl enable --quiet meterlink.service
    # An upgrade takes effect at once in a running service; a stopped one stays stopped.
    systemctl try-restart meterlink.service
elif [ -z "$prefix" ]; then
    say "systemd is not running here: once it is, run: systemctl daemon-reload && systemctl enable meterlink"
fi
if [ -n "$new_config" ]; then
    say "wrote $config from meterlink.example.toml: edit it for your meter, then start the service:"
    say "  sudo systemctl enable --now meterlink && sudo journalctl -u meterlink -f   # shows the API token once"
fi
