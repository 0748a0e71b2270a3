package starter_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/exportd/exportd"
	"github.com/exportd/exportd/starter"
)

func TestVerify(t *testing.T) {
	const a, b = "orders-00000.parquet", "orders-00001.parquet"
	manifest := func() exportd.Manifest {
		return exportd.Manifest{ExportID: "x1", Files: []exportd.FileInfo{info(a, "alpha", 0), info(b, "bravo!", 1)}}
	}
	for _, tc := range []struct {
		name   string
		files  map[string]string // written into dir; nil value: not written
		change func(*exportd.Manifest)
		mkdir  string   // a directory made in dir under this name
		bad    []string // Mismatch.String() of each mismatch; nil: Verify passes
		err    string   // an error that is not a mismatch
	}{
		{name: "ok", files: map[string]string{a: "alpha", b: "bravo!"}},
		{name: "files the manifest does not list are ignored",
			files: map[string]string{a: "alpha", b: "bravo!", "notes.txt": "mine", "manifest.json": "{}"}},
		{name: "manifest sha256 in upper case",
			files:  map[string]string{a: "alpha", b: "bravo!"},
			change: func(m *exportd.Manifest) { m.Files[0].SHA256 = strings.ToUpper(m.Files[0].SHA256) }},
		{name: "same size, other bytes", files: map[string]string{a: "alphA", b: "bravo!"},
			bad: []string{a + ": sha256 " + info(a, "alphA", 0).SHA256 + ", manifest says " + info(a, "alpha", 0).SHA256}},
		{name: "wrong size", files: map[string]string{a: "alpha", b: "bravo!!"},
			bad: []string{b + ": 7 bytes, manifest says 6"}},
		{name: "manifest size wrong, bytes right", files: map[string]string{a: "alpha", b: "bravo!"},
			change: func(m *exportd.Manifest) { m.Files[1].Bytes = 5 },
			bad:    []string{b + ": 6 bytes, manifest says 5"}},
		{name: "missing file", files: map[string]string{b: "bravo!"},
			bad: []string{a + ": missing"}},
		{name: "every mismatch is reported", files: map[string]string{a: ""},
			bad: []string{a + ": 0 bytes, manifest says 5", b + ": missing"}},
		{name: "a name leaving the directory is refused", files: map[string]string{a: "alpha", b: "bravo!"},
			change: func(m *exportd.Manifest) { m.Files[1].Name = "../" + b },
			err:    `manifest of export x1 lists an unsafe file name "../orders-00001.parquet"`},
		{name: "a name listed twice is refused", files: map[string]string{a: "alpha", b: "bravo!"},
			change: func(m *exportd.Manifest) { m.Files[1] = m.Files[0] },
			err:    `manifest of export x1 lists "orders-00000.parquet" twice`},
		{name: "a directory where a file should be", files: map[string]string{a: "alpha"}, mkdir: b,
			err: "error reading " + b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600))
			}
			if tc.mkdir != "" {
				require.NoError(t, os.Mkdir(filepath.Join(dir, tc.mkdir), 0o755))
			}
			m := manifest()
			if tc.change != nil {
				tc.change(&m)
			}
			err := starter.Verify(dir, m)
			switch {
			case tc.err != "":
				require.ErrorContains(t, err, tc.err)
				var verr *starter.VerifyError
				require.False(t, errors.As(err, &verr), "not a mismatch")
			case tc.bad == nil:
				require.NoError(t, err)
			default:
				var verr *starter.VerifyError
				require.ErrorAs(t, err, &verr)
				var got []string
				for _, mm := range verr.Mismatches {
					got = append(got, mm.String())
				}
				require.Equal(t, tc.bad, got)
				require.Equal(t, 2, verr.Files)
				require.EqualError(t, err, strconv.Itoa(len(tc.bad))+" of 2 files of export x1 do not match the manifest: "+strings.Join(tc.bad, "; "))
			}
		})
	}
}
