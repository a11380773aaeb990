#!/usr/bin/env bash
# Re-make the issue-4 gallery shown in README.md ("Seeing the work"): an evolution GIF, a feature grid, a sweep
# grid and a screenshot of a run report. Run from anywhere after changing the default preset:
#   bash docs/make_issue4_gallery.sh
# Uses random-feature VGG19 weights (nothing to download) and the photos and paintings in ../shared/data.
# 6 to 12 minutes on 2 shared CPU cores (measured), far less on a GPU. Needs Chromium for the screenshot (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/issue4
run() { echo "+ $*" >&2; "$@"; }

# 1. Evolution GIF, with the loss plot, sheet and report of the same run (docs/issue4/tubingen_starry.*)
run painterly stylize ../shared/data/content/tubingen.jpg -s ../shared/data/style/starry_night.jpg \
  -o docs/issue4/tubingen_starry.png --size 160 --iterations 60 --weights random --gif --plot --sheet --report -q

# 2. Screenshot of that report, headless and offline
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
run chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --screenshot=docs/issue4/report_screenshot.png --window-size=1000,1300 \
  "file://$PWD/docs/issue4/tubingen_starry.html" 2>/dev/null

# 3. Feature grid: the 6 most active channels of five VGG19 layers
run painterly features ../shared/data/content/tubingen.jpg -o docs/issue4/features.png \
  --size 192 --channels 6 --weights random -q

# 4. Sweep grid: content weight (rows) x style weight (columns)
run painterly sweep ../shared/data/content/golden_gate.jpg -s ../shared/data/style/the_scream.jpg \
  -o docs/issue4/sweep.png --size 128 --iterations 30 --content-weight 1,10 --style-weight 0.1,1,10 \
  --weights random -q

ls -l docs/issue4
