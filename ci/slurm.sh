#!/usr/bin/env bash
# A single-node Slurm cluster on localhost, for lthc's Slurm tests and for trying
# `lthc run --executor slurm` on one machine.
#
#   eval "$(ci/slurm.sh up)"   # installs what is missing, starts munge + slurmctld + slurmd,
#                              # prints the export lines (SLURM_CONF) for the caller's shell
#   ci/slurm.sh down           # stops the daemons by PID
#   ci/slurm.sh status         # says whether the cluster answers
#
# Everything lives in $LTHC_SLURM_DIR (default /tmp/lthc-slurm): config, state, logs, the munge
# socket. No systemd: the daemons are started directly. Running `up` twice is harmless.
# Tested as root (as CI runs it); the daemons run as the user who starts them.
set -euo pipefail

DIR="${LTHC_SLURM_DIR:-/tmp/lthc-slurm}"
CONF="$DIR/slurm.conf"
NODE="$(hostname -s 2>/dev/null || cut -d. -f1 /proc/sys/kernel/hostname)"

say() { echo "ci/slurm.sh: $*" >&2; }

exports() {
    echo "export SLURM_CONF=$CONF"
}

answers() {
    [ -f "$CONF" ] && SLURM_CONF="$CONF" timeout 2 sinfo -h -o '%T' 2>/dev/null | grep -Eq 'idle|mixed|alloc'
}

alive() { # pidfile
    # The daemon may remove its pid file between the test and the read.
    [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null
}

install() {
    local missing=()
    for pair in munged:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        if [ "$(id -u)" -eq 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 ||
                { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2; }
        else
            sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
        fi
    fi
}

write_config() {
    local cpus mem user
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    user=$(id -un)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/logs"
    cat > "$CONF" <<CONF
ClusterName=lthc
SlurmctldHost=$NODE(127.0.0.1)
MailProg=/bin/true
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
SlurmctldPort=${LTHC_SLURMCTLD_PORT:-6817}
SlurmdPort=${LTHC_SLURMD_PORT:-6818}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 10 minutes (there is no accounting database).
MinJobAge=600
SchedulerParameters=defer_batch
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

up() {
    install
    if answers; then
        exports
        return
    fi
    down_quietly
    write_config
    local key="$DIR/munge.key"
    if [ ! -f "$key" ]; then
        if [ -r /etc/munge/munge.key ]; then cp /etc/munge/munge.key "$key"; else head -c 1024 /dev/urandom > "$key"; fi
        chmod 600 "$key"
    fi
    mkdir -p "$DIR/munge"
    chmod 700 "$DIR/munge"
    munged --force --socket="$DIR/munge.socket" --key-file="$key" --pid-file="$DIR/munged.pid" \
        --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed"
    /usr/sbin/slurmctld -f "$CONF"
    /usr/sbin/slurmd -f "$CONF"
    for _ in $(seq 1 40); do
        if answers; then
            exports
            say "cluster up ($DIR)"
            return
        fi
        sleep 0.5
    done
    say "the cluster did not come up; logs:"
    tail -n 20 "$DIR"/*.log >&2 || true
    exit 1
}

down_quietly() {
    for d in slurmd slurmctld munged; do
        if alive "$DIR/$d.pid"; then
            kill "$(cat "$DIR/$d.pid" 2>/dev/null)" 2>/dev/null || true
            for _ in $(seq 1 50); do alive "$DIR/$d.pid" || break; sleep 0.1; done
        fi
        rm -f "$DIR/$d.pid"
    done
}

case "${1:-}" in
    up) up ;;
    down) down_quietly; say "stopped" ;;
    status) if answers; then say "up ($CONF)"; else say "down"; exit 1; fi ;;
    *) echo "usage: ci/slurm.sh up|down|status" >&2; exit 2 ;;
esac
