#!/usr/bin/env bash
# Install and start what imgforge's test suite talks to, and make the local base images.
#
# Idempotent: packages are installed only when missing, dockerd is started only when
# /var/run/docker.sock does not answer, and each base image is created only when its tag is
# absent, so a rerun takes seconds. Run as root (CI's .ci/run does; developers use sudo).
#
# Nothing can be pulled on these machines, so the base images are made here:
#   imgforge-test/openjdk:17-jre   debootstrap minbase bookworm + openjdk-17-jre-headless,
#                                  bash, tini, procps, passwd (what Spark's entrypoint needs)
#   imgforge-test/busybox:latest   busybox-static and its applet links
#   imgforge-test/jre8-layout:latest
#                                  the JRE image reshaped like a Java 8 JRE (eclipse-temurin:8-jre):
#                                  JAVA_HOME=/opt/java/jre8 with bin/ and lib/security/cacerts (no
#                                  jre/ subdirectory), and a keytool that rejects -cacerts as
#                                  Java 8's does
#
# openjdk-17-jdk-headless gives the tests javac, for the probe they run inside the images.
#
# And one download, kept across runs (tests/integration/real_spark.rs assembles a real Spark
# from it): the pyspark 3.5.3 source distribution, whose deps/ holds the release's jars/,
# bin/ and sbin/, fetched by pip from the package index, sha256-checked, cached by version
# under /var/cache/imgforge-ci/pyspark-<version>/.
#
# Tunables (environment): DEBIAN_MIRROR (default http://deb.debian.org/debian),
# DOCKERD_LOG (default /var/log/imgforge-dockerd.log), DOCKERD_WAIT_SECONDS (default 60).
set -euo pipefail

DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/imgforge-dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
DOCKER_SOCKET=/var/run/docker.sock
JRE_IMAGE=imgforge-test/openjdk:17-jre
BUSYBOX_IMAGE=imgforge-test/busybox:latest
JRE8_LAYOUT_IMAGE=imgforge-test/jre8-layout:latest
JAVA_HOME_DIR=/usr/lib/jvm/java-17-openjdk-amd64
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'ci-services: %s\n' "$*"; }
fail() {
    printf 'ci-services: error: %s\n' "$*" >&2
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    fail "must run as root (it installs packages and starts dockerd); try: sudo $0"
fi

# --- packages -------------------------------------------------------------------------------
PACKAGES=(docker.io docker-registry postgresql debootstrap busybox-static apache2-utils openssl tini curl gnupg iproute2 openjdk-17-jdk-headless)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
    say "packages: all present (${PACKAGES[*]})"
else
    say "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    say "packages: installed ${missing[*]}"
fi

# --- docker engine --------------------------------------------------------------------------
engine_answers() {
    curl -fsS --max-time 3 --unix-socket "$DOCKER_SOCKET" http://localhost/_ping >/dev/null 2>&1
}

if engine_answers; then
    say "dockerd: already answering on $DOCKER_SOCKET"
else
    say "dockerd: starting (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: the engine outlives this script and the shell that ran it.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    dockerd_pid=$!
    waited=0
    until engine_answers; do
        if ! kill -0 "$dockerd_pid" 2>/dev/null; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            fail "dockerd exited during startup; its log is $DOCKERD_LOG (last lines above)"
        fi
        if [ "$waited" -ge "$DOCKERD_WAIT_SECONDS" ]; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            fail "dockerd (pid $dockerd_pid) did not answer on $DOCKER_SOCKET within ${DOCKERD_WAIT_SECONDS}s; its log is $DOCKERD_LOG"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "dockerd: answering on $DOCKER_SOCKET after ${waited}s (pid $dockerd_pid)"
fi

# --- base images ----------------------------------------------------------------------------
image_present() {
    docker image inspect "$1" >/dev/null 2>&1
}

work_dir=""
cleanup() {
    if [ -n "$work_dir" ] && [ -d "$work_dir" ]; then
        rm -rf "$work_dir"
    fi
}
trap cleanup EXIT

if image_present "$JRE_IMAGE"; then
    say "image $JRE_IMAGE: present, debootstrap skipped"
else
    say "image $JRE_IMAGE: creating with debootstrap from $DEBIAN_MIRROR (about a minute)"
    work_dir="$(mktemp -d /var/tmp/imgforge-jre.XXXXXX)"
    rootfs="$work_dir/rootfs"
    debootstrap --variant=minbase \
        --include=openjdk-17-jre-headless,bash,tini,procps,passwd,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work_dir/debootstrap.log" 2>&1 ||
        {
            tail -n 20 "$work_dir/debootstrap.log" >&2
            fail "debootstrap of $JRE_IMAGE failed (last lines above)"
        }
    for required in "$JAVA_HOME_DIR/bin/java" "$JAVA_HOME_DIR/bin/keytool" /usr/bin/tini /bin/bash /usr/sbin/useradd /bin/ps; do
        [ -e "$rootfs$required" ] || fail "debootstrap rootfs for $JRE_IMAGE lacks $required"
    done
    # Package lists and caches only make the image bigger.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar --numeric-owner -C "$rootfs" -c . |
        docker import \
            -c "ENV JAVA_HOME=$JAVA_HOME_DIR" \
            -c "ENV PATH=$JAVA_HOME_DIR/bin:$DEFAULT_PATH" \
            - "$JRE_IMAGE" >/dev/null
    rm -rf "$work_dir"
    work_dir=""
    say "image $JRE_IMAGE: created"
fi

if image_present "$BUSYBOX_IMAGE"; then
    say "image $BUSYBOX_IMAGE: present"
else
    say "image $BUSYBOX_IMAGE: creating from busybox-static"
    work_dir="$(mktemp -d /var/tmp/imgforge-busybox.XXXXXX)"
    rootfs="$work_dir/rootfs"
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar --numeric-owner -C "$rootfs" -c . |
        docker import \
            -c "ENV PATH=/bin" \
            -c 'CMD ["/bin/sh"]' \
            - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$work_dir"
    work_dir=""
    say "image $BUSYBOX_IMAGE: created"
fi

if image_present "$JRE8_LAYOUT_IMAGE"; then
    say "image $JRE8_LAYOUT_IMAGE: present"
else
    say "image $JRE8_LAYOUT_IMAGE: creating from $JRE_IMAGE"
    work_dir="$(mktemp -d /var/tmp/imgforge-jre8.XXXXXX)"
    # keytool as Java 8's: no -cacerts option (refused when given, absent from -help).
    cat >"$work_dir/keytool" <<KEYTOOL
#!/bin/sh
for argument in "\$@"; do
    if [ "\$argument" = -cacerts ]; then
        echo "Illegal option:  -cacerts" >&2
        exit 1
    fi
done
case " \$* " in
    *" -help "*)
        $JAVA_HOME_DIR/bin/keytool "\$@" 2>&1 | grep -v -- -cacerts >&2
        exit 0
        ;;
esac
exec $JAVA_HOME_DIR/bin/keytool "\$@"
KEYTOOL
    cat >"$work_dir/Dockerfile" <<DOCKERFILE
FROM $JRE_IMAGE
COPY keytool /opt/java/jre8/bin/keytool
RUN set -eu; \\
    mkdir -p /opt/java/jre8/lib/security; \\
    cp "\$(readlink -f $JAVA_HOME_DIR/lib/security/cacerts)" /opt/java/jre8/lib/security/cacerts; \\
    chmod 0644 /opt/java/jre8/lib/security/cacerts; \\
    chmod 0755 /opt/java/jre8/bin/keytool; \\
    ln -s $JAVA_HOME_DIR/bin/java /opt/java/jre8/bin/java
ENV JAVA_HOME=/opt/java/jre8
ENV PATH=/opt/java/jre8/bin:$DEFAULT_PATH
DOCKERFILE
    docker build -q -t "$JRE8_LAYOUT_IMAGE" "$work_dir" >/dev/null ||
        fail "building $JRE8_LAYOUT_IMAGE from $JRE_IMAGE failed"
    rm -rf "$work_dir"
    work_dir=""
    say "image $JRE8_LAYOUT_IMAGE: created"
fi

# --- real Spark jars ------------------------------------------------------------------------
PYSPARK_VERSION=3.5.3
PYSPARK_SHA256=68b7cc0c0c570a7d8644f49f40d2da8709b01d30c9126cc8cf93b4f84f3d9747
PYSPARK_DIR="/var/cache/imgforge-ci/pyspark-$PYSPARK_VERSION"
PYSPARK_SDIST="$PYSPARK_DIR/pyspark-$PYSPARK_VERSION.tar.gz"

sdist_verified() {
    [ -f "$PYSPARK_SDIST" ] &&
        printf '%s  %s\n' "$PYSPARK_SHA256" "$PYSPARK_SDIST" | sha256sum -c --status
}

if sdist_verified; then
    say "pyspark $PYSPARK_VERSION sdist: cached and verified ($PYSPARK_SDIST)"
else
    say "pyspark $PYSPARK_VERSION sdist: downloading (317 MB, once per machine)"
    mkdir -p "$PYSPARK_DIR"
    # Downloaded into a folder beside the cache entry, checked, then renamed into place.
    staging="$(mktemp -d "$PYSPARK_DIR/.download.XXXXXX")"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        --dest "$staging" "pyspark==$PYSPARK_VERSION" >"$staging/pip.log" 2>&1 ||
        {
            tail -n 20 "$staging/pip.log" >&2
            rm -rf "$staging"
            fail "pip download pyspark==$PYSPARK_VERSION failed (last lines above)"
        }
    computed="$(sha256sum "$staging/pyspark-$PYSPARK_VERSION.tar.gz" | cut -d' ' -f1)"
    if [ "$computed" != "$PYSPARK_SHA256" ]; then
        rm -rf "$staging"
        fail "pyspark-$PYSPARK_VERSION.tar.gz: expected sha256 $PYSPARK_SHA256, got $computed; nothing was kept"
    fi
    mv "$staging/pyspark-$PYSPARK_VERSION.tar.gz" "$PYSPARK_SDIST"
    rm -rf "$staging"
    say "pyspark $PYSPARK_VERSION sdist: stored in $PYSPARK_DIR"
fi

say "ready"
