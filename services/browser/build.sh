#!/usr/bin/env bash
# Builds STAC Browser 4.x from its npm package (the source, pinned in package-lock.json) into
# build/browser/dist: static files any web server can serve, configured at run time.
#
# STAC Browser reads its options from window.STAC_BROWSER_CONFIG, which a `config.js` beside
# index.html sets (catalogUrl, authConfig, ...: docs/charts.md, "STAC Browser"). The package's
# index.html leaves that script commented out; this build enables it, as upstream's own image
# (ghcr.io/radiantearth/stac-browser) does, so one build serves any catalog. Only the path it is
# served under (pathPrefix, default "/") and historyMode are fixed when building.
#
# Usage: services/browser/build.sh [OUT]     (OUT default: build/browser/dist)
# Environment: SB_pathPrefix (default "/"), SB_historyMode (default "history").
# Needs node and `npm ci --prefix services/browser` first (make browser does both).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/build/browser/dist}")"
SOURCE="$HERE/node_modules/@radiantearth/stac-browser"
WORK="$ROOT/build/browser/src"
PREFIX="${SB_pathPrefix:-/}"

[ -f "$SOURCE/package.json" ] || {
    echo "browser: $SOURCE missing: run npm ci --prefix services/browser (make browser)" >&2
    exit 1
}
case "$PREFIX" in /*/ | /) ;; *) echo "browser: SB_pathPrefix must start and end with /, got '$PREFIX'" >&2; exit 1 ;; esac

# The package is built in a copy (its build writes caches beside its sources).
rm -rf "$WORK"
mkdir -p "$(dirname "$WORK")"
cp -r "$SOURCE" "$WORK"
# Its sources import ../../node_modules/ol/ol.css: the package's node_modules is ours.
rm -rf "$WORK/node_modules"
ln -s "$HERE/node_modules" "$WORK/node_modules"
commented='<!-- <script defer="defer" src="/config.js"></script> -->'
grep -qF "$commented" "$WORK/public/index.html" || {
    echo "browser: public/index.html no longer holds the commented config.js script; check the new version's runtime configuration" >&2
    exit 1
}
sed -i "s|$commented|<script src=\"${PREFIX}config.js\"></script>|" "$WORK/public/index.html"

started=$SECONDS
(cd "$WORK" && NODE_ENV=production SB_pathPrefix="$PREFIX" SB_historyMode="${SB_historyMode:-history}" \
    node "$HERE/node_modules/@vue/cli-service/bin/vue-cli-service.js" build --dest "$OUT" --noSourceMaps >&2)
# The build's own config.js holds the build's defaults: an empty one, so what the server puts
# there (or nothing) decides.
printf 'window.STAC_BROWSER_CONFIG = {};\n' >"$OUT/config.js"
echo "browser: built STAC Browser $(node -p "require('$SOURCE/package.json').version") into $OUT in $((SECONDS - started)) s ($(du -sh "$OUT" | cut -f1))" >&2
