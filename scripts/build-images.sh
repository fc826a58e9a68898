#!/usr/bin/env bash
# Builds the service images with podman, without a registry or a Docker engine:
#   ghcr.io/fedeploy/ingestion:<appVersion>   from services/ingestion/Dockerfile
#   ghcr.io/fedeploy/inference:<appVersion>   from services/inference/Dockerfile (the CPU image)
#   ghcr.io/fedeploy/stac-browser:<version>   from services/browser/Dockerfile: STAC Browser as
#                                             services/browser/build.sh built it from npm, the
#                                             package's version (a test build; the catalog chart
#                                             runs upstream's image by default)
#   ghcr.io/fedeploy/restore-drill:<catalog appVersion>-pg<major>
#                                             from services/restore-drill/Dockerfile: the catalog's
#                                             backup sidecar and restore drill, Debian 13's
#                                             PostgreSQL <major> (the Dockerfile's PG_MAJOR) and
#                                             barman-cloud; on debian:trixie-slim, else a trixie
#                                             root filesystem made by mmdebstrap
# tagged with each chart's appVersion (charts/<service>/Chart.yaml). The GPU image
# (services/inference/Dockerfile.gpu) is built by the release pipeline only, never here.
#
# Installs what it needs from Debian's packages (like scripts/install-peers.sh), on Debian 12.
# The base is the Dockerfiles' default (python:3.11.11-slim-bookworm) when it can be pulled;
# otherwise a Debian bookworm root filesystem with Python 3.11 made by mmdebstrap from the Debian
# mirror and imported as localhost/fedeploy-python:3.11-bookworm.
#
# Everything podman keeps (images, layers, its runtime state, the containers.conf this script
# writes) lies under $FEDEPLOY_IMAGES_DIR (default build/images/), which `make clean` removes.
# Use ./scripts/build-images.sh --podman ARGS... to run podman on that storage (the tests do).
#
# Environment:
#   FEDEPLOY_IMAGES_DIR   podman's storage and settings (default <repo>/build/images)
#   FEDEPLOY_IMAGES       which images to build (default "ingestion inference browser";
#                         restore-drill is built when named)
#   TORCH_WHEELS          a folder holding torch-2.13.0+cpu's wheel, mounted read-only into the
#                         inference build; default: the folder of pip's find-links that holds it,
#                         else the build downloads it from PyTorch's CPU index.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${FEDEPLOY_IMAGES_DIR:-$ROOT/build/images}"
IMAGES="${FEDEPLOY_IMAGES:-ingestion inference browser}"
OFFICIAL_BASE="$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/services/ingestion/Dockerfile")"
LOCAL_BASE="localhost/fedeploy-python:3.11-bookworm"
OFFICIAL_NGINX="$(sed -n 's/^ARG NGINX_IMAGE=//p' "$ROOT/services/browser/Dockerfile")"
LOCAL_NGINX="localhost/fedeploy-nginx:bookworm"
OFFICIAL_TRIXIE="$(sed -n 's/^ARG DEBIAN_IMAGE=//p' "$ROOT/services/restore-drill/Dockerfile")"
LOCAL_TRIXIE="localhost/fedeploy-debian:trixie"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

install_tools() {
    local missing=()
    for tool in podman buildah mmdebstrap runc newuidmap fuse-overlayfs; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install podman, buildah, mmdebstrap, runc, uidmap"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "installing podman, buildah, mmdebstrap, runc (missing: ${missing[*]})"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        podman buildah mmdebstrap crun fuse-overlayfs uidmap >/dev/null
    # runc alone: its recommendations would pull in a second container engine's pieces.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends runc >/dev/null
}

write_config() {
    mkdir -p "$STATE/storage" "$STATE/run" "$STATE/tmp"
    # crun 1.8.1 (Debian 12) refuses hybrid cgroup layouts and a sandbox may not raise the
    # open-file limit to podman's default: runc, cgroupfs and explicit limits, in a file of our
    # own (never the user's global containers.conf).
    cat >"$STATE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

pod() {
    CONTAINERS_CONF="$STATE/containers.conf" TMPDIR="$STATE/tmp" \
        podman --root "$STATE/storage" --runroot "$STATE/run" --storage-driver "${FEDEPLOY_STORAGE_DRIVER:-overlay}" "$@"
}

app_version() {
    local version
    version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$ROOT/charts/$1/Chart.yaml")"
    [ -n "$version" ] || die "charts/$1/Chart.yaml has no appVersion"
    printf '%s' "$version"
}

base_image() {
    if [ -n "${FEDEPLOY_PYTHON_IMAGE:-}" ]; then
        printf '%s' "$FEDEPLOY_PYTHON_IMAGE"
        return
    fi
    if pod image exists "$OFFICIAL_BASE" || pod image exists "$LOCAL_BASE"; then
        pod image exists "$OFFICIAL_BASE" && printf '%s' "$OFFICIAL_BASE" || printf '%s' "$LOCAL_BASE"
        return
    fi
    if timeout 60 podman --root "$STATE/storage" --runroot "$STATE/run" --storage-driver "${FEDEPLOY_STORAGE_DRIVER:-overlay}" \
        pull -q "docker.io/library/$OFFICIAL_BASE" >/dev/null 2>&1; then
        pod tag "docker.io/library/$OFFICIAL_BASE" "$OFFICIAL_BASE"
        printf '%s' "$OFFICIAL_BASE"
        return
    fi
    log "$OFFICIAL_BASE cannot be pulled: building $LOCAL_BASE with mmdebstrap"
    local started=$SECONDS rootfs="$STATE/tmp/rootfs.tar"
    mmdebstrap --quiet --variant=apt \
        --include=python3.11,python3-venv,python-is-python3,ca-certificates \
        bookworm "$rootfs" >&2
    pod import --quiet "$rootfs" "$LOCAL_BASE" >/dev/null
    rm -f "$rootfs"
    log "base $LOCAL_BASE built in $((SECONDS - started)) s"
    printf '%s' "$LOCAL_BASE"
}

torch_wheels() {
    if [ -n "${TORCH_WHEELS:-}" ]; then
        printf '%s' "$TORCH_WHEELS"
        return
    fi
    local dir
    for dir in ${PIP_FIND_LINKS:-} $(pip3 config get global.find-links 2>/dev/null || true); do
        if compgen -G "$dir/torch-2.13.0+cpu-cp311-*.whl" >/dev/null; then
            printf '%s' "$dir"
            return
        fi
    done
}

build() {
    local service=$1 base=$2 version tag started args=()
    version="$(app_version "$service")"
    tag="ghcr.io/fedeploy/$service:$version"
    args=(--build-arg "PYTHON_IMAGE=$base" --network host --layers
        --file "services/$service/Dockerfile"
        --ignorefile "services/$service/Dockerfile.dockerignore")
    # HTTPS from build steps passes this machine's egress: its CA bundle, mounted, never baked in.
    [ -f "$CA_BUNDLE" ] && args+=(--volume "$CA_BUNDLE:$CA_BUNDLE:ro")
    if [ "$service" = inference ]; then
        local wheels
        wheels="$(torch_wheels)"
        if [ -n "$wheels" ]; then
            args+=(--volume "$wheels:/torch-wheels:ro" --build-arg TORCH_WHEELS=/torch-wheels)
        fi
    fi
    log "building $tag from services/$service/Dockerfile (base $base)"
    started=$SECONDS
    (cd "$ROOT" && pod build --quiet "${args[@]}" --tag "$tag" . >/dev/null)
    log "built $tag in $((SECONDS - started)) s ($(pod image inspect --format '{{.Size}}' "$tag") bytes)"
}

# A base image: LOCAL when it was made before; OFFICIAL when it exists or can be pulled (as
# PULL, then tagged OFFICIAL); else a Debian SUITE root filesystem with PACKAGES made by
# mmdebstrap from the Debian mirror and imported as LOCAL.
debian_base() {
    local local_tag=$1 official=$2 pull=$3 suite=$4 packages=$5
    if pod image exists "$local_tag"; then
        printf '%s' "$local_tag"
        return
    fi
    if pod image exists "$official" || timeout 60 podman --root "$STATE/storage" --runroot "$STATE/run" \
        --storage-driver "${FEDEPLOY_STORAGE_DRIVER:-overlay}" pull -q "$pull" >/dev/null 2>&1; then
        pod image exists "$official" || pod tag "$pull" "$official"
        printf '%s' "$official"
        return
    fi
    log "$official cannot be pulled: building $local_tag with mmdebstrap"
    local started=$SECONDS rootfs="$STATE/tmp/$suite-rootfs.tar"
    mmdebstrap --quiet --variant=apt --include="$packages" "$suite" "$rootfs" \
        http://deb.debian.org/debian >&2
    pod import --quiet "$rootfs" "$local_tag" >/dev/null
    rm -f "$rootfs"
    log "base $local_tag built in $((SECONDS - started)) s"
    printf '%s' "$local_tag"
}

# The browser image's base: nginx-unprivileged when it can be pulled, else Debian's nginx-light in
# a bookworm root filesystem (the Dockerfile brings its own nginx.conf, so either serves alike).
nginx_base() {
    debian_base "$LOCAL_NGINX" "$OFFICIAL_NGINX" "$OFFICIAL_NGINX" bookworm nginx-light
}

# STAC Browser: the npm build (services/browser/build.sh) when build/browser/dist is missing or
# older than the lock, then the image around it.
build_browser() {
    local version tag started dist="$ROOT/build/browser/dist" base
    command -v npm >/dev/null || die "the browser image needs node and npm (apt-get install nodejs npm)"
    version="$(node -p "require('$ROOT/services/browser/package-lock.json').packages['node_modules/@radiantearth/stac-browser'].version")"
    tag="ghcr.io/fedeploy/stac-browser:$version"
    if [ ! -f "$dist/index.html" ] || [ "$ROOT/services/browser/package-lock.json" -nt "$dist/index.html" ]; then
        npm ci --prefix "$ROOT/services/browser" --no-audit --no-fund --loglevel=error >&2
        "$ROOT/services/browser/build.sh" "$dist"
    fi
    base="$(nginx_base)"
    log "building $tag from services/browser/Dockerfile (base $base)"
    started=$SECONDS
    (cd "$ROOT" && pod build --quiet --build-arg "NGINX_IMAGE=$base" --network host --layers \
        --file services/browser/Dockerfile --ignorefile services/browser/Dockerfile.dockerignore \
        --tag "$tag" . >/dev/null)
    log "built $tag in $((SECONDS - started)) s ($(pod image inspect --format '{{.Size}}' "$tag") bytes)"
}

# The restore drill's base: debian:trixie-slim when it can be pulled, else a trixie root
# filesystem from the Debian mirror (the Dockerfile installs its packages with apt in either).
trixie_base() {
    debian_base "$LOCAL_TRIXIE" "$OFFICIAL_TRIXIE" "docker.io/library/$OFFICIAL_TRIXIE" trixie ca-certificates
}

# The restore drill (and backup sidecar) image, tagged with the catalog chart's appVersion and
# the PostgreSQL major it carries: the chart checks that major against the database's.
build_restore_drill() {
    local major tag started base
    major="$(sed -n 's/^ARG PG_MAJOR=//p' "$ROOT/services/restore-drill/Dockerfile")"
    tag="ghcr.io/fedeploy/restore-drill:$(app_version catalog)-pg$major"
    base="$(trixie_base)"
    log "building $tag from services/restore-drill/Dockerfile (base $base)"
    started=$SECONDS
    (cd "$ROOT" && pod build --quiet --build-arg "DEBIAN_IMAGE=$base" --network host --layers \
        --file services/restore-drill/Dockerfile --ignorefile services/restore-drill/Dockerfile.dockerignore \
        --tag "$tag" . >/dev/null)
    log "built $tag in $((SECONDS - started)) s ($(pod image inspect --format '{{.Size}}' "$tag") bytes)"
}

main() {
    if [ "${1:-}" = "--podman" ]; then
        shift
        write_config
        pod "$@"
        return
    fi
    install_tools
    write_config
    local base=""
    for service in $IMAGES; do
        case "$service" in
            ingestion | inference) build "$service" "${base:=$(base_image)}" ;;
            browser) build_browser ;;
            restore-drill) build_restore_drill ;;
            *) die "FEDEPLOY_IMAGES: unknown image '$service' (allowed: ingestion, inference, browser, restore-drill)" ;;
        esac
    done
}

main "$@"
