#!/usr/bin/env bash
# Builds a container image with a real OpenSSH server from this machine's
# own packages (openssh-server and the libraries it links, busybox-static
# for a shell), as a root filesystem tar that `osc image-create` uploads.
# No registry is needed. This is the proposal's `foo`:
#
#   scripts/sshd-image.sh foo.tar ~/.ssh/id_ed25519.pub
#   osc image-create foo.tar --name foo
#   osc container-create --port pub:222:22 --daemon --image <uuid> --cmd "/usr/sbin/sshd -D"
#
# The public key file becomes root's authorized_keys; password logins are
# off. The host key is made fresh for each image. Needs: openssh-server,
# busybox-static, tar (Debian packages).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 OUT.tar AUTHORIZED_KEYS_FILE" >&2
  exit 2
fi
out="$1"
keys="$2"
for f in /usr/sbin/sshd /bin/busybox /usr/bin/ssh-keygen; do
  [ -x "$f" ] || { echo "$f is missing: install openssh-server and busybox-static" >&2; exit 1; }
done
[ -s "$keys" ] || { echo "$keys is empty or missing" >&2; exit 1; }

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

# sshd and every library it links, at the same paths.
copy_with_libs() {
  local bin="$1"
  install -D -m 0755 "$bin" "$root$bin"
  ldd "$bin" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}
copy_with_libs /usr/sbin/sshd

# A shell and the few tools a login uses.
install -D -m 0755 /bin/busybox "$root/bin/busybox"
for applet in sh ash cat echo env hostname id ls ps sleep stty tty uname true false; do
  ln -s busybox "$root/bin/$applet"
done
mkdir -p "$root/usr/bin" "$root/tmp" "$root/run/sshd" "$root/var/log" "$root/var/empty" \
  "$root/root/.ssh" "$root/etc/ssh"
chmod 1777 "$root/tmp"
chmod 0755 "$root/run/sshd" "$root/var/empty"
chmod 0700 "$root/root" "$root/root/.ssh"
ln -s ../run "$root/var/run"

cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privilege separation:/run/sshd:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$root/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
# `*`: no password, but not locked (sshd refuses locked accounts).
cat >"$root/etc/shadow" <<'S'
root:*:19000:0:99999:7:::
sshd:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
S
chmod 0640 "$root/etc/shadow"
echo "foo" >"$root/etc/motd"

cat >"$root/etc/ssh/sshd_config" <<'C'
# Written by scripts/sshd-image.sh: keys only, no PAM.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd yes
PrintLastLog no
StrictModes yes
PidFile /run/sshd.pid
C
ssh-keygen -q -t ed25519 -N '' -C "foo host key" -f "$root/etc/ssh/ssh_host_ed25519_key"
install -m 0600 "$keys" "$root/root/.ssh/authorized_keys"

tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$out" .
echo "$out: sshd image ($(du -h "$out" | cut -f1)), log in as root with the key in $keys" >&2
