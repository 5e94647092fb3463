#!/usr/bin/env bash
# Runs N refine_jax processes on this machine, as a multi-host job would: one coordinator on 127.0.0.1 (a free
# port), each process started with --coordinator_address / --num_processes / --process_id. On CPU (the default
# here) each process gets DEVICES_PER_PROCESS host devices and collectives go over gloo.
#
#   launch/local_multiprocess.sh [--dry-run] NUM_PROCESSES [refine_jax.main flags...]
#   launch/local_multiprocess.sh 2 --config=configs/digits_demo.py --workdir=/tmp/refine_mp
#
# It waits for all processes. If one exits non-zero, the others are stopped (SIGTERM, then SIGKILL after
# KILL_GRACE_SECONDS) and the launcher exits with that process's status; it exits 0 only if all exit 0.
# SIGINT/SIGTERM to the launcher are forwarded to every process (the trainer saves a checkpoint and exits 3).
#
# Environment:
#   PYTHON               interpreter (default: python3, else python)
#   DEVICES_PER_PROCESS  host (CPU) devices per process (default 1); replaces any such flag in XLA_FLAGS
#   JAX_PLATFORMS        default cpu (set it to '' to let jax pick an accelerator)
#   COORDINATOR_PORT     port of the coordinator (default: a free one)
#   LOG_DIR              also write process i's output to LOG_DIR/process_i.log
#   KILL_GRACE_SECONDS   how long stopped processes get before SIGKILL (default 30)
set -euo pipefail

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=1
  shift
fi
[[ $# -ge 1 ]] || usage
num_processes="$1"
shift
if ! [[ "$num_processes" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NUM_PROCESSES must be a positive integer, got '$num_processes'" >&2
  usage
fi
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --coordinator_address=* | --num_processes=* | --process_id=*)
      echo "error: $arg is set by the launcher" >&2
      exit 2 ;;
  esac
done
args=()
for arg in "$@"; do
  [[ "$arg" == "--dry-run" ]] || args+=("$arg")
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python_bin="${PYTHON:-$(command -v python3 || command -v python)}"
devices="${DEVICES_PER_PROCESS:-1}"
grace="${KILL_GRACE_SECONDS:-30}"

if [[ -n "${COORDINATOR_PORT:-}" ]]; then
  port="$COORDINATOR_PORT"
elif [[ $dry_run -eq 1 ]]; then
  port=12355
else
  port="$("$python_bin" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')"
fi
coordinator="127.0.0.1:${port}"

# XLA_FLAGS without any previous host-device count, plus ours.
xla_flags=""
for f in ${XLA_FLAGS:-}; do
  [[ "$f" == --xla_force_host_platform_device_count=* ]] || xla_flags+="$f "
done
xla_flags+="--xla_force_host_platform_device_count=${devices}"
export XLA_FLAGS="$xla_flags"
export JAX_PLATFORMS="${JAX_PLATFORMS-cpu}"
export PYTHONPATH="${repo_root}${PYTHONPATH:+:${PYTHONPATH}}"

command_for() {  # the command line of process $1
  cmd=("$python_bin" -m refine_jax.main "${args[@]}" "--coordinator_address=${coordinator}"
       "--num_processes=${num_processes}" "--process_id=$1")
}

if [[ $dry_run -eq 1 ]]; then
  echo "# ${num_processes} processes, coordinator ${coordinator}, cwd ${repo_root}"
  for ((i = 0; i < num_processes; i++)); do
    command_for "$i"
    printf 'JAX_PLATFORMS=%q XLA_FLAGS=%q' "$JAX_PLATFORMS" "$XLA_FLAGS"
    printf ' %q' "${cmd[@]}"
    printf '\n'
  done
  exit 0
fi

if [[ -n "${LOG_DIR:-}" ]]; then
  mkdir -p "$LOG_DIR"
fi

pids=()
status=()
stop_all() {  # SIGTERM every live process, SIGKILL what is left after the grace period
  local sig_pid deadline
  for sig_pid in "${pids[@]}"; do
    kill -TERM "$sig_pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + grace))
  while ((SECONDS < deadline)); do
    local alive=0
    for sig_pid in "${pids[@]}"; do
      if kill -0 "$sig_pid" 2>/dev/null; then alive=1; fi
    done
    ((alive)) || return 0
    sleep 0.2
  done
  for sig_pid in "${pids[@]}"; do
    kill -KILL "$sig_pid" 2>/dev/null || true
  done
}

on_signal() {  # forward as SIGTERM (the trainer checkpoints and exits 3); exit 3 if every process did
  echo "[launcher] received $1; forwarding SIGTERM to all processes" >&2
  trap - INT TERM
  stop_all
  local i rc all_preempted=1
  for ((i = 0; i < ${#pids[@]}; i++)); do
    rc=0
    wait "${pids[$i]}" 2>/dev/null || rc=$?
    [[ -n "${status[$i]}" ]] && rc="${status[$i]}"
    echo "[launcher] process $i exited with status $rc" >&2
    ((rc == 3)) || all_preempted=0
  done
  wait 2>/dev/null || true
  if ((all_preempted)); then
    echo "[launcher] all processes saved a checkpoint (exit 3); re-run the same command to resume" >&2
    exit 3
  fi
  exit "$2"
}
trap 'on_signal SIGINT 130' INT
trap 'on_signal SIGTERM 143' TERM

cd "$repo_root"
for ((i = 0; i < num_processes; i++)); do
  command_for "$i"
  echo "[launcher] process $i: ${cmd[*]}" >&2
  if [[ -n "${LOG_DIR:-}" ]]; then
    "${cmd[@]}" > >(tee "${LOG_DIR}/process_${i}.log" | sed -u "s/^/[p${i}] /") 2>&1 &
  else
    "${cmd[@]}" > >(sed -u "s/^/[p${i}] /") 2>&1 &
  fi
  pids+=("$!")
  status+=("")
done
echo "[launcher] started ${num_processes} processes (pids ${pids[*]}), coordinator ${coordinator}" >&2

remaining=$num_processes
failed=0
while ((remaining > 0)); do
  for ((i = 0; i < num_processes; i++)); do
    [[ -z "${status[$i]}" ]] || continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      rc=0
      wait "${pids[$i]}" || rc=$?
      status[i]=$rc
      remaining=$((remaining - 1))
      echo "[launcher] process $i (pid ${pids[$i]}) exited with status $rc" >&2
      if ((rc != 0 && failed == 0)); then
        failed=$rc
        if ((remaining > 0)); then
          echo "[launcher] process $i failed; stopping the other processes" >&2
          stop_all
        fi
      fi
    fi
  done
  ((remaining == 0)) || sleep 0.5
done
# Let the output relays (process substitutions) drain.
wait 2>/dev/null || true
if ((failed != 0)); then
  echo "[launcher] FAILED: exit statuses ${status[*]}" >&2
  exit "$failed"
fi
echo "[launcher] all ${num_processes} processes finished" >&2
