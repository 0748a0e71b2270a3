#!/bin/sh
# The minio-setup job (minio/mc): the private bucket exportd writes result
# files to, and a MinIO user whose policy reaches only that bucket, so the
# root credentials stay out of exportd. Safe to run again: it converges on
# the same state, and a changed S3_SECRET_KEY is applied.
#
# Environment: MINIO_URL, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, S3_BUCKET,
# S3_ACCESS_KEY, S3_SECRET_KEY. The mc image is minimal: sh builtins, mc
# and sleep only.
set -eu

: "${MINIO_URL:?}" "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${S3_BUCKET:?}" "${S3_ACCESS_KEY:?}" "${S3_SECRET_KEY:?}"
policy=exportd-bucket

n=0
until mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do
	n=$((n + 1))
	if [ "$n" -ge 30 ]; then
		echo "minio-setup: MinIO at $MINIO_URL did not answer" >&2
		exit 1
	fi
	sleep 2
done

mc mb --ignore-existing "local/$S3_BUCKET"
# Private: exportd serves downloads itself, through signed URLs.
mc anonymous set none "local/$S3_BUCKET"

printf '%s\n' '{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::'"$S3_BUCKET"'"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::'"$S3_BUCKET"'/*"]
    }
  ]
}' >/tmp/policy.json
# create replaces a policy of that name; should a version refuse, keep the
# one already there.
mc admin policy create local "$policy" /tmp/policy.json || mc admin policy info local "$policy" >/dev/null
mc admin user add local "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
# Attaching a policy the user already has is an error, so look first.
info=$(mc admin user info local "$S3_ACCESS_KEY")
case "$info" in
*"$policy"*) echo "minio-setup: $S3_ACCESS_KEY already has $policy" ;;
*) mc admin policy attach local "$policy" --user "$S3_ACCESS_KEY" ;;
esac
echo "minio-setup: bucket $S3_BUCKET ready for $S3_ACCESS_KEY"
