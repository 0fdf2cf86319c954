package testbed

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryBinEnv names the environment variable that overrides the path of
// the distribution registry binary (default /usr/bin/docker-registry, then
// docker-registry or registry on PATH).
const RegistryBinEnv = "SHIP_TEST_REGISTRY_BIN"

// Registry is a running CNCF distribution registry on a loopback port.
type Registry struct {
	// Host is "127.0.0.1:PORT", ready to prefix repository names.
	Host string
	// CAFile is the path of the PEM CA certificate when TLS is on, else "".
	CAFile string
	// CertPool holds the CA when TLS is on, else nil.
	CertPool *x509.CertPool
	// Username and Password are the htpasswd credentials when htpasswd is on.
	Username, Password string
	// StorageDir is the registry's filesystem storage root.
	StorageDir string
}

// RegistryOption configures StartRegistry.
type RegistryOption func(*registryOptions)

type registryOptions struct {
	user, password string
	tls            bool
}

// WithHtpasswd turns on basic authentication with a single bcrypt htpasswd
// entry for user and password.
func WithHtpasswd(user, password string) RegistryOption {
	return func(o *registryOptions) { o.user, o.password = user, password }
}

// WithTLS serves HTTPS with a certificate for 127.0.0.1 and localhost signed
// by a freshly generated CA (see Registry.CAFile and Registry.CertPool).
func WithTLS() RegistryOption {
	return func(o *registryOptions) { o.tls = true }
}

// RequireService stops the test because a service it needs (what) is
// missing: t.Fatalf when the environment has CI=true, t.Skipf otherwise.
func RequireService(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required service missing (CI=true): %s", what)
	}
	t.Skipf("skipping: service missing: %s (set CI=true to make this a failure)", what)
}

// registryBinary finds the distribution registry binary, or "".
func registryBinary() string {
	if p := os.Getenv(RegistryBinEnv); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/docker-registry"); err == nil {
		return "/usr/bin/docker-registry"
	}
	for _, name := range []string{"docker-registry", "registry"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// StartRegistry starts the real CNCF distribution registry
// (/usr/bin/docker-registry) on a free 127.0.0.1 port with a temp config and
// storage dir; it is stopped and cleaned up with t.Cleanup. It fails the test
// when CI=true and the binary is missing, and skips it otherwise. It returns
// once the registry answers GET /v2/.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	var o registryOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin := registryBinary()
	if bin == "" {
		RequireService(t, "docker-registry (CNCF distribution; Debian package docker-registry, or set "+RegistryBinEnv+")")
	}
	if _, err := os.Stat(bin); err != nil {
		RequireService(t, fmt.Sprintf("docker-registry at %s: %v", bin, err))
	}

	dir := t.TempDir()
	r := &Registry{StorageDir: filepath.Join(dir, "storage")}
	if err := os.MkdirAll(r.StorageDir, 0o755); err != nil {
		t.Fatalf("creating registry storage: %v", err)
	}

	var authCfg, tlsCfg string
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("hashing htpasswd password: %v", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(o.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatalf("writing htpasswd: %v", err)
		}
		r.Username, r.Password = o.user, o.password
		authCfg = fmt.Sprintf("auth:\n  htpasswd:\n    realm: ship-test\n    path: %s\n", htpasswd)
	}
	if o.tls {
		caPEM, certPEM, keyPEM, err := selfSignedChain()
		if err != nil {
			t.Fatalf("generating TLS certificates: %v", err)
		}
		r.CAFile = filepath.Join(dir, "ca.pem")
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		for _, f := range []struct {
			path string
			data []byte
		}{{r.CAFile, caPEM}, {certFile, certPEM}, {keyFile, keyPEM}} {
			if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
				t.Fatalf("writing %s: %v", f.path, err)
			}
		}
		r.CertPool = x509.NewCertPool()
		r.CertPool.AppendCertsFromPEM(caPEM)
		tlsCfg = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
	}

	// A free port can be taken between probing and binding: retry a few times.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		r.Host = "127.0.0.1:" + strconv.Itoa(port)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: ship-test-secret
%s%s`, r.StorageDir, r.Host, tlsCfg, authCfg)
		cfgFile := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatalf("writing registry config: %v", err)
		}
		lastErr = r.start(t, bin, cfgFile)
		if lastErr == nil {
			return r
		}
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return nil
}

// start runs the binary and waits for GET /v2/ to answer. On failure the
// process is stopped and an error returned.
func (r *Registry) start(t testing.TB, bin, cfgFile string) error {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	// The registry dies with the test process, even when a test panics.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	url := r.URL() + "/v2/"
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("registry exited early (%v): %s", err, out.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			// 200 without auth, 401 with htpasswd: both mean it serves.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("registry did not answer on %s: %v; output: %s", url, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			stop()
		}
		if t.Failed() {
			if log := unexpectedLogLines(out.String()); log != "" {
				t.Logf("docker-registry output:\n%s", log)
			}
		}
	})
	return nil
}

// URL returns the base URL of the registry, "http://HOST" or "https://HOST".
func (r *Registry) URL() string {
	if r.CertPool != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// Transport returns an HTTP transport that trusts the registry's CA (when TLS
// is on) in addition to nothing else: use it with ggcr's remote.WithTransport.
func (r *Registry) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CertPool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.CertPool, MinVersion: tls.VersionTLS12}
	}
	return tr
}

// Ref returns HOST/repo, e.g. r.Ref("app:1") is "127.0.0.1:PORT/app:1".
func (r *Registry) Ref(repo string) string { return r.Host + "/" + repo }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// selfSignedChain returns a CA certificate and a server certificate plus key
// for 127.0.0.1, ::1 and localhost, all PEM encoded.
func selfSignedChain() (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ship-action test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if len(caPEM) == 0 || len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, nil, nil, errors.New("encoding PEM")
	}
	return caPEM, certPEM, keyPEM, nil
}

// syncBuffer is a bytes.Buffer safe for the process's output goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// unexpectedLogLines drops the registry's log lines about blobs and
// manifests that are not there yet: every push asks for them first, so they
// only hide the lines that explain a failure.
func unexpectedLogLines(log string) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(line, `err.code="blob unknown"`) || strings.Contains(line, `err.code="manifest unknown"`) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}
