#!/bin/sh
# Imports CA certificates into the JRE's truststore at image build time; shared by the spark
# and hive-metastore images. The directory given holds the certificate files and an
# `aliases` file: one `<file> <alias>` pair per line (blank lines and lines starting with #
# are ignored). Any failed import fails the build, naming the certificate file, and prints
# `imgforge-cert-rejected alias=<alias>` as its last line for imgforge to read.
#
# The truststore is decided here, inside the image, not from a tag name: keytool's own
# `-cacerts` where it has it (Java 9 and later), else the first of
# $JAVA_HOME/lib/security/cacerts (a JRE, Java 9+ JDK), $JAVA_HOME/jre/lib/security/cacerts
# (a Java 8 JDK) and /etc/ssl/certs/java/cacerts (Debian's ca-certificates-java) that exists.
set -eu

directory=${1:?usage: import-certs.sh <certificate directory>}
aliases=$directory/aliases
if [ ! -f "$aliases" ]; then
    echo "import-certs.sh: $aliases is missing (it may be empty, but must exist)" >&2
    exit 1
fi
if ! command -v keytool >/dev/null 2>&1; then
    echo "import-certs.sh: keytool is not on PATH ($PATH); the base image needs a JRE" >&2
    exit 1
fi

# The JRE keytool belongs to, when JAVA_HOME does not say.
java_home=${JAVA_HOME:-}
if [ -z "$java_home" ]; then
    keytool_path=$(readlink -f "$(command -v keytool)")
    java_home=$(dirname "$(dirname "$keytool_path")")
fi

if keytool -importcert -help 2>&1 | grep -q -- '-cacerts'; then
    store_description="keytool -cacerts"
    set -- -cacerts
else
    truststore=""
    for candidate in "$java_home/lib/security/cacerts" "$java_home/jre/lib/security/cacerts" /etc/ssl/certs/java/cacerts; do
        if [ -f "$candidate" ]; then
            truststore=$candidate
            break
        fi
    done
    if [ -z "$truststore" ]; then
        echo "import-certs.sh: keytool has no -cacerts and no truststore was found at $java_home/lib/security/cacerts, $java_home/jre/lib/security/cacerts or /etc/ssl/certs/java/cacerts" >&2
        exit 1
    fi
    store_description=$truststore
    set -- -keystore "$truststore"
fi

count=0
while read -r file alias extra || [ -n "${file:-}" ]; do
    case $file in
        '' | '#'*) continue ;;
    esac
    if [ -z "${alias:-}" ] || [ -n "${extra:-}" ]; then
        echo "import-certs.sh: $aliases: expected '<file> <alias>', got '$file ${alias:-} ${extra:-}'" >&2
        exit 1
    fi
    if ! keytool -importcert -noprompt -trustcacerts -storepass changeit "$@" \
        -alias "$alias" -file "$directory/$file"; then
        echo "import-certs.sh: the truststore ($store_description) rejected $file (alias $alias)" >&2
        # A stable line for imgforge, which names the certificate from it (src/docker.rs).
        echo "imgforge-cert-rejected alias=$alias" >&2
        exit 1
    fi
    count=$((count + 1))
done <"$aliases"
echo "import-certs.sh: imported $count CA certificate(s) into $store_description"
