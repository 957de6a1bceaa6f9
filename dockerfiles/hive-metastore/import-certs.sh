#!/bin/sh
# Imports CA certificates into the JRE's truststore at image build time. The directory
# given holds the certificate files and an `aliases` file: one `<file> <alias>` pair per
# line (blank lines and lines starting with # are ignored). Any failed import fails the
# build.
set -eu

directory=${1:?usage: import-certs.sh <certificate directory>}
aliases=$directory/aliases
if [ ! -f "$aliases" ]; then
    echo "import-certs.sh: $aliases is missing (it may be empty, but must exist)" >&2
    exit 1
fi

# Java 9 and later know -cacerts; Java 8 keeps the truststore under jre/.
if keytool -importcert -help 2>&1 | grep -q -- '-cacerts'; then
    set -- -cacerts
else
    set -- -keystore "${JAVA_HOME:?JAVA_HOME must be set}/jre/lib/security/cacerts"
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
    if ! keytool -importcert -noprompt -storepass changeit "$@" \
        -alias "$alias" -file "$directory/$file"; then
        echo "import-certs.sh: the truststore rejected $file (alias $alias)" >&2
        exit 1
    fi
    count=$((count + 1))
done <"$aliases"
echo "import-certs.sh: imported $count CA certificate(s)"
