#!/usr/bin/env bash
# Prepares and starts the standalone Hive metastore: checks the environment, writes the
# metastore's configuration from it, waits for PostgreSQL, creates the metastore's role and
# database when absent, initialises the schema only when it is absent, then starts the
# metastore in the foreground. The environment contract is in dockerfiles/README.md.
set -euo pipefail
# Byte-wise character classes and messages that do not depend on the image's locale.
export LC_ALL=C

# Everything this script creates holds secrets or sits beside them.
umask 077

log() {
    printf 'launch.sh: %s\n' "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

is_whole_number() {
    [[ $1 =~ ^[0-9]+$ ]]
}

# On any failure, WAIT_ON_ERROR (seconds) keeps the container alive so an operator can look
# inside it (kubectl exec) before it restarts.
# shellcheck disable=SC2317 # invoked through the EXIT trap
wait_on_error() {
    local status=$?
    trap - EXIT
    if [[ $status -ne 0 && -n ${WAIT_ON_ERROR:-} ]]; then
        if is_whole_number "$WAIT_ON_ERROR"; then
            log "exiting with status $status after WAIT_ON_ERROR=${WAIT_ON_ERROR}s; the container stays up until then"
            sleep "$WAIT_ON_ERROR" || true
        else
            log "WAIT_ON_ERROR must be a whole number of seconds; exiting at once"
        fi
    fi
    exit "$status"
}
trap wait_on_error EXIT

# Kubernetes injects METASTORE_PORT=tcp://<ip>:<port> into every pod of a namespace holding a
# Service named `metastore`; the metastore's start scripts read METASTORE_PORT as the port to
# listen on and fail on that value. The port comes from metastore-site.xml instead.
unset METASTORE_PORT

# --- Environment ---------------------------------------------------------------------------

declare -A required_descriptions=(
    [POSTGRES_HOST]="host name of the PostgreSQL server"
    [POSTGRES_ADMIN_USER]="PostgreSQL role allowed to create the metastore's role and database"
    [POSTGRES_ADMIN_PASSWORD]="password of the administrator role"
    [METASTORE_DB]="name of the metastore's PostgreSQL database"
    [METASTORE_DB_USER]="PostgreSQL role the metastore connects as"
    [METASTORE_DB_PASSWORD]="password of the metastore's role"
    [S3_ENDPOINT]="S3 endpoint URL, for example https://minio.example:9000"
    [S3_ACCESS_KEY]="S3 access key"
    [S3_SECRET_KEY]="S3 secret key"
)
# In the documented order, so the messages come out in a stable order.
required_names=(
    POSTGRES_HOST POSTGRES_ADMIN_USER POSTGRES_ADMIN_PASSWORD
    METASTORE_DB METASTORE_DB_USER METASTORE_DB_PASSWORD
    S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY
)
missing=0
for name in "${required_names[@]}"; do
    if [[ -z ${!name:-} ]]; then
        log "error: required environment variable $name is not set (${required_descriptions[$name]})"
        missing=$((missing + 1))
    fi
done
if [[ $missing -gt 0 ]]; then
    die "$missing required environment variable(s) missing; see the image's documentation"
fi

POSTGRES_PORT=${POSTGRES_PORT:-5432}
POSTGRES_ADMIN_DB=${POSTGRES_ADMIN_DB:-postgres}
POSTGRES_WAIT_SECONDS=${POSTGRES_WAIT_SECONDS:-120}
METASTORE_THRIFT_PORT=${METASTORE_THRIFT_PORT:-9083}
METASTORE_THRIFT_URI=${METASTORE_THRIFT_URI:-thrift://localhost:${METASTORE_THRIFT_PORT}}
WAREHOUSE_DIR=${WAREHOUSE_DIR:-s3a://hive/warehouse}
S3_PATH_STYLE_ACCESS=${S3_PATH_STYLE_ACCESS:-true}
S3_REQUEST_TIMEOUT=${S3_REQUEST_TIMEOUT:-60s}
S3_REGION=${S3_REGION:-}
LOG_LEVEL=${LOG_LEVEL:-INFO}
LOG_LEVEL=${LOG_LEVEL^^}

for name in POSTGRES_PORT POSTGRES_WAIT_SECONDS METASTORE_THRIFT_PORT; do
    is_whole_number "${!name}" || die "$name must be a whole number, not '${!name}'"
done
case $LOG_LEVEL in
    OFF | FATAL | ERROR | WARN | INFO | DEBUG | TRACE | ALL) ;;
    *) die "LOG_LEVEL must be one of OFF FATAL ERROR WARN INFO DEBUG TRACE ALL, not '$LOG_LEVEL'" ;;
esac
case $S3_PATH_STYLE_ACCESS in
    true | false) ;;
    *) die "S3_PATH_STYLE_ACCESS must be true or false, not '$S3_PATH_STYLE_ACCESS'" ;;
esac

[[ -n ${METASTORE_HOME:-} ]] || die "METASTORE_HOME must point at the standalone metastore (the image sets it)"
conf_dir=$METASTORE_HOME/conf
[[ -d $conf_dir && -w $conf_dir ]] || die "$conf_dir is not a writable directory"

# --- Configuration files -------------------------------------------------------------------

# Control characters other than tab, newline and carriage return cannot appear in XML 1.0.
# The message names the variable, never the value: it may be a secret.
check_xml_text() {
    local name=$1
    if [[ ${!name} == *[$'\x01'-$'\x08\x0b\x0c\x0e'-$'\x1f\x7f']* ]]; then
        die "$name contains a control character, which XML cannot hold"
    fi
}

# The replacements are quoted: since bash 5.2 an unquoted `&` in a replacement stands for the
# matched text.
xml_escape() {
    local value=$1
    value=${value//&/'&amp;'}
    value=${value//</'&lt;'}
    value=${value//>/'&gt;'}
    value=${value//\"/'&quot;'}
    value=${value//\'/'&apos;'}
    printf '%s' "$value"
}

property() {
    printf '  <property>\n    <name>%s</name>\n    <value>%s</value>\n  </property>\n' \
        "$1" "$(xml_escape "$2")"
}

# Writes stdin to $1 through a temporary file in the same directory, so a reader never sees
# a half-written file; the file gets mode $2.
write_file() {
    local target=$1 mode=$2 temporary
    temporary=$(mktemp "$target.XXXXXX")
    if ! cat >"$temporary" || ! chmod "$mode" "$temporary" || ! mv -f "$temporary" "$target"; then
        rm -f "$temporary"
        die "could not write $target"
    fi
}

for name in POSTGRES_HOST METASTORE_DB METASTORE_DB_USER METASTORE_DB_PASSWORD \
    METASTORE_THRIFT_URI WAREHOUSE_DIR S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY \
    S3_REQUEST_TIMEOUT S3_REGION; do
    check_xml_text "$name"
done

# shellcheck disable=SC2153 # POSTGRES_HOST comes from the environment, checked above
jdbc_url="jdbc:postgresql://${POSTGRES_HOST}:${POSTGRES_PORT}/${METASTORE_DB}"
{
    printf '<?xml version="1.0" encoding="UTF-8"?>\n'
    printf '<!-- Written by launch.sh from the container environment at each start. -->\n'
    printf '<configuration>\n'
    property metastore.thrift.uris "$METASTORE_THRIFT_URI"
    property metastore.thrift.port "$METASTORE_THRIFT_PORT"
    property metastore.warehouse.dir "$WAREHOUSE_DIR"
    property javax.jdo.option.ConnectionURL "$jdbc_url"
    property javax.jdo.option.ConnectionDriverName org.postgresql.Driver
    property javax.jdo.option.ConnectionUserName "$METASTORE_DB_USER"
    property javax.jdo.option.ConnectionPassword "$METASTORE_DB_PASSWORD"
    property fs.s3a.impl org.apache.hadoop.fs.s3a.S3AFileSystem
    property fs.s3a.aws.credentials.provider org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider
    property fs.s3a.endpoint "$S3_ENDPOINT"
    if [[ -n $S3_REGION ]]; then
        property fs.s3a.endpoint.region "$S3_REGION"
    fi
    property fs.s3a.access.key "$S3_ACCESS_KEY"
    property fs.s3a.secret.key "$S3_SECRET_KEY"
    property fs.s3a.path.style.access "$S3_PATH_STYLE_ACCESS"
    property fs.s3a.connection.request.timeout "$S3_REQUEST_TIMEOUT"
    printf '</configuration>\n'
} | write_file "$conf_dir/metastore-site.xml" 0600

{
    printf '# Written by launch.sh at each start; the level comes from LOG_LEVEL.\n'
    printf 'status = WARN\n'
    printf 'name = MetastoreLog4j2\n'
    printf 'appender.console.type = Console\n'
    printf 'appender.console.name = console\n'
    printf 'appender.console.target = SYSTEM_ERR\n'
    printf 'appender.console.layout.type = PatternLayout\n'
    printf 'appender.console.layout.pattern = %%d{ISO8601} %%-5p [%%t] %%c{2}: %%m%%n\n'
    printf 'rootLogger.level = %s\n' "$LOG_LEVEL"
    printf 'rootLogger.appenderRef.console.ref = console\n'
} | write_file "$conf_dir/metastore-log4j2.properties" 0644
log "wrote $conf_dir/metastore-site.xml and metastore-log4j2.properties (log level $LOG_LEVEL)"

# --- PostgreSQL ----------------------------------------------------------------------------

# Whether PostgreSQL accepts connections now: pg_isready when present, else a TCP probe.
postgres_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -t 3
    else
        # shellcheck disable=SC2016 # $1 and $2 expand in the probing shell
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$POSTGRES_HOST" "$POSTGRES_PORT" \
            2>/dev/null
    fi
}

log "waiting up to ${POSTGRES_WAIT_SECONDS}s for PostgreSQL at $POSTGRES_HOST:$POSTGRES_PORT"
# Wall-clock seconds since the epoch: bash's $SECONDS ticks in whole seconds from the shell's
# start, so a deadline counted with it can come up to a second early.
deadline=$(($(date +%s) + POSTGRES_WAIT_SECONDS))
until postgres_ready; do
    if [[ $(date +%s) -gt $deadline ]]; then
        die "PostgreSQL at $POSTGRES_HOST:$POSTGRES_PORT did not accept connections within ${POSTGRES_WAIT_SECONDS}s (POSTGRES_WAIT_SECONDS)"
    fi
    sleep 1
done

command -v psql >/dev/null 2>&1 || die "psql is not installed (the image installs postgresql-client)"

# psql as the administrator, reading SQL from stdin. Passwords travel in the environment of
# psql alone, never on a command line.
psql_admin() {
    PGPASSWORD=$POSTGRES_ADMIN_PASSWORD PGCONNECT_TIMEOUT=10 \
        psql -X -q -v ON_ERROR_STOP=1 -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" \
        -U "$POSTGRES_ADMIN_USER" -d "$POSTGRES_ADMIN_DB" "$@"
}

# psql as the metastore's role, in the metastore's database, printing bare values.
psql_metastore() {
    PGPASSWORD=$METASTORE_DB_PASSWORD PGCONNECT_TIMEOUT=10 \
        psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" \
        -U "$METASTORE_DB_USER" -d "$METASTORE_DB" "$@"
}

# Names and the password reach the server as psql variables quoted by format(%I, %L), so
# no value can change the statements. \getenv needs psql 15 or newer (bookworm has 15).
log "creating role $METASTORE_DB_USER and database $METASTORE_DB unless they exist"
if ! psql_admin -v role="$METASTORE_DB_USER" -v database="$METASTORE_DB" <<'SQL'; then
\getenv role_password METASTORE_DB_PASSWORD
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'role_password')
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = :'database')
\gexec
SQL
    die "could not create the role or database as $POSTGRES_ADMIN_USER on $POSTGRES_HOST:$POSTGRES_PORT"
fi

# schematool creates "VERSION" in the role's default schema and fills it last, so a table
# without a row means an initialisation that stopped half-way.
schema_state() {
    local exists rows
    exists=$(psql_metastore -c "SELECT to_regclass('\"VERSION\"') IS NOT NULL") ||
        die "could not connect to database $METASTORE_DB as $METASTORE_DB_USER"
    if [[ $exists != t ]]; then
        echo absent
        return
    fi
    rows=$(psql_metastore -c 'SELECT count(*) FROM "VERSION"') ||
        die "could not read the \"VERSION\" table of database $METASTORE_DB"
    if [[ $rows -gt 0 ]]; then echo present; else echo partial; fi
}

# The metastore never needs the administrator's password; neither do its tools.
unset POSTGRES_ADMIN_PASSWORD

schema=$(schema_state)
case $schema in
    present)
        log "the metastore schema is present in database $METASTORE_DB; not initialising it"
        ;;
    absent)
        log "initialising the metastore schema in database $METASTORE_DB"
        "$METASTORE_HOME/bin/schematool" -dbType postgres -initSchema ||
            die "schematool -initSchema failed"
        schema=$(schema_state)
        [[ $schema == present ]] ||
            die "schematool -initSchema succeeded but database $METASTORE_DB has no schema version"
        ;;
    partial)
        die "database $METASTORE_DB holds an empty \"VERSION\" table: an earlier schema initialisation stopped half-way; repair or drop the database, then restart"
        ;;
    *)
        exit 1
        ;;
esac

# --- Metastore -----------------------------------------------------------------------------

log "starting the metastore on port $METASTORE_THRIFT_PORT"
if [[ -z ${WAIT_ON_ERROR:-} ]]; then
    # The metastore replaces this shell, so the container's init signals it directly.
    exec "$METASTORE_HOME/bin/start-metastore"
fi

# With WAIT_ON_ERROR the shell stays as the metastore's parent so that a metastore that
# fails can still be inspected; it forwards termination signals meanwhile.
"$METASTORE_HOME/bin/start-metastore" &
metastore_pid=$!
trap 'kill -TERM "$metastore_pid" 2>/dev/null || true' TERM INT
status=0
wait "$metastore_pid" || status=$?
# A signal interrupts `wait` before the metastore is gone: wait for its own exit status.
while kill -0 "$metastore_pid" 2>/dev/null; do
    wait "$metastore_pid" || status=$?
done
trap - TERM INT
if [[ $status -ne 0 ]]; then
    log "error: the metastore exited with status $status"
fi
exit "$status"
