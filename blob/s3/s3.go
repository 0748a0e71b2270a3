// Package s3 is the blob.Store of exportd at scale: result files in an
// S3-compatible bucket, written through minio-go.
//
// S3 has no rename, so the local store's "write a temporary file, rename it
// into place" becomes:
//
//   - an upload of at most one part (Config.PartSize) is held in memory and
//     sent by Commit as one PUT straight to its key. A PUT is atomic: readers
//     see the old object or the whole new one, never a prefix of it.
//   - a larger upload streams, part by part, as a multipart upload to a
//     temporary object "<prefix>.uploads/<key>.<tag>" that List and Open
//     never show (no key segment may start with a dot). Commit completes it,
//     copies it server-side to the key (again atomic) and deletes it.
//
// The copy is the price of having no rename: one more request, time on the
// server that grows with the object (CopyObject up to 5 GiB, a multipart
// UploadPartCopy beyond), and, until the temporary object is deleted, the
// object stored twice. No bytes cross the network a second time.
package s3

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"mime"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/exportd/exportd/blob"
)

// DefaultPartSize is the part size when Config.PartSize is zero. An upload
// holds up to one part in memory (two for a moment when it starts to
// stream), and an export has one upload open per format.
const DefaultPartSize = 16 << 20

// MinPartSize is the smallest part S3 accepts for any part but the last.
const MinPartSize = 5 << 20

// maxPartSize is the largest part S3 accepts.
const maxPartSize = 5 << 30

// MaxPresignExpiry is the longest a SigV4 presigned URL can be valid.
const MaxPresignExpiry = 7 * 24 * time.Hour

// uploadsDir holds the temporary objects of streamed uploads; its leading
// dot keeps them out of the key space.
const uploadsDir = ".uploads/"

// cleanupTimeout bounds the deletes that tidy up after a failed or
// committed upload, which run even when the caller's context is done.
const cleanupTimeout = time.Minute

// Config says where the bucket is. The first six fields mirror the
// binary's EXPORTD_S3_* settings; Prefix and PartSize have defaults that
// suit a bucket of its own.
type Config struct {
	// Endpoint is host[:port] without a scheme, e.g. "s3.amazonaws.com"
	// or "minio:9000".
	Endpoint string
	// Bucket must already exist: New refuses to create it, so a typo
	// does not scatter results into a new bucket.
	Bucket string
	// AccessKey signs requests with SecretKey; both empty means
	// anonymous access, which few buckets allow.
	AccessKey string
	// SecretKey is AccessKey's secret; String hides it.
	SecretKey string
	// Region is the bucket's region; empty asks the server once, which
	// costs a request and fails on servers that do not answer it.
	Region string
	// UseSSL selects https.
	UseSSL bool
	// Prefix places the store under a folder of the bucket, so that one
	// bucket can serve several deployments; a trailing slash is implied.
	Prefix string
	// PartSize is the multipart part size, from MinPartSize to 5 GiB;
	// zero means DefaultPartSize. An object can have at most 10,000
	// parts, so it also caps the size of one file.
	PartSize uint64
}

// String describes the configuration without the secret key, so that a
// Config printed into a log (secrets never reach logs) does not leak it.
func (c Config) String() string {
	secret := ""
	if c.SecretKey != "" {
		secret = "<redacted>"
	}
	return fmt.Sprintf("{Endpoint:%s Bucket:%s AccessKey:%s SecretKey:%s Region:%s UseSSL:%t Prefix:%s PartSize:%d}",
		c.Endpoint, c.Bucket, c.AccessKey, secret, c.Region, c.UseSSL, c.Prefix, c.PartSize)
}

// Store keeps result files in an S3-compatible bucket.
type Store struct {
	client   *minio.Client
	core     minio.Core // for aborting multipart uploads by id
	bucket   string
	prefix   string // "" or ends with "/"
	partSize uint64
}

var _ blob.Store = (*Store)(nil)

// New connects to the bucket and checks that it exists, so that a wrong
// endpoint, credentials or bucket name fails at startup rather than at the
// end of the first export.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3 endpoint and bucket are required")
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("s3 endpoint %q must be host[:port] without a scheme; set UseSSL for https", cfg.Endpoint)
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3 access key and secret key must be set together")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if !blob.ValidKey(prefix) || len(prefix) > 256 {
			return nil, fmt.Errorf("s3 prefix %q: %w", cfg.Prefix, blob.ErrInvalidKey)
		}
		prefix += "/"
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < MinPartSize || partSize > maxPartSize {
		return nil, fmt.Errorf("s3 part size %d is outside [%d, %d]", partSize, MinPartSize, maxPartSize)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseSSL,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating s3 client: %w", err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("error checking s3 bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)
	}
	return &Store{client: client, core: minio.Core{Client: client}, bucket: cfg.Bucket, prefix: prefix, partSize: partSize}, nil
}

// Create starts an upload that stays invisible until Commit. ctx governs
// the whole upload, Commit included: canceling it aborts the upload.
func (s *Store) Create(ctx context.Context, key, tag string) (blob.Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !blob.ValidKey(key) || !validTag(tag) {
		return nil, fmt.Errorf("error creating %q (tag %q): %w", key, tag, blob.ErrInvalidKey)
	}
	return &upload{s: s, ctx: ctx, key: key, tmp: s.prefix + uploadsDir + key + "." + tag, spool: &spool{}}, nil
}

// Open stats the object, so a missing key is reported here rather than at
// the first Read. Reads go through ctx and are pinned to the version Open
// saw (If-Match): if a Commit replaces it meanwhile, a real S3 server
// fails the read instead of splicing two versions. On AWS a missing key is
// 404 only with s3:ListBucket granted; without it S3 answers 403, which
// is an error here, not blob.ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (blob.Object, error) {
	if !blob.ValidKey(key) {
		return nil, fmt.Errorf("error opening %q: %w", key, blob.ErrInvalidKey)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("error opening %s: %w", key, err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		if isNotFound(err) {
			err = blob.ErrNotFound
		}
		return nil, fmt.Errorf("error opening %s: %w", key, err)
	}
	return &object{o: o, info: blob.Info{Key: key, Size: st.Size, ModTime: st.LastModified}}, nil
}

// List pages through the bucket listing, which S3 already returns in key
// order; it sorts anyway because some S3-compatible servers do not.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	if !blob.ValidPrefix(prefix) {
		return nil, fmt.Errorf("error listing %q: %w", prefix, blob.ErrInvalidKey)
	}
	var out []blob.Info
	for o, err := range s.objects(ctx, s.prefix+prefix) {
		if err != nil {
			return nil, fmt.Errorf("error listing %s: %w", prefix, err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		if blob.ValidKey(key) {
			out = append(out, blob.Info{Key: key, Size: o.Size, ModTime: o.LastModified})
		}
	}
	slices.SortFunc(out, func(a, b blob.Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// DeletePrefix removes every object under prefix, the temporary objects
// and multipart uploads of uploads under it, and multipart uploads a
// crashed large copy left at a key.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if prefix == "" || !blob.ValidPrefix(prefix) {
		return fmt.Errorf("error deleting %q: %w", prefix, blob.ErrInvalidKey)
	}
	if err := s.deleteUploads(ctx, prefix); err != nil {
		return fmt.Errorf("error deleting %s: %w", prefix, err)
	}
	if err := s.removeObjects(ctx, s.prefix+prefix, func(string) bool { return true }); err != nil {
		return fmt.Errorf("error deleting %s: %w", prefix, err)
	}
	if err := s.abortMultipart(ctx, s.prefix+prefix, func(string) bool { return true }); err != nil {
		return fmt.Errorf("error deleting %s: %w", prefix, err)
	}
	return nil
}

// DeleteUploads clears what failed attempts left behind: temporary
// objects whose Commit died between copy and delete, and multipart uploads
// never completed. An upload of prefix still being written by another
// attempt fails at its next part or at Commit, as with the local store.
func (s *Store) DeleteUploads(ctx context.Context, prefix string) error {
	if prefix == "" || !blob.ValidPrefix(prefix) {
		return fmt.Errorf("error deleting uploads under %q: %w", prefix, blob.ErrInvalidKey)
	}
	if err := s.deleteUploads(ctx, prefix); err != nil {
		return fmt.Errorf("error deleting uploads under %s: %w", prefix, err)
	}
	return nil
}

func (s *Store) deleteUploads(ctx context.Context, prefix string) error {
	under := func(name string) bool {
		key, ok := s.uploadKey(name)
		return ok && strings.HasPrefix(key, prefix)
	}
	if err := s.removeObjects(ctx, s.prefix+uploadsDir+prefix, under); err != nil {
		return err
	}
	return s.abortMultipart(ctx, s.prefix+uploadsDir+prefix, under)
}

// PresignGet returns a URL that downloads key with a plain GET until
// expires has passed, so the API can redirect to the bucket instead of
// proxying the bytes. filename, if set, becomes the Content-Disposition
// the bucket answers with. It signs locally and does not check that the
// object exists; a SigV4 URL lives at most MaxPresignExpiry. The URL names
// Config.Endpoint, so clients must be able to reach the bucket there.
func (s *Store) PresignGet(ctx context.Context, key string, expires time.Duration, filename string) (string, error) {
	if !blob.ValidKey(key) {
		return "", fmt.Errorf("error presigning %q: %w", key, blob.ErrInvalidKey)
	}
	if expires < time.Second || expires > MaxPresignExpiry {
		return "", fmt.Errorf("error presigning %s: expiry %s is outside [1s, %s]", key, expires, MaxPresignExpiry)
	}
	params := url.Values{}
	if filename != "" {
		cd := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
		if cd == "" {
			return "", fmt.Errorf("error presigning %s: bad filename %q", key, filename)
		}
		params.Set("response-content-disposition", cd)
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.prefix+key, expires, params)
	if err != nil {
		return "", fmt.Errorf("error presigning %s: %w", key, err)
	}
	return u.String(), nil
}

// uploadKey recovers the key from a temporary object name
// "<prefix>.uploads/<key>.<tag>"; tags hold no dot, so the last dot splits
// key from tag.
func (s *Store) uploadKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, s.prefix+uploadsDir)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 || !validTag(rest[i+1:]) {
		return "", false
	}
	return rest[:i], blob.ValidKey(rest[:i])
}

// objects yields the objects whose names start with prefix, then stops at
// the first error.
func (s *Store) objects(ctx context.Context, prefix string) iter.Seq2[minio.ObjectInfo, error] {
	return func(yield func(minio.ObjectInfo, error) bool) {
		ctx, cancel := context.WithCancel(ctx) // stops the lister if we stop early
		defer cancel()
		for o := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				yield(o, o.Err)
				return
			}
			if !yield(o, nil) {
				return
			}
		}
		// minio-go ends a listing silently when ctx is done; without this
		// a canceled List would look complete.
		if err := ctx.Err(); err != nil {
			yield(minio.ObjectInfo{}, err)
		}
	}
}

// removeObjects deletes, a thousand per request, the objects under prefix
// that match, while it lists them, so memory does not grow with the
// number of objects.
func (s *Store) removeObjects(ctx context.Context, prefix string, match func(name string) bool) error {
	var listErr error
	victims := func(yield func(minio.ObjectInfo) bool) {
		for o, err := range s.objects(ctx, prefix) {
			if err != nil {
				listErr = err
				return
			}
			if match(o.Key) && !yield(o) {
				return
			}
		}
	}
	results, err := s.client.RemoveObjectsWithIter(ctx, s.bucket, victims, minio.RemoveObjectsOptions{})
	if err != nil {
		return err
	}
	var errs []error
	for r := range results {
		if r.Err != nil && !isNotFound(r.Err) {
			errs = append(errs, fmt.Errorf("%s: %w", r.ObjectName, r.Err))
		}
	}
	if listErr != nil {
		errs = append(errs, listErr)
	}
	return errors.Join(errs...)
}

// abortMultipart aborts the incomplete multipart uploads under prefix that
// match; their parts are billed until then, and no listing shows them.
func (s *Store) abortMultipart(ctx context.Context, prefix string, match func(name string) bool) error {
	type pending struct{ key, id string }
	var ups []pending
	var errs []error
	// Drain the channel to the end: the lister blocks until it is read.
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, prefix, true) {
		switch {
		case u.Err != nil && minio.ToErrorResponse(u.Err).Code == minio.NoSuchUpload:
			// gofakes3 says so for a bucket that never had an upload.
		case u.Err != nil:
			errs = append(errs, u.Err)
		case u.UploadID != "" && match(u.Key):
			ups = append(ups, pending{u.Key, u.UploadID})
		}
	}
	for _, u := range ups {
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.key, u.id); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("%s: %w", u.key, err))
		}
	}
	return errors.Join(errs...)
}

// cleanup deletes a temporary object even when ctx is done, since it runs
// after the caller gave up; a failure leaves it to DeleteUploads.
func (s *Store) cleanup(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{})
}

func isNotFound(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, minio.NoSuchUpload:
		return true
	}
	return false
}

// validTag mirrors the tag rule of blob.Store.Create: 1 to 64 letters,
// digits, '-' or '_'. Without a dot in it, "<key>.<tag>" splits back.
func validTag(tag string) bool {
	if tag == "" || len(tag) > 64 {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// object hides the *minio.Object so callers get only what ServeContent
// needs.
type object struct {
	o    *minio.Object
	info blob.Info
}

func (o *object) Read(p []byte) (int, error)                   { return o.o.Read(p) }
func (o *object) Seek(offset int64, whence int) (int64, error) { return o.o.Seek(offset, whence) }
func (o *object) Close() error                                 { return o.o.Close() }
func (o *object) Info() blob.Info                              { return o.info }
