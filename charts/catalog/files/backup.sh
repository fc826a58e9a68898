#!/bin/sh
# The catalog database's backup sidecar: uploads the WAL segments PostgreSQL's archive_command
# spooled, takes a base backup when the last one is older than the interval, then deletes what
# the recovery window no longer needs. barman-cloud does the work; this only schedules it.
set -u
spool="${BACKUP_SPOOL:-/var/lib/postgresql/wal-spool}"
stamp="$spool/.last-base-backup"
checked="$spool/.archive-checked"
# Touched at each round: the liveness probe restarts a sidecar whose barman-cloud hangs.
heartbeat="${BACKUP_HEARTBEAT:-/tmp/backup-heartbeat}"
set -- --cloud-provider aws-s3
if [ -n "${BACKUP_ENDPOINT_URL:-}" ]; then
  set -- "$@" --endpoint-url "$BACKUP_ENDPOINT_URL"
fi

archive_ours() {
  # A database writes into an archive only if the archive is empty or already its own (the
  # marker lives on the data volume): a new database, e.g. on a new volume after losing the
  # cluster, would otherwise overwrite the lost one's WAL with segments of the same names.
  [ -f "$checked" ] && return 0
  barman-cloud-check-wal-archive "$@" "$BACKUP_URL" "$BACKUP_SERVER_NAME"
  status=$?
  if [ "$status" -eq 0 ]; then
    date +%s >"$checked"
    return 0
  fi
  # Status 1: the store answered and the archive holds WAL; 2 (network) or 4: it could not check.
  if [ "$status" -eq 1 ]; then
    echo "backup: failed: $BACKUP_URL/$BACKUP_SERVER_NAME holds WAL of another database; nothing is uploaded until it is moved away or this database is restored from it (docs/operations.md, Backups and restore)" >&2
  else
    echo "backup: failed: the archive at $BACKUP_URL/$BACKUP_SERVER_NAME could not be checked (status $status, the error above); nothing is uploaded until it can" >&2
  fi
  return 1
}

upload_wal() {
  archive_ours "$@" || return 1
  # Oldest first (WAL names sort in order); stop at the first failure so none is skipped.
  for wal in "$spool"/*; do
    [ -f "$wal" ] || continue
    case "$wal" in *.part) continue ;; esac
    barman-cloud-wal-archive "$@" "$BACKUP_URL" "$BACKUP_SERVER_NAME" "$wal" || return 1
    rm -f "$wal"
  done
}

base_backup_due() {
  last=$(cat "$stamp" 2>/dev/null || echo 0)
  [ $(($(date +%s) - last)) -ge "$BACKUP_INTERVAL_SECONDS" ]
}

while :; do
  touch "$heartbeat"
  upload_wal "$@" || echo "backup: WAL upload failed; retrying in ${BACKUP_POLL_SECONDS}s" >&2
  if base_backup_due && archive_ours "$@"; then
    if barman-cloud-backup "$@" --immediate-checkpoint "$BACKUP_URL" "$BACKUP_SERVER_NAME"; then
      date +%s >"$stamp"
      # The backup's last WAL segment is spooled by now: upload it, so the backup restores at once.
      upload_wal "$@" || echo "backup: WAL upload failed; retrying in ${BACKUP_POLL_SECONDS}s" >&2
      barman-cloud-backup-delete "$@" --retention-policy "RECOVERY WINDOW OF $BACKUP_RETENTION_DAYS DAYS" \
        "$BACKUP_URL" "$BACKUP_SERVER_NAME" || echo "backup: deleting expired backups failed" >&2
    else
      echo "backup: base backup failed; retrying in ${BACKUP_POLL_SECONDS}s" >&2
    fi
  fi
  [ "${BACKUP_ONCE:-}" = "1" ] && exit 0
  sleep "$BACKUP_POLL_SECONDS"
done
