#!/bin/sh
# First start: initialise PGDATA (scram-sha-256 for every TCP client, trust only on the local
# socket, in /tmp, inside the container), create the database; then run postgres in the foreground.
set -eu
: "${POSTGRES_USER:?set POSTGRES_USER (the database owner)}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (from the credentials Secret)}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses='' -c unix_socket_directories=/tmp" \
    --log="$PGDATA/init.log" --wait start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    createdb --host=/tmp --username="$POSTGRES_USER" --owner="$POSTGRES_USER" "$POSTGRES_DB"
  fi
  pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
  echo "m2m-postgres: initialised $PGDATA (database $POSTGRES_DB, owner $POSTGRES_USER)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c jit=off -c unix_socket_directories=/tmp "$@"
