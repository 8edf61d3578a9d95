#!/usr/bin/env bash
# A real, throw-away SLURM cluster on this host, for tests/test_cluster_slurm.py and for trying profiles/slurm
# by hand: munge, MariaDB + slurmdbd (accounting: the Snakemake SLURM plugin polls sacct and hangs silently
# without it), slurmctld and one or two slurmd ("nodes" n1, n2 on this host, one fake GPU each). No systemd.
#
#   tests/slurm/cluster.sh start [1|2]   install what is missing (Debian, needs root), write configs, start
#   tests/slurm/cluster.sh status        daemons, nodes and the accounting database
#   tests/slurm/cluster.sh stop          stop the daemons this script started (by their pid files)
#   tests/slurm/cluster.sh env           print the `export SLURM_CONF=...` clients need
#
# `start` is idempotent: daemons already running are left alone. Starting in another node mode than the one
# running is refused (stop first). All state lives under $TINYRS_SLURM_DIR (default /tmp/tinyrs-slurm), except two
# things `stop` removes again: a marked line in /etc/hosts that makes n1/n2 resolve to 127.0.0.1 (torchrun's
# rendezvous reaches the first node by its name), and a symlink /etc/slurm/slurm.conf to our slurm.conf (inside a
# Snakemake job SLURM_CONF is gone: the plugin strips SLURM_* variables, so srun finds the config there; an
# existing /etc/slurm/slurm.conf that is not ours is left alone). Ports: $TINYRS_SLURM_PORT (default 16817) and up.
# Exit status: 0 ok; 3 the packages are missing and cannot be installed (not root, no apt-get); other: failure.
set -euo pipefail

DIR=${TINYRS_SLURM_DIR:-/tmp/tinyrs-slurm}
PORT=${TINYRS_SLURM_PORT:-16817}
CTLD_PORT=$PORT
DBD_PORT=$((PORT + 2))
SQL_PORT=$((PORT + 3))
SLURMD_PORT0=$((PORT + 10))       # n1 listens on +11, n2 on +12
CLUSTER=tinyrs-test
ACCOUNT=tinyrs
PARTITION=debug
HOSTS_MARK="# tinyrs-slurm test nodes ($DIR)"
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
export SLURM_CONF=$DIR/etc/slurm.conf

log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

ensure_installed() {
    local missing=0 cmd
    for cmd in slurmctld slurmd slurmdbd sbatch sacct munged mungekey mariadbd mariadb mariadb-install-db; do
        command -v "$cmd" >/dev/null || missing=1
    done
    [[ $missing == 0 ]] && return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        log "SLURM/munge/MariaDB are not installed and cannot be installed here (needs root and apt-get)"
        exit 3
    fi
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$DIR/log/apt.log" 2>&1 || { cat "$DIR/log/apt.log" >&2; exit 3; }
    apt-get install -y -qq "${PACKAGES[@]}" >>"$DIR/log/apt.log" 2>&1 \
        || { tail -20 "$DIR/log/apt.log" >&2; exit 3; }
}

# pid_alive PIDFILE COMM: the pid in PIDFILE is a live process whose name starts with COMM (guards against reuse)
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2"* ]]
}

# wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.5 s until it succeeds
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out waiting for $what (logs: $DIR/log)"
        sleep 0.5
    done
}

node_names() { if [[ $(<"$DIR/mode") == 2 ]]; then echo n1 n2; else echo n1; fi; }

write_configs() {
    local nodes=$1 node_range=n1
    [[ $nodes == 2 ]] && node_range="n[1-2]"
    cat >"$DIR/etc/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh ($nodes node mode). Settings seen working without systemd: REFERENCE.md §6.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/pids/slurmctld.pid
SlurmdPidFile=$DIR/pids/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$DIR/munge/munge.socket
AccountingStoreFlags=job_comment
GresTypes=gpu
NodeName=n1 NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=$((SLURMD_PORT0 + 1)) CPUs=2 RealMemory=4000 Gres=gpu:h100:1 State=UNKNOWN
EOF
    if [[ $nodes == 2 ]]; then
        echo "NodeName=n2 NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=$((SLURMD_PORT0 + 2)) CPUs=2 RealMemory=4000 Gres=gpu:h100:1 State=UNKNOWN" \
            >>"$DIR/etc/slurm.conf"
    fi
    echo "PartitionName=$PARTITION Nodes=$node_range Default=YES MaxTime=60 State=UP" >>"$DIR/etc/slurm.conf"
    cat >"$DIR/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$node_range Name=gpu Type=h100 File=/dev/null
EOF
    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/pids/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$SQL_PORT
StorageUser=slurm
StoragePass=tinyrs-test
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"
}

start_munge() {
    pid_alive "$DIR/pids/munged.pid" munged && return 0
    [[ -s $DIR/munge/munge.key ]] || mungekey --create --keyfile="$DIR/munge/munge.key" --force
    chmod 600 "$DIR/munge/munge.key"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/pids/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for 20 munge munge --socket="$DIR/munge/munge.socket" -n
}

sql() { mariadb --no-defaults --socket="$DIR/mysql/mysql.sock" -u root "$@"; }

start_mariadb() {
    if ! pid_alive "$DIR/pids/mariadb.pid" mariadbd; then
        if [[ ! -d $DIR/mysql/data/mysql ]]; then
            mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql/data" --auth-root-authentication-method=socket \
                >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: $DIR/log/mariadb-install.log"
        fi
        setsid mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" --socket="$DIR/mysql/mysql.sock" \
            --pid-file="$DIR/pids/mariadb.pid" --port="$SQL_PORT" --bind-address=127.0.0.1 \
            --log-error="$DIR/log/mariadb.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
        wait_for 60 MariaDB sql -e "SELECT 1"
    fi
    if [[ ! -e $DIR/mysql/.slurm-user ]]; then
        sql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'tinyrs-test';
                CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'tinyrs-test';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        touch "$DIR/mysql/.slurm-user"
    fi
}

start_slurmdbd() {
    if ! pid_alive "$DIR/pids/slurmdbd.pid" slurmdbd; then
        slurmdbd
        wait_for 60 slurmdbd sacctmgr -n show cluster
    fi
    # the account the profiles name explicitly, with root (who submits here) in it
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=tinyrs-tests organization=tinyrs >/dev/null 2>&1 || true
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -n -s list user root format=account%30 | grep -qw "$ACCOUNT" || die "account $ACCOUNT missing in slurmdbd"
}

start_slurmctld() {
    if ! pid_alive "$DIR/pids/slurmctld.pid" slurmctld; then
        slurmctld
    fi
    wait_for 60 slurmctld scontrol ping
}

nodes_idle() {
    local states
    states=$(sinfo -h -N -o "%N %t" | sort -u)
    [[ -n $states ]] && ! grep -qvE " (idle|mix|alloc)$" <<<"$states"
}

start_slurmd() {
    local node
    for node in $(node_names); do
        mkdir -p "$DIR/spool/$node"
        pid_alive "$DIR/pids/slurmd-$node.pid" slurmd || slurmd -N "$node"
    done
    sleep 1
    for node in $(node_names); do
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
    done
    wait_for 60 "idle nodes" nodes_idle
}

add_hosts_line() {
    grep -qF "$HOSTS_MARK" /etc/hosts 2>/dev/null && return 0
    if [[ -w /etc/hosts ]]; then
        echo "127.0.0.1 n1 n2 $HOSTS_MARK" >>/etc/hosts
    else
        log "warning: cannot add n1/n2 to /etc/hosts; multi-node torchrun rendezvous will not resolve them"
    fi
}

link_default_config() {
    if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$SLURM_CONF" ]]; then
        return 0
    fi
    if [[ -e /etc/slurm/slurm.conf || -L /etc/slurm/slurm.conf ]]; then
        log "warning: /etc/slurm/slurm.conf exists and is not ours; srun inside Snakemake jobs will not find this cluster"
    elif mkdir -p /etc/slurm 2>/dev/null && ln -s "$SLURM_CONF" /etc/slurm/slurm.conf 2>/dev/null; then
        return 0
    else
        log "warning: cannot link /etc/slurm/slurm.conf; srun inside Snakemake jobs will not find this cluster"
    fi
}

unlink_default_config() {
    if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$SLURM_CONF" ]]; then
        rm -f /etc/slurm/slurm.conf
    fi
}

remove_hosts_line() {
    grep -qF "$HOSTS_MARK" /etc/hosts 2>/dev/null || return 0
    local kept
    kept=$(grep -vF "$HOSTS_MARK" /etc/hosts)
    printf '%s\n' "$kept" >/etc/hosts   # rewrite in place: /etc/hosts may be a bind mount
}

cmd_start() {
    local nodes=${1:-1}
    [[ $nodes == 1 || $nodes == 2 ]] || die "node mode must be 1 or 2, got '$nodes'"
    mkdir -p "$DIR"/{etc,log,pids,munge,mysql,spool/ctld}
    chmod 700 "$DIR/munge"
    if [[ -e $DIR/mode ]] && pid_alive "$DIR/pids/slurmctld.pid" slurmctld && [[ $(<"$DIR/mode") != "$nodes" ]]; then
        die "the cluster runs in $(<"$DIR/mode")-node mode; run '$0 stop' first"
    fi
    ensure_installed
    echo "$nodes" >"$DIR/mode"
    write_configs "$nodes"
    add_hosts_line
    link_default_config
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld
    start_slurmd
    log "up: $nodes node(s), partition $PARTITION, account $ACCOUNT; clients need: export SLURM_CONF=$SLURM_CONF"
}

# stop_pid NAME COMM: TERM the process of $DIR/pids/NAME.pid, KILL it after 15 s
stop_pid() {
    local pidfile=$DIR/pids/$1.pid pid i
    if pid_alive "$pidfile" "$2"; then
        pid=$(<"$pidfile")
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            pid_alive "$pidfile" "$2" || break
            sleep 0.5
        done
        if pid_alive "$pidfile" "$2"; then
            log "$1 ($pid) ignored SIGTERM; killing it"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    local node
    for node in n2 n1; do stop_pid "slurmd-$node" slurmd; done
    stop_pid slurmctld slurmctld
    stop_pid slurmdbd slurmdbd
    stop_pid mariadb mariadbd
    stop_pid munged munged
    remove_hosts_line
    unlink_default_config
    log "stopped"
}

cmd_status() {
    local name comm rc=0
    for name in munged:munged mariadb:mariadbd slurmdbd:slurmdbd slurmctld:slurmctld slurmd-n1:slurmd slurmd-n2:slurmd; do
        comm=${name#*:}
        name=${name%%:*}
        if pid_alive "$DIR/pids/$name.pid" "$comm"; then
            echo "$name: running (pid $(<"$DIR/pids/$name.pid"))"
        else
            echo "$name: not running"
            [[ $name == slurmd-n2 && -e $DIR/mode && $(<"$DIR/mode") == 1 ]] || rc=1
        fi
    done
    if ((rc == 0)); then
        sinfo -N -o "%N %P %t %c %m %G"
        sacctmgr -n show cluster format=cluster%20
    fi
    return $rc
}

case ${1:-} in
    start) cmd_start "${2:-${TINYRS_SLURM_NODES:-1}}" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 start [1|2] | stop | status | env" >&2; exit 2 ;;
esac
