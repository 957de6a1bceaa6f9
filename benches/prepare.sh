#!/usr/bin/env bash
# Benchmark: `imgforge prepare` from a warm cache against the manual way on the same inputs —
# `tar xzf` the Spark tarball, `tar xzf` the Hadoop tarball, `cp` hadoop-aws and the AWS SDK
# bundle into spark/jars/, copy the log4j template to conf/log4j.properties.
#
# A ~230 MB Spark tarball shaped like spark-3.1.1-bin-hadoop3.2 (≈250 jars, conf templates,
# Python sources, the Kubernetes entrypoint.sh and Dockerfile) and a ~350 MB Hadoop 3.2.0
# tarball (≈340 jars, 160 MB of HTML documentation,
# among them share/hadoop/tools/lib/hadoop-aws-3.2.0.jar and an 80 MB
# aws-java-sdk-bundle-1.11.375.jar) are generated once, served by nginx on 127.0.0.1, and
# fetched into imgforge's cache once (the mirror also publishes KEYS files and `.asc`
# signatures by a key generated with gpg, benches/common.sh: imgforge checks them on that
# download only, so they do not touch the figures). imgforge uses
# `[s3a] jars_source = "hadoop-dist"`, so both sides read the same two tarballs. Reports the
# median wall time of RUNS runs, user and system CPU, and the peak RSS of each side. Not a
# test: it asserts nothing; the figures go into the README.
#
# Usage: benches/prepare.sh        (RUNS=5 by default; needs root for apt-get when nginx is absent)
#        IMGFORGE=/path/to/imgforge benches/prepare.sh   measures that binary instead of a fresh
#        release build (to compare two builds, e.g. main's and a branch's, in one session)
#        BASELINE=/path/to/other/imgforge benches/prepare.sh   also measures that binary in the
#        same runs, interleaved (the order rotates from run to run), and prints both rows
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
RUNS=${RUNS:-5}
PORT=${PORT:-18932}
WORK=${BENCH_DIR:-/tmp/imgforge-bench-prepare}
GOLDEN=$PWD/tests/golden/patches/spark-3.1/input

if ! need nginx || [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light time >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx time >/dev/null
fi

if [ -z "${IMGFORGE:-}" ]; then
  cargo build --release --locked --quiet
  IMGFORGE=$PWD/target/release/imgforge
fi

mirror=$WORK/mirror
spark_dir=$mirror/spark/spark-3.1.1
hadoop_dir=$mirror/hadoop/common/hadoop-3.2.0
spark_tgz=$spark_dir/spark-3.1.1-bin-hadoop3.2.tgz
hadoop_tgz=$hadoop_dir/hadoop-3.2.0.tar.gz
blob() { head -c "$2" /dev/urandom > "$1"; } # path bytes: incompressible, like a jar's deflated entries
# count bytes-each directory extension: text files that gzip shrinks about 4×, like the
# javadoc and Python sources of the real distributions (real inflate work, not stored blocks).
texts() {
  python3 - "$@" <<'PY'
import random, sys
count, size, directory, extension = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(count * 7919 + size)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11))) for _ in range(6000)]
for i in range(count):
    out, length = [], 0
    while length < size:
        line = "<p>" + " ".join(rng.choice(words) for _ in range(12)) + "</p>\n"
        out.append(line); length += len(line)
    open(f"{directory}/page-{i}.{extension}", "w").write("".join(out)[:size])
PY
}
if [ ! -f "$hadoop_tgz.sha512" ]; then
  echo "generating fixtures in $mirror (once)"
  mkdir -p "$spark_dir" "$hadoop_dir"
  staging=$(mktemp -d)

  top=$staging/spark-3.1.1-bin-hadoop3.2
  mkdir -p "$top"/{bin,sbin,conf,jars,data,examples/jars,kubernetes/dockerfiles/spark,kubernetes/tests,python/pyspark}
  echo "Spark 3.1.1 (git revision 1d550c4e90) built for Hadoop 3.2.0" > "$top/RELEASE"
  for name in spark-submit spark-shell spark-class pyspark; do printf '#!/usr/bin/env bash\necho %s\n' "$name" > "$top/bin/$name"; chmod 755 "$top/bin/$name"; done
  printf 'log4j.rootCategory=INFO, console\n' > "$top/conf/log4j.properties.template"
  printf '# spark.master spark://master:7077\n' > "$top/conf/spark-defaults.conf.template"
  cp "$GOLDEN/entrypoint.sh" "$top/kubernetes/dockerfiles/spark/entrypoint.sh"; chmod 755 "$top/kubernetes/dockerfiles/spark/entrypoint.sh"
  cp "$GOLDEN/Dockerfile" "$top/kubernetes/dockerfiles/spark/Dockerfile"
  printf '#!/bin/bash\n' > "$top/kubernetes/dockerfiles/spark/decom.sh"
  for module in core sql catalyst kubernetes hive launcher mllib streaming; do blob "$top/jars/spark-${module}_2.12-3.1.1.jar" 4000000; done
  for module in annotations auth client common hdfs-client mapreduce-client-core yarn-api yarn-common; do blob "$top/jars/hadoop-$module-3.2.0.jar" 1000000; done
  blob "$top/jars/log4j-1.2.17.jar" 489884
  for i in $(seq 220); do blob "$top/jars/dependency-$i-1.0.jar" 760000; done
  texts 600 60000 "$top/python/pyspark" py
  blob "$top/examples/jars/spark-examples_2.12-3.1.1.jar" 1500000
  for i in $(seq 300); do echo "$i 1:0.5" > "$top/data/sample-$i.txt"; done
  tar -C "$staging" -cf - spark-3.1.1-bin-hadoop3.2 | gzip -6 > "$spark_tgz"

  top=$staging/hadoop-3.2.0
  mkdir -p "$top"/{bin,sbin,etc/hadoop,share/doc/hadoop} "$top"/share/hadoop/{common/lib,hdfs/lib,yarn/lib,mapreduce,tools/lib}
  for name in hadoop hdfs yarn mapred; do printf '#!/usr/bin/env bash\n' > "$top/bin/$name"; chmod 755 "$top/bin/$name"; done
  echo '<configuration/>' > "$top/etc/hadoop/core-site.xml"
  texts 4000 40000 "$top/share/doc/hadoop" html
  for part in common/lib hdfs/lib yarn/lib mapreduce; do
    for i in $(seq 70); do blob "$top/share/hadoop/$part/lib-$i.jar" 650000; done
  done
  for i in $(seq 60); do blob "$top/share/hadoop/tools/lib/tool-$i.jar" 800000; done
  blob "$top/share/hadoop/tools/lib/hadoop-aws-3.2.0.jar" 480000
  blob "$top/share/hadoop/tools/lib/aws-java-sdk-bundle-1.11.375.jar" 80000000
  tar -C "$staging" -cf - hadoop-3.2.0 | gzip -6 > "$hadoop_tgz"
  rm -rf "$staging"
  (cd "$spark_dir" && sha512sum spark-3.1.1-bin-hadoop3.2.tgz > spark-3.1.1-bin-hadoop3.2.tgz.sha512)
  (cd "$hadoop_dir" && sha512sum hadoop-3.2.0.tar.gz > hadoop-3.2.0.tar.gz.sha512)
fi
# imgforge checks release signatures on download: KEYS files and .asc signatures by a generated key.
sign_releases "$WORK" "$mirror"
echo "inputs: Spark $(du -m "$spark_tgz" | cut -f1) MB, Hadoop $(du -m "$hadoop_tgz" | cut -f1) MB"

cat > "$WORK/nginx.conf" <<CONF
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

cat > "$WORK/imgforge.toml" <<TOML
[spark]
version = "3.1.1"
package = "hadoop3.2"
[s3a]
jars_source = "hadoop-dist"
[mirrors]
apache = ["http://127.0.0.1:$PORT"]
maven = ["http://127.0.0.1:$PORT/maven"]
TOML
imgforge() { "$IMGFORGE" --config "$WORK/imgforge.toml" --cache-dir "$WORK/cache" --no-progress "$@"; }

# Warm the cache once (this run downloads both tarballs); the measured runs then read them
# from the cache, as the manual side reads its already-downloaded copies.
rm -rf "$WORK/cache" "$WORK/out"
imgforge prepare --out "$WORK/out/imgforge" >/dev/null 2>"$WORK/warm-up.log" || { tail -30 "$WORK/warm-up.log" >&2; exit 1; }
if [ -n "${BASELINE:-}" ]; then # whatever the baseline derives from the cache, once, unmeasured
  "$BASELINE" --config "$WORK/imgforge.toml" --cache-dir "$WORK/cache" --no-progress \
    prepare --out "$WORK/out/baseline" >/dev/null 2>"$WORK/warm-up.log" || { tail -30 "$WORK/warm-up.log" >&2; exit 1; }
fi
spark_cached=$(find "$WORK/cache" -name 'spark-3.1.1-bin-hadoop3.2.tgz' | head -1)
hadoop_cached=$(find "$WORK/cache" -name 'hadoop-3.2.0.tar.gz' | head -1)

manual() {
  cd "$WORK/out/manual"
  tar xzf "$spark_cached"
  tar xzf "$hadoop_cached"
  cp hadoop-3.2.0/share/hadoop/tools/lib/hadoop-aws-3.2.0.jar spark-3.1.1-bin-hadoop3.2/jars/
  cp hadoop-3.2.0/share/hadoop/tools/lib/aws-java-sdk-bundle-1.11.375.jar spark-3.1.1-bin-hadoop3.2/jars/
  cp spark-3.1.1-bin-hadoop3.2/conf/log4j.properties.template spark-3.1.1-bin-hadoop3.2/conf/log4j.properties
}
export -f manual
# The machine's reference: both tarballs inflated at once, one per core, into nothing — the
# decompression prepare cannot avoid, without a byte written.
limit() {
  gzip -dc "$spark_cached" >/dev/null &
  gzip -dc "$hadoop_cached" >/dev/null
  wait
}
export -f limit
export WORK spark_cached hadoop_cached

measure() { # command... → prints "wall user sys max_rss_kib"
  local stats
  stats=$(mktemp)
  /usr/bin/time -f '%e %U %S %M' -o "$stats" "$@" >/dev/null 2>"$WORK/last-stderr" || { cat "$WORK/last-stderr" >&2; return 1; }
  cat "$stats"
  rm -f "$stats"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Both sides start from the same state: outputs removed, dirty pages written, a pause so
# background work on the deleted files does not land on either side.
settle() { rm -rf "$WORK/out"; mkdir -p "$WORK/out/manual"; sync; sleep 2; }
: > "$WORK/imgforge.txt"; : > "$WORK/manual.txt"; : > "$WORK/baseline.txt"
side() { # imgforge | baseline | manual → one measurement appended to its file
  settle
  case $1 in
    imgforge) measure "$IMGFORGE" --config "$WORK/imgforge.toml" --cache-dir "$WORK/cache" --no-progress \
      prepare --out "$WORK/out/imgforge" >> "$WORK/imgforge.txt" ;;
    baseline) measure "$BASELINE" --config "$WORK/imgforge.toml" --cache-dir "$WORK/cache" --no-progress \
      prepare --out "$WORK/out/baseline" >> "$WORK/baseline.txt" ;;
    manual) measure bash -c manual >> "$WORK/manual.txt" ;;
    limit) measure bash -c limit >> "$WORK/limit.txt" ;;
  esac
}
: > "$WORK/limit.txt"
sides=(imgforge manual limit)
[ -n "${BASELINE:-}" ] && sides=(imgforge baseline manual limit)
for run in $(seq "$RUNS"); do
  # Rotate the order, so no side always runs right after another's writeback.
  count=${#sides[@]}
  for index in $(seq 0 $((count - 1))); do
    side "${sides[$(( (index + run) % count ))]}"
  done
  line="run $run: imgforge $(tail -1 "$WORK/imgforge.txt")"
  [ -n "${BASELINE:-}" ] && line="$line  baseline $(tail -1 "$WORK/baseline.txt")"
  echo "$line  manual $(tail -1 "$WORK/manual.txt")  reference $(tail -1 "$WORK/limit.txt")  (wall s, user s, sys s, KiB)"
done

column_median() { cut -d' ' -f"$2" "$1" | median; }
ours=$(column_median "$WORK/imgforge.txt" 1)
theirs=$(column_median "$WORK/manual.txt" 1)
ours_rss=$(cut -d' ' -f4 "$WORK/imgforge.txt" | sort -n | tail -1)
theirs_rss=$(cut -d' ' -f4 "$WORK/manual.txt" | sort -n | tail -1)
echo
echo "| | median wall time (s) | user CPU (s) | system CPU (s) | peak RSS (MiB) |"
echo "| --- | --- | --- | --- | --- |"
echo "| imgforge prepare (hadoop-dist, warm cache) | $ours | $(column_median "$WORK/imgforge.txt" 2) | $(column_median "$WORK/imgforge.txt" 3) | $((ours_rss / 1024)) |"
if [ -n "${BASELINE:-}" ]; then
  base=$(column_median "$WORK/baseline.txt" 1)
  base_rss=$(cut -d' ' -f4 "$WORK/baseline.txt" | sort -n | tail -1)
  echo "| baseline $BASELINE | $base | $(column_median "$WORK/baseline.txt" 2) | $(column_median "$WORK/baseline.txt" 3) | $((base_rss / 1024)) |"
fi
echo "| tar xzf ×2, cp ×2, conf copy | $theirs | $(column_median "$WORK/manual.txt" 2) | $(column_median "$WORK/manual.txt" 3) | $((theirs_rss / 1024)) |"
limit=$(column_median "$WORK/limit.txt" 1)
echo "| reference: both tarballs inflated at once, nothing written (\`gzip -dc\` ×2) | $limit | $(column_median "$WORK/limit.txt" 2) | $(column_median "$WORK/limit.txt" 3) | |"
echo "| ratio to the manual way | $(ratio "$ours" "$theirs")× | | | |"
echo "| ratio to the reference | $(ratio "$ours" "$limit")× | | | |"
[ -n "${BASELINE:-}" ] && echo "| imgforge / baseline | $(awk "BEGIN {printf \"%.3f\", $ours / $base}")× | | | |"
result "prepare (hadoop-dist, warm cache)" "$ours" "$theirs" "$limit" "manual<=0.35" "reference: gzip -dc of both tarballs at once"
