#!/usr/bin/env bash
# One GPU training job on the lent device machine, against a deadline. Walk-through: scripts/README.md.
#
#   python scripts/device_job.py pack                  here: wheels, all training photos, Kodak → .carry/
#   bash scripts/device_train.sh                       there: run(command="bash scripts/device_train.sh",
#                                                      carry=[".carry"], timeout_s=600)
#   python scripts/device_job.py join FILES_AT DEST    here: reassemble, check the checksum
#   python scripts/device_job.py land DEST             here: full Kodak benchmark; ship only if better
#
# The clock starts here (JOB_START); settings are environment variables (scripts/device_job.py).
# The output — the log, job.json, the weights in parts, their checksum and record — goes to $OUT.
# Exit status: 0 done, 2 not on a device machine, 3 failed (the diagnostic block names the stage).
export JOB_START=${JOB_START:-$(date +%s.%N)}
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT is unset: run this on the device machine, or set OUT for a dry run (DEVICE=cpu)}"
export PYTHONUNBUFFERED=1
"${PYTHON:-python3}" scripts/device_job.py device 2>&1 | tee "$OUT/job.log"
