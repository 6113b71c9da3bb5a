#!/usr/bin/env bash
# Start a real Neo4j 5 (Community) on loopback for the label-graph contract tests.
#   infra/neo4j/start.sh            # docker (or podman) container "samplehub-neo4j"
#   NEO4J_HOME=/opt/neo4j infra/neo4j/start.sh   # an unpacked Neo4j tarball (needs Java 17+)
# Then: export NEO4J_URI=bolt://localhost:7687 NEO4J_USER=neo4j NEO4J_PASSWORD=samplehub
#       .venv/bin/pytest tests/samplehub/labels -k neo4j
set -euo pipefail
PASSWORD="${NEO4J_PASSWORD:-samplehub}"
PORT="${NEO4J_BOLT_PORT:-7687}"
if [[ -n "${NEO4J_HOME:-}" ]]; then
  "$NEO4J_HOME/bin/neo4j-admin" dbms set-initial-password "$PASSWORD" || true
  NEO4J_server_bolt_listen__address="127.0.0.1:$PORT" "$NEO4J_HOME/bin/neo4j" start
else
  engine="$(command -v docker || command -v podman || true)"
  if [[ -z "$engine" ]]; then
    echo "neither docker/podman nor NEO4J_HOME is available; see infra/neo4j/README.md" >&2
    exit 1
  fi
  "$engine" rm -f samplehub-neo4j >/dev/null 2>&1 || true
  "$engine" run -d --name samplehub-neo4j -p "127.0.0.1:$PORT:7687" \
    -e NEO4J_AUTH="neo4j/$PASSWORD" neo4j:5-community >/dev/null
fi
# Wait until Bolt answers (the contract tests fail fast on a server that is down).
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "Neo4j ready: export NEO4J_URI=bolt://localhost:$PORT NEO4J_USER=neo4j NEO4J_PASSWORD=$PASSWORD"
    exit 0
  fi
  sleep 2
done
echo "Neo4j did not open bolt port $PORT within 120 s" >&2
exit 1
