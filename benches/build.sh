#!/usr/bin/env bash
# Benchmark: `imgforge build all` against the manual way, on the same inputs and engine.
#
#   imgforge   cold (`--no-cache`) and warm (nothing changed: every image skipped as unchanged)
#              `imgforge build all`, from a warm download cache, and one warm `--force` run
#              (rebuilt from the layer cache), whose `--json` gives the context bytes per image.
#   manual     docker-image-tool.sh-style `docker build` of the whole prepared Spark
#              distribution (-f kubernetes/dockerfiles/spark/Dockerfile), then `docker build`
#              of spark-hs and of a hive-metastore context unpacked by hand (`tar xzf` of the
#              metastore and the whole Hadoop tarball; the docker CLI honours the same
#              .dockerignore). The classic builder on both sides (DOCKER_BUILDKIT=0).
#
# Fixtures, generated once into $BENCH_DIR and served by nginx on 127.0.0.1 (benches/common.sh):
# a ~230 MB Spark tarball shaped like spark-3.1.1-bin-hadoop3.2 (incompressible padding in
# jars/ — copied by the Dockerfile — and in python/, R/ and yarn/, which it does not copy), a
# ~200 MB Hadoop 3.2.0, a ~25 MB metastore, the hadoop-aws POM chain, a ~98 MB AWS SDK bundle
# and the PostgreSQL driver, with checksums, and KEYS files and `.asc` signatures made by a
# generated key (imgforge checks them on download). Base image: imgforge-test/openjdk:17-jre
# (scripts/ci-services.sh).
# Cold builds install packages from Debian's mirror inside the build, as the real
# Dockerfiles do, so their times depend on that mirror.
#
# Not a test: it asserts nothing but prints a table; the figures go into the README.
# Usage: benches/build.sh     (WARM_RUNS=3 by default; needs root for apt-get when nginx is absent)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
WARM_RUNS=${WARM_RUNS:-3}
PORT=${PORT:-18932}
WORK=${BENCH_DIR:-/tmp/imgforge-bench-build}
BASE=imgforge-test/openjdk:17-jre
REGISTRY=imgforge-bench.local/imgforge
MANUAL=imgforge-bench.local/manual
export DOCKER_BUILDKIT=0

need nginx || install_packages nginx-light || install_packages nginx
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "base image $BASE is missing: run scripts/ci-services.sh" >&2; exit 1; }

if [ -z "${IMGFORGE:-}" ]; then # IMGFORGE=/path/to/imgforge measures that binary instead
  cargo build --release --locked --quiet
  IMGFORGE=$PWD/target/release/imgforge
fi
REPO=$PWD

# --- Fixtures -------------------------------------------------------------------------------
mirror=$WORK/mirror
build_fixtures "$mirror" "$REPO"
sign_releases "$WORK" "$mirror"
serve_mirror "$WORK" "$mirror" "$PORT"
trap 'kill $NGINX_PID 2>/dev/null || true' EXIT

# --- imgforge -------------------------------------------------------------------------------
project=$WORK/project
rm -rf "$project" && mkdir -p "$project"
cat >"$project/imgforge.toml" <<TOML
[mirrors]
apache = ["http://127.0.0.1:$PORT"]
maven = ["http://127.0.0.1:$PORT/maven"]

[images]
registry = "$REGISTRY"

[images.spark]
base = "$BASE"
java_major = 17

[images.hive-metastore]
base = "$BASE"
TOML
"$IMGFORGE" certs init --host minio.bench.test --out "$WORK/dev-ca" --force >/dev/null
mkdir -p "$project/certs" && cp "$WORK/dev-ca/ca.crt" "$project/certs/minio-ca.crt"
imgforge() { (cd "$project" && "$IMGFORGE" --cache-dir "$WORK/cache" --no-progress "$@"); }
imgforge fetch all >/dev/null 2>"$WORK/fetch.log" || { tail -30 "$WORK/fetch.log" >&2; exit 1; } # a warm download cache on both sides

now() { date +%s.%N; }
elapsed() { awk "BEGIN {printf \"%.2f\\n\", $2 - $1}"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "imgforge build all --no-cache (cold)"
start=$(now)
imgforge --json build --no-cache >"$WORK/cold.json" 2>"$WORK/cold.log" || { tail -30 "$WORK/cold.log" >&2; exit 1; }
ours_cold=$(elapsed "$start" "$(now)")
: >"$WORK/ours-warm.txt"
for run in $(seq "$WARM_RUNS"); do
  start=$(now)
  imgforge --json build >"$WORK/warm.json" 2>"$WORK/warm.log" || { tail -30 "$WORK/warm.log" >&2; exit 1; }
  elapsed "$start" "$(now)" >>"$WORK/ours-warm.txt"
  echo "imgforge build all (warm) run $run: $(tail -1 "$WORK/ours-warm.txt") s"
done
ours_warm=$(median <"$WORK/ours-warm.txt")
# A plain warm build skips the unchanged images; --force rebuilds them from the layer cache,
# which is what the context and step figures below come from.
start=$(now)
imgforge --json build --force >"$WORK/forced.json" 2>"$WORK/forced.log" || { tail -30 "$WORK/forced.log" >&2; exit 1; }
ours_forced=$(elapsed "$start" "$(now)")
echo "imgforge build all --force (warm, rebuilt from the layer cache): $ours_forced s"
field() { # report image key
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print([i for i in r["images"] if i["image"]==sys.argv[2]][0][sys.argv[3]])' "$@"
}

# --- The manual way ---------------------------------------------------------------------------
spark_tree=$project/build/spark-3.1.1-bin-hadoop3.2 # the prepared tree imgforge built from
hive_ctx=$WORK/manual-hive
hs_ctx=$WORK/manual-spark-hs # the spark-hs Dockerfile and the spark-defaults.conf written by hand
rm -rf "$hs_ctx" && mkdir -p "$hs_ctx"
cp "$REPO"/dockerfiles/spark-hs/{Dockerfile,.dockerignore} "$spark_tree/conf/spark-defaults.conf" "$hs_ctx/"
rm -rf "$hive_ctx" && mkdir -p "$hive_ctx/hive-metastore" "$hive_ctx/hadoop" "$hive_ctx/jars" "$hive_ctx/certs"
manual_hive_context() {
  tar -xzf "$mirror/hive/hive-standalone-metastore-3.0.0/hive-standalone-metastore-3.0.0-bin.tar.gz" -C "$hive_ctx/hive-metastore" --strip-components=1
  tar -xzf "$mirror/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz" -C "$hive_ctx/hadoop" --strip-components=1
  cp "$spark_tree/jars/hadoop-aws-3.2.0.jar" "$spark_tree/jars/aws-java-sdk-bundle-1.11.375.jar" "$hive_ctx/jars/"
  cp "$mirror/maven/org/postgresql/postgresql/42.2.19/postgresql-42.2.19.jar" "$hive_ctx/jars/"
  cp "$project/certs/minio-ca.crt" "$hive_ctx/certs/" && echo "minio-ca.crt imgforge-minio-ca" >"$hive_ctx/certs/aliases"
  cp "$REPO"/dockerfiles/hive-metastore/{Dockerfile,.dockerignore,launch.sh} "$REPO"/dockerfiles/common/import-certs.sh "$hive_ctx/"
}
context_of() { # build log → MiB the CLI sent ("Sending build context to Docker daemon  312.5MB", decimal units)
  tr '\r' '\n' <"$1" | awk '/Sending build context/ {v=$NF} END {
    n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit)
    f = (unit == "kB") ? 1e3 : (unit == "MB") ? 1e6 : (unit == "GB") ? 1e9 : 1
    printf "%.1f MiB", n * f / 1048576 }'
}
manual() { # extra docker build flags…
  local start spark_id
  start=$(now)
  docker build "$@" -f "$spark_tree/kubernetes/dockerfiles/spark/Dockerfile" \
    --build-arg java_image_tag=11-jre-slim --build-arg spark_uid=185 -t "$MANUAL/spark:3.1.1" "$spark_tree" >"$WORK/m-spark.log" 2>&1
  docker build "$@" --build-arg spark_image="$MANUAL/spark:3.1.1" --build-arg spark_uid=185 \
    -t "$MANUAL/spark-hs:3.1.1" "$hs_ctx" >"$WORK/m-spark-hs.log" 2>&1
  docker build "$@" --build-arg base="$BASE" -t "$MANUAL/hive-metastore:3.1.1" "$hive_ctx" >"$WORK/m-hive.log" 2>&1
  elapsed "$start" "$(now)"
}
manual_hive_context
echo "manual docker build ×3 --no-cache (cold)"
theirs_cold=$(manual --no-cache)
: >"$WORK/theirs-warm.txt"
for run in $(seq "$WARM_RUNS"); do
  manual >>"$WORK/theirs-warm.txt"
  echo "manual docker build ×3 (warm) run $run: $(tail -1 "$WORK/theirs-warm.txt") s"
done
theirs_warm=$(median <"$WORK/theirs-warm.txt")

# What the spark Dockerfile copies: the sources of its COPY lines in the prepared tree.
file_bytes() { find "$@" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
copied=$(cd "$spark_tree" && file_bytes $(grep -E '^COPY ' kubernetes/dockerfiles/spark/Dockerfile | awk '{print $(NF-1)}'))
whole=$(file_bytes "$spark_tree")
dockerfile=$(file_bytes "$spark_tree/kubernetes/dockerfiles/spark/Dockerfile")
sent=$(field "$WORK/forced.json" spark context_bytes)
mib() { awk "BEGIN {printf \"%.1f MiB\", $1 / 1048576}"; }

# The machine's reference for a warm build: the spark context's files (what its Dockerfile
# copies, and the Dockerfile) put in a tar stream and read once, no engine involved.
start=$(now)
(cd "$spark_tree" && tar -cf - $(grep -E '^COPY ' kubernetes/dockerfiles/spark/Dockerfile | awk '{print $(NF-1)}') \
  kubernetes/dockerfiles/spark/Dockerfile | cat >/dev/null)
tar_ref=$(elapsed "$start" "$(now)")

echo
echo "| | imgforge build all | manual: 3 × docker build |"
echo "| --- | --- | --- |"
echo "| cold (\`--no-cache\`, warm download cache), s | $ours_cold | $theirs_cold |"
echo "| warm (nothing changed: skipped as unchanged; median of $WARM_RUNS), s | $ours_warm | $theirs_warm |"
echo "| warm \`--force\` (rebuilt from the layer cache), s | $ours_forced | |"
echo "| ratio cold | $(ratio "$ours_cold" "$theirs_cold")× | |"
echo "| ratio warm | $(ratio "$ours_warm" "$theirs_warm")× | |"
echo "| reference: the spark context read once (\`tar c | cat\`), s | $tar_ref | |"
echo "| spark context | $(mib "$sent") | $(context_of "$WORK/m-spark.log") |"
echo "| spark-hs context | $(mib "$(field "$WORK/forced.json" spark-hs context_bytes)") | $(context_of "$WORK/m-spark-hs.log") |"
echo "| hive-metastore context | $(mib "$(field "$WORK/forced.json" hive-metastore context_bytes)") | $(context_of "$WORK/m-hive.log") |"
echo
echo "spark: the files its Dockerfile copies hold $copied bytes ($(mib "$copied")), the Dockerfile $dockerfile,"
echo "the whole prepared distribution $whole ($(mib "$whole")); imgforge sent $sent bytes: those files, the"
echo "Dockerfile and $((sent - copied - dockerfile)) bytes of tar headers and block padding."
echo "warm imgforge --force steps from cache: spark $(field "$WORK/forced.json" spark cached_steps)/$(field "$WORK/forced.json" spark cacheable_steps)," \
  "spark-hs $(field "$WORK/forced.json" spark-hs cached_steps)/$(field "$WORK/forced.json" spark-hs cacheable_steps)," \
  "hive-metastore $(field "$WORK/forced.json" hive-metastore cached_steps)/$(field "$WORK/forced.json" hive-metastore cacheable_steps)"
result "build all, cold (--no-cache)" "$ours_cold" "$theirs_cold" "-" "manual<=0.75" "manual: 3 sequential docker builds --no-cache"
result "build all, warm (nothing changed)" "$ours_warm" "$theirs_warm" "$tar_ref" "manual<=0.10" "reference: tar c of the spark context | cat"
