package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The stack's services by kind. Jobs run once and exit; the others stay up
// and carry a healthcheck and a restart policy.
var (
	jobs = []string{
		"temporal-schema", "temporal-namespace", "temporal-search-attributes",
		"minio-setup", "exportd-migrate",
	}
	longRunning = []string{
		"postgres", "temporal", "temporal-ui", "minio", "exportd-worker", "exportd-api",
	}
	// exportdServices maps each exportd service to its subcommand.
	exportdServices = map[string]string{
		"exportd-migrate": "migrate",
		"exportd-worker":  "worker",
		"exportd-api":     "api",
	}
)

// s3Names are read by the S3 blob store, which was written alongside this
// stack. While a binary has no S3 store (its help lists no
// EXPORTD_BLOB_BACKEND), they are allowed wherever a command has a blob
// store (it lists EXPORTD_BLOB_DIR). Once the store is in, the names are
// checked against the help like any other, so that a renamed flag is
// caught, and this list only confirms the store reads them all.
var s3Names = []string{
	"EXPORTD_BLOB_BACKEND",
	"EXPORTD_S3_ENDPOINT",
	"EXPORTD_S3_BUCKET",
	"EXPORTD_S3_ACCESS_KEY",
	"EXPORTD_S3_SECRET_KEY",
	"EXPORTD_S3_REGION",
	"EXPORTD_S3_USE_SSL",
}

// Conditions a depends_on entry may wait for.
const (
	started   = "service_started"
	healthy   = "service_healthy"
	completed = "service_completed_successfully"
)

// composeFile is the part of the compose specification the checks read.
type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image         string       `yaml:"image"`
	Build         any          `yaml:"build"`
	Entrypoint    stringOrList `yaml:"entrypoint"`
	Command       stringOrList `yaml:"command"`
	Environment   environment  `yaml:"environment"`
	DependsOn     dependsOn    `yaml:"depends_on"`
	Healthcheck   *healthcheck `yaml:"healthcheck"`
	Restart       string       `yaml:"restart"`
	Volumes       []string     `yaml:"volumes"`
	Ports         []string     `yaml:"ports"`
	ContainerName string       `yaml:"container_name"`
	Deploy        struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// script is the service's entrypoint and command as one string, for
// looking into what a job runs.
func (s service) script() string {
	return strings.Join(append(slices.Clone(s.Entrypoint), s.Command...), " ")
}

type healthcheck struct {
	Test    stringOrList `yaml:"test"`
	Disable bool         `yaml:"disable"`
}

// stringOrList is a compose field that is either a string or a list.
type stringOrList []string

func (s *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = []string{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// environment is a service's environment, from its map or list form.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*e)[k] = v
	}
	return nil
}

// dependsOn is the long form of depends_on: the short list form waits for
// nothing but a start, so it is refused.
type dependsOn map[string]struct {
	Condition string `yaml:"condition"`
}

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("depends_on must be a map of services to {condition: ...}")
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	*d = m
	return nil
}

// repoRoot is the repository, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c), "docker-compose.yml")
	require.NotEmpty(t, c.Services, "docker-compose.yml has no services")
	return c
}

// interpolation matches ${VAR}, ${VAR:-default} and ${VAR:?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}`)

// interpolate resolves a value as compose would with an empty environment:
// defaults apply, and a required variable becomes "required".
func interpolate(s string) string {
	s = interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		switch sub[2] {
		case "-":
			return sub[3]
		case "?":
			return "required"
		}
		return ""
	})
	return strings.ReplaceAll(s, "$$", "$")
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for _, name := range append(slices.Clone(jobs), longRunning...) {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s is missing", name)
		}
	}
	for _, name := range jobs {
		s := c.Services[name]
		if !isJob(s) {
			t.Errorf("job %s: restart %q would run it again after it completes; want \"no\" or on-failure", name, s.Restart)
		}
	}
	for _, name := range longRunning {
		s := c.Services[name]
		if !hasHealthcheck(s) {
			t.Errorf("service %s has no healthcheck", name)
		}
		if s.Restart != "always" && s.Restart != "unless-stopped" {
			t.Errorf("service %s: restart %q, want always or unless-stopped", name, s.Restart)
		}
	}

	w := c.Services["exportd-worker"]
	if w.Deploy.Replicas < 2 {
		t.Errorf("exportd-worker: deploy.replicas = %d, want at least 2", w.Deploy.Replicas)
	}
	if w.ContainerName != "" {
		t.Error("exportd-worker: container_name prevents running replicas")
	}

	api := c.Services["exportd-api"]
	if !slices.ContainsFunc(api.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080") }) {
		t.Errorf("exportd-api: port 8080 is not published (ports %q)", api.Ports)
	}
	if api.Healthcheck == nil || !strings.Contains(strings.Join(api.Healthcheck.Test, " "), "/readyz") {
		t.Error("exportd-api: the healthcheck does not ask /readyz")
	}
}

func isJob(s service) bool {
	return s.Restart == "no" || s.Restart == "" || strings.HasPrefix(s.Restart, "on-failure")
}

func hasHealthcheck(s service) bool {
	h := s.Healthcheck
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func TestComposeImagesPinned(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if strings.Contains(s.Image, "temporalio/auto-setup") {
			t.Errorf("service %s uses %s: the deprecated auto-setup image; use temporalio/server with the admin-tools jobs", name, s.Image)
		}
		if _, ok := exportdServices[name]; ok {
			if s.Build == nil {
				t.Errorf("service %s does not build exportd from the Dockerfile", name)
			}
			continue
		}
		if s.Build != nil {
			t.Errorf("service %s: only the exportd services are built here", name)
		}
		if err := pinned(s.Image); err != nil {
			t.Errorf("service %s: image %q: %v", name, s.Image, err)
		}
	}
	// The exportd services share one image, built once.
	var images []string
	for name := range exportdServices {
		images = append(images, c.Services[name].Image)
	}
	slices.Sort(images)
	if len(slices.Compact(images)) != 1 || images[0] == "" {
		t.Errorf("exportd services name images %q; want one shared, named image", images)
	}
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

func TestComposeDependencies(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			case d.Condition == healthy && !hasHealthcheck(target):
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			case d.Condition == completed && !isJob(target):
				t.Errorf("%s waits for %s to complete, which is restarted instead", name, dep)
			case d.Condition != started && d.Condition != healthy && d.Condition != completed:
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
	}
	if cycle := findCycle(c); cycle != nil {
		t.Errorf("depends_on cycle: %s", strings.Join(cycle, " -> "))
	}

	// Each service waits for what it needs, in this order.
	exportd := map[string]string{
		"postgres":                   healthy,
		"exportd-migrate":            completed,
		"temporal":                   healthy,
		"temporal-search-attributes": completed,
		"minio-setup":                completed,
	}
	want := map[string]map[string]string{
		"temporal-schema":            {"postgres": healthy},
		"temporal":                   {"temporal-schema": completed},
		"temporal-namespace":         {"temporal": healthy},
		"temporal-search-attributes": {"temporal-namespace": completed},
		"temporal-ui":                {"temporal": healthy},
		"minio-setup":                {"minio": healthy},
		"exportd-migrate":            {"postgres": healthy},
		"exportd-worker":             exportd,
		"exportd-api":                exportd,
	}
	for name, deps := range want {
		for dep, cond := range deps {
			got, ok := c.Services[name].DependsOn[dep]
			if !ok || got.Condition != cond {
				t.Errorf("%s must depend on %s with condition %s (has %q)", name, dep, cond, got.Condition)
			}
		}
	}
}

// findCycle returns a depends_on cycle, or nil.
func findCycle(c composeFile) []string {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) []string
	visit = func(n string) []string {
		switch state[n] {
		case active:
			return append(path[slices.Index(path, n):], n)
		case done:
			return nil
		}
		state[n] = active
		path = append(path, n)
		for dep := range c.Services[n].DependsOn {
			if cycle := visit(dep); cycle != nil {
				return cycle
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for n := range c.Services {
		if cycle := visit(n); cycle != nil {
			return cycle
		}
	}
	return nil
}

func TestComposeTemporalSetup(t *testing.T) {
	c := loadCompose(t)
	ns := interpolate(c.Services["exportd-worker"].Environment["EXPORTD_TEMPORAL_NAMESPACE"])
	if ns == "" {
		ns = "default" // exportd's default
	}
	addr := interpolate(c.Services["exportd-worker"].Environment["EXPORTD_TEMPORAL_ADDRESS"])

	sa := c.Services["temporal-search-attributes"].script()
	names := append([]string{"ExportMerchant", "ExportDataset", "ExportPhase"}, searchAttributeNames(t)...)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		re := regexp.MustCompile(`--name\s+` + regexp.QuoteMeta(name) + `\s+--type\s+Keyword\b`)
		if !re.MatchString(sa) {
			t.Errorf("temporal-search-attributes does not register %s as Keyword", name)
		}
	}
	nsJob := c.Services["temporal-namespace"].script()
	if !strings.Contains(nsJob, "namespace create") {
		t.Error("temporal-namespace does not create a namespace")
	}
	for job, script := range map[string]string{"temporal-namespace": nsJob, "temporal-search-attributes": sa} {
		if !strings.Contains(script, "--namespace "+ns) {
			t.Errorf("%s does not work on namespace %q, the one exportd uses", job, ns)
		}
		if !strings.Contains(script, "--address "+addr) {
			t.Errorf("%s does not reach Temporal at %q, where exportd does", job, addr)
		}
	}

	schema, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "temporal", "setup-schema.sh"))
	require.NoError(t, err)
	for _, want := range []string{
		"temporal-sql-tool", "--plugin postgres12", "temporal:temporal", "temporal_visibility:visibility",
		" create", "setup-schema", "update-schema", "/etc/temporal/schema/postgresql/v12",
	} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("setup-schema.sh does not contain %q", want)
		}
	}
	if !strings.Contains(c.Services["temporal-schema"].script(), "setup-schema.sh") {
		t.Error("temporal-schema does not run deploy/temporal/setup-schema.sh")
	}

	server := c.Services["temporal"].Environment
	for k, v := range map[string]string{"DB": "postgres12", "POSTGRES_SEEDS": "postgres", "BIND_ON_IP": "0.0.0.0"} {
		if server[k] != v {
			t.Errorf("temporal: %s = %q, want %q", k, server[k], v)
		}
	}
	for _, k := range []string{"DB_PORT", "POSTGRES_USER", "POSTGRES_PWD", "DYNAMIC_CONFIG_FILE_PATH"} {
		if server[k] == "" {
			t.Errorf("temporal: %s is not set", k)
		}
	}
}

// searchAttributeNames reads workflows.SearchAttributeNames from its
// source rather than importing the package, so that these checks still run
// while other packages are being edited.
func searchAttributeNames(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "workflows", "shared.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	require.NoError(t, err)
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "SearchAttributeNames" || len(spec.Values) != 1 {
			return true
		}
		if lit, ok := spec.Values[0].(*ast.CompositeLit); ok {
			for _, e := range lit.Elts {
				if s, ok := e.(*ast.BasicLit); ok && s.Kind == token.STRING {
					name, err := strconv.Unquote(s.Value)
					require.NoError(t, err)
					names = append(names, name)
				}
			}
		}
		return false
	})
	require.NotEmpty(t, names, "no []string{...} literal SearchAttributeNames in %s", path)
	return names
}

// flagLine is a flag in `exportd <command> --help`: its name, then the
// environment variable that stands for it.
var flagLine = regexp.MustCompile(`(?m)^\s+--[a-z0-9-]+\s+(EXPORTD_[A-Z0-9_]+)\s*$`)

// exportdEnv returns, for each subcommand, the EXPORTD_* variables it
// reads, from the help of a freshly built binary.
func exportdEnv(t *testing.T) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to build exportd")
	bin := filepath.Join(t.TempDir(), "exportd")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/exportd")
	build.Dir = repoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/exportd:\n%s", out)

	env := map[string][]string{}
	for _, cmd := range exportdServices {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		require.NoError(t, err, "exportd %s --help:\n%s", cmd, out)
		for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
			env[cmd] = append(env[cmd], m[1])
		}
		require.NotEmpty(t, env[cmd], "no EXPORTD_* names in `exportd %s --help`; has its format changed?\n%s", cmd, out)
	}
	return env
}

func TestComposeExportdEnvironment(t *testing.T) {
	c := loadCompose(t)
	reads := exportdEnv(t)
	for name, cmd := range exportdServices {
		s := c.Services[name]
		if got := s.script(); got != cmd {
			t.Errorf("%s runs %q, want %q", name, got, cmd)
		}
		allowed := slices.Clone(reads[cmd])
		switch {
		case !slices.Contains(allowed, "EXPORTD_BLOB_DIR"):
			// no blob store, so no S3 store either
		case !slices.Contains(allowed, "EXPORTD_BLOB_BACKEND"):
			t.Logf("exportd %s has no S3 blob store yet: allowing %s", cmd, strings.Join(s3Names, ", "))
			allowed = append(allowed, s3Names...)
		default:
			for _, n := range s3Names {
				if !slices.Contains(allowed, n) {
					t.Errorf("exportd %s has an S3 store but does not read %s", cmd, n)
				}
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "EXPORTD_") && !slices.Contains(allowed, k) {
				t.Errorf("%s sets %s, which `exportd %s` does not read (it reads %s)", name, k, cmd, strings.Join(allowed, ", "))
			}
		}
		if s.Environment["EXPORTD_DATABASE_URL"] == "" {
			t.Errorf("%s: EXPORTD_DATABASE_URL is not set", name)
		}
		if s.Environment["EXPORTD_LOG_FORMAT"] != "json" {
			t.Errorf("%s: EXPORTD_LOG_FORMAT = %q, want json", name, s.Environment["EXPORTD_LOG_FORMAT"])
		}
	}

	for _, name := range []string{"exportd-worker", "exportd-api"} {
		env := c.Services[name].Environment
		for _, k := range append([]string{"EXPORTD_TEMPORAL_ADDRESS", "EXPORTD_MASTER_KEY"}, s3Names...) {
			if env[k] == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
		// The key encrypts secrets at rest: it comes from the user's
		// environment, and compose refuses to start without it.
		if !regexp.MustCompile(`^\$\{EXPORTD_MASTER_KEY:\?[^}]+\}$`).MatchString(env["EXPORTD_MASTER_KEY"]) {
			t.Errorf("%s: EXPORTD_MASTER_KEY = %q, want ${EXPORTD_MASTER_KEY:?message}", name, env["EXPORTD_MASTER_KEY"])
		}
		if env["EXPORTD_BLOB_BACKEND"] != "s3" {
			t.Errorf("%s: EXPORTD_BLOB_BACKEND = %q, want s3", name, env["EXPORTD_BLOB_BACKEND"])
		}
		checkHosts(t, c, name, env)
	}
	if c.Services["exportd-api"].Environment["EXPORTD_PUBLIC_URL"] == "" {
		t.Error("exportd-api: EXPORTD_PUBLIC_URL is not set")
	}

	// The bucket and the key exportd uses are those minio-setup creates.
	setup := c.Services["minio-setup"].Environment
	worker := c.Services["exportd-worker"].Environment
	for exportdName, setupName := range map[string]string{
		"EXPORTD_S3_BUCKET":     "S3_BUCKET",
		"EXPORTD_S3_ACCESS_KEY": "S3_ACCESS_KEY",
		"EXPORTD_S3_SECRET_KEY": "S3_SECRET_KEY",
	} {
		if worker[exportdName] != setup[setupName] {
			t.Errorf("exportd-worker %s = %q, but minio-setup sets up %s = %q", exportdName, worker[exportdName], setupName, setup[setupName])
		}
	}
}

// checkHosts checks that the addresses in env name services of the stack.
func checkHosts(t *testing.T, c composeFile, name string, env environment) {
	t.Helper()
	hosts := map[string]string{}
	if u, err := url.Parse(interpolate(env["EXPORTD_DATABASE_URL"])); err != nil {
		t.Errorf("%s: EXPORTD_DATABASE_URL: %v", name, err)
	} else {
		hosts["EXPORTD_DATABASE_URL"] = u.Hostname()
	}
	for _, k := range []string{"EXPORTD_TEMPORAL_ADDRESS", "EXPORTD_S3_ENDPOINT"} {
		host, _, err := net.SplitHostPort(interpolate(env[k]))
		if err != nil {
			t.Errorf("%s: %s: %v", name, k, err)
		}
		hosts[k] = host
	}
	for k, host := range hosts {
		if _, ok := c.Services[host]; !ok {
			t.Errorf("%s: %s points at %q, which is not a service", name, k, host)
		} else if !dependsOnTransitively(c, name, host) {
			t.Errorf("%s: %s points at %s, which it does not wait for", name, k, host)
		}
	}
}

func dependsOnTransitively(c composeFile, from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		for dep := range c.Services[n].DependsOn {
			if dep == to || walk(dep) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

func TestComposeVolumes(t *testing.T) {
	c := loadCompose(t)
	root := repoRoot(t)
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				continue // an anonymous volume
			}
			switch {
			case strings.HasPrefix(src, "./"):
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			case strings.HasPrefix(src, "/"):
				t.Errorf("%s mounts the host path %s; mount from the repository or a named volume", name, src)
			default:
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s mounts the volume %s, which is not declared", name, src)
				}
			}
		}
	}
	// Scripts the containers run must be executable where they are run
	// directly, and at least readable everywhere.
	for _, f := range []string{"deploy/postgres/init-databases.sh", "deploy/temporal/setup-schema.sh", "deploy/minio/setup-bucket.sh"} {
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm()&0o444 != 0o444 {
			t.Errorf("%s is not readable by every user (the containers run as other users)", f)
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

// TestComposeConfigValidates asks Docker Compose itself, where it is
// installed: `docker compose config` reads the file without an engine.
func TestComposeConfigValidates(t *testing.T) {
	root := repoRoot(t)
	var compose []string
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if composeV2(c) {
			compose = c
			break
		}
	}
	if compose == nil {
		t.Skip("neither the docker compose plugin nor docker-compose v2 is installed: " +
			"docker-compose.yml was checked by this package's other tests only, not by Compose itself")
	}
	bin, err := exec.LookPath(compose[0])
	require.NoError(t, err)
	args := append(compose[1:], "--project-directory", root, "-f", filepath.Join(root, "docker-compose.yml"), "config", "-q")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EXPORTD_MASTER_KEY="+strings.Repeat("0", 64))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s config:\n%s", strings.Join(compose, " "), out)
}

// composeV2 reports whether the command (docker compose, or the standalone
// docker-compose) is Compose v2 or later: v1 predates parts of the
// Compose Specification this file uses, such as the top-level name.
func composeV2(c []string) bool {
	bin, err := exec.LookPath(c[0])
	if err != nil {
		return false
	}
	out, err := exec.Command(bin, append(c[1:], "version", "--short")...).Output()
	if err != nil {
		return false
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 2
}
