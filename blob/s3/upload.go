package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/minio/minio-go/v7"
)

// errUploadDone guards against writing into an upload that is already
// committed or aborted.
var errUploadDone = errors.New("s3: upload already committed or aborted")

// maxCopySize is the largest object S3 copies in one CopyObject request.
const maxCopySize = 5 << 30

// errAborted ends the stream of an aborted upload.
var errAborted = errors.New("s3: upload aborted")

// upload holds its first part in memory and streams from the moment it
// outgrows it; see the package comment for why.
type upload struct {
	s   *Store
	ctx context.Context
	key string
	tmp string // the temporary object, used only once streaming

	mu     sync.Mutex
	done   bool
	spool  *spool  // the bytes so far, until they exceed one part
	stream *stream // nil until then
}

// stream is a multipart upload fed through a pipe, so that a Write blocks
// while a part is in flight instead of buffering without bound.
type stream struct {
	pw     *io.PipeWriter
	cancel context.CancelFunc
	stop   func() bool   // stops the AfterFunc that ends the pipe with ctx
	done   chan struct{} // closed when PutObject returns
	info   minio.UploadInfo
	err    error // PutObject's result, read after done
}

// putOptions sends Content-MD5 with each request instead of signing the
// payload in aws-chunked encoding: it protects the bytes as well, and
// every S3-compatible server understands it, where some (gofakes3 among
// them) store the chunk signatures of a part as data.
func (s *Store) putOptions() minio.PutObjectOptions {
	return minio.PutObjectOptions{PartSize: s.partSize, SendContentMd5: true, DisableContentSha256: true}
}

func (u *upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, errUploadDone
	}
	if u.stream == nil {
		if u.spool.n+int64(len(p)) <= int64(u.s.partSize) {
			u.spool.write(p)
			return len(p), nil
		}
		u.startStream()
	}
	n, err := u.stream.pw.Write(p)
	if err != nil {
		if cause := context.Cause(u.ctx); cause != nil {
			err = cause // rather than the closed pipe it caused
		}
		return n, fmt.Errorf("error uploading %s: %w", u.key, err)
	}
	return n, nil
}

// startStream hands the spooled bytes and everything written after them
// to a multipart upload of the temporary object.
func (u *upload) startStream() {
	ctx, cancel := context.WithCancel(u.ctx)
	pr, pw := io.Pipe()
	st := &stream{pw: pw, cancel: cancel, done: make(chan struct{})}
	// A canceled context does not wake a reader blocked on a pipe; this
	// does, so an upload abandoned without Commit or Abort ends with its
	// context instead of leaking a goroutine and a multipart upload.
	st.stop = context.AfterFunc(ctx, func() { pw.CloseWithError(context.Cause(ctx)) })
	r := io.MultiReader(io.NewSectionReader(u.spool, 0, u.spool.n), pr)
	u.spool = nil
	u.stream = st
	go func() {
		defer close(st.done)
		// On error PutObject has aborted the multipart upload itself.
		st.info, st.err = u.s.client.PutObject(ctx, u.s.bucket, u.tmp, r, -1, u.s.putOptions())
		if st.err != nil {
			pr.CloseWithError(st.err)
		}
	}()
}

// Commit sends a small upload as one PUT, or completes a streamed one and
// copies it into place. Either way the key shows the old object or the
// whole new one, never a part.
func (u *upload) Commit() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errUploadDone
	}
	u.done = true
	if u.stream == nil {
		sp := u.spool
		u.spool = nil
		_, err := u.s.client.PutObject(u.ctx, u.s.bucket, u.s.prefix+u.key, io.NewSectionReader(sp, 0, sp.n), sp.n, u.s.putOptions())
		if err != nil {
			return fmt.Errorf("error committing %s: %w", u.key, err)
		}
		return nil
	}
	st := u.stream
	defer st.cancel()
	st.pw.Close()
	<-st.done
	st.stop()
	if st.err != nil {
		return fmt.Errorf("error committing %s: %w", u.key, st.err)
	}
	dst := minio.CopyDestOptions{Bucket: u.s.bucket, Object: u.s.prefix + u.key}
	src := minio.CopySrcOptions{Bucket: u.s.bucket, Object: u.tmp}
	var err error
	if st.info.Size <= maxCopySize {
		_, err = u.s.client.CopyObject(u.ctx, dst, src)
	} else {
		// Only a multipart copy (UploadPartCopy) goes past 5 GiB. Not for
		// smaller objects: minio-go 7.4.1's ComposeObject never takes its
		// single-request path, and some S3-compatible servers (gofakes3)
		// do not implement UploadPartCopy at all.
		_, err = u.s.client.ComposeObject(u.ctx, dst, src)
	}
	// Past a successful copy the object is committed; a temporary object
	// that fails to go is invisible, and DeleteUploads or DeletePrefix
	// sweeps it, so it does not fail the Commit.
	u.s.cleanup(u.ctx, u.tmp)
	if err != nil {
		return fmt.Errorf("error committing %s: %w", u.key, err)
	}
	return nil
}

// Abort is safe in a defer next to Commit. It cancels a stream in flight
// and waits until minio-go has aborted its multipart upload.
func (u *upload) Abort() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	u.done = true
	u.spool = nil
	if st := u.stream; st != nil {
		st.pw.CloseWithError(errAborted)
		st.cancel()
		<-st.done
		st.stop()
	}
	return nil
}

// spoolChunk is the unit in which a spool grows: large enough to keep the
// chunk list short, small enough that a tiny file costs little.
const spoolChunk = 64 << 10

// spool holds an upload's first bytes in fixed-size chunks, so it never
// copies what it has already taken and can be read at any offset, which
// lets minio-go retry a failed PUT.
type spool struct {
	chunks [][]byte
	n      int64
}

func (s *spool) write(p []byte) {
	for len(p) > 0 {
		if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == spoolChunk {
			s.chunks = append(s.chunks, make([]byte, 0, spoolChunk))
		}
		c := &s.chunks[len(s.chunks)-1]
		k := min(len(p), spoolChunk-len(*c))
		*c = append(*c, p[:k]...)
		p = p[k:]
		s.n += int64(k)
	}
}

// ReadAt makes a spool an io.ReaderAt for io.NewSectionReader.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 && off < s.n {
		c := s.chunks[off/spoolChunk][off%spoolChunk:]
		k := copy(p, c)
		n += k
		off += int64(k)
		p = p[k:]
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}
