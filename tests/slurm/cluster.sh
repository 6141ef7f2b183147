#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine for tests/test_slurm.py.
#
#   tests/slurm/cluster.sh start    install slurm-wlm + munge if missing, write /etc/slurm/slurm.conf
#                                   and gres.conf, start munged, slurmctld, slurmd; wait for the node
#   tests/slurm/cluster.sh status   the daemons this script started, and sinfo (exit 0 when usable)
#   tests/slurm/cluster.sh stop     cancel the test cluster's jobs, stop only the daemons this script
#                                   started (by pid), remove the config files it wrote
#
# Needs root (apt-get, daemons). No systemd: the daemons are started by hand (munged as user
# munge, slurmctld/slurmd as root) and write their pid files into the state dir. No cgroups
# (proctrack/linuxproc, task/none), no accounting database: the executor plugin must query job
# status with `--slurm-status-command squeue` (MinJobAge=600 keeps finished jobs visible). The
# node (CPUs and memory from `slurmd -C`) declares GPUs, Gres=gpu:4, backed by placeholder
# device files, so `--gpus=1` jobs are schedulable and get CUDA_VISIBLE_DEVICES on a CPU-only
# machine. Partitions `cpu` (default) and `gpu` both hold the node, as profiles/slurm expects, and
# let up to 4 jobs share a core (the node keeps its real core count; memory is checked per job).
# Config files carry the marker line below; a slurm.conf without it (a real cluster's) is never
# overwritten or removed. /etc/slurm/slurm.conf is where it has to be: the job steps do not see
# a SLURM_CONF variable (the jobstep executor drops SLURM_* from their environment).
#
# Environment: BERTLENS_SLURM_STATE (state dir, default /var/tmp/bertlens-slurm),
# BERTLENS_SLURM_CTLD_PORT / BERTLENS_SLURM_SLURMD_PORT (default 6817 / 6818),
# BERTLENS_SLURM_GPUS (placeholder GPUs on the node, default 4).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${BERTLENS_SLURM_STATE:-/var/tmp/bertlens-slurm}"
CTLD_PORT="${BERTLENS_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${BERTLENS_SLURM_SLURMD_PORT:-6818}"
# placeholder GPUs on the node: several, so the workflow's GPU stages do not queue for one
GPUS="${BERTLENS_SLURM_GPUS:-4}"
ETC=/etc/slurm
MARKER="bertlens-test-cluster"
STARTED="$STATE/started" # lines "name pid" of the daemons this script started
MUNGE_PIDFILE=/run/munge/munged.pid

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
STARTING=0
die() {
    log "error: $*"
    # a failed start leaves nothing of its own running
    if [ "$STARTING" = 1 ]; then
        STARTING=0
        stop_daemons || true
    fi
    exit 1
}

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (installs packages, starts daemons)"; }

# a running process (a zombie awaiting its reaper counts as gone)
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# pid of a daemon this script started, if it is still that daemon
started_pid() {
    local name=$1 pid
    [ -f "$STARTED" ] || return 1
    pid=$(awk -v n="$name" '$1 == n { p = $2 } END { print p }' "$STARTED")
    alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}

record() { echo "$1 $2" >>"$STARTED"; }

ours() { [ -f "$1" ] && grep -q "$MARKER" "$1"; }

install_packages() {
    local missing=()
    for cmd in munged mungekey slurmctld slurmd slurmstepd sinfo sbatch squeue scontrol; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing slurm-wlm and munge (missing: ${missing[*]})"
    # Keep the packages' init scripts/units from starting daemons of their own.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >"$STATE/apt.log" 2>&1 || {
        tail -20 "$STATE/apt.log" >&2
        [ $made_policy -eq 1 ] && rm -f "$policy"
        die "apt-get install slurm-wlm munge failed"
    }
    [ $made_policy -eq 1 ] && rm -f "$policy"
    return 0
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        log "munged already answers on the default socket; using it (not ours to stop)"
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    rm -f "$MUNGE_PIDFILE"
    runuser -u munge -- munged --pid-file="$MUNGE_PIDFILE" </dev/null ||
        die "munged did not start (see /var/log/munge/munged.log)"
    wait_for 10 test -s "$MUNGE_PIDFILE" || die "munged wrote no pid file"
    record munged "$(cat "$MUNGE_PIDFILE")"
    wait_for 10 munge_works || die "munge -n | unmunge fails (see /var/log/munge/munged.log)"
}

# wait_for SECONDS CMD...: poll CMD every 0.5 s
wait_for() {
    local tries=$(($1 * 2))
    shift
    while [ $tries -gt 0 ]; do
        "$@" && return 0
        sleep 0.5
        tries=$((tries - 1))
    done
    return 1
}

write_config() {
    local node hw
    node=$(hostname -s)
    # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    hw=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
    [ -n "$hw" ] || die "slurmd -C printed nothing"
    for f in "$ETC/slurm.conf" "$ETC/gres.conf"; do
        if [ -e "$f" ] && ! ours "$f"; then
            die "$f exists and was not written by this script; refusing to replace a real cluster's config"
        fi
    done
    mkdir -p "$ETC"
    sed -e "s|@NODENAME@|$node|g" -e "s|@NODE_HW@|$hw|" -e "s|@STATE@|$STATE|g" \
        -e "s|@GPUS@|$GPUS|" -e "s|@CTLD_PORT@|$CTLD_PORT|" -e "s|@SLURMD_PORT@|$SLURMD_PORT|" \
        "$HERE/slurm.conf.in" >"$ETC/slurm.conf"
    # slurmd 22.05 drops a GPU without File= ("Removing file-less GPU gpu:(null) from final GRES
    # list"; the node goes INVALID: "gres/gpu count reported lower than configured (0 < 1)"), so
    # each GPU points at a placeholder device: a twin of /dev/null (char 1:3) named nvidiaN, or,
    # where mknod is not allowed, an empty file (slurmd then logs "not a valid character or block
    # device" but still counts it). A job given one sees CUDA_VISIBLE_DEVICES and SLURM_JOB_GPUS
    # set; no CUDA runtime finds a GPU there, so the GPU stages fall back to the CPU.
    local i dev
    mkdir -p "$STATE/dev"
    for ((i = 0; i < GPUS; i++)); do
        dev="$STATE/dev/nvidia$i"
        rm -f "$dev"
        mknod "$dev" c 1 3 2>/dev/null || : >"$dev"
    done
    cat >"$ETC/gres.conf" <<EOF
# $MARKER: written by tests/slurm/cluster.sh. Placeholder GPUs, no real device behind them.
NodeName=$node Name=gpu Count=$GPUS File=$STATE/dev/nvidia[0-$((GPUS - 1))]
EOF
    log "wrote $ETC/slurm.conf (node $node: $hw, Gres=gpu:$GPUS) and $ETC/gres.conf"
}

no_active_jobs() { [ -z "$(timeout 5 squeue -h -t RUNNING,PENDING,COMPLETING -o %i 2>/dev/null)" ]; }

node_state() { timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -1; }

node_usable() {
    case "$(node_state)" in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
    esac
}

start() {
    need_root
    mkdir -p "$STATE"
    if started_pid slurmctld >/dev/null && started_pid slurmd >/dev/null && node_usable; then
        log "already running"
        status
        return 0
    fi
    STARTING=1
    install_packages
    # a fresh cluster every time: no jobs or node states left over from an earlier start
    stop_daemons
    rm -rf "$STATE/ctld" "$STATE/slurmd" "$STARTED"
    mkdir -p "$STATE/ctld" "$STATE/slurmd"
    write_config
    start_munge

    rm -f "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
    slurmctld -c </dev/null || die "slurmctld failed to start: $(tail -5 "$STATE/slurmctld.log" 2>/dev/null)"
    wait_for 20 test -s "$STATE/slurmctld.pid" || die "slurmctld wrote no pid file: $(tail -5 "$STATE/slurmctld.log")"
    record slurmctld "$(cat "$STATE/slurmctld.pid")"
    wait_for 20 scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer: $(tail -5 "$STATE/slurmctld.log")"

    slurmd </dev/null || die "slurmd failed to start: $(tail -5 "$STATE/slurmd.log" 2>/dev/null)"
    wait_for 20 test -s "$STATE/slurmd.pid" || die "slurmd wrote no pid file: $(tail -5 "$STATE/slurmd.log")"
    record slurmd "$(cat "$STATE/slurmd.pid")"

    if ! wait_for 60 node_usable; then
        sinfo -N -l >&2 || true
        tail -n 20 "$STATE/slurmd.log" "$STATE/slurmctld.log" >&2 || true
        die "node not idle after 60 s (state: $(node_state))"
    fi
    STARTING=0
    log "cluster up (state dir $STATE)"
    status
}

# TERM, wait, then KILL one daemon we started
stop_one() {
    local name=$1 pid
    pid=$(started_pid "$name") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 eval "! alive $pid"; then
        log "$name ($pid) ignored SIGTERM; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name ($pid)"
}

stop_daemons() {
    [ -f "$STARTED" ] || return 0
    if started_pid slurmctld >/dev/null; then
        local jobs
        jobs=$(timeout 10 squeue -h -t RUNNING,PENDING,COMPLETING -o '%i' 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 20 no_active_jobs || true
        fi
    fi
    stop_one slurmd
    stop_one slurmctld
    stop_one munged
    rm -f "$STARTED"
}

stop() {
    need_root
    stop_daemons
    for f in "$ETC/slurm.conf" "$ETC/gres.conf"; do
        if ours "$f"; then rm -f "$f"; fi
    done
    log "stopped (logs kept in $STATE)"
}

status() {
    local rc=0 name pid
    for name in munged slurmctld slurmd; do
        if pid=$(started_pid "$name"); then
            echo "$name: running (pid $pid, started by cluster.sh)"
        else
            echo "$name: not started by cluster.sh"
        fi
    done
    if command -v sinfo >/dev/null && node_usable; then
        timeout 10 sinfo -o '%P %N %T %c %m %G' || true
    else
        local state="SLURM not installed"
        if command -v sinfo >/dev/null; then state=$(node_state || true); fi
        echo "cluster: not usable (node state: ${state:-none, no slurmctld answering})"
        rc=1
    fi
    return $rc
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
