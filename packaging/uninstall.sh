#!/bin/sh
# sudo make uninstall [PURGE=yes] [DESTDIR=...]: removes the code, the unit and the
# wrapper; configuration (/etc/watcher) and state stay unless PURGE=yes.
set -eu
root=${DESTDIR:-}
if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now watcher 2>/dev/null || true
fi
rm -rf "$root/opt/watcher"
rm -f "$root/etc/systemd/system/watcher.service" "$root/usr/local/bin/watcher"
if [ "${PURGE:-}" = yes ]; then
    rm -rf "$root/etc/watcher" "$root/var/lib/private/watcher" "$root/var/lib/watcher"
fi
if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
fi
echo "uninstall: done${PURGE:+ (configuration and state removed)}"
