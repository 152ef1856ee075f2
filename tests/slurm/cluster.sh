#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost, with accounting (slurmdbd + MariaDB) so that `sacct` works,
# for testing the workflow's cluster profile. Debian 12, run as root; no systemd needed.
#
#   tests/slurm/cluster.sh start    install what is missing, configure, start the daemons, wait until the node is up
#   tests/slurm/cluster.sh stop     cancel leftover jobs, stop the daemons by the PIDs in their pid files
#   tests/slurm/cluster.sh status   print sinfo; exit 0 if the node takes jobs (idle/mixed/allocated), else 1
#
# State, logs and pid files live under $OPTREPRO_SLURM_DIR (default /tmp/optrepro-slurm); the configuration
# goes to /etc/slurm because that is where the Debian binaries (sinfo, sbatch, sacct, ...) look for it.
# See tests/slurm/README.md.
set -euo pipefail

STATE_DIR=${OPTREPRO_SLURM_DIR:-/tmp/optrepro-slurm}
LOG_DIR=$STATE_DIR/log
# munged and mariadbd write their own pid and log files (and MariaDB its data) as their service users, so they
# get folders they own.
MUNGE_DIR=$STATE_DIR/munge
MYSQL_DIR=$STATE_DIR/mysql
CONF_DIR=/etc/slurm
CLUSTER=optrepro
PARTITION=debug
NODE=$(hostname -s)
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
# A throwaway cluster on localhost: the accounting DB password only has to match between MariaDB and slurmdbd.conf.
DB_PASS=optrepro-slurm
READY_TIMEOUT=${OPTREPRO_SLURM_TIMEOUT:-90}   # seconds for each wait in `start`
STOP_TIMEOUT=30                               # seconds for each daemon to exit in `stop`

# name:pidfile in start order; `stop` goes through them backwards.
DAEMONS=(
  "munged:$MUNGE_DIR/munged.pid"
  "mariadbd:$MYSQL_DIR/mariadbd.pid"
  "slurmdbd:$STATE_DIR/slurmdbd.pid"
  "slurmctld:$STATE_DIR/slurmctld.pid"
  "slurmd:$STATE_DIR/slurmd.pid"
)

log() { echo "cluster.sh: $*" >&2; }

dump_logs() {
  local f
  if is_running slurmctld; then
    echo "===== sinfo -N -l =====" >&2
    sinfo -N -l >&2 || true
  fi
  # *.out hold what a daemon printed before it opened its log, e.g. a configuration error.
  for f in "$LOG_DIR"/* "$MUNGE_DIR"/*.log "$MYSQL_DIR"/*.log; do
    [[ -s $f ]] || continue
    echo "===== $f (last 40 lines) =====" >&2
    tail -n 40 "$f" >&2
  done
}

die() {
  log "ERROR: $*"
  dump_logs
  exit 1
}

# A zombie counts as gone: in containers whose PID 1 does not reap orphans (e.g. `tail -f /dev/null`),
# a stopped daemon stays in /proc for good.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# The PID in a pid file, if that process is alive and is the daemon we expect: after a reboot with a
# persistent state folder, a stale PID may belong to an unrelated process, which must be neither trusted nor killed.
running_pid() {
  local name=$1 pidfile=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  echo "$pid"
}

pidfile_of() {
  local entry
  for entry in "${DAEMONS[@]}"; do
    [[ ${entry%%:*} == "$1" ]] && { echo "${entry#*:}"; return; }
  done
  return 1
}

is_running() { running_pid "$1" "$(pidfile_of "$1")" >/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND once a second until it succeeds; die with the logs if it never does.
wait_for() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}

# ready NAME COMMAND...: NAME runs under the PID in our pid file and COMMAND gets an answer; the PID check keeps
# a foreign daemon on the same socket or port from passing for ours.
ready() { is_running "$1" && "${@:2}"; }

node_state() { sinfo -h -N -o %T 2>/dev/null; }

node_takes_jobs() { [[ $(node_state) =~ ^(idle|mixed|allocated)$ ]]; }

install_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  log "installing ${missing[*]}"
  apt-get update
  # Without an init system the packages' maintainer scripts cannot start the services, which is what we want:
  # this script starts them itself.
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"
}

write_config() {
  local real_mem
  # Leave ~1 GiB to the OS: slurmd marks the node invalid if RealMemory exceeds what it detects.
  real_mem=$(($(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
  install -d -m 755 "$CONF_DIR"
  # Host names resolve to 127.0.0.1 explicitly, so nothing depends on /etc/hosts or DNS.
  cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by optrepro tests/slurm/cluster.sh; overwritten on every start.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups: works in containers and without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory gets the whole node and jobs run one at a time.
DefMemPerCPU=1000
# A node that was down (e.g. slurmd restarted) comes back by itself instead of staying DOWN.
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 5 minutes.
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
# Accounts GPUs too, so that sacct shows what each job held (AllocTRES).
AccountingStorageTRES=gres/gpu
# Two GPUs that are only counted (gres.conf binds them to /dev/null and /dev/zero): jobs can ask for them
# with --gres or --gpus, so that what the profile requests is tested on a machine without GPUs.
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$real_mem Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$CONF_DIR/gres.conf" <<EOF
# Written by optrepro tests/slurm/cluster.sh; overwritten on every start.
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
  # slurmdbd refuses a config holding the DB password that others can read.
  install -m 600 /dev/null "$CONF_DIR/slurmdbd.conf"
  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
# Written by optrepro tests/slurm/cluster.sh; overwritten on every start.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
}

prepare_dirs() {
  install -d -m 755 "$STATE_DIR" "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
  install -d -m 700 -o munge -g munge "$MUNGE_DIR"
  install -d -m 700 -o mysql -g mysql "$MYSQL_DIR"
  # A state folder under e.g. /root (mode 700) is out of the service users' reach.
  if ! runuser -u munge -- test -w "$MUNGE_DIR" || ! runuser -u mysql -- test -w "$MYSQL_DIR"; then
    log "ERROR: users munge and mysql cannot reach $STATE_DIR; choose another OPTREPRO_SLURM_DIR"
    exit 1
  fi
  # /run is a tmpfs that an init system would populate; without one, the sockets' folders must be made here.
  install -d -m 755 -o munge -g munge /run/munge
  install -d -m 755 -o mysql -g mysql /run/mysqld
}

start_munged() {
  is_running munged && return
  # The package creates the key on install; recreate it only if someone removed it.
  [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
  runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    </dev/null >>"$LOG_DIR/munged.out" 2>&1 || die "munged failed to start"
  wait_for "$READY_TIMEOUT" "munged" ready munged munge -n
}

start_mariadbd() {
  is_running mariadbd && return
  # The accounting DB lives in the state folder, next to slurmctld's state: job IDs restart at 1 with a fresh
  # folder, and old records in a shared /var/lib/mysql would then show up under the new jobs' IDs in sacct.
  [[ -d $MYSQL_DIR/data/mysql ]] ||
    mariadb-install-db --user=mysql --datadir="$MYSQL_DIR/data" >>"$LOG_DIR/mariadbd.out" 2>&1 ||
    die "mariadb-install-db failed"
  # mariadbd stays in the foreground: setsid detaches it from this script, and its output must not hold the
  # caller's stdout open (CI steps and subprocess captures would otherwise wait for it).
  setsid -f /usr/sbin/mariadbd --user=mysql --datadir="$MYSQL_DIR/data" --pid-file="$MYSQL_DIR/mariadbd.pid" \
    --log-error="$MYSQL_DIR/mariadbd.log" </dev/null >>"$LOG_DIR/mariadbd.out" 2>&1
  wait_for "$READY_TIMEOUT" "MariaDB" ready mariadbd mariadb-admin ping
  # root connects through the unix socket (Debian's default), so no root password is involved. Idempotent.
  mariadb <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurmdbd() {
  is_running slurmdbd && return
  /usr/sbin/slurmdbd </dev/null >>"$LOG_DIR/slurmdbd.out" 2>&1 || die "slurmdbd failed to start"
  # The first start creates the tables, which takes a few seconds; sacctmgr answers once that is done.
  # (sacctmgr gets a deadline because it can hang while slurmdbd is not listening yet.)
  wait_for "$READY_TIMEOUT" "slurmdbd" ready slurmdbd timeout 15 sacctmgr -n -P list cluster format=cluster
}

# slurmctld only records jobs for a cluster that slurmdbd knows; adding the cluster also creates the `root`
# account and user association, which is all that `sacct` needs (no AccountingStorageEnforce).
register_cluster() {
  timeout 15 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" && return
  timeout 15 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "could not register cluster $CLUSTER with slurmdbd"
}

start_slurm_daemon() {
  local name=$1
  is_running "$name" && return
  "/usr/sbin/$name" </dev/null >>"$LOG_DIR/$name.out" 2>&1 || die "$name failed to start"
}

require_root() { [[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }; }

cmd_start() {
  require_root
  install_packages
  write_config
  prepare_dirs
  start_munged
  start_mariadbd
  start_slurmdbd
  register_cluster
  start_slurm_daemon slurmctld
  start_slurm_daemon slurmd
  # Accepting mixed/allocated too lets `start` on a running cluster with jobs return at once.
  wait_for "$READY_TIMEOUT" "node $NODE to be idle" node_takes_jobs
  log "node $NODE is $(node_state); state, logs and pid files in $STATE_DIR"
}

# Jobs' processes (slurmstepd and the job itself) belong to no pid file; cancel them first so none outlive the cluster.
cancel_jobs() {
  local deadline=$((SECONDS + STOP_TIMEOUT))
  is_running slurmctld || return 0
  scancel --partition="$PARTITION" 2>/dev/null || true
  while [[ -n $(squeue -h -o %i 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || { log "WARNING: jobs still in the queue after ${STOP_TIMEOUT}s"; return 0; }
    sleep 1
  done
}

stop_daemon() {
  local name=$1 pidfile=$2 pid deadline
  if pid=$(running_pid "$name" "$pidfile"); then
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid"; do
      if ((SECONDS >= deadline)); then
        log "WARNING: $name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

cmd_stop() {
  local i entry
  require_root
  cancel_jobs
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    entry=${DAEMONS[i]}
    stop_daemon "${entry%%:*}" "${entry#*:}"
  done
}

cmd_status() {
  # sinfo retries an absent controller for ~20 s before giving up; answer at once when it is known to be down.
  is_running slurmctld || { echo "slurmctld is not running (no live PID in $STATE_DIR/slurmctld.pid)"; return 1; }
  sinfo || true
  node_takes_jobs
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 start|stop|status   (state folder: \$OPTREPRO_SLURM_DIR, default /tmp/optrepro-slurm)" >&2
    exit 2
    ;;
esac
