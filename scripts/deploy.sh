#!/usr/bin/env bash
# Deploy one commit of the bot checkout to a VM over ssh, and fail loudly if it did not land.
#
#   scripts/deploy.sh HOST COMMIT [options]
#     --dir DIR         bot checkout on the VM              (default: ~/QuantRabbit)
#     --remote NAME     git remote                          (default: origin)
#     --branch NAME     deploy branch                       (default: main)
#     --restart UNIT    restart this unit after the pull    (repeatable; e.g. the bot's workers)
#     --autolearn PATH  autolearn on the VM                 (default: autolearn on PATH)
#   env: SSH (default: ssh) - the command that runs `bash -s` on HOST.
#
# Unlike the original `vm.sh deploy` (every step `|| true`, original-system.md 3.11), any failure
# stops the deploy with a non-zero exit: dirty tracked files, a pull that cannot fast-forward,
# HEAD != COMMIT afterwards (`autolearn deploy-check`), a failed restart, a stopped mechanism.
set -euo pipefail

usage() { sed -n '2,13p' "$0" >&2; exit 64; }
[[ $# -ge 2 ]] || usage
host=$1 commit=$2
shift 2
dir='~/QuantRabbit' remote=origin branch=main autolearn=autolearn
restart=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --remote) remote=$2; shift 2 ;;
    --branch) branch=$2; shift 2 ;;
    --restart) restart+=("$2"); shift 2 ;;
    --autolearn) autolearn=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $commit =~ ^[0-9a-fA-F]{7,40}$ ]] || { echo "deploy: COMMIT must be a commit id, got '$commit'" >&2; exit 64; }

# The remote script is quoted ('REMOTE'): nothing in it expands locally; arguments go after -s.
# shellcheck disable=SC2029
${SSH:-ssh} "$host" bash -s -- "$dir" "$commit" "$remote" "$branch" "$autolearn" "${restart[@]}" <<'REMOTE'
set -euo pipefail
dir=$1 commit=$2 remote=$3 branch=$4 autolearn=$5
shift 5
dir=${dir/#\~/$HOME}
cd "$dir"
echo "deploy: $(hostname): $dir at $(git rev-parse --short HEAD), deploying $commit from $remote/$branch"
git fetch --quiet "$remote" "$branch"
dirty=$(git status --porcelain --untracked-files=no)
if [[ -n $dirty ]]; then
  echo "deploy: REFUSED: tracked files are modified on the VM (a runtime writer?):" >&2
  echo "$dirty" >&2
  echo "fix: run \`$autolearn doctor\`, save what matters, \`git checkout -- <file>\`, deploy again" >&2
  exit 1
fi
current=$(git symbolic-ref --quiet --short HEAD) || { echo "deploy: REFUSED: detached HEAD in $dir" >&2; exit 1; }
if [[ $current != "$branch" ]]; then
  echo "deploy: REFUSED: $dir is on branch '$current', not '$branch'" >&2
  exit 1
fi
git pull --ff-only --quiet "$remote" "$branch"
"$autolearn" --bot-root "$dir" deploy-check --expect "$commit" --remote "$remote" --branch "$branch"
if [[ $# -gt 0 ]]; then
  sudo systemctl daemon-reload
  sudo systemctl restart "$@"
  sudo systemctl is-active "$@"
fi
status_rc=0
"$autolearn" --bot-root "$dir" status || status_rc=$?
case $status_rc in
  0) echo "deploy: OK: $commit is live" ;;
  1) echo "deploy: deployed $commit, but autolearn status is DEGRADED (see above)" >&2 ;;
  *) echo "deploy: deployed $commit, but autolearn status exited $status_rc (STOPPED?)" >&2; exit "$status_rc" ;;
esac
REMOTE
