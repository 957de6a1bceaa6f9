#!/usr/bin/env bash
# Benchmark: `imgforge fetch` against the manual way — `curl` each tarball, then
# `sha512sum -c` — run one after the other on the same files from the same loopback server.
#
# Serves a ~230 MB Spark tarball and a ~350 MB Hadoop tarball (plus the small artifacts the
# default build also needs) with nginx on 127.0.0.1, with KEYS files and `.asc` signatures
# made by a key generated with gpg (benches/common.sh): imgforge checks them, as it does by
# default; the manual side does not run `gpg --verify`. Then reports the median wall time of
# RUNS cold-cache runs and the peak RSS of each side, then single-stream SHA-512 speed:
# `openssl speed sha512` (the machine's reference) against `imgforge cache verify`, and the
# ratio. Not a test: it asserts nothing; the figures go into the README.
#
# Usage: benches/fetch.sh            (RUNS=5 by default; needs root for apt-get when nginx is absent)
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
RUNS=${RUNS:-5}
PORT=${PORT:-18931}
WORK=${BENCH_DIR:-/tmp/imgforge-bench-fetch}

if ! need nginx || [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light time >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx time >/dev/null
fi

if [ -z "${IMGFORGE:-}" ]; then # IMGFORGE=/path/to/imgforge measures that binary instead
  cargo build --release --locked --quiet
  IMGFORGE=$PWD/target/release/imgforge
fi

mirror=$WORK/mirror
mkdir -p "$mirror"
make_tgz() { # top-dir size-MiB out [extra-file-relative-path]
  local top=$1 size=$2 out=$3 extra=${4:-}
  local staging
  staging=$(mktemp -d)
  mkdir -p "$staging/$top/jars"
  head -c "$((size * 1024 * 1024))" /dev/urandom > "$staging/$top/jars/payload.bin"
  [ -n "$extra" ] && echo "jar" > "$staging/$top/$extra"
  tar -C "$staging" -cf - "$top" | gzip -1 > "$out"
  rm -rf "$staging"
}
spark_dir=$mirror/spark/spark-3.1.1
hadoop_dir=$mirror/hadoop/common/hadoop-3.2.0
hive_dir=$mirror/hive/hive-standalone-metastore-3.0.0
if [ ! -f "$spark_dir/spark-3.1.1-bin-hadoop3.2.tgz.sha512" ]; then
  echo "generating fixtures in $mirror (once)"
  mkdir -p "$spark_dir" "$hadoop_dir" "$hive_dir"
  make_tgz spark-3.1.1-bin-hadoop3.2 230 "$spark_dir/spark-3.1.1-bin-hadoop3.2.tgz" jars/hadoop-common-3.2.0.jar
  make_tgz hadoop-3.2.0 350 "$hadoop_dir/hadoop-3.2.0.tar.gz"
  make_tgz apache-hive-metastore-3.0.0-bin 1 "$hive_dir/hive-standalone-metastore-3.0.0-bin.tar.gz"
  (cd "$spark_dir" && sha512sum spark-3.1.1-bin-hadoop3.2.tgz > spark-3.1.1-bin-hadoop3.2.tgz.sha512)
  (cd "$hadoop_dir" && sha512sum hadoop-3.2.0.tar.gz > hadoop-3.2.0.tar.gz.sha512)
  (cd "$hive_dir" && sha256sum hive-standalone-metastore-3.0.0-bin.tar.gz > hive-standalone-metastore-3.0.0-bin.tar.gz.sha256)
  for path in org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.pom \
              org/postgresql/postgresql/42.2.19/postgresql-42.2.19.jar; do
    mkdir -p "$mirror/maven/$(dirname "$path")"
    head -c 65536 /dev/urandom > "$mirror/maven/$path"
    sha1sum "$mirror/maven/$path" | cut -c1-40 > "$mirror/maven/$path.sha1"
  done
fi

# imgforge checks release signatures on download: KEYS files and .asc signatures by a generated key.
sign_releases "$WORK" "$mirror"
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

# SIGNATURES=false compares like with like: the baseline checks only the checksum, as imgforge
# then does; by default imgforge also verifies each tarball's .asc against KEYS (in the same pass).
cat > "$WORK/imgforge.toml" <<TOML
[hadoop]
version = "3.2.0"
[mirrors]
apache = ["http://127.0.0.1:$PORT"]
maven = ["http://127.0.0.1:$PORT/maven"]
[verify]
signatures = ${SIGNATURES:-true}
TOML

measure() { # label command... → prints "wall_seconds max_rss_kib"
  local stats
  stats=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$stats" "$@" >/dev/null 2>"$WORK/last-stderr" || { cat "$WORK/last-stderr" >&2; return 1; }
  cat "$stats"
  rm -f "$stats"
}

base=http://127.0.0.1:$PORT
manual() {
  cd "$WORK/manual"
  curl -fsS -o spark-3.1.1-bin-hadoop3.2.tgz "$base/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz"
  curl -fsS -o spark-3.1.1-bin-hadoop3.2.tgz.sha512 "$base/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz.sha512"
  curl -fsS -o hadoop-3.2.0.tar.gz "$base/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz"
  curl -fsS -o hadoop-3.2.0.tar.gz.sha512 "$base/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz.sha512"
  sha512sum -c spark-3.1.1-bin-hadoop3.2.tgz.sha512
  sha512sum -c hadoop-3.2.0.tar.gz.sha512
}
export -f manual
export WORK base

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$WORK/imgforge.txt"; : > "$WORK/manual.txt"
# Both sides start from the same state: outputs removed, dirty pages written, and a pause so
# the file system's background work (discards of the deleted files) does not land on either.
settle() { rm -rf "$WORK/cache" "$WORK/manual"; mkdir -p "$WORK/manual"; sync; sleep 2; }
for run in $(seq "$RUNS"); do
  settle
  (cd "$WORK" && measure "$IMGFORGE" --config "$WORK/imgforge.toml" --cache-dir "$WORK/cache" --no-progress fetch all) >> "$WORK/imgforge.txt"
  settle
  measure bash -c manual >> "$WORK/manual.txt"
  echo "run $run: imgforge $(tail -1 "$WORK/imgforge.txt")  manual $(tail -1 "$WORK/manual.txt")  (seconds, KiB)"
done

ours=$(cut -d' ' -f1 "$WORK/imgforge.txt" | median)
theirs=$(cut -d' ' -f1 "$WORK/manual.txt" | median)
ours_rss=$(cut -d' ' -f2 "$WORK/imgforge.txt" | sort -n | tail -1)
theirs_rss=$(cut -d' ' -f2 "$WORK/manual.txt" | sort -n | tail -1)
echo
echo "| | median wall time (s) | peak RSS (MiB) |"
echo "| --- | --- | --- |"
echo "| imgforge fetch all | $ours | $((ours_rss / 1024)) |"
echo "| curl + sha512sum -c, sequential | $theirs | $((theirs_rss / 1024)) |"
echo "| ratio | $(awk "BEGIN {printf \"%.2f\", $ours / $theirs}")× | |"

# Hash speed against the machine's reference, in the same run: `openssl speed sha512` (one
# stream, OpenSSL's assembly), and imgforge's single-stream SHA-512 on a real code path —
# `imgforge cache verify` re-hashes each cached artifact, one after the other, through
# src/digest.rs (the implementation the download pipeline, the signature check and extraction
# use). The artifacts are read once first, so both sides hash from memory. openssl divides by
# its user CPU time, so imgforge's figure compared with it is by CPU time (user + system:
# reading, index and startup included); the wall-time figure is printed beside it.
settle
(cd "$WORK" && "$IMGFORGE" --config "$WORK/imgforge.toml" --cache-dir "$WORK/cache" --no-progress fetch all) >/dev/null
find "$WORK/cache/artifacts-v1" -type f -exec cat {} + >/dev/null
hashed=$(find "$WORK/cache/artifacts-v1" -type f -printf '%s\n' | awk '{sum += $1} END {print sum}')
best_cpu=; best_wall=
for _ in 1 2 3; do
  read -r wall user system < <(/usr/bin/time -f '%e %U %S' "$IMGFORGE" --cache-dir "$WORK/cache" --no-progress cache verify 2>&1 >/dev/null | tail -1)
  cpu=$(awk "BEGIN {print $user + $system}")
  best_cpu=$(awk "BEGIN {print (\"$best_cpu\" == \"\" || $cpu < ${best_cpu:-0}) ? $cpu : ${best_cpu:-0}}")
  best_wall=$(awk "BEGIN {print (\"$best_wall\" == \"\" || $wall < ${best_wall:-0}) ? $wall : ${best_wall:-0}}")
done
openssl_kbs=$(openssl speed -bytes 1048576 -seconds 3 sha512 2>/dev/null | awk '$1 == "sha512" {sub(/k$/, "", $2); print $2}')
openssl_mbs=$(awk "BEGIN {printf \"%.0f\", $openssl_kbs / 1000}")
ours_cpu_mbs=$(awk "BEGIN {printf \"%.0f\", $hashed / $best_cpu / 1e6}")
ours_wall_mbs=$(awk "BEGIN {printf \"%.0f\", $hashed / $best_wall / 1e6}")
echo
echo "| SHA-512, one stream | MB/s |"
echo "| --- | --- |"
echo "| \`openssl speed -bytes 1048576 sha512\` (the machine's reference, CPU time) | $openssl_mbs |"
echo "| \`imgforge cache verify\` of $((hashed / 1000000)) MB, CPU time (best of 3) | $ours_cpu_mbs |"
echo "| \`imgforge cache verify\`, wall time (best of 3) | $ours_wall_mbs |"
echo "| ratio, CPU time | $(awk "BEGIN {printf \"%.2f\", $ours_cpu_mbs / $openssl_mbs}")× (target ≥ 0.9×) |"

# The machine's limit for the fetch: each byte hashed once at OpenSSL's speed, the two tarballs
# on the two cores. Recorded for benches/all.sh beside the fetch and the manual way.
downloaded=$(find "$WORK/cache/artifacts-v1" -type f -printf '%s\n' | awk '{sum += $1} END {print sum}')
hash_limit=$(awk "BEGIN {printf \"%.2f\", $downloaded / ($openssl_kbs * 1000) / 2}")
echo "| the machine's limit: $((downloaded / 1000000)) MB hashed once at openssl's speed on two cores, s | $hash_limit |"
signatures=with; [ "${SIGNATURES:-true}" = false ] && signatures=without
result "fetch ~580 MB, $signatures signatures" "$ours" "$theirs" "$hash_limit" "manual<=0.5,reference<=1.5" "fetch: manual is curl then sha512sum -c (no signatures), reference the two-core hash limit"
result "SHA-512 single-stream hash, CPU s per GB" "$(awk "BEGIN {printf \"%.2f\", 1000 / $ours_cpu_mbs}")" "-" "$(awk "BEGIN {printf \"%.2f\", 1000 / $openssl_mbs}")" "reference<=1.11" "hash: reference is openssl speed sha512 (≥ 0.9× its speed = ≤ 1.11× its time)"
