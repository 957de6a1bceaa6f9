# Shared by the test doubles of the metastore's scripts (sourced, not run).
# FIXTURE_RECORD names the file each invocation appends one line to: tab-separated fields
# `<tool>`, `args=<arguments>`, `METASTORE_PORT=<value or (unset)>`,
# `POSTGRES_ADMIN_PASSWORD=<(set) or (unset)>`, `METASTORE_HOME=<value>`.

fail() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 97
}

record() {
    local tool=$1
    shift
    [[ -n ${FIXTURE_RECORD:-} ]] || fail "FIXTURE_RECORD must name the record file"
    local admin_password="(unset)"
    [[ -z ${POSTGRES_ADMIN_PASSWORD+x} ]] || admin_password="(set)"
    printf '%s\targs=%s\tMETASTORE_PORT=%s\tPOSTGRES_ADMIN_PASSWORD=%s\tMETASTORE_HOME=%s\n' \
        "$tool" "$*" "${METASTORE_PORT-(unset)}" "$admin_password" "${METASTORE_HOME-(unset)}" \
        >>"$FIXTURE_RECORD"
}

# The value of a property in $METASTORE_HOME/conf/metastore-site.xml, unescaped. It reads
# the layout launch.sh writes (name and value on their own lines), which is all it needs.
site_property() {
    local site=$METASTORE_HOME/conf/metastore-site.xml value
    [[ -r $site ]] || fail "$site is not readable"
    value=$(awk -v name="$1" '
        index($0, "<name>" name "</name>") { found = 1; next }
        found && match($0, /<value>.*<\/value>/) { print substr($0, RSTART + 7, RLENGTH - 15); exit }
    ' "$site")
    value=${value//'&lt;'/<}
    value=${value//'&gt;'/>}
    value=${value//'&quot;'/\"}
    value=${value//'&apos;'/\'}
    value=${value//'&amp;'/'&'}
    printf '%s' "$value"
}
