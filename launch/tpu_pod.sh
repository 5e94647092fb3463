#!/usr/bin/env bash
# Trains on a Cloud TPU VM slice (single host or pod): creates the TPU VM or reuses it, installs refine_jax on
# every worker, and runs the same command on all workers at once (`gcloud ... ssh --worker=all`). Each worker is
# one JAX process; `--distributed=on` makes jax.distributed detect the slice from the TPU metadata. The workdir is
# on GCS, so every worker sees the same checkpoints and a re-run resumes.
#
#   launch/tpu_pod.sh [--dry-run] --zone=us-central2-b --workdir=gs://BUCKET/runs/r50 [options] [-- main flags]
#   launch/tpu_pod.sh --zone=us-central2-b --accelerator-type=v4-32 \
#       --config=configs/imagenet_r50_mixup.py --workdir=gs://my-bucket/refine/r50 -- --config.batch_size=4096
#
# Options (each also read from the environment variable in brackets; a flag wins):
#   --name=NAME                [TPU_NAME]          TPU VM name (default refine-jax)
#   --zone=ZONE                [ZONE]              required
#   --project=PROJECT          [PROJECT]           default: gcloud's configured project
#   --accelerator-type=TYPE    [ACCELERATOR_TYPE]  default v4-32 (4 workers)
#   --version=RUNTIME          [RUNTIME_VERSION]   TPU software version (default tpu-ubuntu2204-base)
#   --spot                     [SPOT=1]            create a Spot VM (cheaper, preemptible)
#   --source=SRC               [SOURCE]            what to install on the workers:
#                                local (default): this checkout, packed and copied to every worker;
#                                git+https://HOST/REPO.git[@REF]: cloned on every worker;
#                                gs://.../*.tar.gz: a source archive (refine_jax/, configs/, setup.cfg at its
#                                root); gs://.../*.whl: a built wheel (the configs
#                                directory of this checkout is copied alongside, wheels do not carry it)
#   --jax-spec=SPEC            [JAX_SPEC]          pip requirement for jax on TPU (default jax[tpu])
#   --config=PATH              [CONFIG]            config file, relative to the source root
#                                                  (default configs/imagenet_r50_mixup.py)
#   --workdir=gs://...         [WORKDIR]           required; on GCS
#   --skip-setup               [SKIP_SETUP=1]      do not (re)install; just run
#   --setup-only                                   create/reuse and install, do not run
#   --detach                   [DETACH=1]          start the run in the background on every worker and return;
#                                                  output in ~/refine_jax.log on each worker
#   --delete                                       delete the TPU VM and exit
#   --dry-run                  [DRY_RUN=1]         print every gcloud command instead of running it
# Arguments after `--` are passed to refine_jax.main on every worker (e.g. --config.FIELD=VALUE overrides).
#
# A run interrupted by preemption is resumed by running the same command again: a preempted VM is deleted
# and recreated, the package reinstalled, and the trainer resumes from the newest checkpoint in the workdir.
set -euo pipefail

die() {
  echo "error: $*" >&2
  exit 2
}

tpu_name="${TPU_NAME:-refine-jax}"
zone="${ZONE:-}"
project="${PROJECT:-}"
accelerator_type="${ACCELERATOR_TYPE:-v4-32}"
runtime_version="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
spot="${SPOT:-0}"
source_spec="${SOURCE:-local}"
jax_spec="${JAX_SPEC:-jax[tpu]}"
config="${CONFIG:-configs/imagenet_r50_mixup.py}"
workdir="${WORKDIR:-}"
skip_setup="${SKIP_SETUP:-0}"
setup_only=0
detach="${DETACH:-0}"
delete=0
dry_run="${DRY_RUN:-0}"
extra=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --name=*) tpu_name="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --accelerator-type=*) accelerator_type="${1#*=}" ;;
    --version=*) runtime_version="${1#*=}" ;;
    --spot) spot=1 ;;
    --source=*) source_spec="${1#*=}" ;;
    --jax-spec=*) jax_spec="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --skip-setup) skip_setup=1 ;;
    --setup-only) setup_only=1 ;;
    --detach) detach=1 ;;
    --delete) delete=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help)
      sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    --)
      shift
      extra=("$@")
      break ;;
    *) die "unknown option '$1' (refine_jax.main flags go after --; see --help)" ;;
  esac
  shift
done

[[ -n "$zone" ]] || die "--zone (or ZONE) is required"
if ((!delete && !setup_only)); then
  [[ "$workdir" == gs://* ]] ||
    die "--workdir (or WORKDIR) must be a gs:// path so that all workers share it, got '${workdir}'"
fi
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

tpu=(gcloud compute tpus tpu-vm)
loc=(--zone="$zone")
[[ -z "$project" ]] || loc+=(--project="$project")

quote() {  # one word as the shell reads it back: bare if safe, else in single quotes, else printf %q
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then
    printf '%s' "$1"
  elif [[ "$1" != *"'"* ]]; then
    printf "'%s'" "$1"
  else
    printf '%q' "$1"
  fi
}

show() {  # print a command as a copy-pasteable shell line
  local sep=""
  for word in "$@"; do
    printf '%s' "$sep"
    quote "$word"
    sep=" "
  done
  printf '\n'
}

run() {  # run a command, or only print it under --dry-run
  if ((dry_run)); then
    show "$@"
  else
    echo "+ $(show "$@")" >&2
    "$@"
  fi
}

on_all_workers() {  # run a shell command line on every worker of the slice
  run "${tpu[@]}" ssh "$tpu_name" "${loc[@]}" --worker=all --command="$1"
}

if ((delete)); then
  run "${tpu[@]}" delete "$tpu_name" "${loc[@]}" --quiet
  exit 0
fi

# ---------------------------------------------------------------- 1. create the TPU VM, or reuse it
create_cmd=("${tpu[@]}" create "$tpu_name" "${loc[@]}" --accelerator-type="$accelerator_type"
            --version="$runtime_version")
((spot)) && create_cmd+=(--spot)
describe_cmd=("${tpu[@]}" describe "$tpu_name" "${loc[@]}" --format=value\(state\))
if ((dry_run)); then
  show "${describe_cmd[@]}"
  echo "# (dry run: assuming no TPU VM named ${tpu_name} exists yet; an existing READY one is reused)"
  show "${create_cmd[@]}"
else
  state="$("${describe_cmd[@]}" 2>/dev/null || true)"
  case "$state" in
    READY) echo "reusing TPU VM ${tpu_name} (READY)" >&2 ;;
    "") run "${create_cmd[@]}" ;;
    PREEMPTED | TERMINATED | FAILED)
      echo "TPU VM ${tpu_name} is ${state}; deleting and recreating it" >&2
      run "${tpu[@]}" delete "$tpu_name" "${loc[@]}" --quiet
      run "${create_cmd[@]}" ;;
    *)
      echo "TPU VM ${tpu_name} is ${state}; waiting for READY" >&2
      for _ in $(seq 120); do
        sleep 10
        state="$("${describe_cmd[@]}" 2>/dev/null || true)"
        [[ "$state" != READY ]] || break
      done
      [[ "$state" == READY ]] || die "TPU VM ${tpu_name} is ${state}, not READY" ;;
  esac
fi

# ---------------------------------------------------------------- 2. install the package on every worker
# shellcheck disable=SC2016  # $HOME is expanded on the workers, not here
src_dir='$HOME/refine_jax'
if ((!skip_setup)); then
  install_jax="python3 -m pip install -q -U $(printf '%q' "$jax_spec")"
  case "$source_spec" in
    local | gs://*.whl)
      if ((dry_run)); then
        archive="${TMPDIR:-/tmp}/refine_jax_src.tar.gz"
      else
        archive="$(mktemp -d)/refine_jax_src.tar.gz"
      fi
      parts=(configs)
      if [[ "$source_spec" == local ]]; then
        parts+=(refine_jax setup.cfg pyproject.toml)
        [[ ! -e "${repo_root}/README.md" ]] || parts+=(README.md)
      fi
      run tar -czf "$archive" -C "$repo_root" --exclude=__pycache__ --exclude='*.pyc' "${parts[@]}"
      run "${tpu[@]}" scp "$archive" "${tpu_name}:refine_jax_src.tar.gz" "${loc[@]}" --worker=all
      unpack="rm -rf ${src_dir} && mkdir -p ${src_dir} && tar -xzf \$HOME/refine_jax_src.tar.gz -C ${src_dir}"
      if [[ "$source_spec" == local ]]; then
        install_pkg="python3 -m pip install -q -e ${src_dir}"
      else
        wheel="\$HOME/$(basename "$source_spec")"
        install_pkg="gcloud storage cp $(printf '%q' "$source_spec") ${wheel} && python3 -m pip install -q ${wheel}"
      fi ;;
    gs://*.tar.gz | gs://*.tgz)
      unpack="rm -rf ${src_dir} && mkdir -p ${src_dir} && gcloud storage cp $(printf '%q' "$source_spec") \
\$HOME/refine_jax_src.tar.gz && tar -xzf \$HOME/refine_jax_src.tar.gz -C ${src_dir}"
      install_pkg="python3 -m pip install -q -e ${src_dir}" ;;
    git+*)
      url="${source_spec#git+}"
      ref=""
      if [[ "$url" =~ ^(.*\.git)@([^/]+)$ ]]; then
        url="${BASH_REMATCH[1]}"
        ref="${BASH_REMATCH[2]}"
      fi
      clone="git clone --quiet $(printf '%q' "$url") ${src_dir}"
      [[ -z "$ref" ]] || clone+=" && git -C ${src_dir} checkout --quiet $(printf '%q' "$ref")"
      unpack="rm -rf ${src_dir} && ${clone}"
      install_pkg="python3 -m pip install -q -e ${src_dir}" ;;
    *) die "--source must be local, git+URL[@REF], gs://...tar.gz or gs://...whl; got '${source_spec}'" ;;
  esac
  on_all_workers "set -euo pipefail; ${unpack} && ${install_jax} && ${install_pkg} && \
python3 -c \"import jax, refine_jax.train; print(jax.__version__)\""
fi
((!setup_only)) || exit 0

# ---------------------------------------------------------------- 3. run the same command on all workers
main_cmd=(python3 -m refine_jax.main "--config=${config}" "--workdir=${workdir}" --distributed=on "${extra[@]}")
main_line="$(printf '%q ' "${main_cmd[@]}")"
# A run from an earlier call that is still alive holds the TPU chips: stop it (by its recorded pid) first.
# shellcheck disable=SC2016  # expanded on the workers
pid_file='$HOME/refine_jax.pid'
stop_stale="if [ -f ${pid_file} ] && kill -0 \$(cat ${pid_file}) 2>/dev/null; then kill \$(cat ${pid_file}); \
sleep 10; kill -9 \$(cat ${pid_file}) 2>/dev/null || true; fi"
prefix="cd ${src_dir} || exit 2; export TF_CPP_MIN_LOG_LEVEL=2; ${stop_stale}"
if ((detach)); then
  on_all_workers "${prefix}; nohup setsid ${main_line}> \$HOME/refine_jax.log 2>&1 < /dev/null & \
echo \$! > ${pid_file}; echo worker \$(hostname): started pid \$(cat ${pid_file}), log \$HOME/refine_jax.log"
  # shellcheck disable=SC2016  # $HOME is the worker's
  echo "started on all workers; follow with: $(show "${tpu[@]}" ssh "$tpu_name" "${loc[@]}" --worker=0 \
--command='tail -f $HOME/refine_jax.log')" >&2
else
  on_all_workers "${prefix}; echo \$\$ > ${pid_file}; exec ${main_line}"
fi
