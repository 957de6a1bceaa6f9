#!/usr/bin/env bash
# Benchmark: `imgforge build all` against the manual way, on the same inputs and engine.
#
#   imgforge   cold (`--no-cache`) and warm (nothing changed) `imgforge build all`, from a warm
#              download cache; the context bytes of each image come from `--json`.
#   manual     docker-image-tool.sh-style `docker build` of the whole prepared Spark
#              distribution (-f kubernetes/dockerfiles/spark/Dockerfile), then `docker build`
#              of spark-hs and of a hive-metastore context unpacked by hand (`tar xzf` of the
#              metastore and the whole Hadoop tarball; the docker CLI honours the same
#              .dockerignore). The classic builder on both sides (DOCKER_BUILDKIT=0).
#
# Fixtures, generated once into $BENCH_DIR and served by nginx on 127.0.0.1: a ~230 MB Spark
# tarball shaped like spark-3.1.1-bin-hadoop3.2 (incompressible padding in jars/ — copied by
# the Dockerfile — and in python/, R/ and yarn/, which it does not copy), a ~200 MB Hadoop
# 3.2.0, a ~25 MB metastore, the hadoop-aws POM chain, a ~98 MB AWS SDK bundle and the
# PostgreSQL driver. Base image: imgforge-test/openjdk:17-jre (scripts/ci-services.sh).
# Cold builds install packages from Debian's mirror inside the build, as the real
# Dockerfiles do, so their times depend on that mirror.
#
# Not a test: it asserts nothing but prints a table; the figures go into the README.
# Usage: benches/build.sh     (WARM_RUNS=3 by default; needs root for apt-get when nginx is absent)
set -euo pipefail
cd "$(dirname "$0")/.."
WARM_RUNS=${WARM_RUNS:-3}
PORT=${PORT:-18932}
WORK=${BENCH_DIR:-/tmp/imgforge-bench-build}
BASE=imgforge-test/openjdk:17-jre
REGISTRY=imgforge-bench.local/imgforge
MANUAL=imgforge-bench.local/manual
export DOCKER_BUILDKIT=0

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "base image $BASE is missing: run scripts/ci-services.sh" >&2; exit 1; }

cargo build --release --locked --quiet
IMGFORGE=$PWD/target/release/imgforge
REPO=$PWD

# --- Fixtures -------------------------------------------------------------------------------
mirror=$WORK/mirror
random_file() { # path size-MiB
  mkdir -p "$(dirname "$1")"
  head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}
small_file() { # path text
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" >"$1"
}
script_file() { # path
  mkdir -p "$(dirname "$1")"
  printf '#!/usr/bin/env bash\necho "%s (benchmark fixture)"\n' "$(basename "$1")" >"$1"
  chmod 0755 "$1"
}
pack() { # staging-dir top out
  tar -C "$1" -cf - "$2" | gzip -1 >"$3"
}
maven_put() { # relative-path source-file
  mkdir -p "$mirror/maven/$(dirname "$1")"
  cp "$2" "$mirror/maven/$1"
  sha1sum "$mirror/maven/$1" | cut -c1-40 >"$mirror/maven/$1.sha1"
}

if [ ! -f "$mirror/.complete" ]; then
  echo "generating fixtures in $mirror (once)"
  rm -rf "$mirror" && mkdir -p "$mirror"
  staging=$(mktemp -d)

  # Spark 3.1.1 for Hadoop 3.2.
  top=spark-3.1.1-bin-hadoop3.2
  s=$staging/$top
  for name in RELEASE LICENSE NOTICE README.md; do small_file "$s/$name" "$name of the benchmark fixture"; done
  for name in spark-submit spark-class spark-shell spark-sql pyspark load-spark-env.sh find-spark-home docker-image-tool.sh; do
    script_file "$s/bin/$name"
  done
  for name in start-history-server.sh start-master.sh spark-daemon.sh; do script_file "$s/sbin/$name"; done
  mkdir -p "$s/conf"
  printf '%s\n' 'log4j.rootCategory=INFO, console' 'log4j.appender.console=org.apache.log4j.ConsoleAppender' \
    'log4j.appender.console.target=System.err' 'log4j.appender.console.layout=org.apache.log4j.PatternLayout' \
    'log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n' >"$s/conf/log4j.properties.template"
  small_file "$s/conf/spark-defaults.conf.template" '# spark.master spark://master:7077'
  for jar in spark-core_2.12-3.1.1 spark-sql_2.12-3.1.1 spark-catalyst_2.12-3.1.1 spark-mllib_2.12-3.1.1 \
             spark-hive_2.12-3.1.1 hadoop-client-3.2.0 hive-exec-2.3.7-core scala-library-2.12.10; do
    random_file "$s/jars/$jar.jar" 20
  done
  random_file "$s/jars/zstd-jni-1.4.8-1.jar" 10
  random_file "$s/jars/breeze_2.12-1.0.jar" 10
  for jar in hadoop-common-3.2.0 hadoop-hdfs-client-3.2.0 log4j-1.2.17 slf4j-api-1.7.30 slf4j-log4j12-1.7.30; do
    random_file "$s/jars/$jar.jar" 1
  done
  random_file "$s/examples/jars/spark-examples_2.12-3.1.1.jar" 2
  random_file "$s/data/mllib/sample_libsvm_data.txt" 1
  random_file "$s/python/lib/pyspark.zip" 20
  random_file "$s/python/lib/py4j-0.10.9-src.zip" 1
  random_file "$s/R/lib/SparkR/R/SparkR.rdb" 8
  random_file "$s/yarn/spark-3.1.1-yarn-shuffle.jar" 10
  random_file "$s/licenses/LICENSE-all.txt" 1
  mkdir -p "$s/kubernetes/dockerfiles/spark" "$s/kubernetes/tests"
  cp "$REPO/tests/golden/patches/spark-3.1/input/Dockerfile" "$s/kubernetes/dockerfiles/spark/Dockerfile"
  cp "$REPO/tests/golden/patches/spark-3.1/input/entrypoint.sh" "$s/kubernetes/dockerfiles/spark/entrypoint.sh"
  script_file "$s/kubernetes/dockerfiles/spark/decom.sh"
  small_file "$s/kubernetes/tests/py_container_checks.py" 'def version_check(python_env, major_python_version): return True'
  mkdir -p "$mirror/spark/spark-3.1.1"
  pack "$staging" "$top" "$mirror/spark/spark-3.1.1/$top.tgz"
  (cd "$mirror/spark/spark-3.1.1" && sha512sum "$top.tgz" >"$top.tgz.sha512")

  # Hadoop 3.2.0.
  h=$staging/hadoop-3.2.0
  for name in hadoop hdfs yarn mapred; do script_file "$h/bin/$name"; done
  for name in hadoop-config.sh hadoop-functions.sh; do script_file "$h/libexec/$name"; done
  small_file "$h/etc/hadoop/core-site.xml" '<configuration></configuration>'
  small_file "$h/etc/hadoop/hadoop-env.sh" '# export JAVA_HOME='
  for jar in hadoop-common-3.2.0 hadoop-auth-3.2.0; do random_file "$h/share/hadoop/common/$jar.jar" 4; done
  random_file "$h/share/hadoop/common/hadoop-common-3.2.0-tests.jar" 3
  random_file "$h/share/hadoop/common/lib/guava-11.0.2.jar" 3
  random_file "$h/share/hadoop/common/lib/jackson-databind-2.9.5.jar" 2
  random_file "$h/share/hadoop/common/lib/slf4j-log4j12-1.7.25.jar" 1
  random_file "$h/share/hadoop/common/lib/assorted-libs.jar" 10
  random_file "$h/share/hadoop/hdfs/hadoop-hdfs-3.2.0.jar" 6
  random_file "$h/share/hadoop/hdfs/webapps/hdfs/ui.js" 4
  random_file "$h/share/hadoop/mapreduce/hadoop-mapreduce-client-core-3.2.0.jar" 2
  random_file "$h/share/hadoop/mapreduce/hadoop-mapreduce-examples-3.2.0.jar" 1
  random_file "$h/share/hadoop/yarn/hadoop-yarn-server-3.2.0.jar" 40
  random_file "$h/share/hadoop/tools/lib/hadoop-aws-3.2.0.jar" 1
  random_file "$h/share/hadoop/tools/lib/azure-and-friends.jar" 20
  random_file "$h/share/doc/hadoop/api.tar" 100
  mkdir -p "$mirror/hadoop/common/hadoop-3.2.0"
  pack "$staging" hadoop-3.2.0 "$mirror/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz"
  (cd "$mirror/hadoop/common/hadoop-3.2.0" && sha512sum hadoop-3.2.0.tar.gz >hadoop-3.2.0.tar.gz.sha512)

  # Hive standalone metastore 3.0.0.
  m=$staging/apache-hive-metastore-3.0.0-bin
  for name in schematool start-metastore base; do script_file "$m/bin/$name"; done
  small_file "$m/conf/metastore-site.xml" '<configuration></configuration>'
  small_file "$m/scripts/metastore/upgrade/postgres/hive-schema-3.0.0.postgres.sql" 'CREATE TABLE "VERSION" ("VER_ID" bigint);'
  random_file "$m/lib/hive-standalone-metastore-3.0.0.jar" 8
  random_file "$m/lib/datanucleus-and-friends.jar" 16
  random_file "$m/lib/slf4j-log4j12-1.7.10.jar" 1
  mkdir -p "$mirror/hive/hive-standalone-metastore-3.0.0"
  pack "$staging" apache-hive-metastore-3.0.0-bin "$mirror/hive/hive-standalone-metastore-3.0.0/hive-standalone-metastore-3.0.0-bin.tar.gz"
  (cd "$mirror/hive/hive-standalone-metastore-3.0.0" && sha256sum hive-standalone-metastore-3.0.0-bin.tar.gz >hive-standalone-metastore-3.0.0-bin.tar.gz.sha256)

  # Maven: hadoop-aws and its POM chain (which names the SDK), the SDK bundle, PostgreSQL.
  random_file "$staging/hadoop-aws.jar" 1
  maven_put org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar "$staging/hadoop-aws.jar"
  cat >"$staging/hadoop-aws.pom" <<'POM'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>org.apache.hadoop</groupId><artifactId>hadoop-project</artifactId><version>3.2.0</version></parent>
  <artifactId>hadoop-aws</artifactId><version>3.2.0</version><packaging>jar</packaging>
  <dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-common</artifactId><scope>provided</scope></dependency>
    <dependency><groupId>com.amazonaws</groupId><artifactId>aws-java-sdk-bundle</artifactId><scope>compile</scope></dependency>
  </dependencies>
</project>
POM
  maven_put org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.pom "$staging/hadoop-aws.pom"
  cat >"$staging/hadoop-project.pom" <<'POM'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>org.apache.hadoop</groupId><artifactId>hadoop-main</artifactId><version>3.2.0</version></parent>
  <artifactId>hadoop-project</artifactId><version>3.2.0</version><packaging>pom</packaging>
  <properties><hadoop.version>3.2.0</hadoop.version><aws-java-sdk.version>1.11.375</aws-java-sdk.version></properties>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-common</artifactId><version>${hadoop.version}</version></dependency>
    <dependency><groupId>com.amazonaws</groupId><artifactId>aws-java-sdk-bundle</artifactId><version>${aws-java-sdk.version}</version></dependency>
  </dependencies></dependencyManagement>
</project>
POM
  maven_put org/apache/hadoop/hadoop-project/3.2.0/hadoop-project-3.2.0.pom "$staging/hadoop-project.pom"
  cat >"$staging/hadoop-main.pom" <<'POM'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.apache.hadoop</groupId><artifactId>hadoop-main</artifactId><version>3.2.0</version><packaging>pom</packaging>
</project>
POM
  maven_put org/apache/hadoop/hadoop-main/3.2.0/hadoop-main-3.2.0.pom "$staging/hadoop-main.pom"
  random_file "$staging/sdk.jar" 98
  maven_put com/amazonaws/aws-java-sdk-bundle/1.11.375/aws-java-sdk-bundle-1.11.375.jar "$staging/sdk.jar"
  random_file "$staging/postgresql.jar" 1
  maven_put org/postgresql/postgresql/42.2.19/postgresql-42.2.19.jar "$staging/postgresql.jar"
  rm -rf "$staging"
  touch "$mirror/.complete"
fi

cat >"$WORK/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:$PORT; root $mirror; }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz.sha512" && break; sleep 0.1; done

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
imgforge fetch all >/dev/null 2>&1 # a warm download cache on both sides

now() { date +%s.%N; }
elapsed() { awk "BEGIN {printf \"%.1f\\n\", $2 - $1}"; }
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
field() { # report image key
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print([i for i in r["images"] if i["image"]==sys.argv[2]][0][sys.argv[3]])' "$@"
}

# --- The manual way ---------------------------------------------------------------------------
spark_tree=$project/build/spark-3.1.1-bin-hadoop3.2 # the prepared tree imgforge built from
hive_ctx=$WORK/manual-hive
rm -rf "$hive_ctx" && mkdir -p "$hive_ctx/hive-metastore" "$hive_ctx/hadoop" "$hive_ctx/jars" "$hive_ctx/certs"
manual_hive_context() {
  tar -xzf "$mirror/hive/hive-standalone-metastore-3.0.0/hive-standalone-metastore-3.0.0-bin.tar.gz" -C "$hive_ctx/hive-metastore" --strip-components=1
  tar -xzf "$mirror/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz" -C "$hive_ctx/hadoop" --strip-components=1
  cp "$spark_tree/jars/hadoop-aws-3.2.0.jar" "$spark_tree/jars/aws-java-sdk-bundle-1.11.375.jar" "$hive_ctx/jars/"
  cp "$mirror/maven/org/postgresql/postgresql/42.2.19/postgresql-42.2.19.jar" "$hive_ctx/jars/"
  cp "$project/certs/minio-ca.crt" "$hive_ctx/certs/" && echo "minio-ca.crt imgforge-minio-ca" >"$hive_ctx/certs/aliases"
  cp "$REPO"/dockerfiles/hive-metastore/{Dockerfile,.dockerignore,launch.sh,import-certs.sh} "$hive_ctx/"
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
    -t "$MANUAL/spark-hs:3.1.1" "$REPO/dockerfiles/spark-hs" >"$WORK/m-spark-hs.log" 2>&1
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
sent=$(field "$WORK/warm.json" spark context_bytes)
mib() { awk "BEGIN {printf \"%.1f MiB\", $1 / 1048576}"; }

echo
echo "| | imgforge build all | manual: 3 × docker build |"
echo "| --- | --- | --- |"
echo "| cold (\`--no-cache\`, warm download cache), s | $ours_cold | $theirs_cold |"
echo "| warm (nothing changed; median of $WARM_RUNS), s | $ours_warm | $theirs_warm |"
echo "| spark context | $(mib "$sent") | $(context_of "$WORK/m-spark.log") |"
echo "| spark-hs context | $(mib "$(field "$WORK/warm.json" spark-hs context_bytes)") | $(context_of "$WORK/m-spark-hs.log") |"
echo "| hive-metastore context | $(mib "$(field "$WORK/warm.json" hive-metastore context_bytes)") | $(context_of "$WORK/m-hive.log") |"
echo
echo "spark: the files its Dockerfile copies hold $copied bytes ($(mib "$copied")), the Dockerfile $dockerfile,"
echo "the whole prepared distribution $whole ($(mib "$whole")); imgforge sent $sent bytes: those files, the"
echo "Dockerfile and $((sent - copied - dockerfile)) bytes of tar headers and block padding."
echo "warm imgforge steps from cache: spark $(field "$WORK/warm.json" spark cached_steps)/$(field "$WORK/warm.json" spark cacheable_steps)," \
  "spark-hs $(field "$WORK/warm.json" spark-hs cached_steps)/$(field "$WORK/warm.json" spark-hs cacheable_steps)," \
  "hive-metastore $(field "$WORK/warm.json" hive-metastore cached_steps)/$(field "$WORK/warm.json" hive-metastore cacheable_steps)"
