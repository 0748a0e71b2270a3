package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoRoot is the repository, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// majorOnly matches tags that float over releases: "16", "16-alpine", "v2".
var majorOnly = regexp.MustCompile(`^v?\d+(-[A-Za-z][\w.-]*)?$`)

// pinned says why ref does not name one image version: a digest, or a tag
// that contains a digit and is neither latest nor a bare major version.
func pinned(ref string) error {
	switch {
	case ref == "":
		return errors.New("no image")
	case strings.Contains(ref, "$"):
		return errors.New("the version comes from the environment; pin it in the file")
	}
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			return fmt.Errorf("malformed digest %q", digest)
		}
		return nil
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok:
		return errors.New("no tag: that is latest")
	case tag == "latest":
		return errors.New("latest is not a version")
	case !strings.ContainsAny(tag, "0123456789"):
		return fmt.Errorf("tag %q names no version", tag)
	case majorOnly.MatchString(tag):
		return fmt.Errorf("tag %q floats over every release of a major version", tag)
	}
	return nil
}

func TestPinned(t *testing.T) {
	for ref, ok := range map[string]bool{
		"postgres:16.15-alpine":                            true,
		"quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z": true,
		"localhost:5000/temporalio/server:1.31.0":          true,
		"alpine@sha256:" + strings.Repeat("ab", 32):        true,
		"postgres":                      false,
		"postgres:latest":               false,
		"postgres:16":                   false,
		"postgres:16-alpine":            false,
		"postgres:alpine":               false,
		"localhost:5000/postgres":       false,
		"temporalio/server:${TAG}":      false,
		"alpine@sha256:abc":             false,
		"temporalio/ui:v2":              false,
		"golang:1.26.8-alpine3.24":      true,
		"temporalio/admin-tools:1.31.0": true,
	} {
		if err := pinned(ref); (err == nil) != ok {
			t.Errorf("pinned(%q) = %v, want pinned %v", ref, err, ok)
		}
	}
}

// dockerfileLine is one instruction, with continuation lines joined.
type dockerfileLine struct {
	instr, args string
}

func readDockerfile(t *testing.T) []dockerfileLine {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	require.NoError(t, err)
	defer f.Close()
	var lines []dockerfileLine
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(l)
		instr, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		lines = append(lines, dockerfileLine{strings.ToUpper(instr), strings.TrimSpace(args)})
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	return lines
}

func TestDockerfile(t *testing.T) {
	lines := readDockerfile(t)
	var stages, froms []string
	var builds bool
	user, entrypoint := "", ""
	for _, l := range lines {
		switch l.instr {
		case "FROM":
			var fields []string // without flags such as --platform
			for _, f := range strings.Fields(l.args) {
				if !strings.HasPrefix(f, "--") {
					fields = append(fields, f)
				}
			}
			require.NotEmpty(t, fields, "FROM without an image")
			froms = append(froms, fields[0])
			if image := fields[0]; !slices.Contains(stages, image) {
				if err := pinned(image); err != nil {
					t.Errorf("FROM %s: %v", image, err)
				}
			}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				stages = append(stages, fields[2])
			}
			user, entrypoint = "", "" // each stage starts as root
		case "RUN":
			if regexp.MustCompile(`\bgo build\b.*\s\./cmd/exportd(\s|$)`).MatchString(l.args) {
				builds = true
			}
		case "USER":
			user = l.args
		case "ENTRYPOINT":
			entrypoint = l.args
		}
	}
	if !builds {
		t.Error("no RUN go build ... ./cmd/exportd")
	}
	// The builder is the Go release go.mod asks for, so that the image
	// neither fails on an older toolchain nor downloads a newer one.
	mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	require.NoError(t, err)
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, goLine, "go.mod has no go line")
	if builder := "golang:" + string(goLine[1]); !slices.ContainsFunc(froms, func(f string) bool {
		return f == builder || strings.HasPrefix(f, builder+"-") || strings.HasPrefix(f, builder+"@")
	}) {
		t.Errorf("no build stage FROM %s (go.mod says go %s); the Dockerfile has FROM %q", builder, goLine[1], froms)
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("the final stage runs as %q; want a non-root USER", user)
	}
	if !strings.Contains(entrypoint, "exportd") {
		t.Errorf("the final stage's ENTRYPOINT %q does not run exportd", entrypoint)
	}
}

// TestDockerignoreKeepsBuildInputs guards the build context: every file
// `go build ./cmd/exportd` reads must survive .dockerignore.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	require.NoError(t, err)
	var patterns []*regexp.Regexp
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(l, "!"), "exceptions (%s) are not understood by this test", l)
		patterns = append(patterns, dockerignorePattern(l))
	}

	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	list := exec.Command(goBin, "list", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/exportd")
	list.Dir = root
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	require.NoError(t, err, "go list:\n%s", stderr.String())

	files := []string{"go.mod", "go.sum"}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root, f)
		if err == nil && !strings.HasPrefix(rel, "..") {
			files = append(files, filepath.ToSlash(rel)) // in the module, not the module cache
		}
	}
	require.Greater(t, len(files), 10, "go list found almost nothing to build")
	for _, f := range files {
		for _, p := range patterns {
			if ignored(p, f) {
				t.Errorf(".dockerignore (%s) drops %s, which the build needs", p, f)
			}
		}
	}
}

// dockerignorePattern turns a .dockerignore line into a regexp over
// slash-separated paths relative to the context: * and ? stay within a
// path segment, ** spans segments.
func dockerignorePattern(p string) *regexp.Regexp {
	p = strings.Trim(filepath.ToSlash(filepath.Clean(p)), "/")
	var re strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			re.WriteString(`(.*/)?`)
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			re.WriteString(`.*`)
			i++
		case p[i] == '*':
			re.WriteString(`[^/]*`)
		case p[i] == '?':
			re.WriteString(`[^/]`)
		default:
			re.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	return regexp.MustCompile(`^` + re.String() + `$`)
}

// ignored reports whether p matches path or one of its parent directories.
func ignored(p *regexp.Regexp, path string) bool {
	for {
		if p.MatchString(path) {
			return true
		}
		i := strings.LastIndex(path, "/")
		if i < 0 {
			return false
		}
		path = path[:i]
	}
}

func TestDockerignorePattern(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{".git", ".git/config", true},
		{"bin", "bin/exportd", true},
		{"bin", "cmd/bin/x.go", false},
		{"**/testdata", "workflows/testdata/h.json", true},
		{"**/*_test.go", "api/api_test.go", true},
		{"**/*_test.go", "api/api.go", false},
		{"*.test", "deploy.test", true},
		{"deploy", "deploy/doc.go", true},
		{".env.*", ".env.local", true},
	} {
		if got := ignored(dockerignorePattern(c.pattern), c.path); got != c.want {
			t.Errorf("%q ignores %q: %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
