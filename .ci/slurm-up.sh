#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (for the grid tests and for trying `skelact grid`).
#
# Idempotent: installs Debian's slurm-wlm and munge only if missing, rewrites slurm.conf only if
# this node's CPUs or memory changed, starts only the daemons that are not running, and returns
# once `sinfo` shows the node idle (bounded by SLURM_UP_TIMEOUT seconds, default 120).
# Container-friendly settings: no cgroups (proctrack/linuxproc, task/none), slurmd as root.
# Needs root. Exit status 0: cluster up; 1: it could not be started (the reason is printed).
set -euo pipefail
timeout_s=${SLURM_UP_TIMEOUT:-120}
started=$(date +%s)

say() { echo "slurm-up: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (installs packages and starts daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  command -v apt-get >/dev/null || die "slurm-wlm is not installed and there is no apt-get"
  say "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
fi

node=$(hostname -s)
cpus=$(nproc --all)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
new_conf=$(cat <<CONF
# Written by .ci/slurm-up.sh: one node ($node), one partition, no cgroups (runs in a container).
ClusterName=skelact
SlurmctldHost=$node
# (written only when it changes; running daemons are restarted then)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job is eligible again after cred_expire seconds (default 120), and pending jobs
# are scheduled every sched_interval seconds (default 60): both shorter, for the tests.
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=10
MinJobAge=300
SchedulerParameters=sched_interval=2,bf_interval=2
NodeName=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$conf"
  conf_changed=1
else
  conf_changed=0
fi

running() { pgrep -x "$1" >/dev/null; }

if ! running munged; then
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; }
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  su -s /bin/sh munge -c munged 2>/dev/null || munged --force || die "munged did not start"
fi
stop() {  # stop a daemon started from an older slurm.conf (reconfigure misses some keys)
  local pidfile=$1
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "daemon $pid ($pidfile) did not stop"
}
if [ "$conf_changed" = 1 ]; then
  stop /run/slurmd.pid
  stop /run/slurmctld.pid
fi
running slurmctld || slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
running slurmd || slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"

while :; do
  state=$(sinfo -h -n "$node" -o '%T' 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mixed|allocated) break ;;
    down*|drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if [ $(( $(date +%s) - started )) -ge "$timeout_s" ]; then
    die "node $node not idle after ${timeout_s}s (state: ${state:-none}); see /var/log/slurm/"
  fi
  sleep 1
done
say "up in $(( $(date +%s) - started ))s: node $node ($cpus CPUs, $mem_mb MB), partition debug"
