#!/usr/bin/env bash
# Builds the OCI image `modelgate:<version>` (MODELGATE_IMAGE_TAG: another tag) into target/image,
# an OCI layout (MODELGATE_IMAGE_LAYOUT: another), from package registries only: the release
# binary, the shared libraries it links (as this machine's Debian packages installed them), CA
# certificates, a non-root user and the console's files, packed by umoci. No base image is pulled.
# `--no-build` packs the binary and site already built. The same commit and binary pack to the
# same image digest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

layout="${MODELGATE_IMAGE_LAYOUT:-target/image}"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
tag="${MODELGATE_IMAGE_TAG:-$version}"
uid=10001

step() { printf '\033[1mimage:\033[0m %s\n' "$*"; }

if ! command -v umoci >/dev/null; then
  step "installing Debian's umoci"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq umoci >/dev/null
fi
[ "${1:-}" = --no-build ] || bash scripts/build.sh --release
binary=target/release/modelgate

step "assembling the root filesystem"
mkdir -p "$root"/{usr/local/bin,usr/share/modelgate,etc/ssl/certs,var/lib/modelgate,tmp}
# Symbols stripped: 41 MB instead of 54.
strip -o "$root/usr/local/bin/modelgate" "$binary"
cp -r target/site "$root/usr/share/modelgate/site"
# The dynamic loader and every library the binary links, at the paths it looks them up by; each
# Debian package they come from is recorded as distroless images do (var/lib/dpkg/status.d), so
# image scanners see the packages and their versions.
packages=(ca-certificates)
libraries=$(ldd "$binary" | awk '/=> \// { print $3 } /^\t\// { print $1 }')
for lib in $libraries; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  packages+=("$(dpkg -S "$lib" | head -n1 | cut -d: -f1)")
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
mkdir -p "$root/var/lib/dpkg/status.d"
for package in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg -s "$package" >"$root/var/lib/dpkg/status.d/$package"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nmodelgate:x:%s:%s:Modelgate:/var/lib/modelgate:/sbin/nologin\n' \
  "$uid" "$uid" >"$root/etc/passwd"
printf 'root:x:0:\nmodelgate:x:%s:\n' "$uid" >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chown "$uid:$uid" "$root/var/lib/modelgate"
chmod 1777 "$root/tmp"

# Every time in the image is the last commit's, so the same commit and binary pack to the same
# digest (SOURCE_DATE_EPOCH, as reproducible builds define it).
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
find "$root" -exec touch --no-dereference --date="@$epoch" {} +

step "packing $layout:$tag with umoci"
[ -d "$layout" ] || umoci init --layout "$layout"
umoci rm --image "$layout:$tag" 2>/dev/null || true
umoci new --image "$layout:$tag"
umoci insert --image "$layout:$tag" --history.created "$created" --history.created_by scripts/image.sh "$root" /
umoci config --image "$layout:$tag" --created "$created" --history.created "$created" \
  --config.entrypoint /usr/local/bin/modelgate --config.cmd serve \
  --config.user "$uid:$uid" --config.workingdir /var/lib/modelgate \
  --config.exposedports 3000/tcp --config.volume /var/lib/modelgate \
  --config.env MODELGATE_ADDR=0.0.0.0:3000 \
  --config.env LEPTOS_SITE_ROOT=/usr/share/modelgate/site \
  --config.env DATABASE_URL=sqlite:///var/lib/modelgate/modelgate.db \
  --config.env MODELGATE_ARTIFACT_STORE=/var/lib/modelgate/artifacts \
  --config.env MODELGATE_AUDIT_KEY_FILE=/var/lib/modelgate/audit-signing.key \
  --config.env MODELGATE_AUDIT_WITNESS_FILE=/var/lib/modelgate/audit-checkpoint.json \
  --config.env MODELGATE_ASSIGNMENT_KEY_FILE=/var/lib/modelgate/assignment-signing.key \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.label org.opencontainers.image.title=modelgate \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --config.label org.opencontainers.image.description="Registry, charts and guarded rollback for ML model versions"
umoci gc --layout "$layout"

layout_bytes=$(du -cb "$layout"/blobs/sha256/* | tail -n1 | cut -f1)
step "built $layout:$tag (the layout holds $((layout_bytes / 1024 / 1024)) MiB); push with: skopeo copy oci:$layout:$tag docker://<registry>/modelgate:$tag"
