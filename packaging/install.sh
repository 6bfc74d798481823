#!/bin/sh
# sudo make install [DESTDIR=/some/root]: watcher as a systemd service, idempotent.
# Code in /opt/watcher (a venv from the pinned requirements.lock), configuration in
# /etc/watcher (never overwritten), the unit, and /usr/local/bin/watcher, which runs
# watcher as the service does. Run again, it upgrades the code and restarts the
# service only if it was running. DESTDIR installs under a temporary root.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR:-}
python=${PYTHON:-python3}
prefix=/opt/watcher
etc=/etc/watcher
unit=/etc/systemd/system/watcher.service
bin=/usr/local/bin/watcher

if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    echo "install: $python cannot make a venv; on Debian or Ubuntu: apt install python3-venv" >&2
    exit 2
fi

mkdir -p "$root$prefix" "$root$etc" "$root$(dirname "$unit")" "$root$(dirname "$bin")"
[ -x "$root$prefix/venv/bin/python" ] || "$python" -m venv "$root$prefix/venv"
"$root$prefix/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    -r "$here/requirements.lock"
"$root$prefix/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    --force-reinstall "$here"
install -m 644 "$here/README.md" "$root$prefix/README.md"

# Configuration: created once, never overwritten.
install -d -m 755 "$root$etc"
install -d -m 700 "$root$etc/credentials"
[ -e "$root$etc/rules.yaml" ] || install -m 640 "$here/rules.example.yaml" "$root$etc/rules.yaml"
[ -e "$root$etc/watcher.env" ] || install -m 600 "$here/systemd/watcher.env.example" "$root$etc/watcher.env"

# Temporary files are made by mktemp in the target directory (O_EXCL, mode 600): a
# symlink planted at a guessable name cannot redirect the write.
tmp=$(mktemp "$root$unit.XXXXXX")
sed "s|^ExecStart=.*|ExecStart=$prefix/venv/bin/watcher run|" "$here/systemd/watcher.service" > "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$root$unit"

# The command a person runs: no file is sourced by a shell (watcher.env is read as data),
# and only the files watcher created in the service's state directory are handed back.
tmp=$(mktemp "$root$bin.XXXXXX")
cat > "$tmp" <<WRAPPER
#!/bin/sh
# watcher as the service runs it: its settings, its credentials, its state database
# (/var/lib/private/watcher/watcher.db). See watcher/cli/wrapper.py.
exec $prefix/venv/bin/python -m watcher.cli.wrapper $etc /var/lib/private/watcher "\$@"
WRAPPER
chmod 755 "$tmp"
mv -f "$tmp" "$root$bin"

if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    if systemctl is-active --quiet watcher; then
        systemctl restart watcher
        echo "install: watcher upgraded and restarted"
    fi
fi
echo "install: done. Next: sudo watcher setup, then sudo systemctl enable --now watcher"
