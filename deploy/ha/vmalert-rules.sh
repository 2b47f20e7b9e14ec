#!/bin/sh
# Writes the rule files vmalert 1.79 (Debian 12's, and the image the compose file pins)
# can load: the shipped rules/*.yml without `keep_firing_for`, a field that release does
# not know and refuses whole files for. Centrally, the alerts that keep firing 2 minutes
# past a failed scrape (the held criticals and the warnings) then resolve on one failed
# evaluation, and fire again after their for:.
#   deploy/ha/vmalert-rules.sh [SRC_DIR [DST_DIR]]   (defaults: rules, deploy/ha/vmalert-rules)
set -eu
here=$(dirname "$0")
src=${1:-$here/../../rules}
dst=${2:-$here/vmalert-rules}
mkdir -p "$dst"
for f in "$src"/*.yml; do
  sed '/^[[:space:]]*keep_firing_for:/d' "$f" >"$dst/$(basename "$f")"
done
