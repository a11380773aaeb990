#!/usr/bin/env bash
# Gallery for issue 5 (creative control): every picture in the README's "Creative control" section.
# Re-run after retuning the default preset:  bash docs/make_issue5_gallery.sh   (from anywhere)
# Each command is printed before it runs; renders run one at a time (the CPU is slow and shared).
# SIZE and ITERS can be overridden from the environment, e.g. ITERS=100 bash docs/make_issue5_gallery.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=../shared/data
OUT=docs/issue5
SIZE=${SIZE:-192}
ITERS=${ITERS:-40}
COMMON=(--weights random --size "$SIZE" --iterations "$ITERS" --quiet)
GG=$DATA/content/golden_gate.jpg
TU=$DATA/content/tubingen.jpg
STARRY=$DATA/style/starry_night.jpg
SCREAM=$DATA/style/the_scream.jpg
SKY=docs/golden_gate_sky_mask.png
GROUND=docs/golden_gate_ground_mask.png

mkdir -p "$OUT"
echo "python docs/make_sky_mask.py $GG $SKY $GROUND"
python docs/make_sky_mask.py "$GG" "$SKY" "$GROUND"

render() {  # render NAME ARGS...: print the command, then run it
    local name=$1
    shift
    if [[ -n "${KEEP:-}" && -f "$OUT/$name.png" ]]; then  # KEEP=1: resume, keeping finished pictures
        echo "(kept $OUT/$name.png)"
        return
    fi
    echo "painterly stylize $* -o $OUT/$name.png ${COMMON[*]}"
    painterly stylize "$@" -o "$OUT/$name.png" "${COMMON[@]}"
}

# baseline (also: strength 0.5, style scale 1, colour kept as painted, Gram loss)
render gg_starry "$GG" --style "$STARRY"
# several styles
render gg_scream "$GG" --style "$SCREAM"
render gg_starry_scream_blend "$GG" --style "$STARRY" --style "$SCREAM" --style-blend 0.5,0.5
render gg_starry_sky_scream_ground "$GG" --style "$STARRY" --style "$SCREAM" --mask "$SKY" --mask "$GROUND"
# spatial control: only the sky is painted
render gg_starry_sky_only "$GG" --style "$STARRY" --mask "$SKY"
# colour preservation
render tu_starry "$TU" --style "$STARRY"
render tu_starry_luminance "$TU" --style "$STARRY" --preserve-color luminance
render tu_starry_histogram "$TU" --style "$STARRY" --preserve-color histogram
# strength
render gg_starry_strength025 "$GG" --style "$STARRY" --strength 0.25
render gg_starry_strength075 "$GG" --style "$STARRY" --strength 0.75
# style scale
render gg_starry_scale05 "$GG" --style "$STARRY" --style-scale 0.5
render gg_starry_scale2 "$GG" --style "$STARRY" --style-scale 2
# Gram vs Wasserstein (mean/covariance)
render gg_starry_w2 "$GG" --style "$STARRY" --style-loss wasserstein
render gg_starry_w2_strength075 "$GG" --style "$STARRY" --style-loss wasserstein --strength 0.75
render tu_scream "$TU" --style "$SCREAM"
render tu_scream_w2 "$TU" --style "$SCREAM" --style-loss wasserstein

# cost per iteration and final losses of each render, from the sidecar JSON files
python - "$OUT" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    m = json.loads(f.read_text())
    losses = " ".join(f"{k} {v:.3g}" for k, v in m["final_losses"].items() if k != "tv")
    print(f"{f.stem:32s} {m['timings']['per_iteration_s']:.3f} s/it  {losses}")
PY
