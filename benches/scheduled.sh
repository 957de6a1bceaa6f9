#!/usr/bin/env bash
# Benchmark: the scheduled CI run when nothing changed against a full rebuild and push, for the
# three images (spark, spark-hs, hive-metastore), both from a warm download cache.
#
#   no-op     `imgforge --no-progress build --push --if-changed --exit-code` with the three
#             images already built and pushed: imgforge computes each image's input
#             fingerprint from the cache and compares it with the `imgforge.inputs.sha256`
#             label of the image in the registry; it must exit 8 (nothing to do) having built and pushed nothing. Median
#             of RUNS runs; the target is under 2 s.
#   rebuild   `imgforge --no-progress build --push --no-cache`: every image built afresh and
#             pushed. Median of FULL_RUNS runs.
#
# Fixtures as in benches/build.sh (benches/common.sh: ~230 MB Spark, ~200 MB Hadoop, ~25 MB
# metastore, the hadoop-aws POM chain, a ~98 MB AWS SDK bundle, the PostgreSQL driver, with
# checksums, KEYS files and `.asc` signatures made by a generated key, so imgforge's default
# signature check runs on the one download), served by nginx on 127.0.0.1. The registry is
# Debian's docker-registry on a loopback port with its storage in $BENCH_DIR, emptied at every
# start; the engine treats 127.0.0.0/8 as insecure, so it is plain HTTP. Base image:
# imgforge-test/openjdk:17-jre (scripts/ci-services.sh). Rebuilds install packages from
# Debian's mirror inside the build, as the real Dockerfiles do, so their times depend on that
# mirror. Peak RSS is imgforge's own (GNU time); the engine's and the registry's work is not
# in it. The script checks that the no-op runs exit 8 and that the registry received no write
# (PUT, POST, PATCH, DELETE) during them.
#
# Not a test beyond those checks: the figures go into the README.
# Usage: benches/scheduled.sh   (RUNS=5, FULL_RUNS=3 by default; needs root for apt-get when
#                                nginx, GNU time or gpg are absent)
#        IMGFORGE=/path/to/imgforge benches/scheduled.sh   measures that binary instead of a
#                                fresh release build (to compare two builds in one session)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
RUNS=${RUNS:-5}
FULL_RUNS=${FULL_RUNS:-3}
PORT=${PORT:-18934}
REGISTRY_PORT=${REGISTRY_PORT:-18935}
WORK=${BENCH_DIR:-/tmp/imgforge-bench-scheduled}
BASE=imgforge-test/openjdk:17-jre
REGISTRY_PROGRAM=/usr/bin/docker-registry

need nginx || install_packages nginx-light || install_packages nginx
[ -x /usr/bin/time ] || install_packages time
[ -x "$REGISTRY_PROGRAM" ] || install_packages docker-registry
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "base image $BASE is missing: run scripts/ci-services.sh" >&2; exit 1; }

if [ -z "${IMGFORGE:-}" ]; then
  cargo build --release --locked --quiet
  IMGFORGE=$PWD/target/release/imgforge
fi
REPO=$PWD
mkdir -p "$WORK"

# --- Fixtures, mirror and registry ------------------------------------------------------------
mirror=$WORK/mirror
build_fixtures "$mirror" "$REPO"
sign_releases "$WORK" "$mirror"
REGISTRY_PID=
trap 'kill $NGINX_PID ${REGISTRY_PID:-} 2>/dev/null || true' EXIT
serve_mirror "$WORK" "$mirror" "$PORT"

if (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null; then
  echo "127.0.0.1:$REGISTRY_PORT is in use: set REGISTRY_PORT to a free port" >&2
  exit 1
fi
rm -rf "$WORK/registry" && mkdir -p "$WORK/registry/data"
cat >"$WORK/registry/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
YAML
"$REGISTRY_PROGRAM" serve "$WORK/registry/config.yml" </dev/null >"$WORK/registry/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 150); do curl -fs -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" && break; sleep 0.1; done
curl -fs -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" \
  || { echo "docker-registry did not answer on 127.0.0.1:$REGISTRY_PORT:" >&2; tail -20 "$WORK/registry/registry.log" >&2; exit 1; }

# The base image lives in the same registry, so each scheduled run checks it upstream (a HEAD of
# its manifest, as it would on Docker Hub) instead of trusting the engine's copy.
UPSTREAM_BASE=127.0.0.1:$REGISTRY_PORT/base/openjdk:17-jre
docker tag "$BASE" "$UPSTREAM_BASE"
docker push -q "$UPSTREAM_BASE" >/dev/null

# --- Project: warm download cache, three images built and pushed --------------------------------
project=$WORK/project
rm -rf "$project" && mkdir -p "$project"
cat >"$project/imgforge.toml" <<TOML
[mirrors]
apache = ["http://127.0.0.1:$PORT"]
maven = ["http://127.0.0.1:$PORT/maven"]

[images]
registry = "127.0.0.1:$REGISTRY_PORT/bench"

[images.spark]
base = "$UPSTREAM_BASE"
java_major = 17

[images.hive-metastore]
base = "$UPSTREAM_BASE"
TOML
"$IMGFORGE" certs init --host minio.bench.test --out "$WORK/dev-ca" --force >/dev/null
mkdir -p "$project/certs" && cp "$WORK/dev-ca/ca.crt" "$project/certs/minio-ca.crt"
imgforge() { (cd "$project" && "$IMGFORGE" --cache-dir "$WORK/cache" --no-progress "$@"); }
rm -rf "$WORK/cache"
echo "warming the download cache (imgforge fetch all, signatures checked)"
imgforge fetch all >/dev/null 2>"$WORK/fetch.log" || { tail -30 "$WORK/fetch.log" >&2; exit 1; }
echo "building and pushing the three images once (imgforge build --push)"
imgforge build --push >"$WORK/initial.log" 2>&1 || { tail -30 "$WORK/initial.log" >&2; exit 1; }

# --- Measurements -------------------------------------------------------------------------------
measure() { # expected-exit-status command… → prints "wall_seconds max_rss_kib"
  local expected=$1 stats status=0
  shift
  stats=$(mktemp)
  (cd "$project" && /usr/bin/time -f '%e %M' -o "$stats" "$@") >"$WORK/last-stdout" 2>"$WORK/last-stderr" || status=$?
  if [ "$status" != "$expected" ]; then
    echo "$* exited with status $status, expected $expected:" >&2
    tail -30 "$WORK/last-stderr" >&2
    return 1
  fi
  tail -1 "$stats" # GNU time writes "Command exited with non-zero status N" first
  rm -f "$stats"
}
registry_writes() { grep -cE 'http\.request\.method=(PUT|POST|PATCH|DELETE)' "$WORK/registry/registry.log" || true; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

writes_before=$(registry_writes)
: >"$WORK/noop.txt"
for run in $(seq "$RUNS"); do
  measure 8 "$IMGFORGE" --cache-dir "$WORK/cache" --no-progress build --push --if-changed --exit-code >>"$WORK/noop.txt"
  echo "no-op run $run: $(tail -1 "$WORK/noop.txt")  (seconds, KiB)"
done
writes_during_noop=$(($(registry_writes) - writes_before))
sed 's/^/  /' "$WORK/last-stdout" "$WORK/last-stderr"
if [ "$writes_during_noop" != 0 ]; then
  echo "the no-op runs wrote to the registry $writes_during_noop times" >&2
  exit 1
fi

: >"$WORK/full.txt"
for run in $(seq "$FULL_RUNS"); do
  measure 0 "$IMGFORGE" --cache-dir "$WORK/cache" --no-progress build --push --no-cache >>"$WORK/full.txt"
  echo "full rebuild and push run $run: $(tail -1 "$WORK/full.txt")  (seconds, KiB)"
done
# A rebuild of the same inputs carries the same fingerprints: the scheduled run is a no-op again.
measure 8 "$IMGFORGE" --cache-dir "$WORK/cache" --no-progress build --push --if-changed --exit-code >/dev/null

noop=$(cut -d' ' -f1 "$WORK/noop.txt" | median)
full=$(cut -d' ' -f1 "$WORK/full.txt" | median)
noop_rss=$(cut -d' ' -f2 "$WORK/noop.txt" | sort -n | tail -1)
full_rss=$(cut -d' ' -f2 "$WORK/full.txt" | sort -n | tail -1)
echo
echo "| three images, warm download cache | median wall time (s) | peak RSS (MiB) |"
echo "| --- | --- | --- |"
echo "| \`build --push --if-changed\`, nothing changed (median of $RUNS; exit 8, no registry write) | $noop | $((noop_rss / 1024)) |"
echo "| \`build --push --no-cache\`, full rebuild and push (median of $FULL_RUNS) | $full | $((full_rss / 1024)) |"
echo "| ratio | $(awk "BEGIN {printf \"%.3f\", $noop / $full}")× (1 : $(awk "BEGIN {printf \"%.0f\", $full / $noop}")) | |"
result "scheduled no-op (build --push --if-changed)" "$noop" "$full" "-" "imgforge<=1.0" "manual column: the full rebuild and push"
