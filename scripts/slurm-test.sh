#!/usr/bin/env bash
# `just slurm-test`: a sharded analysis through a real Slurm, on this machine only.
#
# Installs Slurm and MUNGE from Debian's packages (slurm-wlm, munge) if they are missing,
# starts a one-node cluster on localhost (munged, slurmctld, slurmd; its configuration,
# state and logs in a temporary directory), writes the job scripts with
# `saddlescope slurm analyze`, submits them with their submit.sh (the array, then the merge
# with --dependency=afterok), waits for both, and checks that the merged spectrum.json,
# summary.csv and per-class files are byte-identical to an unsharded run of the same
# analysis. Stops every daemon it started on exit.
#
# Needs root (apt-get, daemons) and a Debian-like system; takes a few minutes. Not part of
# CI (.ci/run): see README "Scaling out".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

SHARDS=${SHARDS:-3}
TIMEOUT_S=${TIMEOUT_S:-900}

say() { echo "== $*"; }

if [ "$(id -u)" != 0 ]; then
  echo "slurm-test: needs root (it installs packages and starts the Slurm daemons)" >&2
  exit 1
fi
for daemon in slurmctld slurmd munged; do
  if pgrep -x "$daemon" >/dev/null; then
    echo "slurm-test: a $daemon is already running; stop it first (this test starts its own)" >&2
    exit 1
  fi
done

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi
say "$(dpkg-query -W -f '${Package} ${Version}' slurm-wlm), $(munged --version 2>&1 | head -1)"

work=$(mktemp -d /tmp/saddlescope-slurm-test.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  if [ -n "${munge_pid:-}" ]; then
    kill "$munge_pid" 2>/dev/null || true
    pids+=("$munge_pid")
  fi
  for _ in $(seq 20); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  if [ "$status" != 0 ]; then
    echo "slurm-test FAILED; logs in $work (slurmctld.log, slurmd.log, an/slurm/logs/)" >&2
    for log in "$work"/slurmctld.log "$work"/slurmd.log "$work"/an/slurm/logs/*; do
      [ -f "$log" ] && { echo "--- $log"; tail -20 "$log"; } >&2
    done
  fi
  exit "$status"
}
trap cleanup EXIT

say "munge: a fresh key, munged"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
runuser -u munge -- /usr/sbin/munged
munge_pid=$(cat /run/munge/munged.pid)
munge -n | unmunge >/dev/null

say "slurm: one node (localhost, 2 CPUs), configuration in $work"
cpus=2
memory=$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)
mkdir -p "$work/state" "$work/spool"
export SLURM_CONF="$work/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=saddlescope-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -i
slurmd -N localhost
for _ in $(seq 60); do
  [ -s "$work/slurmctld.pid" ] && [ -s "$work/slurmd.pid" ] && break
  sleep 1
done
pids+=("$(cat "$work/slurmctld.pid")" "$(cat "$work/slurmd.pid")")
for _ in $(seq 60); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
sinfo

say "building saddlescope (release)"
cargo build --release --quiet
bin="$repo/target/release/saddlescope"

say "a checkpoint (4 classes) and its unsharded analysis"
cd "$work"
"$bin" train --dataset synthetic:classes=4,dim=32,n=400,test=20,seed=2 --ratio 10 \
  --model mlp:64 --epochs 3 --batch-size 16 --lr 0.05 --quiet --out run
analysis=(run/last.safetensors --lanczos-steps 80 --probes 3)
"$bin" analyze "${analysis[@]}" --out whole --quiet

say "saddlescope slurm analyze --shards $SHARDS"
"$bin" slurm analyze --shards "$SHARDS" --out an --cpus-per-task 1 --time 10:00 -- "${analysis[@]}"
cat an/slurm/analyze.sbatch

say "submit.sh"
submitted=$(bash an/slurm/submit.sh)
echo "$submitted"
array=$(sed -n 's/.*job array \([0-9]*\) .*/\1/p' <<<"$submitted")
merge=$(sed -n 's/.*merge: job \([0-9]*\),.*/\1/p' <<<"$submitted")
scontrol -o show job "$merge" | grep -oE 'Dependency=[^ ]+'

say "waiting for the array ($array) and the merge ($merge)"
start=$SECONDS
while [ -n "$(squeue -h -j "$array,$merge" 2>/dev/null)" ]; do
  if (( SECONDS - start > TIMEOUT_S )); then
    squeue
    echo "slurm-test: jobs still queued after ${TIMEOUT_S} s" >&2
    exit 1
  fi
  sleep 2
done
echo "done in $((SECONDS - start)) s"
job_state() { scontrol -o show job "$1" | grep -oE '(JobState|ExitCode)=[^ ]+' | paste -sd' '; }
for i in $(seq "$SHARDS"); do
  echo "shard $i (job ${array}_$i): $(job_state "${array}_$i")"
done
echo "merge (job $merge): $(job_state "$merge")"
cat an/slurm/logs/merge-*.log

say "merged against unsharded"
failed=0
for file in spectrum.json summary.csv $(cd whole && ls classes/*.json); do
  if cmp -s "whole/$file" "an/$file"; then
    echo "identical: $file"
  else
    echo "DIFFERS: $file"
    failed=1
  fi
done
if [ "$failed" != 0 ]; then
  exit 1
fi
echo "slurm-test passed: $SHARDS shards through sbatch, merged byte-identically"
