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

sed "s|^ExecStart=.*|ExecStart=$prefix/venv/bin/watcher run|" "$here/systemd/watcher.service" \
    > "$root$unit.tmp"
chmod 644 "$root$unit.tmp"
mv "$root$unit.tmp" "$root$unit"

cat > "$root$bin.tmp" <<WRAPPER
#!/bin/sh
# watcher as the service runs it: its settings, its credentials, its state database.
# Files it creates in the state directory are handed back to the service's user.
set -a
[ -r $etc/watcher.env ] && . $etc/watcher.env
set +a
export WATCHER_RULES=\${WATCHER_RULES:-$etc/rules.yaml}
export WATCHER_STATE=\${WATCHER_STATE:-/var/lib/private/watcher/watcher.db}
export CREDENTIALS_DIRECTORY=\${CREDENTIALS_DIRECTORY:-$etc/credentials}
export WATCHER_CONFIG_DIR=$etc
state_dir=\$(dirname "\$WATCHER_STATE")
$prefix/venv/bin/watcher "\$@"
status=\$?
if [ "\$(id -u)" = 0 ] && [ -d "\$state_dir" ]; then
    chown -R "\$(stat -c %u:%g "\$state_dir")" "\$state_dir" 2>/dev/null || true
fi
exit \$status
WRAPPER
chmod 755 "$root$bin.tmp"
mv "$root$bin.tmp" "$root$bin"

if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    if systemctl is-active --quiet watcher; then
        systemctl restart watcher
        echo "install: watcher upgraded and restarted"
    fi
fi
echo "install: done. Next: sudo watcher setup, then sudo systemctl enable --now watcher"
