#!/usr/bin/env bash
# Advance the shipped weights by one GPU chunk (≤ 9 minutes) on the lent device machine.
#
#   scripts/device_train.sh pack [SHARD]      here: fill .carry/ (wheels, a training shard, Kodak)
#   bash scripts/device_train.sh               there: train, export, evaluate; parts into $OUT
#   scripts/device_train.sh join DIR [DEST]    here: reassemble and check the weights that came back
#
# The device machine has Python 3.12 and torch but no compressai and no network, and a call carries
# at most 64 MiB (the working tree, ~17 MiB with the shipped weights, included) and brings back files
# of at most 16 MiB. So: compressai and pytorch-msssim travel as cp312 wheels; the training photos
# travel as a shard that fits the budget (SHARD 0, 1, 2 … walk through all of them); the chunk
# starts from the shipped weights (aecodec/models/weights/, they travel with the tree) or from
# .carry/init.pt, with `--init-from` (fresh Adam + a short LR ramp; the global step, hence the LR
# schedule, continues from the weights' training record); the result comes back as the exported
# fp32 weights (~28 MB) in two parts. Full walk-through: scripts/README.md.
#
# Settings (environment): MINUTES (7.5) STEPS (200000: length of the LR schedule) LR (1e-4)
# BATCH (16) CROP (256) AMP (bf16) COMPILE (0) EVAL_IMAGES (8, pack) DEVICE (cuda) PYTHON (python3)
# CARRY (.carry) KODAK, TRAIN (pack: the source folders, default ../shared/datasets/…).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=${CARRY:-.carry}
PYTHON=${PYTHON:-python3}
LIMIT_MIB=64
MARGIN_MIB=2

pack() {
    local shard=${1:-0}
    local kodak=${KODAK:-../shared/datasets/kodak} train=${TRAIN:-../shared/datasets/train}
    mkdir -p "$CARRY"
    case "$(realpath "$CARRY")/" in
        "$(realpath .)"/*)  # inside the repo: git must ignore it, or it travels twice
            local rel="/$(realpath --relative-to=. "$CARRY")/" exclude
            exclude=$(git rev-parse --git-path info/exclude)
            mkdir -p "$(dirname "$exclude")"
            grep -qxF "$rel" "$exclude" 2>/dev/null || echo "$rel" >>"$exclude" ;;
    esac
    if ! ls "$CARRY"/wheels/compressai-1.2.8-cp312-*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d "$CARRY/wheels" compressai==1.2.8 pytorch-msssim==1.0.0
    fi
    rm -rf "$CARRY/kodak" "$CARRY/train"
    mkdir -p "$CARRY/kodak"
    ls "$kodak"/kodim*.png | head -n "${EVAL_IMAGES:-8}" | xargs -I{} cp {} "$CARRY/kodak/"
    # The training shard: what the budget leaves after the tree, the wheels, Kodak and init.pt.
    "$PYTHON" - "$CARRY" "$train" "$shard" "$LIMIT_MIB" "$MARGIN_MIB" <<'EOF'
import random, shutil, subprocess, sys
from pathlib import Path
carry, train, shard, limit, margin = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
tree = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, check=True).stdout
used = sum(Path(p).stat().st_size for p in tree.decode().split("\0") if p and Path(p).is_file())
used += sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())  # wheels, kodak, init.pt
budget = (limit - margin) * 2**20 - used
files = sorted(p for p in train.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
if budget < 2**20 or not files:
    sys.exit(f"no room for training photos ({budget / 2**20:.1f} MiB left) or none in {train}")
random.Random(0).shuffle(files)
per_shard = max(1, int(budget / (sum(p.stat().st_size for p in files) / len(files))))
out, size, i = carry / "train", 0, (shard * per_shard) % len(files)
out.mkdir()
for k in range(len(files)):
    p = files[(i + k) % len(files)]
    if size + p.stat().st_size > budget:
        break
    shutil.copy(p, out / f"{p.parent.name}-{p.name}")
    size += p.stat().st_size
print(f"shard {shard}: {len(list(out.iterdir()))} of {len(files)} photos, {size / 2**20:.1f} MiB; "
      f"the call carries {(used + size) / 2**20:.1f} MiB of {limit}")
EOF
}

join() {
    local from=${1:?join needs the folder the files came back to} dest=${2:-weights.pt}
    cat "$from"/weights.pt.part-* >"$dest.tmp"
    [ "$(sha256sum <"$dest.tmp" | cut -d' ' -f1)" = "$(cut -d' ' -f1 "$from/weights.sha256")" ] ||
        { rm -f "$dest.tmp"; echo "device_train: checksum mismatch" >&2; exit 1; }
    mv "$dest.tmp" "$dest"
    "$PYTHON" -c "
import sys, json; from aecodec.models.checkpoint import load_checkpoint
m, c = load_checkpoint(sys.argv[1]); t = c['training']
print(sys.argv[1], 'weights', c['weights_hash'], 'step', t.get('steps'))
print(json.dumps(t.get('eval'), indent=1))" "$dest"
}

device() {
    : "${OUT:?OUT is unset: run this on the device machine (see scripts/README.md)}"
    export PYTHONUNBUFFERED=1
    if ls "$CARRY"/wheels/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site "$CARRY"/wheels/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    local init="" args=()
    if [ -f "$CARRY/init.pt" ]; then init=$CARRY/init.pt
    elif [ -f aecodec/models/weights/mean-scale-vr-128.pt ]; then init=aecodec/models/weights/mean-scale-vr-128.pt
    fi
    [ -n "$init" ] && args+=(--init-from "$init")
    [ -d "$CARRY/kodak" ] && args+=(--eval-dir "$CARRY/kodak" --eval-images 24)
    [ "${COMPILE:-0}" = 1 ] && args+=(--compile)
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    set -o pipefail
    "$PYTHON" -m aecodec train "$CARRY/train" -o /tmp/chunk.pt "${args[@]}" \
        --steps "${STEPS:-200000}" --max-minutes "${MINUTES:-7.5}" --batch-size "${BATCH:-16}" \
        --crop "${CROP:-256}" --lr "${LR:-1e-4}" --amp "${AMP:-bf16}" --channels-last \
        --device "${DEVICE:-cuda}" --log-every 500 --quiet 2>&1 | tee "$OUT/train.log"
    "$PYTHON" -m aecodec export /tmp/chunk.pt -o /tmp/weights.pt --storage fp32 | tee -a "$OUT/train.log"
    # ≤ 15 MiB a part (files come back up to 16 MiB each); the checksum of the whole file.
    split -b 15M -d -a 2 /tmp/weights.pt "$OUT/weights.pt.part-"
    sha256sum /tmp/weights.pt | sed 's#/tmp/##' >"$OUT/weights.sha256"
    "$PYTHON" -c "
import json, sys, torch
c = torch.load('/tmp/weights.pt', map_location='cpu', weights_only=True)
json.dump({'weights_hash': c['weights_hash'], 'training': c['training']}, open(sys.argv[1], 'w'), indent=1)
" "$OUT/record.json"
    ls -l "$OUT"
}

case "${1:-device}" in
    pack) shift; pack "$@" ;;
    join) shift; join "$@" ;;
    device) device ;;
    *) echo "usage: $0 [pack [SHARD] | join DIR [DEST] | device]" >&2; exit 2 ;;
esac
