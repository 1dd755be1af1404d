#!/usr/bin/env bash
# Prints an HAProxy config for local clapsd nodes, made from the deployment
# example deploy/haproxy/haproxy.cfg: only the balancer's and the stats page's
# bind addresses, the server lines and, when asked, the health-check timing
# and the global maxconn change. `make demo-cluster` and
# tests/nodes/load_balancer.test.mjs use it.
#
# Usage: scripts/haproxy-config.sh --listen HOST:PORT --stats HOST:PORT
#          --server NAME=HOST:PORT [--server ...] [--check 'inter 200ms fall 2 rise 1']
#          [--maxconn N]   (HAProxy refuses to start when the hard fd limit is
#                           under about 2 x maxconn: a desktop's may be)
set -euo pipefail
example="$(dirname "$0")/../deploy/haproxy/haproxy.cfg"

listen="" stats="" check="" maxconn="" servers=()
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) listen=$2; shift 2 ;;
    --stats) stats=$2; shift 2 ;;
    --server) servers+=("$2"); shift 2 ;;
    --check) check=$2; shift 2 ;;
    --maxconn) maxconn=$2; shift 2 ;;
    *) echo "haproxy-config: unknown argument '$1' (see the usage in $0)" >&2; exit 2 ;;
  esac
done
if [ -z "$listen" ] || [ -z "$stats" ] || [ ${#servers[@]} -eq 0 ]; then
  echo "haproxy-config: needs --listen, --stats and at least one --server NAME=HOST:PORT" >&2
  exit 2
fi
server_lines=""
for s in "${servers[@]}"; do
  case "$s" in
    *=*:*) server_lines+="    server ${s%%=*} ${s#*=}"$'\n' ;;
    *) echo "haproxy-config: --server '$s' is not NAME=HOST:PORT" >&2; exit 2 ;;
  esac
done

# Sections start at an unindented keyword; every substitution must happen
# exactly where the example has it, else the example changed shape and this
# script says so instead of printing a config that silently lacks a part.
awk -v listen="$listen" -v stats="$stats" -v servers="$server_lines" -v check="$check" -v maxconn="$maxconn" '
  /^[a-z]/ { section = $1 " " $2 }
  section == "global " && /^ +maxconn / && maxconn != "" { print "    maxconn " maxconn; done["maxconn"] = 1; next }
  section == "frontend claps" && /^ +bind / { print "    bind " listen; done["listen"] = 1; next }
  section == "frontend stats" && /^ +bind / { print "    bind " stats; done["stats"] = 1; next }
  section == "backend clapsd" && /^ +server / {
    if (!done["servers"]) printf "%s", servers
    done["servers"] = 1
    next
  }
  section == "backend clapsd" && /^ +default-server / && check != "" {
    if (!sub(/inter [^ ]+ fall [^ ]+ rise [^ ]+/, check)) exit 3
    done["check"] = 1
  }
  { print }
  END {
    if (!done["listen"] || !done["stats"] || !done["servers"] || (check != "" && !done["check"]) ||
        (maxconn != "" && !done["maxconn"])) exit 3
  }
' "$example" || { echo "haproxy-config: $example no longer has the maxconn, bind, server or default-server lines this script replaces" >&2; exit 1; }
