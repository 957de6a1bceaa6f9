# shellcheck shell=bash
# Shared by the benches (sourced, never run): the fixture release set of build.sh and
# scheduled.sh, release signatures for any fixture mirror, and nginx serving a mirror on
# 127.0.0.1. Everything here is plain Bash and works on the caller's variables only through
# its arguments.

# Fixture helpers: random_file path size-MiB (incompressible), small_file path text,
# script_file path, pack staging-dir top out.tgz, maven_put relative-path source-file.
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
maven_put() { # relative-path source-file (into $mirror/maven, the caller's mirror)
  mkdir -p "$mirror/maven/$(dirname "$1")"
  cp "$2" "$mirror/maven/$1"
  sha1sum "$mirror/maven/$1" | cut -c1-40 >"$mirror/maven/$1.sha1"
}

# build_fixtures MIRROR REPO: the release set build.sh and scheduled.sh build images from,
# generated once into MIRROR (REPO is the checkout, for the golden Spark Dockerfile and
# entrypoint.sh): a ~230 MB Spark tarball shaped like spark-3.1.1-bin-hadoop3.2
# (incompressible padding in jars/ — copied by the Dockerfile — and in python/, R/ and yarn/,
# which it does not copy), a ~200 MB Hadoop 3.2.0, a ~25 MB metastore, the hadoop-aws POM
# chain, a ~98 MB AWS SDK bundle and the PostgreSQL driver, each with its published checksum.
build_fixtures() {
  local mirror=$1 REPO=$2 staging top s h m
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
}

# sign_releases WORK MIRROR: imgforge checks each Apache tarball's detached `.asc` against its
# project's KEYS file ([verify] signatures = true, the default) when it downloads it, so a
# fixture mirror publishes both, as the Apache mirrors do: spark/KEYS, hadoop/common/KEYS and
# hive/KEYS (for the projects MIRROR holds), and `<tarball>.asc` next to every tarball below
# them. One RSA key, generated once into WORK/gnupg by gpg (a throwaway home of its own; its
# agent is stopped before returning). A tarball is signed again when its `.asc` is missing or
# older than the tarball.
sign_releases() {
  local work=$1 mirror=$2 project tarball
  local home=$work/gnupg
  need gpg || install_packages gnupg
  if [ ! -f "$home/.generated" ]; then
    rm -rf "$home" && mkdir -m 700 -p "$home"
    GNUPGHOME=$home gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
      --quick-gen-key 'imgforge benchmark release manager <bench@imgforge.invalid>' rsa3072 sign never
    touch "$home/.generated"
    find "$mirror" -name '*.asc' -delete # made by an earlier key
  fi
  for project in spark hadoop/common hive; do
    [ -d "$mirror/$project" ] || continue
    GNUPGHOME=$home gpg --batch --quiet --armor --export >"$mirror/$project/KEYS.tmp"
    mv "$mirror/$project/KEYS.tmp" "$mirror/$project/KEYS"
    while IFS= read -r tarball; do
      [ "$tarball.asc" -nt "$tarball" ] && continue
      GNUPGHOME=$home gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '' \
        --armor --detach-sign --output "$tarball.asc.tmp" "$tarball"
      mv "$tarball.asc.tmp" "$tarball.asc"
    done < <(find "$mirror/$project" -type f \( -name '*.tgz' -o -name '*.tar.gz' \))
  done
  GNUPGHOME=$home gpgconf --kill gpg-agent
}

# serve_mirror WORK MIRROR PORT: nginx serving MIRROR on 127.0.0.1:PORT in the background,
# with its configuration, pid and error log in WORK; sets NGINX_PID (the caller stops it) and
# returns once the server answers.
serve_mirror() {
  local work=$1 mirror=$2 port=$3
  cat >"$work/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:$port; root $mirror; }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work" &
  NGINX_PID=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.1; done
  echo "nginx did not answer on 127.0.0.1:$port" >&2
  return 1
}

# need COMMAND: whether it is on PATH. install_packages PACKAGE…: apt-get, quietly (needs root).
need() { command -v "$1" >/dev/null 2>&1; }
install_packages() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Results for benches/all.sh: `result NAME IMGFORGE MANUAL LIMIT TARGET NOTE` appends one line,
# fields separated by '|', to $BENCH_RESULTS when it is set (each bench calls it once per
# figure the README reports). IMGFORGE, MANUAL and LIMIT are seconds measured in the same run
# ("-" when a side has no such figure); TARGET is the ratio the issue sets, e.g. "manual<=0.35".
result() {
  if [ -n "${BENCH_RESULTS:-}" ]; then
    printf '%s|%s|%s|%s|%s|%s\n' "$@" >>"$BENCH_RESULTS"
  fi
}
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; } # a b → a/b with two decimals
